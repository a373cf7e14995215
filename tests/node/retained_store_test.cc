// The retained-message store: set, replace, delete by empty payload, wildcard matching with the
// '$' rule, pruning, and agreement with TopicMatches on random topics and filters. Then the
// cluster's versioned changes: last writer wins by (hlc, origin), deletions leave tombstones, and
// any order of the same changes converges to the same store.
#include "node/retained_store.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/topic.h"
#include "tests/node/topic_test_util.h"

namespace meshmq {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

MessagePtr Msg(std::string topic, std::string payload, uint8_t qos = 0) {
  auto msg = std::make_shared<Message>();
  msg->topic = std::move(topic);
  msg->payload = std::move(payload);
  msg->qos = qos;
  msg->retain = true;
  return msg;
}

// "topic=payload" for every retained message matching `filter`, sorted.
std::vector<std::string> Matched(const RetainedStore& store, std::string_view filter) {
  std::vector<MessagePtr> out;
  store.Match(filter, &out);
  std::vector<std::string> result;
  for (const MessagePtr& msg : out) result.push_back(msg->topic + "=" + msg->payload);
  std::sort(result.begin(), result.end());
  return result;
}

TEST(RetainedStoreTest, SetAndExactMatch) {
  RetainedStore store;
  const MessagePtr msg = Msg("sport/tennis/player1", "15-0", 1);
  EXPECT_TRUE(store.Set(msg));
  EXPECT_EQ(store.size(), 1u);
  std::vector<MessagePtr> out;
  store.Match("sport/tennis/player1", &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], msg);  // the shared message itself, not a copy
  EXPECT_THAT(Matched(store, "sport/tennis"), IsEmpty());
  EXPECT_THAT(Matched(store, "sport/tennis/player1/x"), IsEmpty());
  EXPECT_THAT(Matched(store, "Sport/tennis/player1"), IsEmpty());
}

TEST(RetainedStoreTest, MatchAppendsToOut) {
  RetainedStore store;
  store.Set(Msg("a", "1"));
  std::vector<MessagePtr> out = {Msg("already", "there")};
  store.Match("a", &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]->topic, "already");
  EXPECT_EQ(out[1]->topic, "a");
}

TEST(RetainedStoreTest, NewerMessageReplacesOlder) {
  RetainedStore store;
  EXPECT_TRUE(store.Set(Msg("a/b", "old", 2)));
  EXPECT_TRUE(store.Set(Msg("a/b", "new", 0)));  // MQTT-3.3.1-7: QoS 0 replaces too
  EXPECT_EQ(store.size(), 1u);
  std::vector<MessagePtr> out;
  store.Match("a/b", &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->payload, "new");
  EXPECT_EQ(out[0]->qos, 0);
}

TEST(RetainedStoreTest, EmptyPayloadDeletesAndIsNotStored) {
  RetainedStore store;
  store.Set(Msg("a/b", "x"));
  store.Set(Msg("a/b/c", "y"));
  EXPECT_TRUE(store.Set(Msg("a/b", "")));  // MQTT-3.3.1-10
  EXPECT_EQ(store.size(), 1u);
  EXPECT_THAT(Matched(store, "a/b"), IsEmpty());
  EXPECT_THAT(Matched(store, "a/#"), ElementsAre("a/b/c=y"));  // the child survives

  EXPECT_FALSE(store.Set(Msg("a/b", "")));  // nothing left to delete
  EXPECT_FALSE(store.Set(Msg("q", "")));    // MQTT-3.3.1-11: never stored
  EXPECT_EQ(store.size(), 1u);
  EXPECT_THAT(Matched(store, "#"), ElementsAre("a/b/c=y"));
}

TEST(RetainedStoreTest, DeletionPrunesTheTree) {
  RetainedStore store;
  store.Set(Msg("a/b/c/d", "1"));
  store.Set(Msg("a", "2"));
  EXPECT_EQ(store.NodeCountForTesting(), 4u);
  EXPECT_TRUE(store.Set(Msg("a/b/c/d", "")));
  EXPECT_EQ(store.NodeCountForTesting(), 1u);  // "a" still holds a message
  EXPECT_TRUE(store.Set(Msg("a", "")));
  EXPECT_EQ(store.NodeCountForTesting(), 0u);
  EXPECT_EQ(store.size(), 0u);
  // Deleting a topic that only exists as an inner node changes nothing.
  store.Set(Msg("x/y", "1"));
  EXPECT_FALSE(store.Set(Msg("x", "")));
  EXPECT_EQ(store.NodeCountForTesting(), 2u);
  EXPECT_THAT(Matched(store, "x/y"), ElementsAre("x/y=1"));
}

