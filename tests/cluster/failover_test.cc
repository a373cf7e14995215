// The failovers in progress (cluster/failover.h): one completes when every reporter has
// reported, when its deadline passes or when its node comes back, and hands back the forwards
// its node never acknowledged (orphans, including those that came before it began); while one is
// in progress, publishes matching its node's routes are held and go on once one completes.
#include "cluster/failover.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/message.h"

namespace meshmq::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr int64_t kDeadline = 1000;

// An orphaned forward, told apart by its payload; `order` is when it was forwarded.
Failovers::Orphan Orphan(const std::string& payload, uint64_t order = 0) {
  auto message = std::make_shared<Message>();
  message->topic = "t";
  message->payload = payload;
  message->qos = 1;
  Failovers::Orphan orphan;
  orphan.message = std::move(message);
  orphan.plan.set_ordinary(true);
  orphan.answer = [](bool) {};
  orphan.order = order;
  return orphan;
}

std::vector<std::string> Payloads(const std::vector<Failovers::Orphan>& orphans) {
  std::vector<std::string> payloads;
  for (const Failovers::Orphan& orphan : orphans) payloads.push_back(orphan.message->payload);
  return payloads;
}

// "node: payload,payload" for each failover Poll completes; `resumes` gets the held publishes
// it releases, `unclaimed` the payloads of the orphans no failover took.
std::vector<std::string> Poll(Failovers& failovers, int64_t now_ms,
                              std::vector<std::function<void()>>* resumes,
                              std::vector<std::string>* unclaimed = nullptr) {
  std::vector<Failovers::Orphan> left;
  std::vector<std::string> completed;
  for (const Failovers::Completed& done : failovers.Poll(now_ms, resumes, &left)) {
    completed.push_back(absl::StrCat(done.node, ": ", absl::StrJoin(Payloads(done.orphans), ",")));
  }
  if (unclaimed != nullptr) {
    *unclaimed = Payloads(left);
  } else {
    EXPECT_THAT(Payloads(left), IsEmpty()) << "orphans unclaimed at " << now_ms;
  }
  return completed;
}

std::vector<std::string> Poll(Failovers& failovers, int64_t now_ms = 0) {
  std::vector<std::function<void()>> resumes;
  return Poll(failovers, now_ms, &resumes);
}

// The orphans a Poll at `now_ms` gives up on.
std::vector<std::string> Unclaimed(Failovers& failovers, int64_t now_ms) {
  std::vector<std::function<void()>> resumes;
  std::vector<std::string> unclaimed;
  Poll(failovers, now_ms, &resumes, &unclaimed);
  return unclaimed;
}

// ---- Completion ----

TEST(FailoversTest, NothingIsActiveAtFirst) {
  Failovers failovers;
  EXPECT_FALSE(failovers.active());
  EXPECT_FALSE(failovers.Hold("a/b", [] {}));
  EXPECT_FALSE(failovers.Hold("", [] {}));
  std::vector<std::function<void()>> resumes;
  EXPECT_THAT(Poll(failovers, 0, &resumes), IsEmpty());
  EXPECT_THAT(resumes, IsEmpty());
}

TEST(FailoversTest, CompletesOnceEveryReporterReported) {
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {"n1", "n2"}, kDeadline);
  EXPECT_TRUE(failovers.active());
  failovers.AddOrphan("n3", Orphan("m1"), 0);
  EXPECT_THAT(Poll(failovers), IsEmpty());

  failovers.Report("n3", "n1");
  failovers.Report("n3", "n9");  // not a reporter of this failover
  failovers.Report("n4", "n2");  // another node's failover
  EXPECT_THAT(Poll(failovers), IsEmpty());
  EXPECT_TRUE(failovers.active());

  failovers.Report("n3", "n2");
  EXPECT_THAT(Poll(failovers), ElementsAre("n3: m1"));
  EXPECT_FALSE(failovers.active());
  EXPECT_THAT(Poll(failovers), IsEmpty());
}

