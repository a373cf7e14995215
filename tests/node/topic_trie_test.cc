// The subscription trie: bookkeeping (insert, replace, erase, prune), the section 4.7 matching
// rules, agreement with TopicMatches on random filters and topics, concurrent use, and a
// throughput figure for 100k subscriptions.
#include "node/topic_trie.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/topic.h"
#include "tests/node/topic_test_util.h"

namespace meshmq {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

using Reported = std::vector<std::pair<std::string, int>>;

template <typename Value>
std::vector<std::pair<std::string, Value>> MatchAll(const TopicTrie<Value>& trie,
                                                    std::string_view topic) {
  std::vector<std::pair<std::string, Value>> out;
  trie.Match(topic,
             [&out](const std::string& key, const Value& value) { out.emplace_back(key, value); });
  std::sort(out.begin(), out.end());
  return out;
}

TEST(TopicTrieTest, InsertReportsNewThenReplacesValue) {
  TopicTrie<int> trie;
  EXPECT_TRUE(trie.Insert("sport/tennis", "c1", 1));
  EXPECT_EQ(trie.size(), 1u);
  EXPECT_FALSE(trie.Insert("sport/tennis", "c1", 2));  // same (filter, key): replaced
  EXPECT_EQ(trie.size(), 1u);
  EXPECT_THAT(MatchAll(trie, "sport/tennis"), ElementsAre(Pair("c1", 2)));

  EXPECT_TRUE(trie.Insert("sport/tennis", "c2", 3));  // another key on the same filter
  EXPECT_TRUE(trie.Insert("sport/+", "c1", 4));       // another filter for the same key
  EXPECT_EQ(trie.size(), 3u);
  EXPECT_THAT(MatchAll(trie, "sport/tennis"),
              ElementsAre(Pair("c1", 2), Pair("c1", 4), Pair("c2", 3)));
}

TEST(TopicTrieTest, RefusesInvalidFilters) {
  TopicTrie<int> trie;
  for (const char* filter :
       {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "#/a", "a/#b"}) {
    EXPECT_FALSE(trie.Insert(filter, "c1", 1)) << filter;
    EXPECT_FALSE(trie.Erase(filter, "c1")) << filter;
  }
  EXPECT_EQ(trie.size(), 0u);
  EXPECT_EQ(trie.NodeCountForTesting(), 0u);
  EXPECT_THAT(MatchAll(trie, "sport/tennis"), IsEmpty());
}

TEST(TopicTrieTest, EraseRemovesOnlyThatSubscription) {
  TopicTrie<int> trie;
  trie.Insert("a/b", "c1", 1);
  trie.Insert("a/b", "c2", 2);
  trie.Insert("a/#", "c1", 3);

  EXPECT_FALSE(trie.Erase("a/b", "c3"));  // unknown key
  EXPECT_FALSE(trie.Erase("a/c", "c1"));  // unknown filter
  EXPECT_FALSE(trie.Erase("a/+", "c1"));  // '+' is not a wildcard for Erase
  EXPECT_FALSE(trie.Erase("a", "c1"));    // "a/#" is not "a"
  EXPECT_EQ(trie.size(), 3u);

  EXPECT_TRUE(trie.Erase("a/b", "c1"));
  EXPECT_FALSE(trie.Erase("a/b", "c1"));
  EXPECT_EQ(trie.size(), 2u);
  EXPECT_THAT(MatchAll(trie, "a/b"), ElementsAre(Pair("c1", 3), Pair("c2", 2)));

  EXPECT_TRUE(trie.Erase("a/#", "c1"));
  EXPECT_THAT(MatchAll(trie, "a/b"), ElementsAre(Pair("c2", 2)));
  EXPECT_THAT(MatchAll(trie, "a"), IsEmpty());
}

TEST(TopicTrieTest, EraseIfRemovesOnlyTheValueItIsAskedAbout) {
  // A key stored again (a newer subscriber with the same client id) is not the one an older
  // subscriber's removal means.
  TopicTrie<int> trie;
  trie.Insert("a/b", "c1", 1);
  trie.Insert("a/#", "c1", 1);
  trie.Insert("a/b", "c1", 2);  // replaced
  auto is_1 = [](int value) { return value == 1; };
  EXPECT_FALSE(trie.EraseIf("a/b", "c1", is_1));
  EXPECT_TRUE(trie.EraseIf("a/#", "c1", is_1));
  EXPECT_EQ(trie.size(), 1u);
  EXPECT_THAT(MatchAll(trie, "a/b"), ElementsAre(Pair("c1", 2)));
  EXPECT_TRUE(trie.EraseIf("a/b", "c1", [](int value) { return value == 2; }));
  EXPECT_EQ(trie.NodeCountForTesting(), 0u);  // pruned as Erase prunes
}

TEST(TopicTrieTest, ErasePrunesEmptyNodes) {
  TopicTrie<int> trie;
  trie.Insert("a/b/c/d", "c1", 1);
  trie.Insert("a/+/c/#", "c1", 1);
  trie.Insert("+/+/+", "c2", 1);
  trie.Insert("#", "c3", 1);
  trie.Insert("a/b", "c4", 1);
  const size_t full = trie.NodeCountForTesting();
  EXPECT_EQ(full, 4u + 2u /* +, c under a */ + 3u /* +/+/+ */);

  // "a/b" must survive the pruning of the branch below it.
  EXPECT_TRUE(trie.Erase("a/b/c/d", "c1"));
  EXPECT_EQ(trie.NodeCountForTesting(), full - 2);
  EXPECT_THAT(MatchAll(trie, "a/b"), ElementsAre(Pair("c3", 1), Pair("c4", 1)));

  EXPECT_TRUE(trie.Erase("a/+/c/#", "c1"));
  EXPECT_TRUE(trie.Erase("+/+/+", "c2"));
  EXPECT_TRUE(trie.Erase("#", "c3"));
  EXPECT_EQ(trie.NodeCountForTesting(), 2u);  // a, a/b
  EXPECT_TRUE(trie.Erase("a/b", "c4"));
  EXPECT_EQ(trie.NodeCountForTesting(), 0u);
  EXPECT_EQ(trie.size(), 0u);
}

TEST(TopicTrieTest, OverlappingFiltersAreReportedPerSubscription) {
  TopicTrie<int> trie;
  trie.Insert("sport/tennis/player1", "c1", 1);
  trie.Insert("sport/tennis/+", "c1", 2);
  trie.Insert("sport/#", "c1", 3);
  trie.Insert("#", "c1", 4);
  trie.Insert("+/+/player1", "c1", 5);
  trie.Insert("sport/tennis/player1/#", "c1", 6);
  trie.Insert("sport/tennis/player2", "c1", 7);  // does not match
  trie.Insert("sport/+", "c2", 8);               // does not match: one level only
  EXPECT_THAT(MatchAll(trie, "sport/tennis/player1"),
              ElementsAre(Pair("c1", 1), Pair("c1", 2), Pair("c1", 3), Pair("c1", 4), Pair("c1", 5),
                          Pair("c1", 6)));
}

TEST(TopicTrieTest, SpecExamples) {
  TopicTrie<int> trie;
  trie.Insert("sport/tennis/player1/#", "multi", 0);
  trie.Insert("sport/#", "sport-all", 0);
  trie.Insert("sport/tennis/+", "single", 0);
  trie.Insert("sport/+", "sport-one", 0);
  trie.Insert("+/+", "plus-plus", 0);
  trie.Insert("/+", "slash-plus", 0);
  trie.Insert("+", "plus", 0);

  auto keys = [&trie](std::string_view topic) {
    std::vector<std::string> out;
    trie.Match(topic, [&out](const std::string& key, int) { out.push_back(key); });
    return out;
  };
  EXPECT_THAT(keys("sport/tennis/player1"), UnorderedElementsAre("multi", "sport-all", "single"));
  EXPECT_THAT(keys("sport/tennis/player1/ranking"), UnorderedElementsAre("multi", "sport-all"));
  EXPECT_THAT(keys("sport/tennis/player1/score/wimbledon"),
              UnorderedElementsAre("multi", "sport-all"));
  EXPECT_THAT(keys("sport"), UnorderedElementsAre("sport-all", "plus"));
  EXPECT_THAT(keys("sport/"), UnorderedElementsAre("sport-all", "sport-one", "plus-plus"));
  EXPECT_THAT(keys("/finance"), UnorderedElementsAre("plus-plus", "slash-plus"));
  EXPECT_THAT(keys("finance"), UnorderedElementsAre("plus"));
  EXPECT_THAT(keys("Sport"), UnorderedElementsAre("plus"));  // case-sensitive
  EXPECT_THAT(keys(""), IsEmpty());
}

TEST(TopicTrieTest, EmptyLevels) {
  TopicTrie<int> trie;
  trie.Insert("a//b", "exact", 0);
  trie.Insert("a/+/b", "plus", 0);
  trie.Insert("/", "slash", 0);
  trie.Insert("//#", "slash-slash-hash", 0);
  auto keys = [&trie](std::string_view topic) {
    std::vector<std::string> out;
    trie.Match(topic, [&out](const std::string& key, int) { out.push_back(key); });
    return out;
  };
  EXPECT_THAT(keys("a//b"), UnorderedElementsAre("exact", "plus"));
  EXPECT_THAT(keys("a/b"), IsEmpty());
  EXPECT_THAT(keys("/"), UnorderedElementsAre("slash", "slash-slash-hash"));
  EXPECT_THAT(keys("//"), UnorderedElementsAre("slash-slash-hash"));
  EXPECT_THAT(keys("///x"), UnorderedElementsAre("slash-slash-hash"));
}

TEST(TopicTrieTest, DollarTopicsSkipRootWildcards) {
  TopicTrie<int> trie;
  trie.Insert("#", "hash", 0);
  trie.Insert("+/monitor/Clients", "plus", 0);
  trie.Insert("+/#", "plus-hash", 0);
  trie.Insert("$SYS/#", "sys-hash", 0);
  trie.Insert("$SYS/monitor/+", "sys-plus", 0);
  trie.Insert("$SYS/monitor/Clients", "sys-exact", 0);
  auto keys = [&trie](std::string_view topic) {
    std::vector<std::string> out;
    trie.Match(topic, [&out](const std::string& key, int) { out.push_back(key); });
    return out;
  };
  EXPECT_THAT(keys("$SYS/monitor/Clients"),
              UnorderedElementsAre("sys-hash", "sys-plus", "sys-exact"));
  EXPECT_THAT(keys("$SYS"), UnorderedElementsAre("sys-hash"));
  EXPECT_THAT(keys("$other/monitor/Clients"), IsEmpty());
  // The rule is about the first character of the topic only.
  EXPECT_THAT(keys("x/monitor/Clients"), UnorderedElementsAre("hash", "plus", "plus-hash"));
  EXPECT_THAT(keys("x/$SYS"), UnorderedElementsAre("hash", "plus-hash"));
}

TEST(TopicTrieTest, ManyKeysOnOneFilterEachReportedOnce) {
  TopicTrie<int> trie;
  constexpr int kKeys = 5000;
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(trie.Insert("fleet/+/status", "client-" + std::to_string(i), i));
  }
  EXPECT_EQ(trie.size(), static_cast<size_t>(kKeys));
  const auto reported = MatchAll(trie, "fleet/truck7/status");
  ASSERT_EQ(reported.size(), static_cast<size_t>(kKeys));
  for (size_t i = 1; i < reported.size(); ++i) {
    EXPECT_NE(reported[i - 1].first, reported[i].first);
  }
  for (int i = 0; i < kKeys; i += 2) trie.Erase("fleet/+/status", "client-" + std::to_string(i));
  EXPECT_EQ(MatchAll(trie, "fleet/truck7/status").size(), static_cast<size_t>(kKeys / 2));
}