TEST(RetainedStoreTest, RefusesNullAndInvalidTopics) {
  RetainedStore store;
  EXPECT_FALSE(store.Set(nullptr));
  EXPECT_FALSE(store.Set(Msg("", "x")));
  EXPECT_FALSE(store.Set(Msg("a/+", "x")));
  EXPECT_FALSE(store.Set(Msg("a/#", "x")));
  EXPECT_EQ(store.size(), 0u);
  store.Set(Msg("sport/tennis", "x"));
  EXPECT_THAT(Matched(store, "sport/tennis#"), IsEmpty());  // invalid filter
  EXPECT_THAT(Matched(store, "sport+"), IsEmpty());
}

class RetainedWildcardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* topic :
         {"sport", "sport/", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking",
          "sport/tennis/player1/score/wimbledon", "sport/tennis/player2", "/finance", "finance",
          "a//b", "$SYS/monitor/Clients", "$SYS", "x/$y"}) {
      store_.Set(Msg(topic, "p"));
    }
  }
  RetainedStore store_;
};

TEST_F(RetainedWildcardTest, MultiLevel) {
  EXPECT_THAT(Matched(store_, "sport/tennis/player1/#"),
              UnorderedElementsAre("sport/tennis/player1=p", "sport/tennis/player1/ranking=p",
                                   "sport/tennis/player1/score/wimbledon=p"));
  EXPECT_THAT(
      Matched(store_, "sport/#"),
      UnorderedElementsAre("sport=p", "sport/=p", "sport/tennis=p", "sport/tennis/player1=p",
                           "sport/tennis/player1/ranking=p",
                           "sport/tennis/player1/score/wimbledon=p", "sport/tennis/player2=p"));
  EXPECT_THAT(Matched(store_, "#"),
              UnorderedElementsAre(
                  "sport=p", "sport/=p", "sport/tennis=p", "sport/tennis/player1=p",
                  "sport/tennis/player1/ranking=p", "sport/tennis/player1/score/wimbledon=p",
                  "sport/tennis/player2=p", "/finance=p", "finance=p", "a//b=p", "x/$y=p"));
}

TEST_F(RetainedWildcardTest, SingleLevel) {
  EXPECT_THAT(Matched(store_, "sport/tennis/+"),
              UnorderedElementsAre("sport/tennis/player1=p", "sport/tennis/player2=p"));
  EXPECT_THAT(Matched(store_, "sport/+"), UnorderedElementsAre("sport/=p", "sport/tennis=p"));
  EXPECT_THAT(Matched(store_, "+"), UnorderedElementsAre("sport=p", "finance=p"));
  EXPECT_THAT(Matched(store_, "+/+"),
              UnorderedElementsAre("sport/=p", "sport/tennis=p", "/finance=p", "x/$y=p"));
  EXPECT_THAT(Matched(store_, "/+"), UnorderedElementsAre("/finance=p"));
  EXPECT_THAT(Matched(store_, "+/tennis/#"),
              UnorderedElementsAre(
                  "sport/tennis=p", "sport/tennis/player1=p", "sport/tennis/player1/ranking=p",
                  "sport/tennis/player1/score/wimbledon=p", "sport/tennis/player2=p"));
  EXPECT_THAT(Matched(store_, "sport/+/player1"), UnorderedElementsAre("sport/tennis/player1=p"));
  EXPECT_THAT(Matched(store_, "a/+/b"), UnorderedElementsAre("a//b=p"));
}

TEST_F(RetainedWildcardTest, DollarTopicsOnlyForFiltersThatNameThem) {
  EXPECT_THAT(Matched(store_, "+/monitor/Clients"), IsEmpty());
  const auto plus_hash = Matched(store_, "+/#");
  EXPECT_THAT(plus_hash, ::testing::Each(::testing::Not(::testing::StartsWith("$"))));
  EXPECT_THAT(plus_hash, ::testing::Contains("sport=p"));
  EXPECT_THAT(Matched(store_, "$SYS/#"), UnorderedElementsAre("$SYS=p", "$SYS/monitor/Clients=p"));
  EXPECT_THAT(Matched(store_, "$SYS/monitor/+"), UnorderedElementsAre("$SYS/monitor/Clients=p"));
  EXPECT_THAT(Matched(store_, "$SYS"), UnorderedElementsAre("$SYS=p"));
  EXPECT_THAT(Matched(store_, "x/+"), UnorderedElementsAre("x/$y=p"));
}

