// Shared subscriptions (MQTT 5 section 4.8.2): how a group picks its member (round-robin, skipping
// offline sessions, honouring an exclusion), membership changes, the index of groups and how it
// matches topics, and concurrent picks.
#include "node/shared_subscriptions.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meshmq {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// Sessions are only ever compared by pointer here: the worker is never dereferenced.
Worker* const kWorker = reinterpret_cast<Worker*>(0x1000);

std::shared_ptr<Session> MakeSession(const std::string& client_id, bool online) {
  auto session = std::make_shared<Session>(client_id, 0);
  static std::atomic<uint64_t> next_connection_id{1};
  if (online) session->Attach(SessionOwner{kWorker, next_connection_id++}, std::nullopt);
  return session;
}

SharedGroup::Member MakeMember(std::shared_ptr<Session> session, uint8_t qos = 1) {
  SubscriptionOptions options;
  options.qos = qos;
  return SharedGroup::Member{std::move(session), options};
}

// The client ids of `count` successive picks ("-" for none).
std::vector<std::string> Picks(SharedGroup& group, int count, const Session* exclude = nullptr) {
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) {
    std::optional<SharedGroup::Member> member = group.Pick(exclude);
    ids.push_back(member ? member->session->client_id() : "-");
  }
  return ids;
}

// (group, filter) of every group matching `topic`, sorted.
std::vector<std::pair<std::string, std::string>> MatchAll(const SharedSubscriptions& index,
                                                          std::string_view topic) {
  std::vector<std::pair<std::string, std::string>> out;
  index.Match(topic, [&out](const std::shared_ptr<SharedGroup>& group) {
    out.emplace_back(group->group(), group->filter());
  });
  std::sort(out.begin(), out.end());
  return out;
}

// --- SharedGroup --------------------------------------------------------------------------------

TEST(SharedGroupTest, PicksRoundRobinInSubscriptionOrder) {
  SharedGroup group("g", "a/b");
  EXPECT_EQ(group.group(), "g");
  EXPECT_EQ(group.filter(), "a/b");
  EXPECT_TRUE(group.Add(MakeMember(MakeSession("a", true))));
  EXPECT_TRUE(group.Add(MakeMember(MakeSession("b", true))));
  EXPECT_TRUE(group.Add(MakeMember(MakeSession("c", true))));
  EXPECT_EQ(group.size(), 3u);
  EXPECT_THAT(Picks(group, 7), ElementsAre("a", "b", "c", "a", "b", "c", "a"));
}

TEST(SharedGroupTest, EmptyGroupPicksNobody) {
  SharedGroup group("g", "a");
  EXPECT_FALSE(group.Pick());
  EXPECT_EQ(group.size(), 0u);
}

TEST(SharedGroupTest, SkipsOfflineMembers) {
  SharedGroup group("g", "a");
  group.Add(MakeMember(MakeSession("a", true)));
  group.Add(MakeMember(MakeSession("b", false)));
  group.Add(MakeMember(MakeSession("c", true)));
  EXPECT_THAT(Picks(group, 4), ElementsAre("a", "c", "a", "c"));
}

TEST(SharedGroupTest, MemberThatDisconnectsIsSkippedUntilItReconnects) {
  SharedGroup group("g", "a");
  auto a = MakeSession("a", true);
  auto b = MakeSession("b", false);
  const SessionOwner b_owner{kWorker, 99};
  b->Attach(b_owner, std::nullopt);
  group.Add(MakeMember(a));
  group.Add(MakeMember(b));
  EXPECT_THAT(Picks(group, 2), ElementsAre("a", "b"));
  ASSERT_TRUE(b->Detach(b_owner));
  EXPECT_THAT(Picks(group, 2), ElementsAre("a", "a"));
  b->Attach(b_owner, std::nullopt);
  EXPECT_THAT(Picks(group, 2), ElementsAre("b", "a"));
}

TEST(SharedGroupTest, AllOfflineFallsBackToRoundRobin) {
  // The message then waits in an offline member's session (QoS 1/2) instead of being lost.
  SharedGroup group("g", "a");
  group.Add(MakeMember(MakeSession("a", false)));
  group.Add(MakeMember(MakeSession("b", false)));
  group.Add(MakeMember(MakeSession("c", false)));
  EXPECT_THAT(Picks(group, 4), ElementsAre("a", "b", "c", "a"));
}

