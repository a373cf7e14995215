// The retained-message store: set, replace, delete by empty payload, wildcard matching with the
// '$' rule, pruning, and agreement with TopicMatches on random topics and filters.
#include "node/retained_store.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

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

}  // namespace
}  // namespace meshmq