TEST(RetainedStoreTest, ForEachVisitsEveryMessage) {
  RetainedStore store;
  for (const char* topic : {"a", "a/b", "$SYS/x", "/", "c/d/e"}) store.Set(Msg(topic, "p"));
  std::vector<std::string> seen;
  store.ForEach([&seen](const MessagePtr& msg) { seen.push_back(msg->topic); });
  EXPECT_THAT(seen, UnorderedElementsAre("a", "a/b", "$SYS/x", "/", "c/d/e"));
}

TEST(RetainedStoreTest, AgreesWithTopicMatchesOnRandomInput) {
  std::mt19937 rng(99);
  static const char* const kLevels[] = {"a", "b", "", "$s", "A"};
  auto random = [&](bool filter) { return test_util::RandomTopic(rng, filter, kLevels); };

  RetainedStore store;
  std::vector<std::string> topics;
  for (int i = 0; i < 300; ++i) {
    const std::string topic = random(false);
    store.Set(Msg(topic, "p"));
    if (std::find(topics.begin(), topics.end(), topic) == topics.end()) topics.push_back(topic);
  }
  // Delete a third of them again.
  for (size_t i = 0; i < topics.size(); i += 3) store.Set(Msg(topics[i], ""));
  std::vector<std::string> live;
  for (size_t i = 0; i < topics.size(); ++i) {
    if (i % 3 != 0) live.push_back(topics[i] + "=p");
  }
  ASSERT_EQ(store.size(), live.size());

  for (int i = 0; i < 3000; ++i) {
    const std::string filter = random(true);
    std::vector<std::string> expected;
    for (const std::string& entry : live) {
      if (TopicMatches(filter, entry.substr(0, entry.size() - 2))) expected.push_back(entry);
    }
    std::sort(expected.begin(), expected.end());
    ASSERT_EQ(Matched(store, filter), expected) << "filter " << filter;
  }
}

TEST(RetainedStoreTest, ConcurrentSetAndMatch) {
  RetainedStore store;
  store.Set(Msg("plant/stable", "s"));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  auto writer = [&](int id) {
    for (int i = 0; i < 5000; ++i) {
      const std::string topic = "plant/" + std::to_string(id) + "/" + std::to_string(i % 50);
      store.Set(Msg(topic, i % 3 == 0 ? "" : "v"));
    }
  };
  auto reader = [&]() {
    while (!stop.load(std::memory_order_relaxed)) {
      std::vector<MessagePtr> out;
      store.Match("plant/#", &out);
      const bool has_stable = std::any_of(
          out.begin(), out.end(), [](const MessagePtr& m) { return m->topic == "plant/stable"; });
      if (!has_stable) failures.fetch_add(1);
      for (const MessagePtr& m : out) {
        if (m->payload.empty()) failures.fetch_add(1);
      }
    }
  };
  std::thread r(reader);
  std::thread w1(writer, 1);
  std::thread w2(writer, 2);
  w1.join();
  w2.join();
  stop = true;
  r.join();
  EXPECT_EQ(failures.load(), 0);
  size_t counted = 0;
  store.ForEach([&counted](const MessagePtr&) { ++counted; });
  EXPECT_EQ(counted, store.size());
}

// ---- Versioned changes (a cluster's replicated retained messages) ---------------------------

RetainedVersion V(uint64_t hlc, std::string origin = "n1") {
  return RetainedVersion{hlc, std::move(origin)};
}

// "topic=payload@hlc/origin", or "topic=<tombstone>@hlc/origin", for everything ForEachVersioned
// reports, sorted.
std::vector<std::string> Versioned(const RetainedStore& store) {
  std::vector<std::string> result;
  store.ForEachVersioned(
      [&result](const std::string& topic, const MessagePtr& msg, const RetainedVersion& version) {
        result.push_back(absl::StrCat(topic, "=", msg == nullptr ? "<tombstone>" : msg->payload,
                                      "@", version.hlc, "/", version.origin));
      });
  std::sort(result.begin(), result.end());
  return result;
}

