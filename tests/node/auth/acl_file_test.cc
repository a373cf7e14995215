// Tests for node/auth/acl_file.h. The last test runs the same ACL file through a real mosquitto and
// checks that it grants and denies exactly what AclFile does.
#include "node/auth/acl_file.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/node/auth/mosquitto_runner.h"

namespace meshmq::auth {
namespace {

using ::testing::HasSubstr;
using test_util::Mosquitto;
using test_util::ReadAll;
using test_util::RunCommand;
using Access = AclFile::Access;
constexpr Access kRead = Access::kRead;
constexpr Access kWrite = Access::kWrite;
constexpr std::nullopt_t kAnonymous = std::nullopt;

AclFile MustParse(std::string_view contents) {
  absl::StatusOr<AclFile> acl = AclFile::Parse(contents);
  EXPECT_TRUE(acl.ok()) << acl.status();
  return acl.ok() ? *std::move(acl) : *AclFile::Parse("");
}

// ---- Parsing ------------------------------------------------------------------------------------

TEST(AclFileParseTest, ReadsEveryKeywordAndAccessWord) {
  const AclFile acl = MustParse(
      "# comment\n"
      "\n"
      "   # indented comment\n"
      "topic read anon/r\n"
      "user alice\n"
      "  topic read a/r\n"
      "topic write a/w\n"
      "topic read a/x/#\n"
      "topic readwrite a/rw\n"
      "topic a/default\n"
      "topic deny a/+/denied\n"
      "\tpattern read p/%u/r   \r\n"
      "pattern   write   p/%u/w\n");
  EXPECT_TRUE(acl.CheckTopic(kAnonymous, "c", "anon/r", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "a/r", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "a/r", kWrite));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "a/w", kWrite));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "a/w", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "a/rw", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "a/rw", kWrite));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "a/default", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "a/default", kWrite));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "a/other", kRead));  // no rule grants it
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "a/x/denied", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "p/alice/r", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "p/alice/r", kWrite));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "p/alice/w", kWrite));
}

TEST(AclFileParseTest, TopicIsTheRestOfTheLineAfterAnAccessWord) {
  const AclFile acl = MustParse(
      "topic read living room/temp\n"
      "topic write  a  b \n"
      "user john doe\n"
      "topic read j/#\n");
  EXPECT_TRUE(acl.CheckTopic(kAnonymous, "c", "living room/temp", kRead));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "c", "living", kRead));
  EXPECT_TRUE(acl.CheckTopic(kAnonymous, "c", "a  b", kWrite));
  EXPECT_TRUE(acl.CheckTopic("john doe", "c", "j/x", kRead));
  EXPECT_FALSE(acl.CheckTopic("john", "c", "j/x", kRead));
}

TEST(AclFileParseTest, ErrorsNameTheLine) {
  const struct {
    std::string line;
    std::string message_part;
  } bad[] = {
      {"topics read a", "unknown keyword \"topics\""},
      {"Topic read a", "unknown keyword \"Topic\""},
      {"allow a/b", "unknown keyword"},
      {"topic readonly a/b", "invalid access \"readonly\""},
      {"topic a b", "invalid access \"a\""},  // spaces need an explicit access word
      {"topic", "without a topic"},
      {"pattern   ", "without a topic"},
      {"user", "without a username"},
      {"user   \t", "without a username"},
      {"topic read a/#/b", "invalid topic filter"},
      {"topic read a/b+", "invalid topic filter"},
      {"pattern deny users/%u#", "invalid topic filter"},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b.line);
    absl::StatusOr<AclFile> acl = AclFile::Parse("# fine\ntopic read ok\n\n" + b.line + "\n");
    ASSERT_FALSE(acl.ok());
    EXPECT_EQ(acl.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(acl.status().message(), HasSubstr("line 4"));
    EXPECT_THAT(acl.status().message(), HasSubstr(b.message_part));
  }
}