// Random filters and topics over a small alphabet, so that collisions, empty levels, '$' levels
// and wildcards in every position are common; the trie must report exactly the subscriptions
// whose filter TopicMatches says match, through inserts, replacements and erases.
constexpr const char* kRandomLevels[] = {"a", "b", "", "$s", "A", "a$"};

TEST(TopicTrieTest, AgreesWithTopicMatchesOnRandomInput) {
  std::mt19937 rng(20240611);
  TopicTrie<std::string> trie;  // Value: the filter, to know which subscription was reported
  std::vector<std::pair<std::string, std::string>> subscriptions;  // (filter, key)
  std::uniform_int_distribution<int> key_pick(0, 9);

  auto check = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      const std::string topic = test_util::RandomTopic(rng, /*filter=*/false, kRandomLevels);
      ASSERT_TRUE(IsValidTopicName(topic)) << topic;
      std::vector<std::pair<std::string, std::string>> expected;
      for (const auto& [filter, key] : subscriptions) {
        if (TopicMatches(filter, topic)) expected.emplace_back(key, filter);
      }
      std::sort(expected.begin(), expected.end());
      ASSERT_EQ(MatchAll(trie, topic), expected) << "topic " << topic;
    }
  };

  for (int i = 0; i < 400; ++i) {
    const std::string filter = test_util::RandomTopic(rng, /*filter=*/true, kRandomLevels);
    ASSERT_TRUE(IsValidTopicFilter(filter)) << filter;
    const std::string key = "k" + std::to_string(key_pick(rng));
    const auto existing = std::make_pair(filter, key);
    const bool is_new =
        std::find(subscriptions.begin(), subscriptions.end(), existing) == subscriptions.end();
    ASSERT_EQ(trie.Insert(filter, key, filter), is_new) << filter << " " << key;
    if (is_new) subscriptions.push_back(existing);
  }
  ASSERT_EQ(trie.size(), subscriptions.size());
  check(3000);

  // Erase half, in random order, and check again.
  std::shuffle(subscriptions.begin(), subscriptions.end(), rng);
  const size_t keep = subscriptions.size() / 2;
  for (size_t i = keep; i < subscriptions.size(); ++i) {
    ASSERT_TRUE(trie.Erase(subscriptions[i].first, subscriptions[i].second));
  }
  subscriptions.resize(keep);
  ASSERT_EQ(trie.size(), keep);
  check(3000);

  for (const auto& [filter, key] : subscriptions) ASSERT_TRUE(trie.Erase(filter, key));
  EXPECT_EQ(trie.size(), 0u);
  EXPECT_EQ(trie.NodeCountForTesting(), 0u);
}

