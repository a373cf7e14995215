#include "node/session.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "node/session_store.h"

namespace meshmq {
namespace {

Worker* const kWorkerA = reinterpret_cast<Worker*>(0x1000);
Worker* const kWorkerB = reinterpret_cast<Worker*>(0x2000);
const SessionOwner kOwnerA{kWorkerA, 1};
const SessionOwner kOwnerB{kWorkerB, 2};

MessagePtr MakeMessage(const std::string& payload, uint8_t qos = 1) {
  auto m = std::make_shared<Message>();
  m->topic = "t";
  m->payload = payload;
  m->qos = qos;
  return m;
}

QueuedMessage Queued(const std::string& payload, uint8_t qos) {
  return QueuedMessage{MakeMessage(payload, qos), qos, false};
}

std::vector<Outgoing> Take(Session& s, const SessionOwner& owner, size_t window = 20) {
  std::vector<Outgoing> out;
  s.TakeSendable(owner, window, &out);
  return out;
}

TEST(SessionTest, OfflineSessionKeepsQos1And2ButNotQos0) {
  Session s("c", false);
  Counters counters;
  EXPECT_FALSE(s.Enqueue(Queued("zero", 0), Session::Limits{100, 20}, &counters));
  EXPECT_FALSE(s.Enqueue(Queued("one", 1), Session::Limits{100, 20}, &counters));
  EXPECT_FALSE(s.Enqueue(Queued("two", 2), Session::Limits{100, 20}, &counters));
  EXPECT_EQ(s.queued_count(), 2u);
  s.Attach(kOwnerA, std::nullopt);
  std::vector<Outgoing> out = Take(s, kOwnerA);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].queued.message->payload, "one");
  EXPECT_EQ(out[1].queued.message->payload, "two");
  EXPECT_NE(out[0].packet_id, 0);
  EXPECT_NE(out[0].packet_id, out[1].packet_id);
  EXPECT_FALSE(out[0].dup);
}

TEST(SessionTest, EnqueueWakesTheOwnerOnceUntilItDrains) {
  Session s("c", true);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  std::optional<SessionOwner> wake = s.Enqueue(Queued("a", 0), Session::Limits{100, 20}, &counters);
  ASSERT_TRUE(wake);
  EXPECT_EQ(*wake, kOwnerA);
  EXPECT_FALSE(s.Enqueue(Queued("b", 0), Session::Limits{100, 20}, &counters));  // flush already scheduled
  EXPECT_EQ(Take(s, kOwnerA).size(), 2u);
  EXPECT_TRUE(s.Enqueue(Queued("c", 0), Session::Limits{100, 20}, &counters));  // drained: wake again
}

TEST(SessionTest, OnlyTheOwnerTakesMessages) {
  Session s("c", true);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("a", 1), Session::Limits{100, 20}, &counters);
  EXPECT_TRUE(Take(s, kOwnerB).empty());
  EXPECT_EQ(Take(s, kOwnerA).size(), 1u);
}

TEST(SessionTest, FullQueueDropsOldestQos0First) {
  Session s("c", false);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  const Session::Limits limits{2, 0};  // no window: every QoS 1/2 message waits
  s.Enqueue(Queued("q1-a", 1), limits, &counters);
  s.Enqueue(Queued("q0-a", 0), limits, &counters);
  s.Enqueue(Queued("q0-b", 0), limits, &counters);
  s.Enqueue(Queued("q1-b", 1), limits, &counters);
  EXPECT_EQ(counters.messages_dropped_queue_full.value(), 0u);
  s.Enqueue(Queued("q1-c", 1), limits, &counters);  // full: q0-a goes
  EXPECT_EQ(counters.messages_dropped_queue_full.value(), 1u);
  std::vector<Outgoing> out = Take(s, kOwnerA);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].queued.message->payload, "q1-a");
  EXPECT_EQ(out[1].queued.message->payload, "q0-b");
  EXPECT_EQ(out[2].queued.message->payload, "q1-b");
  EXPECT_EQ(out[3].queued.message->payload, "q1-c");
}

TEST(SessionTest, OnlineLimitCountsOnlyWhatWaitsBeyondTheWindow) {
  Session s("c", false);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  const Session::Limits limits{2, 3};
  // A burst for a live client: 3 fit the window, 2 may wait, QoS 0 does not count.
  for (int i = 0; i < 5; ++i) s.Enqueue(Queued(std::to_string(i), 1), limits, &counters);
  for (int i = 0; i < 10; ++i) s.Enqueue(Queued("zero", 0), limits, &counters);
  EXPECT_EQ(counters.messages_dropped_queue_full.value(), 0u);
  s.Enqueue(Queued("5", 1), limits, &counters);  // a third waiting one: oldest QoS 0 goes
  EXPECT_EQ(counters.messages_dropped_queue_full.value(), 1u);
  EXPECT_EQ(s.queued_count(), 15u);
}

