// meshmqd's log (node/log.h): level names, the run-time level, and which lines reach stderr at
// each level, whole and with one newline each.
#include "node/log.h"

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meshmq {
namespace {

using ::testing::internal::CaptureStderr;
using ::testing::internal::GetCapturedStderr;

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { SetLogLevel(LogLevel::kInfo); }

  // What one line of each level writes at `level`.
  static std::string WrittenAt(LogLevel level) {
    SetLogLevel(level);
    CaptureStderr();
    Log(LogLevel::kError, "meshmqd: e %d", 1);
    Log(LogLevel::kWarning, "meshmqd: w %s", "two");
    Log(LogLevel::kInfo, "meshmqd: i");
    Log(LogLevel::kDebug, "meshmqd: d");
    return GetCapturedStderr();
  }
};

TEST_F(LogTest, ParsesTheLevelNames) {
  EXPECT_EQ(ParseLogLevel("error"), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("warning"), LogLevel::kWarning);
  EXPECT_EQ(ParseLogLevel("warn"), LogLevel::kWarning);
  EXPECT_EQ(ParseLogLevel("info"), LogLevel::kInfo);
  EXPECT_EQ(ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("INFO"), std::nullopt);
  EXPECT_EQ(ParseLogLevel(""), std::nullopt);
  EXPECT_EQ(ParseLogLevel("loud"), std::nullopt);
  for (LogLevel level :
       {LogLevel::kError, LogLevel::kWarning, LogLevel::kInfo, LogLevel::kDebug}) {
    EXPECT_EQ(ParseLogLevel(LogLevelName(level)), level);
  }
}

TEST_F(LogTest, StartsAtInfo) {
  EXPECT_EQ(CurrentLogLevel(), LogLevel::kInfo);
  EXPECT_TRUE(LogEnabled(LogLevel::kInfo));
  EXPECT_FALSE(LogEnabled(LogLevel::kDebug));
}

TEST_F(LogTest, EachLevelWritesItsOwnLinesAndTheMoreSevereOnes) {
  EXPECT_EQ(WrittenAt(LogLevel::kError), "meshmqd: e 1\n");
  EXPECT_EQ(WrittenAt(LogLevel::kWarning), "meshmqd: e 1\nmeshmqd: w two\n");
  EXPECT_EQ(WrittenAt(LogLevel::kInfo), "meshmqd: e 1\nmeshmqd: w two\nmeshmqd: i\n");
  EXPECT_EQ(WrittenAt(LogLevel::kDebug),
            "meshmqd: e 1\nmeshmqd: w two\nmeshmqd: i\nmeshmqd: d\n");
}

TEST_F(LogTest, ALineBackAtItsLevelIsWrittenAgain) {
  SetLogLevel(LogLevel::kError);
  CaptureStderr();
  Log(LogLevel::kInfo, "meshmqd: c1 connected");
  SetLogLevel(LogLevel::kInfo);
  Log(LogLevel::kInfo, "meshmqd: c2 connected");
  EXPECT_EQ(GetCapturedStderr(), "meshmqd: c2 connected\n");
}

TEST_F(LogTest, LogLineAndLogAlways) {
  SetLogLevel(LogLevel::kWarning);
  CaptureStderr();
  LogLine(LogLevel::kInfo, "meshmqd: not written");
  LogLine(LogLevel::kWarning, "meshmqd: written");
  LogAlways("meshmqd: log level warning");
  EXPECT_EQ(GetCapturedStderr(), "meshmqd: written\nmeshmqd: log level warning\n");
}

TEST_F(LogTest, ALongLineIsWrittenWhole) {
  const std::string payload(5000, 'x');
  CaptureStderr();
  Log(LogLevel::kInfo, "meshmqd: %s.", payload.c_str());
  EXPECT_EQ(GetCapturedStderr(), "meshmqd: " + payload + ".\n");
  // Right at the edge of the stack buffer, either side.
  for (size_t size : {1010u, 1011u, 1012u, 1013u, 1014u}) {
    const std::string text(size, 'y');
    CaptureStderr();
    Log(LogLevel::kInfo, "meshmqd: %s", text.c_str());
    EXPECT_EQ(GetCapturedStderr(), "meshmqd: " + text + "\n") << size;
  }
}

TEST_F(LogTest, LinesFromSeveralThreadsDoNotInterleave) {
  const std::string body(200, 'z');
  CaptureStderr();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&body, t] {
      for (int i = 0; i < 200; ++i) Log(LogLevel::kInfo, "meshmqd: %d %s", t, body.c_str());
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::string written = GetCapturedStderr();
  std::vector<std::string> lines;
  std::istringstream in(written);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 800u);
  for (const std::string& line : lines) {
    EXPECT_THAT(line, ::testing::MatchesRegex("meshmqd: [0-3] z+")) << line;
    EXPECT_EQ(line.size(), std::string("meshmqd: 0 ").size() + body.size());
  }
}

}  // namespace
}  // namespace meshmq
