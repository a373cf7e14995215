#include "node/admin/access.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "node/admin/log_level.h"

namespace meshmq::admin {
namespace {

TEST(AccessTest, LoopbackHosts) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("[::1]"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("[::]"));
  EXPECT_FALSE(IsLoopbackHost(""));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("127example.com"));
}

TEST(AccessTest, AnOpenListenerNeedsAToken) {
  EXPECT_TRUE(CheckListenAccess("127.0.0.1:9883", false).ok());
  EXPECT_TRUE(CheckListenAccess("0.0.0.0:9883", true).ok());
  absl::Status open = CheckListenAccess("0.0.0.0:9883", false);
  EXPECT_FALSE(open.ok());
  EXPECT_NE(std::string(open.message()).find("--admin_token_file"), std::string::npos);
  EXPECT_FALSE(CheckListenAccess(":9883", false).ok());  // every interface
  EXPECT_FALSE(CheckListenAccess("nohostport", true).ok());
}

TEST(AccessTest, BearerToken) {
  EXPECT_TRUE(BearerMatches("Bearer s3cret", "s3cret"));
  EXPECT_FALSE(BearerMatches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(BearerMatches("Bearer s3cret ", "s3cret"));
  EXPECT_FALSE(BearerMatches("bearer s3cret", "s3cret"));
  EXPECT_FALSE(BearerMatches("s3cret", "s3cret"));
  EXPECT_FALSE(BearerMatches("", "s3cret"));
}

TEST(AccessTest, TokenFileIsTrimmed) {
  const std::string path = ::testing::TempDir() + "/access_test_token";
  {
    std::ofstream(path) << "  abc123\n";
  }
  absl::StatusOr<std::string> token = ReadToken(path);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "abc123");
  {
    std::ofstream(path) << "\n";
  }
  EXPECT_FALSE(ReadToken(path).ok());
  std::remove(path.c_str());
  EXPECT_FALSE(ReadToken(path).ok());
}

TEST(LogLevelTest, ParseAndSet) {
  EXPECT_EQ(ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("warn"), LogLevel::kWarning);
  EXPECT_EQ(ParseLogLevel("loud"), std::nullopt);
  SetLogLevel(LogLevel::kError);
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
  SetLogLevel(LogLevel::kInfo);
  EXPECT_STREQ(LogLevelName(CurrentLogLevel()), "info");
}

}  // namespace
}  // namespace meshmq::admin
