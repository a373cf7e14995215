// The peers' routes (cluster/remote_routes.h): route frames set and clear (peer, filter, group)
// counts, a snapshot replaces one peer's routes, a peer that goes loses them all, and a topic
// finds the routes whose filter matches it with the MQTT matching rules ('$' rule included).
#include "cluster/remote_routes.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/cluster.pb.h"

namespace meshmq::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

Route MakeRoute(std::string filter, uint32_t count, std::string group = "") {
  Route route;
  route.set_filter(std::move(filter));
  route.set_group(std::move(group));
  route.set_count(count);
  return route;
}

RouteSnapshot Snapshot(std::initializer_list<Route> routes) {
  RouteSnapshot snapshot;
  for (const Route& route : routes) *snapshot.add_routes() = route;
  return snapshot;
}

// "peer filter count" (ordinary) or "peer $share/group/filter count" for every route matching
// `topic`, sorted.
std::vector<std::string> Matched(const RemoteRoutes& routes, std::string_view topic) {
  std::vector<RemoteRoutes::EntryPtr> out;
  routes.Match(topic, &out);
  std::vector<std::string> result;
  for (const RemoteRoutes::EntryPtr& e : out) {
    const std::string filter =
        e->group.empty() ? e->filter : absl::StrCat("$share/", e->group, "/", e->filter);
    result.push_back(absl::StrCat(e->peer, " ", filter, " ", e->count));
  }
  std::sort(result.begin(), result.end());
  return result;
}

TEST(RemoteRoutesTest, StartsEmpty) {
  RemoteRoutes routes;
  EXPECT_TRUE(routes.empty());
  EXPECT_EQ(routes.size(), 0u);
  EXPECT_THAT(Matched(routes, "a/b"), IsEmpty());
}

TEST(RemoteRoutesTest, ApplyAddsAndCountZeroRemoves) {
  RemoteRoutes routes;
  routes.Apply("n2", MakeRoute("sensors/+/temp", 3));
  EXPECT_FALSE(routes.empty());
  EXPECT_EQ(routes.size(), 1u);
  EXPECT_THAT(Matched(routes, "sensors/kitchen/temp"), ElementsAre("n2 sensors/+/temp 3"));
  EXPECT_THAT(Matched(routes, "sensors/kitchen/humidity"), IsEmpty());

  routes.Apply("n2", MakeRoute("sensors/+/temp", 0));
  EXPECT_TRUE(routes.empty());
  EXPECT_EQ(routes.size(), 0u);
  EXPECT_THAT(Matched(routes, "sensors/kitchen/temp"), IsEmpty());
}

TEST(RemoteRoutesTest, ApplySetsTheAbsoluteCount) {
  RemoteRoutes routes;
  routes.Apply("n2", MakeRoute("a/b", 1));
  std::vector<RemoteRoutes::EntryPtr> before;
  routes.Match("a/b", &before);
  routes.Apply("n2", MakeRoute("a/b", 5));
  routes.Apply("n2", MakeRoute("a/b", 2));  // absolute, not added up
  EXPECT_EQ(routes.size(), 1u);
  EXPECT_THAT(Matched(routes, "a/b"), ElementsAre("n2 a/b 2"));
  // An entry a publisher already holds is a snapshot: it is not changed under it.
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0]->count, 1u);
}

TEST(RemoteRoutesTest, RemovingARouteThatIsNotThereChangesNothing) {
  RemoteRoutes routes;
  routes.Apply("n2", MakeRoute("a/b", 0));  // unknown peer
  EXPECT_TRUE(routes.empty());
  routes.Apply("n2", MakeRoute("a/b", 1));
  routes.Apply("n2", MakeRoute("a/c", 0));       // known peer, unknown filter
  routes.Apply("n3", MakeRoute("a/b", 0));       // same filter, other peer
  routes.Apply("n2", MakeRoute("a/b", 0, "g"));  // same filter, as a group
  EXPECT_EQ(routes.size(), 1u);
  EXPECT_THAT(Matched(routes, "a/b"), ElementsAre("n2 a/b 1"));
  // Removed twice: the second is a no-op, and the size does not go below zero.
  routes.Apply("n2", MakeRoute("a/b", 0));
  routes.Apply("n2", MakeRoute("a/b", 0));
  EXPECT_TRUE(routes.empty());
  EXPECT_EQ(routes.size(), 0u);
}