// Readers match while writers churn subscriptions. A fixed subscription must be seen by every
// match, and churned subscriptions must be reported either whole or not at all. Meant to be run
// under -fsanitize=thread as well.
TEST(TopicTrieTest, ConcurrentMatchInsertErase) {
  TopicTrie<int> trie;
  ASSERT_TRUE(trie.Insert("plant/+/temp", "stable", 42));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};

  auto writer = [&](int id) {
    std::mt19937 rng(id);
    std::uniform_int_distribution<int> pick(0, 63);
    for (int round = 0; round < 3000; ++round) {
      const std::string key = "w" + std::to_string(id) + "-" + std::to_string(pick(rng));
      const std::string filter =
          pick(rng) % 2 == 0 ? "plant/" + std::to_string(pick(rng)) + "/#" : "plant/+/temp";
      trie.Insert(filter, key, 7);
      trie.Erase(filter, "w" + std::to_string(id) + "-" + std::to_string(pick(rng)));
    }
  };
  auto reader = [&]() {
    while (!stop.load(std::memory_order_relaxed)) {
      int stable_seen = 0;
      trie.Match("plant/12/temp", [&](const std::string& key, const int& value) {
        if (key == "stable") stable_seen += value == 42 ? 1 : 100;
        if (key != "stable" && value != 7) failures.fetch_add(1);
      });
      if (stable_seen != 1) failures.fetch_add(1);
    }
  };

  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) readers.emplace_back(reader);
  std::thread w1(writer, 1);
  std::thread w2(writer, 2);
  w1.join();
  w2.join();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_THAT(MatchAll(trie, "plant/12/temp"), ::testing::Contains(Pair("stable", 42)));
}