TEST(SharedGroupTest, ExcludedMemberIsNeverPicked) {
  SharedGroup group("g", "a");
  auto a = MakeSession("a", true);
  auto b = MakeSession("b", true);
  auto c = MakeSession("c", true);
  group.Add(MakeMember(a));
  group.Add(MakeMember(b));
  group.Add(MakeMember(c));
  EXPECT_THAT(Picks(group, 4, b.get()), ElementsAre("a", "c", "a", "c"));
  EXPECT_THAT(Picks(group, 3), ElementsAre("a", "b", "c"));
}

TEST(SharedGroupTest, ExcludedOnlineMemberLosesToOfflineOnes) {
  SharedGroup group("g", "a");
  auto a = MakeSession("a", true);
  group.Add(MakeMember(a));
  group.Add(MakeMember(MakeSession("b", false)));
  group.Add(MakeMember(MakeSession("c", false)));
  EXPECT_THAT(Picks(group, 3, a.get()), ElementsAre("b", "c", "b"));
}

TEST(SharedGroupTest, NobodyButTheExcludedMemberPicksNobody) {
  SharedGroup group("g", "a");
  auto a = MakeSession("a", true);
  group.Add(MakeMember(a));
  EXPECT_FALSE(group.Pick(a.get()));
  EXPECT_TRUE(group.Pick());
}

TEST(SharedGroupTest, AddingAgainReplacesOptionsAndKeepsTheOrder) {
  SharedGroup group("g", "a");
  auto a = MakeSession("a", true);
  group.Add(MakeMember(a, 0));
  group.Add(MakeMember(MakeSession("b", true), 0));
  group.Add(MakeMember(MakeSession("c", true), 0));
  EXPECT_FALSE(group.Add(MakeMember(a, 2)));
  EXPECT_EQ(group.size(), 3u);
  std::optional<SharedGroup::Member> first = group.Pick();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->session, a);
  EXPECT_EQ(first->options.qos, 2);
  EXPECT_THAT(Picks(group, 3), ElementsAre("b", "c", "a"));
}

TEST(SharedGroupTest, RemoveKeepsTheTurnOfTheOthers) {
  SharedGroup group("g", "a");
  group.Add(MakeMember(MakeSession("a", true)));
  group.Add(MakeMember(MakeSession("b", true)));
  group.Add(MakeMember(MakeSession("c", true)));
  group.Add(MakeMember(MakeSession("d", true)));
  EXPECT_THAT(Picks(group, 2), ElementsAre("a", "b"));  // c is next
  EXPECT_TRUE(group.Remove("a"));                       // before the turn
  EXPECT_THAT(Picks(group, 1), ElementsAre("c"));       // d is next
  EXPECT_TRUE(group.Remove("d"));                       // the next one itself
  EXPECT_THAT(Picks(group, 3), ElementsAre("b", "c", "b"));
  EXPECT_FALSE(group.Remove("d"));
  EXPECT_FALSE(group.Remove("nobody"));
  EXPECT_EQ(group.size(), 2u);
  EXPECT_TRUE(group.Remove("b"));
  EXPECT_TRUE(group.Remove("c"));
  EXPECT_FALSE(group.Pick());
}

TEST(SharedGroupTest, ConcurrentPicksAreNeitherLostNorDuplicated) {
  // Round-robin under the group's lock: with every member online, 4 threads making N picks each
  // over 4 members give each member exactly N.
  SharedGroup group("g", "a");
  constexpr int kMembers = 4;
  constexpr int kThreads = 4;
  constexpr int kPicksPerThread = 2000;
  for (int i = 0; i < kMembers; ++i) {
    group.Add(MakeMember(MakeSession("m" + std::to_string(i), true)));
  }
  std::vector<std::map<std::string, int>> counts(kThreads);
  std::vector<int> missed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPicksPerThread; ++i) {
        std::optional<SharedGroup::Member> member = group.Pick();
        if (member) {
          ++counts[t][member->session->client_id()];
        } else {
          ++missed[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::map<std::string, int> total;
  int picks = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(missed[t], 0);
    for (const auto& [id, n] : counts[t]) {
      total[id] += n;
      picks += n;
    }
  }
  EXPECT_EQ(picks, kThreads * kPicksPerThread);
  constexpr int kEach = kThreads * kPicksPerThread / kMembers;
  EXPECT_THAT(total, ElementsAre(Pair("m0", kEach), Pair("m1", kEach), Pair("m2", kEach),
                                 Pair("m3", kEach)));
}

// --- SharedSubscriptions ------------------------------------------------------------------------

TEST(SharedSubscriptionsTest, SubscribeCreatesTheGroupOnFirstUse) {
  SharedSubscriptions index;
  auto a = MakeSession("a", true);
  auto b = MakeSession("b", true);
  EXPECT_EQ(index.Find("g", "a/b"), nullptr);
  EXPECT_TRUE(index.Subscribe("g", "a/b", a, SubscriptionOptions{}));
  std::shared_ptr<SharedGroup> group = index.Find("g", "a/b");
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->group(), "g");
  EXPECT_EQ(group->filter(), "a/b");
  EXPECT_TRUE(index.Subscribe("g", "a/b", b, SubscriptionOptions{}));
  EXPECT_EQ(index.Find("g", "a/b"), group);
  EXPECT_EQ(group->size(), 2u);
  EXPECT_EQ(index.group_count(), 1u);
  EXPECT_EQ(index.Find("g", "a"), nullptr);
  EXPECT_EQ(index.Find("h", "a/b"), nullptr);
}