TEST(RemoteRoutesTest, SameFilterFromTwoPeersIsTwoRoutes) {
  RemoteRoutes routes;
  routes.Apply("n2", MakeRoute("a/#", 1));
  routes.Apply("n3", MakeRoute("a/#", 4));
  EXPECT_EQ(routes.size(), 2u);
  EXPECT_THAT(Matched(routes, "a/x"), UnorderedElementsAre("n2 a/# 1", "n3 a/# 4"));
  routes.Apply("n2", MakeRoute("a/#", 0));
  EXPECT_EQ(routes.size(), 1u);
  EXPECT_THAT(Matched(routes, "a/x"), ElementsAre("n3 a/# 4"));
}

TEST(RemoteRoutesTest, SharedGroupRoutesAreDistinctFromOrdinaryOnes) {
  RemoteRoutes routes;
  routes.Apply("n2", MakeRoute("jobs/+", 1));
  routes.Apply("n2", MakeRoute("jobs/+", 2, "workers"));
  routes.Apply("n2", MakeRoute("jobs/+", 3, "auditors"));
  routes.Apply("n3", MakeRoute("jobs/+", 1, "workers"));
  EXPECT_EQ(routes.size(), 4u);
  EXPECT_THAT(Matched(routes, "jobs/42"),
              UnorderedElementsAre("n2 jobs/+ 1", "n2 $share/workers/jobs/+ 2",
                                   "n2 $share/auditors/jobs/+ 3", "n3 $share/workers/jobs/+ 1"));
  std::vector<RemoteRoutes::EntryPtr> out;
  routes.Match("jobs/42", &out);
  for (const RemoteRoutes::EntryPtr& e : out) EXPECT_EQ(e->filter, "jobs/+");

  // Removing the group's route leaves the ordinary one, and the other way round.
  routes.Apply("n2", MakeRoute("jobs/+", 0, "workers"));
  EXPECT_THAT(Matched(routes, "jobs/42"),
              UnorderedElementsAre("n2 jobs/+ 1", "n2 $share/auditors/jobs/+ 3",
                                   "n3 $share/workers/jobs/+ 1"));
  routes.Apply("n2", MakeRoute("jobs/+", 0));
  EXPECT_THAT(Matched(routes, "jobs/42"),
              UnorderedElementsAre("n2 $share/auditors/jobs/+ 3", "n3 $share/workers/jobs/+ 1"));
  EXPECT_EQ(routes.size(), 2u);
}

TEST(RemoteRoutesTest, ReplaceReplacesOnlyThatPeersRoutes) {
  RemoteRoutes routes;
  routes.Apply("n2", MakeRoute("old/a", 1));
  routes.Apply("n2", MakeRoute("shared/#", 1, "g"));
  routes.Apply("n2", MakeRoute("kept/by/both", 1));
  routes.Apply("n3", MakeRoute("old/a", 7));
  routes.Apply("n3", MakeRoute("kept/by/both", 2));

  routes.Replace("n2", Snapshot({MakeRoute("new/+", 2), MakeRoute("kept/by/both", 9),
                                 MakeRoute("shared/#", 4, "h")}));
  EXPECT_EQ(routes.size(), 5u);
  EXPECT_THAT(Matched(routes, "old/a"), ElementsAre("n3 old/a 7"));  // n2's went, n3's stayed
  EXPECT_THAT(Matched(routes, "new/x"), ElementsAre("n2 new/+ 2"));
  EXPECT_THAT(Matched(routes, "kept/by/both"),
              UnorderedElementsAre("n2 kept/by/both 9", "n3 kept/by/both 2"));
  EXPECT_THAT(Matched(routes, "shared/x"), ElementsAre("n2 $share/h/shared/# 4"));

  // An empty snapshot: the peer has no subscribers left.
  routes.Replace("n2", RouteSnapshot());
  EXPECT_EQ(routes.size(), 2u);
  EXPECT_THAT(Matched(routes, "new/x"), IsEmpty());
  EXPECT_THAT(Matched(routes, "kept/by/both"), ElementsAre("n3 kept/by/both 2"));
}