size_t ReportedTombstones(const RetainedStore& store) {
  size_t count = 0;
  store.ForEachVersioned([&count](const std::string&, const MessagePtr& msg,
                                  const RetainedVersion&) { count += msg == nullptr ? 1 : 0; });
  return count;
}

TEST(RetainedStoreVersionedTest, NewerVersionReplacesOlderIsIgnored) {
  RetainedStore store;
  EXPECT_TRUE(store.Apply("a/b", Msg("a/b", "v10"), V(10)));
  EXPECT_TRUE(store.Apply("a/b", Msg("a/b", "v20"), V(20)));
  EXPECT_THAT(Matched(store, "a/b"), ElementsAre("a/b=v20"));

  // Older, and equal: ignored, nothing changes.
  EXPECT_FALSE(store.Apply("a/b", Msg("a/b", "v15"), V(15)));
  EXPECT_FALSE(store.Apply("a/b", Msg("a/b", "again"), V(20)));
  EXPECT_FALSE(store.Apply("a/b", nullptr, V(19)));
  EXPECT_FALSE(store.Apply("a/b", Msg("a/b", ""), V(5)));
  EXPECT_THAT(Matched(store, "a/b"), ElementsAre("a/b=v20"));
  EXPECT_THAT(Versioned(store), ElementsAre("a/b=v20@20/n1"));
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.tombstones(), 0u);
}

TEST(RetainedStoreVersionedTest, EqualClockReadingsAreOrderedByOrigin) {
  RetainedStore store;
  EXPECT_TRUE(store.Apply("t", Msg("t", "from-b"), V(7, "node-b")));
  EXPECT_FALSE(store.Apply("t", Msg("t", "from-a"), V(7, "node-a")));  // "node-a" < "node-b"
  EXPECT_THAT(Matched(store, "t"), ElementsAre("t=from-b"));
  EXPECT_TRUE(store.Apply("t", Msg("t", "from-c"), V(7, "node-c")));
  EXPECT_THAT(Versioned(store), ElementsAre("t=from-c@7/node-c"));
  // The clock reading decides before the origin does.
  EXPECT_FALSE(store.Apply("t", Msg("t", "z-but-older"), V(6, "zzz")));
  EXPECT_TRUE(store.Apply("t", Msg("t", "a-but-newer"), V(8, "a")));
  EXPECT_THAT(Versioned(store), ElementsAre("t=a-but-newer@8/a"));
}

TEST(RetainedStoreVersionedTest, ApplyStoresUnderTheGivenTopicAndRefusesInvalidOnes) {
  RetainedStore store;
  EXPECT_FALSE(store.Apply("a/+", Msg("a/+", "x"), V(1)));
  EXPECT_FALSE(store.Apply("", Msg("", "x"), V(1)));
  EXPECT_FALSE(store.Apply("a/#", nullptr, V(1)));  // not even a tombstone
  EXPECT_EQ(store.size(), 0u);
  EXPECT_EQ(store.tombstones(), 0u);
  EXPECT_THAT(Versioned(store), IsEmpty());
}