// Not a pass/fail test of speed: prints the match rate with 100k subscriptions so regressions
// are visible in the log. It does check that every match found the expected subscribers.
TEST(TopicTrieTest, Throughput100kSubscriptions) {
  TopicTrie<int> trie;
  // 100 sites x 900 devices exact, 100 x 90 with '+' on the device, 100 x 10 with '#'.
  constexpr int kSites = 100;
  for (int s = 0; s < kSites; ++s) {
    const std::string site = "site/" + std::to_string(s);
    for (int d = 0; d < 900; ++d) {
      trie.Insert(site + "/dev/" + std::to_string(d) + "/temp", "exact-" + std::to_string(d), 0);
    }
    for (int k = 0; k < 90; ++k) trie.Insert(site + "/dev/+/temp", "plus-" + std::to_string(k), 0);
    for (int k = 0; k < 10; ++k) trie.Insert(site + "/#", "hash-" + std::to_string(k), 0);
  }
  ASSERT_EQ(trie.size(), 100000u);

  std::vector<std::string> topics;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> site(0, kSites - 1);
  std::uniform_int_distribution<int> dev(0, 999);  // 10% hit no exact subscription
  for (int i = 0; i < 1024; ++i) {
    topics.push_back("site/" + std::to_string(site(rng)) + "/dev/" + std::to_string(dev(rng)) +
                     "/temp");
  }

  constexpr int kMatches = 200000;
  size_t reported = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kMatches; ++i) {
    trie.Match(topics[i & 1023], [&reported](const std::string&, const int&) { ++reported; });
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;

  size_t expected = 0;
  for (int i = 0; i < kMatches; ++i) {
    const std::string& t = topics[i & 1023];
    const int d = std::stoi(t.substr(t.find("/dev/") + 5));
    expected += 100 + (d < 900 ? 1 : 0);
  }
  EXPECT_EQ(reported, expected);
  std::printf(
      "TopicTrie: 100k subscriptions, %d matches in %.3f s = %.0f matches/s, "
      "%.1f M subscribers reported/s\n",
      kMatches, elapsed.count(), kMatches / elapsed.count(), reported / elapsed.count() / 1e6);
}