TEST(AclFileParseTest, LoadErrorsNameThePath) {
  char tmpl[] = "/tmp/meshmq_acl_file_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string path = dir + "/acl";

  absl::StatusOr<AclFile> missing = AclFile::Load(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(path));

  std::ofstream(path) << "user alice\ntopic read a\nbogus\n";
  absl::StatusOr<AclFile> bad = AclFile::Load(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr(path));
  EXPECT_THAT(bad.status().message(), HasSubstr("line 3"));

  std::ofstream(path) << "user alice\ntopic read a\n";
  absl::StatusOr<AclFile> good = AclFile::Load(path);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(good->CheckTopic("alice", "c", "a", kRead));
  std::filesystem::remove_all(dir);
}

// ---- Who a rule applies to ----------------------------------------------------------------------

TEST(AclFileTest, EmptyFileDeniesEverything) {
  const AclFile acl = MustParse("# nothing\n");
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "c", "a", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "a", kWrite));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c", "#"));
}

TEST(AclFileTest, TopicLinesBeforeFirstUserAreForAnonymousClientsOnly) {
  const AclFile acl = MustParse(
      "topic read public/#\n"
      "user alice\n"
      "topic readwrite alice/#\n");
  EXPECT_TRUE(acl.CheckTopic(kAnonymous, "c", "public/news", kRead));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "c", "public/news", kWrite));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "c", "alice/x", kRead));
  // A user does not inherit the anonymous rules, and an empty username is still a username.
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "public/news", kRead));
  EXPECT_FALSE(acl.CheckTopic("", "c", "public/news", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "alice/x", kWrite));
  // Users without a section get nothing from other sections.
  EXPECT_FALSE(acl.CheckTopic("bob", "c", "alice/x", kRead));
  EXPECT_FALSE(acl.CheckTopic("bob", "c", "public/news", kRead));
}

TEST(AclFileTest, SectionsForTheSameUserAddUp) {
  const AclFile acl = MustParse(
      "user alice\ntopic read a\n"
      "user bob\ntopic read b\n"
      "user alice\ntopic read c\n");
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "a", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "c", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "b", kRead));
  EXPECT_TRUE(acl.CheckTopic("bob", "c", "b", kRead));
  EXPECT_FALSE(acl.CheckTopic("bob", "c", "c", kRead));
}

TEST(AclFileTest, UsernamePatternsGivePrivateTopics) {
  const AclFile acl = MustParse("pattern readwrite users/%u/#\n");
  EXPECT_TRUE(acl.CheckTopic("alice", "c1", "users/alice/x", kWrite));
  EXPECT_TRUE(acl.CheckTopic("alice", "c1", "users/alice/x", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c1", "users/alice", kRead));  // '#' includes the parent
  EXPECT_FALSE(acl.CheckTopic("alice", "c1", "users/bob/x", kWrite));
  EXPECT_FALSE(acl.CheckTopic("alice", "c1", "users/bob/x", kRead));
  EXPECT_TRUE(acl.CheckTopic("bob", "c1", "users/bob/x", kRead));
  // A %u pattern never applies to a client without a username...
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "c1", "users/%u/x", kRead));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "c1", "users//x", kRead));
  // ...while an empty username substitutes as an empty level.
  EXPECT_TRUE(acl.CheckTopic("", "c1", "users//x", kRead));
}

TEST(AclFileTest, ClientIdPatternsApplyToAnonymousClientsToo) {
  const AclFile acl = MustParse(
      "user alice\n"
      "pattern write devices/%c/status\n"
      "pattern read devices/%c/%u/cmd\n");
  EXPECT_TRUE(acl.CheckTopic(kAnonymous, "dev7", "devices/dev7/status", kWrite));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "dev7", "devices/dev8/status", kWrite));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "dev7", "devices/dev7/status", kRead));
  EXPECT_TRUE(acl.CheckTopic("bob", "dev7", "devices/dev7/status", kWrite));
  EXPECT_TRUE(acl.CheckTopic("bob", "dev7", "devices/dev7/bob/cmd", kRead));
  EXPECT_FALSE(acl.CheckTopic("bob", "dev7", "devices/dev7/alice/cmd", kRead));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "dev7", "devices/dev7/bob/cmd", kRead));
}