TEST(RetainedStoreVersionedTest, VersionedDeleteLeavesATombstoneThatStopsOlderValues) {
  for (const bool empty_payload : {false, true}) {
    SCOPED_TRACE(empty_payload ? "empty payload" : "null message");
    RetainedStore store;
    store.Apply("a/b", Msg("a/b", "v10"), V(10));
    store.Apply("a/b/c", Msg("a/b/c", "child"), V(11));
    EXPECT_TRUE(store.Apply("a/b", empty_payload ? Msg("a/b", "") : nullptr, V(20)));
    EXPECT_EQ(store.size(), 1u);
    EXPECT_EQ(store.tombstones(), 1u);
    EXPECT_THAT(Matched(store, "a/b"), IsEmpty());
    EXPECT_THAT(Matched(store, "a/+"), IsEmpty());
    EXPECT_THAT(Matched(store, "a/#"), ElementsAre("a/b/c=child"));
    EXPECT_THAT(Matched(store, "#"), ElementsAre("a/b/c=child"));
    std::vector<std::string> each;
    store.ForEach([&each](const MessagePtr& m) { each.push_back(m->topic); });
    EXPECT_THAT(each, ElementsAre("a/b/c"));  // tombstones are not messages
    EXPECT_THAT(Versioned(store), ElementsAre("a/b/c=child@11/n1", "a/b=<tombstone>@20/n1"));

    // A value older than the deletion arrives late from another node: it stays deleted.
    EXPECT_FALSE(store.Apply("a/b", Msg("a/b", "late"), V(15, "n2")));
    EXPECT_FALSE(store.Apply("a/b", Msg("a/b", "tie-lower-origin"), V(20, "n0")));
    EXPECT_THAT(Matched(store, "a/b"), IsEmpty());
    EXPECT_EQ(store.tombstones(), 1u);
    EXPECT_EQ(store.size(), 1u);

    // A newer one brings the topic back and ends the tombstone.
    EXPECT_TRUE(store.Apply("a/b", Msg("a/b", "v30"), V(30, "n2")));
    EXPECT_THAT(Matched(store, "a/b"), ElementsAre("a/b=v30"));
    EXPECT_EQ(store.tombstones(), 0u);
    EXPECT_EQ(store.size(), 2u);
    EXPECT_THAT(Versioned(store), ElementsAre("a/b/c=child@11/n1", "a/b=v30@30/n2"));
  }
}

TEST(RetainedStoreVersionedTest, DeleteOfAnUnknownTopicStillLeavesATombstone) {
  // The deletion overtook the value it deletes (they came from different nodes).
  RetainedStore store;
  EXPECT_TRUE(store.Apply("x/y", nullptr, V(9, "n2")));
  EXPECT_EQ(store.tombstones(), 1u);
  EXPECT_EQ(store.size(), 0u);
  EXPECT_THAT(Versioned(store), ElementsAre("x/y=<tombstone>@9/n2"));
  EXPECT_FALSE(store.Apply("x/y", Msg("x/y", "old"), V(8, "n1")));
  EXPECT_THAT(Matched(store, "x/#"), IsEmpty());
  EXPECT_EQ(store.size(), 0u);
}

TEST(RetainedStoreVersionedTest, TombstoneCount) {
  RetainedStore store;
  for (const char* topic : {"a", "b", "c/d", "$SYS/x"}) store.Apply(topic, Msg(topic, "p"), V(1));
  EXPECT_EQ(store.tombstones(), 0u);
  EXPECT_TRUE(store.Apply("a", nullptr, V(2)));
  EXPECT_TRUE(store.Apply("c/d", Msg("c/d", ""), V(2)));
  EXPECT_TRUE(store.Apply("never/there", nullptr, V(2)));
  EXPECT_EQ(store.tombstones(), 3u);
  EXPECT_EQ(store.size(), 2u);
  // A newer deletion of a tombstone replaces it: still one tombstone for the topic.
  EXPECT_TRUE(store.Apply("a", nullptr, V(3)));
  EXPECT_FALSE(store.Apply("a", nullptr, V(1)));
  EXPECT_EQ(store.tombstones(), 3u);
  EXPECT_THAT(Versioned(store),
              ElementsAre("$SYS/x=p@1/n1", "a=<tombstone>@3/n1", "b=p@1/n1", "c/d=<tombstone>@2/n1",
                          "never/there=<tombstone>@2/n1"));
  EXPECT_TRUE(store.Apply("c/d", Msg("c/d", "back"), V(4)));
  EXPECT_EQ(store.tombstones(), 2u);
  EXPECT_EQ(store.tombstones(), ReportedTombstones(store));
}

TEST(RetainedStoreVersionedTest, ForEachVersionedReportsExactTopicNames) {
  RetainedStore store;
  const std::vector<std::string> topics = {"/a",  "a//b", "$SYS/x", "a/",  "/",     "a",
                                           "a/b", "//",   "x/$y",   "a//", "$SYS/", "sport/tennis"};
  uint64_t hlc = 1;
  for (const std::string& topic : topics) {
    ASSERT_TRUE(store.Apply(topic, Msg(topic, "p"), V(hlc++))) << topic;
  }
  ASSERT_TRUE(store.Apply("/tomb//x", nullptr, V(hlc++)));
  ASSERT_TRUE(store.Apply("$SYS/gone", nullptr, V(hlc++)));

  std::vector<std::string> names;
  std::vector<std::string> from_message;
  store.ForEachVersioned(
      [&](const std::string& topic, const MessagePtr& msg, const RetainedVersion& version) {
        names.push_back(topic);
        if (msg != nullptr) {
          from_message.push_back(msg->topic);
          EXPECT_EQ(msg->topic, topic);
        }
        EXPECT_NE(version.hlc, 0u) << topic;
      });
  std::vector<std::string> expected = topics;
  expected.push_back("/tomb//x");
  expected.push_back("$SYS/gone");
  EXPECT_THAT(names, ::testing::UnorderedElementsAreArray(expected));
  EXPECT_THAT(from_message, ::testing::UnorderedElementsAreArray(topics));
}