TEST(FailoversTest, WithoutReportersItCompletesAtTheNextPoll) {
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {}, kDeadline);
  EXPECT_TRUE(failovers.active());
  EXPECT_THAT(Poll(failovers), ElementsAre("n3: "));
  EXPECT_FALSE(failovers.active());
}

TEST(FailoversTest, TheDeadlineCompletesIt) {
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {"n1", "n2"}, kDeadline);
  failovers.AddOrphan("n3", Orphan("m1"), 0);
  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers, kDeadline - 1), IsEmpty());
  EXPECT_TRUE(failovers.active());
  EXPECT_THAT(Poll(failovers, kDeadline), ElementsAre("n3: m1"));
  EXPECT_FALSE(failovers.active());
}

TEST(FailoversTest, TheNodeComingBackCompletesIt) {
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {"n1", "n2"}, kDeadline);
  failovers.AddOrphan("n3", Orphan("m1"), 0);
  failovers.AddOrphan("n3", Orphan("m2"), 0);
  failovers.NodeBack("n4");  // not the node that is down
  EXPECT_THAT(Poll(failovers), IsEmpty());

  failovers.NodeBack("n3");
  // Publishes are no longer held for it, even before the completion is polled.
  EXPECT_FALSE(failovers.Hold("a/b", [] {}));
  EXPECT_THAT(Poll(failovers), ElementsAre("n3: m1,m2"));
  EXPECT_FALSE(failovers.active());
}

TEST(FailoversTest, AReporterThatGoesDownIsNoLongerAwaited) {
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {"n1", "n2"}, kDeadline);
  failovers.Begin("n4", {"b/#"}, {"n1", "n2"}, kDeadline);
  failovers.Report("n3", "n1");
  failovers.Report("n4", "n1");
  failovers.PeerGone("n5");  // not a reporter
  EXPECT_THAT(Poll(failovers), IsEmpty());

  failovers.PeerGone("n2");
  EXPECT_THAT(Poll(failovers), UnorderedElementsAre("n3: ", "n4: "));
  EXPECT_FALSE(failovers.active());
}

TEST(FailoversTest, ReportsBeforeTheFailoverBeganCount) {
  Failovers failovers;
  // A leaving node's replicas report before its links drop.
  failovers.Report("n3", "n2");
  EXPECT_FALSE(failovers.active());
  failovers.Begin("n3", {"a/#"}, {"n1", "n2"}, kDeadline);
  EXPECT_THAT(Poll(failovers), IsEmpty());
  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers), ElementsAre("n3: "));
}

TEST(FailoversTest, EarlyReportsAreForgottenWhenTheNodeComesBack) {
  Failovers failovers;
  failovers.Report("n3", "n2");
  failovers.NodeBack("n3");
  failovers.Begin("n3", {"a/#"}, {"n1", "n2"}, kDeadline);
  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers), IsEmpty());
  failovers.Report("n3", "n2");
  EXPECT_THAT(Poll(failovers), ElementsAre("n3: "));
}

TEST(FailoversTest, ATakeoverCanBeRestartedAfterCompletion) {
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {"n1"}, kDeadline);
  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers), ElementsAre("n3: "));
  failovers.NodeBack("n3");
  // It dies again: a new failover, that waits for new reports.
  failovers.Begin("n3", {"a/#"}, {"n1"}, 2 * kDeadline);
  EXPECT_THAT(Poll(failovers, kDeadline), IsEmpty());
  EXPECT_TRUE(failovers.Hold("a/b", [] {}));
  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers, kDeadline), ElementsAre("n3: "));
}

// ---- Orphans ----

TEST(FailoversTest, OrphansThatCameBeforeBeginAreAttachedToIt) {
  Failovers failovers;
  failovers.AddOrphan("n3", Orphan("m1"), 0);
  failovers.AddOrphan("n4", Orphan("x1"), 0);
  failovers.AddOrphan("n3", Orphan("m2"), 0);
  failovers.Begin("n3", {"a/#"}, {"n1"}, kDeadline);
  failovers.AddOrphan("n3", Orphan("m3"), 0);
  EXPECT_THAT(Payloads(failovers.TakeOrphans("n3")), IsEmpty());  // the failover has them

  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers), ElementsAre("n3: m1,m2,m3"));
  // Another node's orphans stay where they were.
  EXPECT_THAT(Payloads(failovers.TakeOrphans("n4")), ElementsAre("x1"));
}