// Mosquitto refuses pattern access to clients whose username or client id contains a wildcard:
// "pattern read users/%u/#" would otherwise let user "+" read every user's topics.
TEST(AclFileTest, WildcardsInUsernameOrClientIdDenyPatternAccess) {
  const AclFile acl = MustParse(
      "user +\n"
      "topic read own/#\n"
      "pattern read users/%u/#\n"
      "pattern read clients/%c/#\n"
      "pattern read everyone\n");
  EXPECT_FALSE(acl.CheckTopic("+", "c", "users/alice/x", kRead));
  EXPECT_FALSE(acl.CheckTopic("a#", "c", "users/a#/x", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "+", "clients/x/y", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "#", "everyone", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "everyone", kRead));
  // The user's own section is checked before that, and still applies.
  EXPECT_TRUE(acl.CheckTopic("+", "c", "own/x", kRead));
  // '/' is allowed (as in Mosquitto 2.0) and simply adds levels.
  EXPECT_TRUE(acl.CheckTopic("a/b", "c", "users/a/b/x", kRead));
}

// ---- Decision order -----------------------------------------------------------------------------

TEST(AclFileTest, DenyRulesWinWithinTheUsersOwnRulesWhateverTheirOrder) {
  const AclFile acl = MustParse(
      "user alice\n"
      "topic readwrite sensors/#\n"
      "topic deny sensors/secret\n"
      "topic deny private/#\n"
      "topic readwrite private/shared\n");
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "sensors/temp", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "sensors/secret", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "sensors/secret", kWrite));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "sensors/secret/sub", kRead));  // deny is exact
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "private/shared", kWrite));
}

TEST(AclFileTest, OwnRulesAreDecidedBeforePatterns) {
  const AclFile acl = MustParse(
      "user admin\n"
      "topic readwrite #\n"
      "user alice\n"
      "topic deny users/alice/blocked\n"
      "pattern readwrite users/%u/#\n"
      "pattern deny users/%u/locked\n");
  // A user's own allow beats a deny pattern...
  EXPECT_TRUE(acl.CheckTopic("admin", "c", "users/admin/locked", kWrite));
  // ...a user's own deny beats an allow pattern...
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "users/alice/blocked", kWrite));
  // ...and among patterns, deny patterns come first even when written after.
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "users/alice/locked", kWrite));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "users/alice/open", kWrite));
  EXPECT_FALSE(acl.CheckTopic("bob", "c", "users/bob/locked", kRead));
  EXPECT_TRUE(acl.CheckTopic("bob", "c", "users/bob/open", kRead));
}

TEST(AclFileTest, ARuleWithoutTheWantedAccessDoesNotStopTheSearch) {
  const AclFile acl = MustParse(
      "user alice\n"
      "topic read data/#\n"
      "pattern write data/%u\n");
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "data/alice", kWrite));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "data/alice", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "data/bob", kWrite));
}

TEST(AclFileTest, WildcardRulesDoNotMatchDollarTopics) {
  const AclFile acl = MustParse(
      "user alice\n"
      "topic readwrite #\n"
      "topic read +/info\n"
      "user monitor\n"
      "topic read $SYS/#\n");
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "a/b", kWrite));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "$SYS/broker/uptime", kRead));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "$SYS/info", kRead));
  EXPECT_TRUE(acl.CheckTopic("monitor", "c", "$SYS/broker/uptime", kRead));
  EXPECT_FALSE(acl.CheckTopic("monitor", "c", "$SYS/broker/uptime", kWrite));
}

TEST(AclFileTest, TopicsWithWildcardsAreNeverGranted) {
  const AclFile acl = MustParse("topic readwrite #\n");
  EXPECT_TRUE(acl.CheckTopic(kAnonymous, "c", "a/b", kWrite));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "c", "a/+", kWrite));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "c", "#", kRead));
  EXPECT_FALSE(acl.CheckTopic(kAnonymous, "c", "", kRead));
}