TEST(RetainedStoreVersionedTest, ForEachVersionedReportsUnversionedMessagesWithHlcZero) {
  RetainedStore store;
  store.Set(Msg("local", "l"));
  store.Apply("remote", Msg("remote", "r"), V(5, "n2"));
  store.Apply("gone", nullptr, V(6, "n2"));
  EXPECT_THAT(Versioned(store),
              ElementsAre("gone=<tombstone>@6/n2", "local=l@0/", "remote=r@5/n2"));
}

TEST(RetainedStoreVersionedTest, ChangeHookSeesEveryVersionedChange) {
  RetainedStore store;
  struct Change {
    std::string topic;
    std::optional<std::string> payload;  // nullopt: deletion
    RetainedVersion version;
  };
  std::vector<Change> changes;
  store.SetChangeHook([&changes](const std::string& topic, const Message* msg,
                                 const RetainedVersion& version) {
    changes.push_back(Change{
        topic, msg == nullptr ? std::nullopt : std::optional<std::string>(msg->payload), version});
  });
  store.Apply("a/b", Msg("a/b", "v1"), V(10, "n2"));
  store.Apply("a/b", Msg("a/b", "older"), V(9, "n2"));  // ignored: no change to report
  store.Apply("a/b", nullptr, V(11, "n3"));
  store.Apply("a/b", nullptr, V(10, "n3"));       // ignored
  store.Apply("/x", Msg("/x", ""), V(12, "n1"));  // a tombstone for a topic never seen
  store.Apply("a/b", Msg("a/b", "v2"), V(13, "n1"));
  store.Set(Msg("local", "l"));
  store.Set(Msg("local", ""));
  store.Set(Msg("local", ""));  // nothing to delete: no change

  ASSERT_EQ(changes.size(), 6u);
  EXPECT_EQ(changes[0].topic, "a/b");
  EXPECT_EQ(changes[0].payload, "v1");
  EXPECT_EQ(changes[0].version, V(10, "n2"));
  EXPECT_EQ(changes[1].topic, "a/b");
  EXPECT_EQ(changes[1].payload, std::nullopt);
  EXPECT_EQ(changes[1].version, V(11, "n3"));
  EXPECT_EQ(changes[2].topic, "/x");
  EXPECT_EQ(changes[2].payload, std::nullopt);
  EXPECT_EQ(changes[2].version, V(12, "n1"));
  EXPECT_EQ(changes[3].topic, "a/b");
  EXPECT_EQ(changes[3].payload, "v2");
  EXPECT_EQ(changes[3].version, V(13, "n1"));
  EXPECT_EQ(changes[4].topic, "local");
  EXPECT_EQ(changes[4].payload, "l");
  EXPECT_EQ(changes[4].version.hlc, 0u);
  EXPECT_EQ(changes[5].topic, "local");
  EXPECT_EQ(changes[5].payload, std::nullopt);
  EXPECT_EQ(changes[5].version.hlc, 0u);
}

TEST(RetainedStoreVersionedTest, UnversionedSetBehavesAsBefore) {
  RetainedStore store;
  EXPECT_TRUE(store.Set(Msg("a/b/c", "1")));
  EXPECT_TRUE(store.Set(Msg("a/b/c", "2")));
  EXPECT_TRUE(store.Set(Msg("a/b/c", "")));  // deleted, no tombstone kept
  EXPECT_EQ(store.tombstones(), 0u);
  EXPECT_EQ(store.size(), 0u);
  EXPECT_EQ(store.NodeCountForTesting(), 0u);  // pruned
  EXPECT_THAT(Versioned(store), IsEmpty());
  // Without a tombstone anything may be written again, whatever it is.
  EXPECT_TRUE(store.Set(Msg("a/b/c", "3")));
  EXPECT_THAT(Matched(store, "a/b/c"), ElementsAre("a/b/c=3"));
}