// The link fails the frames it never sent as it drops, and the ones sent but not confirmed only
// when the peer is seen down: the later forwards become orphans first. Redelivered in the order
// they were forwarded, a publisher's messages keep their order.
TEST(FailoversTest, OrphansComeBackInTheOrderTheyWereForwarded) {
  constexpr int64_t kWait = Failovers::kOrphanWaitMs;
  Failovers failovers;
  failovers.AddOrphan("n3", Orphan("m3", 3), 0);
  failovers.AddOrphan("n3", Orphan("m4", 4), 0);
  failovers.Begin("n3", {"a/#"}, {"n1"}, kDeadline);
  failovers.AddOrphan("n3", Orphan("m1", 1), 0);
  failovers.AddOrphan("n3", Orphan("m2", 2), 0);
  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers), ElementsAre("n3: m1,m2,m3,m4"));

  failovers.AddOrphan("n4", Orphan("x2", 6), 0);
  failovers.AddOrphan("n4", Orphan("x1", 5), 0);
  EXPECT_THAT(Payloads(failovers.TakeOrphans("n4")), ElementsAre("x1", "x2"));

  failovers.AddOrphan("n5", Orphan("y2", 8), 0);
  failovers.AddOrphan("n5", Orphan("y1", 7), 0);
  EXPECT_THAT(Unclaimed(failovers, kWait), ElementsAre("y1", "y2"));
}

TEST(FailoversTest, TakeOrphansReturnsThoseNoFailoverTook) {
  Failovers failovers;
  failovers.AddOrphan("n3", Orphan("m1"), 0);
  failovers.AddOrphan("n3", Orphan("m2"), 0);
  failovers.AddOrphan("n4", Orphan("x1"), 0);
  EXPECT_FALSE(failovers.active());
  EXPECT_THAT(Payloads(failovers.TakeOrphans("n3")), ElementsAre("m1", "m2"));
  EXPECT_THAT(Payloads(failovers.TakeOrphans("n3")), IsEmpty());
  // Taken orphans are not handed out again by a failover that begins later.
  failovers.Begin("n3", {"a/#"}, {}, kDeadline);
  EXPECT_THAT(Poll(failovers), ElementsAre("n3: "));
  EXPECT_THAT(Payloads(failovers.TakeOrphans("n4")), ElementsAre("x1"));
}

TEST(FailoversTest, OrphansNoFailoverTakesAreGivenUpAfterTheWait) {
  constexpr int64_t kWait = Failovers::kOrphanWaitMs;
  Failovers failovers;
  failovers.AddOrphan("n3", Orphan("m1"), 100);
  failovers.AddOrphan("n3", Orphan("m2"), 600);  // waits as long as the first: same link drop
  failovers.AddOrphan("n4", Orphan("x1"), 1000);
  EXPECT_THAT(Unclaimed(failovers, 100 + kWait - 1), IsEmpty());
  EXPECT_THAT(Unclaimed(failovers, 100 + kWait), ElementsAre("m1", "m2"));
  EXPECT_THAT(Payloads(failovers.TakeOrphans("n3")), IsEmpty());
  EXPECT_THAT(Unclaimed(failovers, 1000 + kWait - 1), IsEmpty());
  EXPECT_THAT(Unclaimed(failovers, 1000 + kWait), ElementsAre("x1"));
  EXPECT_THAT(Unclaimed(failovers, 10 * kWait), IsEmpty());
  EXPECT_FALSE(failovers.active());
}