// ---- Subscribe ----------------------------------------------------------------------------------

TEST(AclFileSubscribeTest, ARuleMustCoverEveryTopicTheFilterMatches) {
  const AclFile acl = MustParse(
      "user alice\n"
      "topic read sensors/#\n"
      "topic read rooms/+\n"
      "topic read exact/topic\n"
      "topic write out/#\n");
  for (const char* filter : {"sensors/#", "sensors/+/temp", "sensors", "sensors/a/b/c",
                             "sensors/+/#", "rooms/a", "rooms/+", "exact/topic"}) {
    EXPECT_TRUE(acl.CheckSubscribe("alice", "c", filter)) << filter;
  }
  for (const char* filter : {"#", "+/#", "+", "sens/#", "rooms/#", "rooms/a/b", "rooms", "+/a",
                             "exact/+", "exact/#", "exact", "out/#", "out/x"}) {
    EXPECT_FALSE(acl.CheckSubscribe("alice", "c", filter)) << filter;
  }
  EXPECT_FALSE(acl.CheckSubscribe("bob", "c", "sensors/#"));
}

TEST(AclFileSubscribeTest, HashRuleCoversEverythingButDollarTopics) {
  const AclFile acl = MustParse(
      "user alice\n"
      "topic read #\n"
      "user monitor\n"
      "topic read $SYS/#\n");
  EXPECT_TRUE(acl.CheckSubscribe("alice", "c", "#"));
  EXPECT_TRUE(acl.CheckSubscribe("alice", "c", "+/+/x"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c", "$SYS/#"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c", "$SYS/uptime"));
  EXPECT_TRUE(acl.CheckSubscribe("monitor", "c", "$SYS/#"));
  EXPECT_TRUE(acl.CheckSubscribe("monitor", "c", "$SYS/+/uptime"));
  EXPECT_FALSE(acl.CheckSubscribe("monitor", "c", "#"));
  EXPECT_FALSE(acl.CheckSubscribe("monitor", "c", "+/uptime"));
}

TEST(AclFileSubscribeTest, DenyRulesRefuseOnlyFiltersTheyCover) {
  const AclFile acl = MustParse(
      "user alice\n"
      "topic read sensors/#\n"
      "topic deny sensors/secret\n"
      "topic deny sensors/vault/#\n");
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c", "sensors/secret"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c", "sensors/vault/#"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c", "sensors/vault/+/x"));
  // Partly denied filters are granted; CheckTopic filters those deliveries.
  EXPECT_TRUE(acl.CheckSubscribe("alice", "c", "sensors/#"));
  EXPECT_TRUE(acl.CheckSubscribe("alice", "c", "sensors/+"));
  EXPECT_FALSE(acl.CheckTopic("alice", "c", "sensors/secret", kRead));
  EXPECT_TRUE(acl.CheckTopic("alice", "c", "sensors/public", kRead));
}

TEST(AclFileSubscribeTest, PatternsAreSubstitutedBeforeTheCoveringTest) {
  const AclFile acl = MustParse(
      "pattern read users/%u/#\n"
      "pattern deny users/%u/private/#\n"
      "pattern read clients/%c/+\n");
  EXPECT_TRUE(acl.CheckSubscribe("alice", "c1", "users/alice/#"));
  EXPECT_TRUE(acl.CheckSubscribe("alice", "c1", "users/alice/+/temp"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c1", "users/+/temp"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c1", "users/bob/#"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c1", "users/alice/private/+"));
  EXPECT_TRUE(acl.CheckSubscribe(kAnonymous, "c1", "clients/c1/+"));
  EXPECT_FALSE(acl.CheckSubscribe(kAnonymous, "c1", "clients/c1/#"));
  EXPECT_FALSE(acl.CheckSubscribe(kAnonymous, "c1", "users/+/x"));
  EXPECT_FALSE(acl.CheckSubscribe("+", "c1", "users/+/x"));
}

TEST(AclFileSubscribeTest, SharedSubscriptionsAreCheckedByTheirFilter) {
  const AclFile acl = MustParse("user alice\ntopic read jobs/#\n");
  EXPECT_TRUE(acl.CheckSubscribe("alice", "c", "$share/workers/jobs/#"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c", "$share/workers/other/#"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c", "$share//jobs/#"));
  EXPECT_FALSE(acl.CheckSubscribe("alice", "c", "$share/workers"));
}

TEST(AclFileSubscribeTest, InvalidFiltersAreRefused) {
  const AclFile acl = MustParse("topic read #\n");
  EXPECT_TRUE(acl.CheckSubscribe(kAnonymous, "c", "a/#"));
  EXPECT_FALSE(acl.CheckSubscribe(kAnonymous, "c", "a/#/b"));
  EXPECT_FALSE(acl.CheckSubscribe(kAnonymous, "c", "a+"));
  EXPECT_FALSE(acl.CheckSubscribe(kAnonymous, "c", ""));
}

// ---- Interop with a real mosquitto --------------------------------------------------------------

// A connected identity: username (nullopt = anonymous), password and client id.
struct Client {
  std::optional<std::string> username;
  std::string password;
  std::string client_id;
};

// Asks a running mosquitto whether a client may publish to or receive a topic, without waiting
// for anything to not happen: every probe ends with a "marker" message that is always allowed, and
// what arrives first tells the answer. Retained messages make this deterministic: mosquitto_pub
// -q 1 returns after the broker has processed (stored or dropped) the publish, and a SUBSCRIBE
// for [topic, marker] delivers the retained messages in that order, each after the read check.
class MosquittoProbe {
 public:
  MosquittoProbe(std::string dir, int port, Client admin)
      : dir_(std::move(dir)), port_(port), admin_(std::move(admin)) {}

  // Did mosquitto accept `client`'s publish to `topic`? (The admin reads everything.)
  bool AllowsWrite(const Client& client, const std::string& topic) {
    Publish(admin_, topic, "");  // clear whatever a previous probe left
    Publish(client, topic, "probe");
    Publish(client, Marker(client), "marker");
    return FirstTopicReceived(admin_, topic, Marker(client)) == topic;
  }

  // Does mosquitto deliver a message on `topic` to `client`? (The admin writes everything.)
  bool AllowsRead(const Client& client, const std::string& topic) {
    Publish(admin_, topic, "probe");
    Publish(admin_, Marker(client), "marker");
    const bool allowed = FirstTopicReceived(client, topic, Marker(client)) == topic;
    Publish(admin_, topic, "");
    return allowed;
  }

 private:
  // Every client may read and write this, through "pattern readwrite clients/%c/#".
  static std::string Marker(const Client& client) {
    return "clients/" + client.client_id + "/marker";
  }

  std::vector<std::string> Args(const char* tool, const Client& client) const {
    std::vector<std::string> args = {tool, "-p", std::to_string(port_), "-i", client.client_id};
    if (client.username.has_value()) {
      args.insert(args.end(), {"-u", *client.username, "-P", client.password});
    }
    return args;
  }

  // Publishes retained at QoS 1; an empty payload clears the retained message.
  void Publish(const Client& client, const std::string& topic, const std::string& payload) {
    std::vector<std::string> args = Args("mosquitto_pub", client);
    args.insert(args.end(), {"-q", "1", "-r", "-t", topic});
    if (payload.empty()) {
      args.push_back("-n");
    } else {
      args.insert(args.end(), {"-m", payload});
    }
    const std::string log = dir_ + "/pub.log";
    EXPECT_EQ(RunCommand(args, log), 0) << ReadAll(log);
  }

  std::string FirstTopicReceived(const Client& client, const std::string& topic,
                                 const std::string& marker) {
    std::vector<std::string> args = Args("mosquitto_sub", client);
    // -W is only a safety net: the marker is always there, so this returns at once.
    args.insert(args.end(), {"-t", topic, "-t", marker, "-C", "1", "-W", "10", "-F", "%t"});
    const std::string log = dir_ + "/sub.log";
    EXPECT_EQ(RunCommand(args, log), 0) << ReadAll(log);
    std::string first = ReadAll(log);
    if (!first.empty() && first.back() == '\n') first.pop_back();
    return first;
  }

  std::string dir_;
  int port_;
  Client admin_;
};

TEST(AclFileInteropTest, AgreesWithMosquitto) {
  const std::string acl_text =
      "# anonymous clients\n"
      "topic read public/#\n"
      "topic write public/drop\n"
      "\n"
      "user alice\n"
      "topic read pub/#\n"
      "topic write inbox/#\n"
      "topic readwrite shared/#\n"
      "topic deny shared/secret\n"
      "topic read room 1/temp\n"
      "\n"
      "user admin\n"
      "topic readwrite #\n"
      "\n"
      "pattern readwrite clients/%c/#\n"
      "pattern readwrite users/%u/#\n"
      "pattern deny users/%u/locked\n";
  absl::StatusOr<AclFile> acl = AclFile::Parse(acl_text);
  ASSERT_TRUE(acl.ok()) << acl.status();

  char tmpl[] = "/tmp/meshmq_acl_interop.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::ofstream(dir + "/acl") << acl_text;
  const std::string pw = dir + "/passwd";
  ASSERT_EQ(RunCommand({"/usr/bin/mosquitto_passwd", "-c", "-b", pw, "admin", "admin-pw"}), 0);
  ASSERT_EQ(RunCommand({"/usr/bin/mosquitto_passwd", "-b", pw, "alice", "alice-pw"}), 0);
  ASSERT_EQ(RunCommand({"/usr/bin/mosquitto_passwd", "-b", pw, "bob", "bob-pw"}), 0);

  {
    auto broker = Mosquitto::Start(
        dir, "allow_anonymous true\npassword_file " + pw + "\nacl_file " + dir + "/acl\n");
    ASSERT_TRUE(broker.ok()) << broker.status();
    const Client admin{"admin", "admin-pw", "admin-1"};
    const Client alice{"alice", "alice-pw", "alice-1"};
    const Client bob{"bob", "bob-pw", "bob-1"};
    const Client anon{std::nullopt, "", "anon-1"};
    MosquittoProbe mosquitto(dir, (*broker)->port(), admin);

    const struct {
      const Client& client;
      std::string topic;
      Access access;
      bool allowed;
    } cases[] = {
        {anon, "public/news", kRead, true},
        {anon, "public/news", kWrite, false},
        {anon, "public/drop", kWrite, true},
        {anon, "users/x/y", kRead, false},
        {alice, "pub/a", kRead, true},
        {alice, "pub/a", kWrite, false},
        {alice, "inbox/x", kWrite, true},
        {alice, "inbox/x", kRead, false},
        {alice, "shared/ok", kRead, true},
        {alice, "shared/secret", kRead, false},
        {alice, "shared/secret", kWrite, false},
        {alice, "room 1/temp", kRead, true},
        {alice, "public/news", kRead, false},
        {alice, "users/alice/x", kWrite, true},
        {alice, "users/bob/x", kWrite, false},
        {alice, "users/alice/locked", kRead, false},
        {bob, "users/bob/x", kRead, true},
        {bob, "users/alice/x", kRead, false},
        {bob, "pub/a", kRead, false},
        {admin, "users/admin/locked", kWrite, true},
    };
    for (const auto& c : cases) {
      const std::string who = c.client.username.value_or("(anonymous)");
      SCOPED_TRACE(who + (c.access == kRead ? " read " : " write ") + c.topic);
      const bool ours = acl->CheckTopic(c.client.username, c.client.client_id, c.topic, c.access);
      const bool theirs = c.access == kRead ? mosquitto.AllowsRead(c.client, c.topic)
                                            : mosquitto.AllowsWrite(c.client, c.topic);
      EXPECT_EQ(ours, c.allowed);
      EXPECT_EQ(theirs, c.allowed) << "mosquitto disagrees";
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace meshmq::auth