TEST(RetainedStoreVersionedTest, UnversionedAndVersionedWritesOnOneTopic) {
  RetainedStore store;
  // An unversioned value (a node on its own) gives way to any versioned one...
  store.Set(Msg("t", "local"));
  EXPECT_TRUE(store.Apply("t", Msg("t", "remote"), V(1)));
  EXPECT_THAT(Versioned(store), ElementsAre("t=remote@1/n1"));
  // ...and an unversioned write always wins.
  EXPECT_TRUE(store.Set(Msg("t", "local-again")));
  EXPECT_THAT(Versioned(store), ElementsAre("t=local-again@0/"));
  // An unversioned delete of a versioned value leaves no tombstone.
  EXPECT_TRUE(store.Apply("t", Msg("t", "remote"), V(2)));
  EXPECT_TRUE(store.Set(Msg("t", "")));
  EXPECT_EQ(store.tombstones(), 0u);
  EXPECT_EQ(store.size(), 0u);
  EXPECT_THAT(Versioned(store), IsEmpty());
  // An unversioned value written over a tombstone replaces it.
  EXPECT_TRUE(store.Apply("t", nullptr, V(3)));
  EXPECT_EQ(store.tombstones(), 1u);
  EXPECT_TRUE(store.Set(Msg("t", "over-tombstone")));
  EXPECT_EQ(store.tombstones(), 0u);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_THAT(Versioned(store), ElementsAre("t=over-tombstone@0/"));
}

TEST(RetainedStoreVersionedTest, UnversionedDeleteOfATombstoneKeepsTheCountTrue) {
  RetainedStore store;
  ASSERT_TRUE(store.Apply("t", nullptr, V(3)));
  ASSERT_TRUE(store.Apply("p/child", nullptr, V(3)));
  ASSERT_TRUE(store.Apply("p/child/leaf", Msg("p/child/leaf", "x"), V(3)));
  ASSERT_EQ(store.tombstones(), 2u);
  // There is no message to delete: the store reports no change...
  EXPECT_FALSE(store.Set(Msg("t", "")));
  EXPECT_FALSE(store.Set(Msg("p/child", "")));
  // ...and what it says about its tombstones agrees with what it reports having.
  EXPECT_EQ(store.tombstones(), ReportedTombstones(store));
  EXPECT_EQ(store.size(), 1u);
}

TEST(RetainedStoreVersionedTest, RemoveOfAnExpiredMessageAfterAVersionedApply) {
  RetainedStore store;
  std::vector<std::tuple<std::string, bool, uint64_t>> changes;  // topic, deleted, hlc
  store.SetChangeHook(
      [&changes](const std::string& topic, const Message* msg, const RetainedVersion& version) {
        changes.emplace_back(topic, msg == nullptr, version.hlc);
      });
  const MessagePtr first = Msg("dev/1/status", "online");
  ASSERT_TRUE(store.Apply("dev/1/status", first, V(10, "n2")));
  const MessagePtr second = Msg("dev/1/status", "offline");
  ASSERT_TRUE(store.Apply("dev/1/status", second, V(11, "n2")));
  // `first` is no longer the retained message: removing it leaves the newer one alone.
  EXPECT_FALSE(store.Remove(first));
  EXPECT_THAT(Matched(store, "dev/#"), ElementsAre("dev/1/status=offline"));

  EXPECT_TRUE(store.Remove(second));  // expired
  EXPECT_EQ(store.size(), 0u);
  EXPECT_EQ(store.tombstones(), 0u);  // an expiry is not a deletion: every node expires its own
  EXPECT_THAT(Matched(store, "dev/#"), IsEmpty());
  EXPECT_THAT(Versioned(store), IsEmpty());
  EXPECT_EQ(store.NodeCountForTesting(), 0u);
  EXPECT_FALSE(store.Remove(second));  // gone already
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[2], std::make_tuple(std::string("dev/1/status"), true, uint64_t{0}));

  // The topic takes versioned values again.
  EXPECT_TRUE(store.Apply("dev/1/status", Msg("dev/1/status", "back"), V(12, "n1")));
  EXPECT_THAT(Versioned(store), ElementsAre("dev/1/status=back@12/n1"));
}