TEST(RemoteRoutesTest, ReplaceOfAPeerNotSeenBeforeAddsItsRoutes) {
  RemoteRoutes routes;
  routes.Replace("n4", Snapshot({MakeRoute("a", 1), MakeRoute("b", 0), MakeRoute("c", 2)}));
  EXPECT_EQ(routes.size(), 2u);  // count 0 in a snapshot is no route
  EXPECT_THAT(Matched(routes, "a"), ElementsAre("n4 a 1"));
  EXPECT_THAT(Matched(routes, "b"), IsEmpty());
  EXPECT_THAT(Matched(routes, "c"), ElementsAre("n4 c 2"));
}

TEST(RemoteRoutesTest, DropPeerForgetsAllItsRoutesAndOnlyThose) {
  RemoteRoutes routes;
  routes.Apply("n2", MakeRoute("a/+", 1));
  routes.Apply("n2", MakeRoute("#", 1));
  routes.Apply("n2", MakeRoute("a/b", 1, "g"));
  routes.Apply("n3", MakeRoute("a/b", 1));
  EXPECT_EQ(routes.size(), 4u);

  routes.DropPeer("n2");
  EXPECT_EQ(routes.size(), 1u);
  EXPECT_THAT(Matched(routes, "a/b"), ElementsAre("n3 a/b 1"));
  EXPECT_THAT(Matched(routes, "z"), IsEmpty());

  routes.DropPeer("n2");       // already gone
  routes.DropPeer("unknown");  // never there
  EXPECT_EQ(routes.size(), 1u);
  routes.DropPeer("n3");
  EXPECT_TRUE(routes.empty());
  EXPECT_THAT(Matched(routes, "a/b"), IsEmpty());

  // The peer comes back: its new routes count again.
  routes.Apply("n2", MakeRoute("a/b", 1));
  EXPECT_THAT(Matched(routes, "a/b"), ElementsAre("n2 a/b 1"));
  EXPECT_EQ(routes.size(), 1u);
}

TEST(RemoteRoutesTest, MatchUsesTheWildcardRules) {
  RemoteRoutes routes;
  for (const char* filter :
       {"sport/tennis/+", "sport/#", "#", "+", "+/+", "/+", "sport/+/player1", "a/+/b", "sport"}) {
    routes.Apply("n2", MakeRoute(filter, 1));
  }
  EXPECT_THAT(Matched(routes, "sport/tennis/player1"),
              UnorderedElementsAre("n2 sport/tennis/+ 1", "n2 sport/# 1", "n2 # 1",
                                   "n2 sport/+/player1 1"));
  // '#' matches its parent level (4.7.1.2); '+' matches one level only.
  EXPECT_THAT(Matched(routes, "sport"),
              UnorderedElementsAre("n2 sport/# 1", "n2 # 1", "n2 + 1", "n2 sport 1"));
  // '+' matches an empty level.
  EXPECT_THAT(Matched(routes, "/finance"), UnorderedElementsAre("n2 # 1", "n2 +/+ 1", "n2 /+ 1"));
  EXPECT_THAT(Matched(routes, "a//b"), UnorderedElementsAre("n2 # 1", "n2 a/+/b 1"));
  EXPECT_THAT(Matched(routes, "sport/"),
              UnorderedElementsAre("n2 sport/# 1", "n2 # 1", "n2 +/+ 1"));
  EXPECT_THAT(Matched(routes, ""), IsEmpty());
}