TEST(FailoversTest, OrphansAFailoverTookAreNotGivenUp) {
  constexpr int64_t kWait = Failovers::kOrphanWaitMs;
  Failovers failovers;
  failovers.AddOrphan("n3", Orphan("m1"), 0);
  failovers.Begin("n3", {"a/#"}, {"n1"}, 10 * kWait);
  EXPECT_THAT(Unclaimed(failovers, 2 * kWait), IsEmpty());
  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers, 2 * kWait), ElementsAre("n3: m1"));
}

TEST(FailoversTest, AnOrphanAfterTheNodeCameBackWaitsForTheNextFailover) {
  constexpr int64_t kWait = Failovers::kOrphanWaitMs;
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {"n1"}, 10 * kWait);
  failovers.AddOrphan("n3", Orphan("m1"), 0);
  failovers.NodeBack("n3");
  // Its link drops again before the completion is polled: a new loss, not the one that ended.
  failovers.AddOrphan("n3", Orphan("m2"), 0);
  EXPECT_THAT(Poll(failovers, 0), ElementsAre("n3: m1"));
  EXPECT_THAT(Unclaimed(failovers, kWait), ElementsAre("m2"));
}

TEST(FailoversTest, PollDoesNotAnswerOrphans) {
  Failovers failovers;
  int answers = 0;
  Failovers::Orphan orphan = Orphan("m1");
  orphan.answer = [&answers](bool) { ++answers; };
  failovers.Begin("n3", {"a/#"}, {}, kDeadline);
  failovers.AddOrphan("n3", std::move(orphan), 0);
  std::vector<std::function<void()>> resumes;
  std::vector<Failovers::Orphan> unclaimed;
  std::vector<Failovers::Completed> completed = failovers.Poll(0, &resumes, &unclaimed);
  ASSERT_EQ(completed.size(), 1u);
  ASSERT_EQ(completed[0].orphans.size(), 1u);
  EXPECT_EQ(answers, 0);  // the caller redelivers it, then answers
  completed[0].orphans[0].answer(true);
  EXPECT_EQ(answers, 1);
}

// ---- Held publishes ----

TEST(FailoversTest, HoldsTopicsTheDeadNodesRoutesMatch) {
  Failovers failovers;
  failovers.Begin("n3", {"sensors/+/temp", "alerts/#"}, {"n1"}, kDeadline);
  EXPECT_TRUE(failovers.Hold("sensors/kitchen/temp", [] {}));
  EXPECT_TRUE(failovers.Hold("alerts", [] {}));  // '#' includes the parent level
  EXPECT_TRUE(failovers.Hold("alerts/fire/now", [] {}));
  EXPECT_FALSE(failovers.Hold("sensors/kitchen/humidity", [] {}));
  EXPECT_FALSE(failovers.Hold("sensors/temp", [] {}));
  EXPECT_FALSE(failovers.Hold("sensors/a/b/temp", [] {}));
  EXPECT_FALSE(failovers.Hold("other/alerts", [] {}));
}

TEST(FailoversTest, WildcardRoutesDoNotHoldDollarTopics) {
  Failovers failovers;
  failovers.Begin("n3", {"#", "+/status"}, {"n1"}, kDeadline);
  EXPECT_TRUE(failovers.Hold("a/b", [] {}));
  EXPECT_FALSE(failovers.Hold("$SYS/broker/uptime", [] {}));  // MQTT-4.7.2-1
  EXPECT_FALSE(failovers.Hold("$SYS/status", [] {}));
}

TEST(FailoversTest, AnEmptyTopicIsHeldWhileAnyFailoverIsActive) {
  Failovers failovers;
  EXPECT_FALSE(failovers.Hold("", [] {}));
  // An alias (empty topic) might stand for anything, even with no routes to match.
  failovers.Begin("n3", {}, {"n1"}, kDeadline);
  EXPECT_TRUE(failovers.Hold("", [] {}));
  EXPECT_FALSE(failovers.Hold("a/b", [] {}));
  failovers.Report("n3", "n1");
  Poll(failovers);
  EXPECT_FALSE(failovers.Hold("", [] {}));
}