TEST(RetainedStoreVersionedTest, RemoveLeavesATombstoneOnAnotherTopicAlone) {
  RetainedStore store;
  store.Apply("a", nullptr, V(5));
  const MessagePtr child = Msg("a/b", "x");
  store.Apply("a/b", child, V(6));
  EXPECT_TRUE(store.Remove(child));
  EXPECT_EQ(store.tombstones(), 1u);
  EXPECT_THAT(Versioned(store), ElementsAre("a=<tombstone>@5/n1"));
  EXPECT_FALSE(store.Apply("a", Msg("a", "old"), V(4)));
}

// One replicated change: a value or a deletion of `topic` at `version`.
struct Change {
  std::string topic;
  RetainedVersion version;
  std::string payload;  // empty: deletion
  bool null_message;    // a deletion sent as a null message rather than an empty payload
};

TEST(RetainedStoreVersionedTest, AnyOrderOfTheSameChangesConverges) {
  static const char* const kLevels[] = {"a", "b", "", "$s"};
  static const char* const kOrigins[] = {"n1", "n2", "n3"};
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937 rng(seed);
    std::vector<std::string> topics;
    while (topics.size() < 12) {
      const std::string topic = test_util::RandomTopic(rng, false, kLevels);
      if (std::find(topics.begin(), topics.end(), topic) == topics.end()) topics.push_back(topic);
    }
    // Distinct versions per topic, so that every topic has one winner.
    std::map<std::pair<std::string, RetainedVersion>, bool> used;
    std::vector<Change> changes;
    std::uniform_int_distribution<size_t> pick_topic(0, topics.size() - 1);
    std::uniform_int_distribution<uint64_t> pick_hlc(1, 40);
    std::uniform_int_distribution<int> pick_origin(0, 2);
    std::uniform_int_distribution<int> pick_kind(0, 5);
    while (changes.size() < 300) {
      Change c;
      c.topic = topics[pick_topic(rng)];
      c.version = V(pick_hlc(rng), kOrigins[pick_origin(rng)]);
      if (!used.emplace(std::make_pair(c.topic, c.version), true).second) continue;
      const int kind = pick_kind(rng);
      c.payload = kind <= 1 ? "" : absl::StrCat("p", changes.size());
      c.null_message = kind == 0;
      changes.push_back(std::move(c));
    }
    // What every store must end with: each topic's highest version.
    std::map<std::string, const Change*> winner;
    for (const Change& c : changes) {
      const Change*& w = winner[c.topic];
      if (w == nullptr || w->version < c.version) w = &c;
    }
    std::vector<std::string> expected;
    size_t expected_tombstones = 0;
    for (const auto& [topic, c] : winner) {
      expected.push_back(absl::StrCat(topic, "=", c->payload.empty() ? "<tombstone>" : c->payload,
                                      "@", c->version.hlc, "/", c->version.origin));
      if (c->payload.empty()) ++expected_tombstones;
    }
    std::sort(expected.begin(), expected.end());

    auto apply_shuffled = [&](RetainedStore& store, uint32_t order_seed) {
      std::vector<const Change*> order;
      for (const Change& c : changes) order.push_back(&c);
      std::mt19937 order_rng(order_seed);
      std::shuffle(order.begin(), order.end(), order_rng);
      for (const Change* c : order) {
        store.Apply(c->topic, c->null_message ? nullptr : Msg(c->topic, c->payload), c->version);
      }
    };
    RetainedStore first;
    RetainedStore second;
    apply_shuffled(first, seed * 2);
    apply_shuffled(second, seed * 2 + 1);

    EXPECT_EQ(Versioned(first), Versioned(second));
    EXPECT_EQ(Versioned(first), expected);
    EXPECT_EQ(first.size(), second.size());
    EXPECT_EQ(first.size(), winner.size() - expected_tombstones);
    EXPECT_EQ(first.tombstones(), second.tombstones());
    EXPECT_EQ(first.tombstones(), expected_tombstones);
    EXPECT_EQ(Matched(first, "#"), Matched(second, "#"));
    EXPECT_EQ(Matched(first, "+/+"), Matched(second, "+/+"));
  }
}

}  // namespace
}  // namespace meshmq