TEST(SessionTest, FullQueueWithoutQos0DropsOldest) {
  Session s("c", false);
  Counters counters;
  for (int i = 0; i < 5; ++i) s.Enqueue(Queued(std::to_string(i), 1), Session::Limits{3, 20}, &counters);
  EXPECT_EQ(counters.messages_dropped_queue_full.value(), 2u);
  s.Attach(kOwnerA, std::nullopt);
  std::vector<Outgoing> out = Take(s, kOwnerA);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].queued.message->payload, "2");
  EXPECT_EQ(out[2].queued.message->payload, "4");
}

TEST(SessionTest, InflightWindowHoldsBackUntilAcked) {
  Session s("c", true);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  for (int i = 0; i < 5; ++i) s.Enqueue(Queued(std::to_string(i), 1), Session::Limits{100, 20}, &counters);
  std::vector<Outgoing> out = Take(s, kOwnerA, 2);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(Take(s, kOwnerA, 2).empty());
  EXPECT_TRUE(s.OnPuback(out[0].packet_id));
  EXPECT_FALSE(s.OnPuback(out[0].packet_id));  // already acked
  std::vector<Outgoing> next = Take(s, kOwnerA, 2);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].queued.message->payload, "2");
}

TEST(SessionTest, Qos0IsNotHeldByTheWindow) {
  Session s("c", true);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("q1", 1), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("q0", 0), Session::Limits{100, 20}, &counters);
  EXPECT_EQ(Take(s, kOwnerA, 1).size(), 2u);
}

TEST(SessionTest, ResendAfterReconnectSetsDupAndKeepsOrder) {
  Session s("c", false);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("one", 1), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("two", 2), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("three", 2), Session::Limits{100, 20}, &counters);
  std::vector<Outgoing> sent = Take(s, kOwnerA);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_TRUE(s.OnPubrec(sent[2].packet_id));  // "three" now awaits PUBCOMP
  EXPECT_TRUE(s.Detach(kOwnerA));
  s.Attach(kOwnerB, std::nullopt);
  std::vector<Outgoing> resend = s.InflightForResend();
  ASSERT_EQ(resend.size(), 3u);
  EXPECT_EQ(resend[0].kind, Outgoing::Kind::kPublish);
  EXPECT_TRUE(resend[0].dup);
  EXPECT_EQ(resend[0].packet_id, sent[0].packet_id);
  EXPECT_EQ(resend[0].queued.message->payload, "one");
  EXPECT_EQ(resend[1].queued.message->payload, "two");
  EXPECT_EQ(resend[2].kind, Outgoing::Kind::kPubrel);
  EXPECT_EQ(resend[2].packet_id, sent[2].packet_id);
}

TEST(SessionTest, Qos2OutboundNeedsPubrecThenPubcomp) {
  Session s("c", true);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("x", 2), Session::Limits{100, 20}, &counters);
  std::vector<Outgoing> out = Take(s, kOwnerA);
  ASSERT_EQ(out.size(), 1u);
  uint16_t id = out[0].packet_id;
  EXPECT_FALSE(s.OnPuback(id));   // wrong ack for QoS 2
  EXPECT_FALSE(s.OnPubcomp(id));  // PUBCOMP before PUBREC
  EXPECT_TRUE(s.OnPubrec(id));
  EXPECT_EQ(s.inflight_count(), 1u);
  EXPECT_TRUE(s.OnPubcomp(id));
  EXPECT_EQ(s.inflight_count(), 0u);
}

TEST(SessionTest, PacketIdsSkipThoseInFlight) {
  Session s("c", true);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("held", 1), Session::Limits{100000, 20}, &counters);
  std::vector<Outgoing> held = Take(s, kOwnerA, 1000);
  ASSERT_EQ(held.size(), 1u);
  // Cycle through the whole id space: the held id must never be handed out again.
  for (int i = 0; i < 70000; ++i) {
    s.Enqueue(Queued("m", 1), Session::Limits{100000, 20}, &counters);
    std::vector<Outgoing> out = Take(s, kOwnerA, 1000);
    ASSERT_EQ(out.size(), 1u);
    ASSERT_NE(out[0].packet_id, held[0].packet_id);
    ASSERT_NE(out[0].packet_id, 0);
    ASSERT_TRUE(s.OnPuback(out[0].packet_id));
  }
}

TEST(SessionTest, InboundQos2IdsAreRememberedUntilPubrel) {
  Session s("c", true);
  EXPECT_TRUE(s.RememberInboundQos2(7));
  EXPECT_FALSE(s.RememberInboundQos2(7));
  s.ForgetInboundQos2(7);
  EXPECT_TRUE(s.RememberInboundQos2(7));
}