// The other extreme: 100k distinct filters, one subscriber each, so a match costs the walk, not
// the reporting.
TEST(TopicTrieTest, Throughput100kDistinctFilters) {
  TopicTrie<int> trie;
  for (int t = 0; t < 100; ++t) {
    const std::string tenant = "tenant/" + std::to_string(t) + "/device/";
    for (int d = 0; d < 999; ++d) {
      trie.Insert(tenant + std::to_string(d) + "/cmd", "dev-" + std::to_string(d), 0);
    }
    trie.Insert(tenant + "+/cmd", "tenant-" + std::to_string(t), 0);
  }
  ASSERT_EQ(trie.size(), 100000u);
  std::vector<std::string> topics;
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> tenant(0, 99);
  std::uniform_int_distribution<int> dev(0, 998);
  for (int i = 0; i < 1024; ++i) {
    topics.push_back("tenant/" + std::to_string(tenant(rng)) + "/device/" +
                     std::to_string(dev(rng)) + "/cmd");
  }
  constexpr int kMatches = 500000;
  size_t reported = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kMatches; ++i) {
    trie.Match(topics[i & 1023], [&reported](const std::string&, const int&) { ++reported; });
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(reported, 2u * kMatches);
  std::printf("TopicTrie: 100k distinct filters, %d matches in %.3f s = %.0f matches/s\n", kMatches,
              elapsed.count(), kMatches / elapsed.count());
}

}  // namespace
}  // namespace meshmq