TEST(SharedSubscriptionsTest, SubscribingAgainReplacesTheOptions) {
  SharedSubscriptions index;
  auto a = MakeSession("a", true);
  SubscriptionOptions options;
  options.qos = 1;
  EXPECT_TRUE(index.Subscribe("g", "t", a, options));
  options.qos = 2;
  EXPECT_FALSE(index.Subscribe("g", "t", a, options));
  std::shared_ptr<SharedGroup> group = index.Find("g", "t");
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->size(), 1u);
  std::optional<SharedGroup::Member> member = group->Pick();
  ASSERT_TRUE(member);
  EXPECT_EQ(member->options.qos, 2);
}

TEST(SharedSubscriptionsTest, InvalidFilterIsRefused) {
  SharedSubscriptions index;
  EXPECT_FALSE(index.Subscribe("g", "a/#/b", MakeSession("a", true), SubscriptionOptions{}));
  EXPECT_FALSE(index.Subscribe("g", "", MakeSession("a", true), SubscriptionOptions{}));
  EXPECT_EQ(index.group_count(), 0u);
  EXPECT_EQ(index.Find("g", "a/#/b"), nullptr);
}

TEST(SharedSubscriptionsTest, UnsubscribeRemovesTheGroupWhenItEmpties) {
  SharedSubscriptions index;
  index.Subscribe("g", "a/+", MakeSession("a", true), SubscriptionOptions{});
  index.Subscribe("g", "a/+", MakeSession("b", true), SubscriptionOptions{});
  EXPECT_FALSE(index.Unsubscribe("g", "a/+", "nobody"));
  EXPECT_FALSE(index.Unsubscribe("h", "a/+", "a"));
  EXPECT_FALSE(index.Unsubscribe("g", "a/b", "a"));

  EXPECT_TRUE(index.Unsubscribe("g", "a/+", "a"));
  EXPECT_FALSE(index.Unsubscribe("g", "a/+", "a"));
  ASSERT_NE(index.Find("g", "a/+"), nullptr);
  EXPECT_EQ(index.Find("g", "a/+")->size(), 1u);
  EXPECT_EQ(index.group_count(), 1u);

  EXPECT_TRUE(index.Unsubscribe("g", "a/+", "b"));
  EXPECT_EQ(index.Find("g", "a/+"), nullptr);
  EXPECT_EQ(index.group_count(), 0u);
  EXPECT_THAT(MatchAll(index, "a/x"), IsEmpty());

  // A new subscription starts a new group.
  EXPECT_TRUE(index.Subscribe("g", "a/+", MakeSession("c", true), SubscriptionOptions{}));
  EXPECT_THAT(MatchAll(index, "a/x"), ElementsAre(Pair("g", "a/+")));
}

TEST(SharedSubscriptionsTest, MatchFollowsTheOrdinaryMatchingRules) {
  SharedSubscriptions index;
  auto a = MakeSession("a", true);
  index.Subscribe("g", "sensors/+/temp", a, SubscriptionOptions{});
  index.Subscribe("g", "sensors/#", a, SubscriptionOptions{});
  index.Subscribe("all", "#", a, SubscriptionOptions{});
  index.Subscribe("one", "+", a, SubscriptionOptions{});
  index.Subscribe("sys", "$SYS/#", a, SubscriptionOptions{});
  index.Subscribe("sys", "$SYS/+/load", a, SubscriptionOptions{});

  EXPECT_THAT(MatchAll(index, "sensors/1/temp"),
              ElementsAre(Pair("all", "#"), Pair("g", "sensors/#"), Pair("g", "sensors/+/temp")));
  // '#' matches its parent level (4.7.1.2).
  EXPECT_THAT(MatchAll(index, "sensors"),
              ElementsAre(Pair("all", "#"), Pair("g", "sensors/#"), Pair("one", "+")));
  EXPECT_THAT(MatchAll(index, "other/x"), ElementsAre(Pair("all", "#")));
  // Filters starting with a wildcard never match '$' topics (MQTT-4.7.2-1).
  EXPECT_THAT(MatchAll(index, "$SYS/broker/load"),
              ElementsAre(Pair("sys", "$SYS/#"), Pair("sys", "$SYS/+/load")));
  EXPECT_THAT(MatchAll(index, "$SYS"), ElementsAre(Pair("sys", "$SYS/#")));
  EXPECT_THAT(MatchAll(index, "$other"), IsEmpty());
}