TEST(FailoversTest, HoldAnyHoldsWhileAnyFailoverIsUnderWay) {
  Failovers failovers;
  int resumed = 0;
  EXPECT_FALSE(failovers.HoldAny([&] { ++resumed; }));  // nothing under way: not kept
  // A node with no routes at all still holds a CONNECT: it may have owned the session.
  failovers.Begin("n3", {}, {"n1"}, kDeadline);
  EXPECT_TRUE(failovers.HoldAny([&] { ++resumed; }));
  std::vector<std::function<void()>> resumes;
  EXPECT_THAT(Poll(failovers, 0, &resumes), IsEmpty());
  EXPECT_THAT(resumes, IsEmpty());
  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers, 0, &resumes), ElementsAre("n3: "));
  for (auto& resume : resumes) resume();
  EXPECT_EQ(resumed, 1);
  EXPECT_FALSE(failovers.HoldAny([&] { ++resumed; }));
  EXPECT_EQ(resumed, 1);
}

TEST(FailoversTest, NothingIsHeldAfterCompletion) {
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {"n1"}, kDeadline);
  EXPECT_TRUE(failovers.Hold("a/b", [] {}));
  failovers.Report("n3", "n1");
  Poll(failovers);
  EXPECT_FALSE(failovers.Hold("a/b", [] {}));
  EXPECT_FALSE(failovers.active());
}

TEST(FailoversTest, HeldPublishesResumeWhenTheFailoverCompletes) {
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {"n1"}, kDeadline);
  std::vector<std::string> resumed;
  EXPECT_TRUE(failovers.Hold("a/1", [&] { resumed.push_back("a/1"); }));
  EXPECT_TRUE(failovers.Hold("a/2", [&] { resumed.push_back("a/2"); }));
  EXPECT_FALSE(failovers.Hold("b/1", [&] { resumed.push_back("b/1"); }));  // not kept

  std::vector<std::function<void()>> resumes;
  EXPECT_THAT(Poll(failovers, 0, &resumes), IsEmpty());
  EXPECT_THAT(resumes, IsEmpty());

  failovers.Report("n3", "n1");
  EXPECT_THAT(Poll(failovers, 0, &resumes), ElementsAre("n3: "));
  EXPECT_TRUE(resumed.empty()) << "Poll runs nothing itself";
  for (auto& resume : resumes) resume();
  EXPECT_THAT(resumed, ElementsAre("a/1", "a/2"));

  resumes.clear();
  EXPECT_THAT(Poll(failovers, 0, &resumes), IsEmpty());
  EXPECT_THAT(resumes, IsEmpty());
}

TEST(FailoversTest, OneCompletionReleasesEveryHeldPublish) {
  Failovers failovers;
  failovers.Begin("n3", {"a/#"}, {"n1"}, kDeadline);
  failovers.Begin("n4", {"b/#"}, {"n1"}, kDeadline);
  int resumed = 0;
  EXPECT_TRUE(failovers.Hold("a/1", [&] { ++resumed; }));
  EXPECT_TRUE(failovers.Hold("b/1", [&] { ++resumed; }));

  failovers.Report("n4", "n1");
  std::vector<std::function<void()>> resumes;
  EXPECT_THAT(Poll(failovers, 0, &resumes), ElementsAre("n4: "));
  EXPECT_TRUE(failovers.active());  // n3's goes on
  // Both go on; the one still matching n3's routes is held again when it is read.
  for (auto& resume : resumes) resume();
  EXPECT_EQ(resumed, 2);
  EXPECT_TRUE(failovers.Hold("a/1", [&] { ++resumed; }));
  EXPECT_FALSE(failovers.Hold("b/1", [&] { ++resumed; }));

  failovers.Report("n3", "n1");
  resumes.clear();
  EXPECT_THAT(Poll(failovers, 0, &resumes), ElementsAre("n3: "));
  EXPECT_FALSE(failovers.active());
  for (auto& resume : resumes) resume();
  EXPECT_EQ(resumed, 3);
}

}  // namespace
}  // namespace meshmq::cluster