TEST(SessionTest, DetachDropsQueuedQos0) {
  Session s("c", false);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("q0", 0), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("q1", 1), Session::Limits{100, 20}, &counters);
  EXPECT_FALSE(s.Detach(kOwnerB));  // not the owner
  EXPECT_TRUE(s.Detach(kOwnerA));
  EXPECT_EQ(s.queued_count(), 1u);
}

TEST(SessionTest, DiscardedSessionTakesNoSubscriptionsOrMessages) {
  Session s("c", true);
  Counters counters;
  int inserted = 0;
  EXPECT_TRUE(s.AddSubscription("a/#", 1, [&] { ++inserted; }));
  std::vector<std::string> erased;
  s.Discard([&](const std::string& filter) { erased.push_back(filter); });
  EXPECT_EQ(erased, std::vector<std::string>{"a/#"});
  EXPECT_FALSE(s.AddSubscription("b", 0, [&] { ++inserted; }));
  EXPECT_EQ(inserted, 1);
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_FALSE(s.Enqueue(Queued("x", 1), Session::Limits{100, 20}, &counters));
  EXPECT_EQ(s.queued_count(), 0u);
}

TEST(SessionStoreTest, CleanSessionZeroResumesWithSessionPresent) {
  SessionStore store;
  SessionStore::AttachResult first = store.Attach("c", false, kOwnerA, std::nullopt);
  EXPECT_FALSE(first.session_present);
  EXPECT_EQ(store.Detach(first.session, kOwnerA), nullptr);  // persistent: stays
  SessionStore::AttachResult second = store.Attach("c", false, kOwnerB, std::nullopt);
  EXPECT_TRUE(second.session_present);
  EXPECT_EQ(second.session, first.session);
  EXPECT_FALSE(second.taken_over);
}

TEST(SessionStoreTest, CleanSessionStartsFreshAndEndsWithTheConnection) {
  SessionStore store;
  SessionStore::AttachResult persistent = store.Attach("c", false, kOwnerA, std::nullopt);
  store.Detach(persistent.session, kOwnerA);
  SessionStore::AttachResult clean = store.Attach("c", true, kOwnerB, std::nullopt);
  EXPECT_FALSE(clean.session_present);
  EXPECT_NE(clean.session, persistent.session);
  EXPECT_EQ(clean.discarded, persistent.session);
  EXPECT_EQ(store.Detach(clean.session, kOwnerB), clean.session);
  EXPECT_EQ(store.size(), 0u);
  EXPECT_FALSE(store.Attach("c", false, kOwnerA, std::nullopt).session_present);
}

TEST(SessionStoreTest, SecondConnectTakesOverTheLiveOne) {
  SessionStore store;
  SessionStore::AttachResult first = store.Attach("c", false, kOwnerA, std::nullopt);
  SessionStore::AttachResult second = store.Attach("c", false, kOwnerB, std::nullopt);
  ASSERT_TRUE(second.taken_over);
  EXPECT_EQ(*second.taken_over, kOwnerA);
  EXPECT_TRUE(second.session_present);
  // The old connection's close must not detach the new owner.
  EXPECT_EQ(store.Detach(first.session, kOwnerA), nullptr);
  EXPECT_TRUE(second.session->IsOwner(kOwnerB));
}

TEST(SessionStoreTest, CleanTakeoverOfLiveCleanSession) {
  SessionStore store;
  SessionStore::AttachResult first = store.Attach("c", true, kOwnerA, std::nullopt);
  SessionStore::AttachResult second = store.Attach("c", true, kOwnerB, std::nullopt);
  ASSERT_TRUE(second.taken_over);
  EXPECT_EQ(*second.taken_over, kOwnerA);
  EXPECT_EQ(second.discarded, first.session);
  EXPECT_EQ(store.Detach(first.session, kOwnerA), nullptr);
  EXPECT_EQ(store.size(), 1u);
}

}  // namespace
}  // namespace meshmq

namespace meshmq {
namespace {

TEST(SessionTest, DropQueuedQos0KeepsQos1AndRearmsTheWakeUp) {
  Session s("c", true);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_TRUE(s.Enqueue(Queued("q0", 0), Session::Limits{100, 20}, &counters));
  s.Enqueue(Queued("q1", 1), Session::Limits{100, 20}, &counters);
  EXPECT_EQ(s.DropQueuedQos0(kOwnerB), 0u);  // only the owner may
  EXPECT_EQ(s.DropQueuedQos0(kOwnerA), 1u);
  EXPECT_EQ(s.queued_count(), 1u);
  EXPECT_TRUE(s.Enqueue(Queued("q0-again", 0), Session::Limits{100, 20}, &counters));
}

}  // namespace
}  // namespace meshmq