TEST(SharedSubscriptionsTest, SeveralGroupsOnOneFilterEachGetTheMessage) {
  SharedSubscriptions index;
  index.Subscribe("g1", "a/b", MakeSession("a", true), SubscriptionOptions{});
  index.Subscribe("g2", "a/b", MakeSession("b", true), SubscriptionOptions{});
  index.Subscribe("g2", "a/b", MakeSession("c", true), SubscriptionOptions{});
  EXPECT_EQ(index.group_count(), 2u);
  std::map<std::string, std::vector<std::string>> picked;
  for (int i = 0; i < 2; ++i) {
    index.Match("a/b", [&](const std::shared_ptr<SharedGroup>& group) {
      picked[group->group()].push_back(group->Pick()->session->client_id());
    });
  }
  EXPECT_THAT(picked, UnorderedElementsAre(Pair("g1", ElementsAre("a", "a")),
                                           Pair("g2", ElementsAre("b", "c"))));
}

TEST(SharedSubscriptionsTest, OneGroupNameOnSeveralFiltersIsSeveralGroups) {
  // A group is identified by its name and filter (4.8.2): "$share/g/a/b" and "$share/g/a/+"
  // take turns separately.
  SharedSubscriptions index;
  auto a = MakeSession("a", true);
  auto b = MakeSession("b", true);
  index.Subscribe("g", "a/b", a, SubscriptionOptions{});
  index.Subscribe("g", "a/+", a, SubscriptionOptions{});
  index.Subscribe("g", "a/+", b, SubscriptionOptions{});
  EXPECT_EQ(index.group_count(), 2u);
  std::shared_ptr<SharedGroup> exact = index.Find("g", "a/b");
  std::shared_ptr<SharedGroup> plus = index.Find("g", "a/+");
  ASSERT_NE(exact, nullptr);
  ASSERT_NE(plus, nullptr);
  EXPECT_NE(exact, plus);
  EXPECT_EQ(exact->size(), 1u);
  EXPECT_EQ(plus->size(), 2u);
  EXPECT_THAT(MatchAll(index, "a/b"), ElementsAre(Pair("g", "a/+"), Pair("g", "a/b")));

  EXPECT_TRUE(index.Unsubscribe("g", "a/b", "a"));
  EXPECT_EQ(index.Find("g", "a/b"), nullptr);
  EXPECT_EQ(index.Find("g", "a/+"), plus);
  EXPECT_EQ(plus->size(), 2u);
}

TEST(SharedSubscriptionsTest, ConcurrentChurnWhilePublishing) {
  // Members come and go while publishers match and pick: a permanent member is always found.
  SharedSubscriptions index;
  auto anchor = MakeSession("anchor", true);
  index.Subscribe("g", "t/#", anchor, SubscriptionOptions{});
  constexpr int kRounds = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&index, t] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string id = "c" + std::to_string(t) + "-" + std::to_string(i % 5);
        index.Subscribe("g", "t/#", MakeSession(id, i % 2 == 0), SubscriptionOptions{});
        index.Subscribe("h" + std::to_string(i % 3), "t/+", MakeSession(id, true),
                        SubscriptionOptions{});
        index.Unsubscribe("g", "t/#", id);
        index.Unsubscribe("h" + std::to_string(i % 3), "t/+", id);
      }
    });
  }
  std::atomic<int> anchor_missing{0};
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        std::vector<std::shared_ptr<SharedGroup>> matched;
        index.Match("t/x",
                    [&](const std::shared_ptr<SharedGroup>& group) { matched.push_back(group); });
        // Pick outside Match, as the broker does: Match's callback must stay quick.
        bool found_g = false;
        for (const auto& group : matched) {
          if (group->group() == "g") found_g = group->Pick().has_value();
          if (group->group() != "g") group->Pick();
        }
        if (!found_g) ++anchor_missing;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(anchor_missing, 0);
  EXPECT_EQ(index.group_count(), 1u);
  ASSERT_NE(index.Find("g", "t/#"), nullptr);
  EXPECT_EQ(index.Find("g", "t/#")->size(), 1u);
}

}  // namespace
}  // namespace meshmq
