#include "node/admin/command.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meshmq::admin {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<Command> Parse(std::vector<std::string> words, CommandOptions options = {}) {
  return ParseCommand(words, options);
}

TEST(CommandTest, EveryCommandParses) {
  struct Case {
    std::vector<std::string> words;
    CommandKind kind;
  };
  const std::vector<Case> cases = {
      {{"status"}, CommandKind::kStatus},
      {{"cluster", "members"}, CommandKind::kClusterMembers},
      {{"cluster", "join", "10.0.0.1:7883"}, CommandKind::kClusterJoin},
      {{"cluster", "leave"}, CommandKind::kClusterLeave},
      {{"cluster", "leave", "n2"}, CommandKind::kClusterLeave},
      {{"node", "drain"}, CommandKind::kNodeDrain},
      {{"clients", "list"}, CommandKind::kClientsList},
      {{"clients", "show", "c1"}, CommandKind::kClientsShow},
      {{"clients", "kick", "c1"}, CommandKind::kClientsKick},
      {{"sessions", "list"}, CommandKind::kSessionsList},
      {{"sessions", "show", "c1"}, CommandKind::kSessionsShow},
      {{"sessions", "drop", "c1"}, CommandKind::kSessionsDrop},
      {{"subscriptions", "list"}, CommandKind::kSubscriptionsList},
      {{"routes"}, CommandKind::kRoutes},
      {{"retained", "list"}, CommandKind::kRetainedList},
      {{"retained", "list", "a/#"}, CommandKind::kRetainedList},
      {{"retained", "get", "a/b"}, CommandKind::kRetainedGet},
      {{"retained", "delete", "a/b"}, CommandKind::kRetainedDelete},
      {{"publish", "a/b", "hello"}, CommandKind::kPublish},
      {{"metrics"}, CommandKind::kMetrics},
      {{"log-level", "debug"}, CommandKind::kLogLevel},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Command> command = Parse(c.words);
    ASSERT_TRUE(command.ok()) << c.words.front() << ": " << command.status();
    EXPECT_EQ(command->kind, c.kind) << c.words.front();
  }
}

TEST(CommandTest, ArgumentsAndOptionsAreKept) {
  CommandOptions options;
  options.qos = 1;
  options.retain = true;
  absl::StatusOr<Command> command = Parse({"publish", "a/b", "hello world"}, options);
  ASSERT_TRUE(command.ok());
  EXPECT_EQ(command->arg, "a/b");
  EXPECT_EQ(command->arg2, "hello world");
  EXPECT_EQ(command->options.qos, 1u);
  EXPECT_TRUE(command->options.retain);

  command = Parse({"cluster", "leave", "n2"});
  ASSERT_TRUE(command.ok());
  EXPECT_EQ(command->arg, "n2");
  command = Parse({"cluster", "leave"});
  ASSERT_TRUE(command.ok());
  EXPECT_EQ(command->arg, "");
}

TEST(CommandTest, MistakesAreOneClearLine) {
  EXPECT_THAT(Parse({}).status().message(), HasSubstr("no command"));
  EXPECT_THAT(Parse({"frobnicate"}).status().message(), HasSubstr("unknown command 'frobnicate'"));
  EXPECT_THAT(Parse({"clients"}).status().message(), HasSubstr("list, show, kick"));
  EXPECT_THAT(Parse({"clients", "show"}).status().message(),
              HasSubstr("usage: meshmqctl clients show ID (missing argument)"));
  EXPECT_THAT(Parse({"clients", "show", "a", "b"}).status().message(),
              HasSubstr("too many arguments"));
  EXPECT_THAT(Parse({"publish", "a/b"}).status().message(), HasSubstr("TOPIC PAYLOAD"));
  EXPECT_THAT(Parse({"cluster", "join", "nohost"}).status().message(), HasSubstr("HOST:PORT"));
  EXPECT_THAT(Parse({"log-level", "loud"}).status().message(),
              HasSubstr("unknown log level 'loud'"));
  CommandOptions options;
  options.qos = 3;
  EXPECT_THAT(Parse({"publish", "a", "b"}, options).status().message(),
              HasSubstr("--qos must be 0, 1 or 2"));
  for (const auto& status : {Parse({}).status(), Parse({"clients", "show"}).status()}) {
    EXPECT_EQ(std::string(status.message()).find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace meshmq::admin