TEST(RemoteRoutesTest, DollarTopicsAreNotMatchedByALeadingWildcard) {
  RemoteRoutes routes;
  routes.Apply("n2", MakeRoute("#", 1));
  routes.Apply("n2", MakeRoute("+/monitor/Clients", 1));
  routes.Apply("n2", MakeRoute("+/#", 1, "g"));
  routes.Apply("n3", MakeRoute("$SYS/#", 1));
  routes.Apply("n3", MakeRoute("$SYS/monitor/+", 1));
  routes.Apply("n3", MakeRoute("x/+", 1));
  // MQTT-4.7.2-1.
  EXPECT_THAT(Matched(routes, "$SYS/monitor/Clients"),
              UnorderedElementsAre("n3 $SYS/# 1", "n3 $SYS/monitor/+ 1"));
  EXPECT_THAT(Matched(routes, "$SYS"), ElementsAre("n3 $SYS/# 1"));
  // A '$' below the first level is an ordinary character.
  EXPECT_THAT(Matched(routes, "x/$y"),
              UnorderedElementsAre("n2 # 1", "n2 $share/g/+/# 1", "n3 x/+ 1"));
  EXPECT_THAT(Matched(routes, "other/monitor/Clients"),
              UnorderedElementsAre("n2 # 1", "n2 +/monitor/Clients 1", "n2 $share/g/+/# 1"));
}

TEST(RemoteRoutesTest, InvalidFiltersAreIgnored) {
  RemoteRoutes routes;
  for (const char* filter : {"", "a/#/b", "a#", "sport+", "#/a", "a/b#"}) {
    routes.Apply("n2", MakeRoute(filter, 1));
    routes.Apply("n2", MakeRoute(filter, 1, "g"));
  }
  EXPECT_TRUE(routes.empty());
  EXPECT_EQ(routes.size(), 0u);
  EXPECT_THAT(Matched(routes, "a/x/b"), IsEmpty());

  // In a snapshot they are skipped, the valid routes around them kept.
  routes.Replace("n2",
                 Snapshot({MakeRoute("ok/1", 1), MakeRoute("bad/#/x", 1), MakeRoute("ok/2", 1)}));
  EXPECT_EQ(routes.size(), 2u);
  EXPECT_THAT(Matched(routes, "ok/1"), ElementsAre("n2 ok/1 1"));
  EXPECT_THAT(Matched(routes, "ok/2"), ElementsAre("n2 ok/2 1"));
  // Removing an invalid filter does not touch anything either.
  routes.Apply("n2", MakeRoute("ok/#/x", 0));
  EXPECT_EQ(routes.size(), 2u);
  routes.DropPeer("n2");
  EXPECT_TRUE(routes.empty());
}

TEST(RemoteRoutesTest, ConcurrentMatchWhileRoutesChange) {
  RemoteRoutes routes;
  routes.Apply("stable", MakeRoute("plant/#", 1));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread reader([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      std::vector<RemoteRoutes::EntryPtr> out;
      routes.Match("plant/1/7", &out);
      const bool has_stable =
          std::any_of(out.begin(), out.end(), [](const auto& e) { return e->peer == "stable"; });
      if (!has_stable) failures.fetch_add(1);
      for (const auto& e : out) {
        if (e->count == 0) failures.fetch_add(1);
      }
    }
  });
  auto writer = [&routes](const std::string& peer) {
    for (int i = 0; i < 2000; ++i) {
      const std::string filter = absl::StrCat("plant/", i % 10, "/+");
      routes.Apply(peer, MakeRoute(filter, i % 3));
      if (i % 500 == 499) routes.Replace(peer, Snapshot({MakeRoute("plant/+/7", 1)}));
    }
    routes.DropPeer(peer);
  };
  std::thread w1(writer, "n2");
  std::thread w2(writer, "n3");
  w1.join();
  w2.join();
  stop = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(routes.size(), 1u);
  EXPECT_THAT(Matched(routes, "plant/1/7"), ElementsAre("stable plant/# 1"));
}

}  // namespace
}  // namespace meshmq::cluster
