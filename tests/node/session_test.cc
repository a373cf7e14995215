// A session's own state (node/session.h): queueing and the QoS 1/2 window, expiry of queued
// messages, the outbound and inbound QoS 2 exchanges, shared-subscription messages taken back when
// the connection goes, subscriptions and their limit, and online(). SessionStore has its own file.
#include "node/session.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "node/codec/packet.h"
#include "node/shared_subscriptions.h"

namespace meshmq {
namespace {

// Owners are only compared, never dereferenced.
Worker* const kWorkerA = reinterpret_cast<Worker*>(0x1000);
Worker* const kWorkerB = reinterpret_cast<Worker*>(0x2000);
const SessionOwner kOwnerA{kWorkerA, 1};
const SessionOwner kOwnerB{kWorkerB, 2};

// 3.1.1 Clean Session 1 and 0 in the one session model.
constexpr uint32_t kCleanSession = 0;
constexpr uint32_t kPersistent = codec::kSessionNeverExpires;

MessagePtr MakeMessage(const std::string& payload, uint8_t qos = 1, int64_t expires_at_ms = 0) {
  auto m = std::make_shared<Message>();
  m->topic = "t";
  m->payload = payload;
  m->qos = qos;
  m->expires_at_ms = expires_at_ms;
  return m;
}

QueuedMessage Queued(const std::string& payload, uint8_t qos, int64_t expires_at_ms = 0) {
  QueuedMessage queued;
  queued.message = MakeMessage(payload, qos, expires_at_ms);
  queued.qos = qos;
  return queued;
}

QueuedMessage SharedQueued(const std::string& payload, uint8_t qos,
                           const std::shared_ptr<SharedGroup>& group) {
  QueuedMessage queued = Queued(payload, qos);
  queued.extras = std::make_shared<const DeliveryExtras>(DeliveryExtras{{}, group});
  return queued;
}

std::vector<Outgoing> Take(Session& s, const SessionOwner& owner, size_t window = 20,
                           int64_t now_ms = 0) {
  std::vector<Outgoing> out;
  s.TakeSendable(owner, window, now_ms, &out);
  return out;
}

std::vector<std::string> Payloads(const std::vector<Outgoing>& out) {
  std::vector<std::string> payloads;
  for (const Outgoing& o : out) payloads.push_back(o.queued.message->payload);
  return payloads;
}

std::vector<std::string> Payloads(const std::vector<QueuedMessage>& queued) {
  std::vector<std::string> payloads;
  for (const QueuedMessage& q : queued) payloads.push_back(q.message->payload);
  return payloads;
}

SubscriptionOptions Qos(uint8_t qos) {
  SubscriptionOptions options;
  options.qos = qos;
  return options;
}

TEST(SessionTest, ExpiryIntervalIsSetAtConstructionAndChangeable) {
  Session s("c", 30);
  EXPECT_EQ(s.expiry_interval(), 30u);
  s.set_expiry_interval(0);
  EXPECT_EQ(s.expiry_interval(), 0u);
  EXPECT_EQ(Session("p", kPersistent).expiry_interval(), codec::kSessionNeverExpires);
}

TEST(SessionTest, OfflineSessionKeepsQos1And2ButNotQos0) {
  Session s("c", kPersistent);
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

QueuedMessage Qos2WithKey(const std::string& payload, uint64_t key, bool resent) {
  auto message = std::make_shared<Message>();
  message->topic = "t";
  message->payload = payload;
  message->qos = 2;
  message->qos2_key = key;
  message->resent = resent;
  QueuedMessage queued;
  queued.message = std::move(message);
  queued.qos = 2;
  return queued;
}

TEST(SessionTest, AQos2ResendRoutedAgainIsDroppedWhereTheFirstTryArrived) {
  Session s("c", kPersistent);
  Counters counters;
  const Session::Limits limits{100, 20};
  s.Enqueue(Qos2WithKey("first try", 77, false), limits, &counters);
  s.Enqueue(Qos2WithKey("resend", 77, true), limits, &counters);       // dropped
  s.Enqueue(Qos2WithKey("other resend", 78, true), limits, &counters);  // never had it: kept
  s.Enqueue(Qos2WithKey("same key, not a resend", 77, false), limits, &counters);
  EXPECT_EQ(s.queued_count(), 3u);
  EXPECT_EQ(counters.qos2_resends_dropped.value(), 1u);

  // The keys go along when the session moves: the new node drops the resend too.
  storage::LoadedSession exported = s.ExportAndForwardTo([](const QueuedMessage&) {});
  EXPECT_EQ(exported.recent_qos2_keys, (std::vector<uint64_t>{77, 78, 77}));
  Session moved("c", kPersistent);
  moved.Restore(exported);
  moved.Enqueue(Qos2WithKey("resend after the move", 77, true), limits, &counters);
  moved.Enqueue(Qos2WithKey("new", 79, true), limits, &counters);
  EXPECT_EQ(moved.queued_count(), 4u);  // the three it brought, and "new"
  EXPECT_EQ(counters.qos2_resends_dropped.value(), 2u);
}

TEST(SessionTest, EnqueueWakesTheOwnerOnceUntilItDrains) {
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  std::optional<SessionOwner> wake = s.Enqueue(Queued("a", 0), Session::Limits{100, 20}, &counters);
  ASSERT_TRUE(wake);
  EXPECT_EQ(*wake, kOwnerA);
  // A flush is already scheduled.
  EXPECT_FALSE(s.Enqueue(Queued("b", 0), Session::Limits{100, 20}, &counters));
  EXPECT_EQ(Take(s, kOwnerA).size(), 2u);
  // Drained: wake again.
  EXPECT_TRUE(s.Enqueue(Queued("c", 0), Session::Limits{100, 20}, &counters));
}

TEST(SessionTest, OnlyTheOwnerTakesMessages) {
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("a", 1), Session::Limits{100, 20}, &counters);
  EXPECT_TRUE(Take(s, kOwnerB).empty());
  EXPECT_EQ(Take(s, kOwnerA).size(), 1u);
}

TEST(SessionTest, FullQueueDropsOldestQos0First) {
  Session s("c", kPersistent);
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
  EXPECT_EQ(Payloads(out), (std::vector<std::string>{"q1-a", "q0-b", "q1-b", "q1-c"}));
}

TEST(SessionTest, OnlineLimitCountsOnlyWhatWaitsBeyondTheWindow) {
  Session s("c", kPersistent);
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
  Session s("c", kPersistent);
  Counters counters;
  for (int i = 0; i < 5; ++i) {
    s.Enqueue(Queued(std::to_string(i), 1), Session::Limits{3, 20}, &counters);
  }
  EXPECT_EQ(counters.messages_dropped_queue_full.value(), 2u);
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_EQ(Payloads(Take(s, kOwnerA)), (std::vector<std::string>{"2", "3", "4"}));
}

TEST(SessionTest, InflightWindowHoldsBackUntilAcked) {
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  for (int i = 0; i < 5; ++i) {
    s.Enqueue(Queued(std::to_string(i), 1), Session::Limits{100, 20}, &counters);
  }
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
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("q1", 1), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("q0", 0), Session::Limits{100, 20}, &counters);
  EXPECT_EQ(Take(s, kOwnerA, 1).size(), 2u);
}

TEST(SessionTest, TakeSendableDropsExpiredMessagesAndKeepsTheRest) {
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  const Session::Limits limits{100, 20};
  s.Enqueue(Queued("q0-expired", 0, 100), limits, &counters);
  s.Enqueue(Queued("q1-expired", 1, 50), limits, &counters);
  s.Enqueue(Queued("q1-later", 1, 101), limits, &counters);
  s.Enqueue(Queued("q0-never", 0), limits, &counters);
  s.Enqueue(Queued("q2-expired", 2, 100), limits, &counters);
  s.Enqueue(Queued("q2-never", 2), limits, &counters);
  std::vector<Outgoing> out;
  // Expired means now >= expires_at_ms (MQTT-3.3.2-5).
  EXPECT_EQ(s.TakeSendable(kOwnerA, 20, 100, &out), 3u);
  EXPECT_EQ(Payloads(out), (std::vector<std::string>{"q1-later", "q0-never", "q2-never"}));
  EXPECT_EQ(s.queued_count(), 0u);
  // Expired messages took no window slot or packet id.
  EXPECT_EQ(s.inflight_count(), 2u);
  EXPECT_EQ(s.InflightForResend().size(), 2u);
}

TEST(SessionTest, MessageThatExpiredWhileOfflineIsNotSent) {
  Session s("c", kPersistent);
  Counters counters;
  s.Enqueue(Queued("gone", 1, 1000), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("kept", 1, 5000), Session::Limits{100, 20}, &counters);
  EXPECT_EQ(s.queued_count(), 2u);
  s.Attach(kOwnerA, std::nullopt);
  std::vector<Outgoing> out;
  EXPECT_EQ(s.TakeSendable(kOwnerA, 1, 2000, &out), 1u);
  EXPECT_EQ(Payloads(out), std::vector<std::string>{"kept"});
  EXPECT_EQ(s.inflight_count(), 1u);
  // Nothing left to expire or send: the count is only of this call's drops.
  out.clear();
  EXPECT_EQ(s.TakeSendable(kOwnerA, 1, 9000, &out), 0u);
  EXPECT_TRUE(out.empty());
}

TEST(SessionTest, ExpiredQos0DropKeepsTheQos0CountRight) {
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  const Session::Limits limits{100, 0};
  s.Enqueue(Queued("q0-expired", 0, 10), limits, &counters);
  s.Enqueue(Queued("q1", 1), limits, &counters);
  s.Enqueue(Queued("q0", 0), limits, &counters);
  std::vector<Outgoing> out;
  // A zero window holds "q1" (and "q0" behind it) back; only the expired message goes.
  EXPECT_EQ(s.TakeSendable(kOwnerA, 0, 10, &out), 1u);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(s.queued_count(), 2u);
  EXPECT_EQ(s.DropQueuedQos0(kOwnerA), 1u);
  EXPECT_EQ(s.queued_count(), 1u);
}

TEST(SessionTest, DropInflightFreesAWindowSlot) {
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("too-large", 1), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("next", 1), Session::Limits{100, 20}, &counters);
  std::vector<Outgoing> first = Take(s, kOwnerA, 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(Take(s, kOwnerA, 1).empty());  // window full
  s.DropInflight(first[0].packet_id);
  EXPECT_EQ(s.inflight_count(), 0u);
  EXPECT_TRUE(s.InflightForResend().empty());
  EXPECT_FALSE(s.OnPuback(first[0].packet_id));
  EXPECT_EQ(Payloads(Take(s, kOwnerA, 1)), std::vector<std::string>{"next"});
  s.DropInflight(12345);  // unknown: nothing happens
  EXPECT_EQ(s.inflight_count(), 1u);
}

TEST(SessionTest, TakeSharedUnacknowledgedReturnsOnlyUnackedSharedMessages) {
  Session s("c", kCleanSession);
  Counters counters;
  auto group = std::make_shared<SharedGroup>("g", "f");
  s.Attach(kOwnerA, std::nullopt);
  const Session::Limits limits{100, 20};
  s.Enqueue(SharedQueued("s-q1-inflight", 1, group), limits, &counters);
  s.Enqueue(SharedQueued("s-q2-inflight", 2, group), limits, &counters);
  s.Enqueue(SharedQueued("s-q2-pubrec", 2, group), limits, &counters);
  s.Enqueue(Queued("n-q1-inflight", 1), limits, &counters);
  std::vector<Outgoing> sent = Take(s, kOwnerA);
  ASSERT_EQ(sent.size(), 4u);
  // Received by the client: it keeps it, nobody else gets it.
  ASSERT_TRUE(s.OnPubrec(sent[2].packet_id));
  s.Enqueue(SharedQueued("s-q1-queued", 1, group), limits, &counters);
  s.Enqueue(SharedQueued("s-q0-queued", 0, group), limits, &counters);
  s.Enqueue(Queued("n-q1-queued", 1), limits, &counters);

  std::vector<QueuedMessage> taken = s.TakeSharedUnacknowledged();
  EXPECT_EQ(Payloads(taken),
            (std::vector<std::string>{"s-q1-inflight", "s-q2-inflight", "s-q1-queued"}));
  for (const QueuedMessage& q : taken) EXPECT_EQ(q.shared_group(), group.get());
  EXPECT_TRUE(s.TakeSharedUnacknowledged().empty());

  // What is left: the PUBREL exchange, the non-shared message in flight, and the queue.
  EXPECT_FALSE(s.OnPuback(sent[0].packet_id));
  std::vector<Outgoing> resend = s.InflightForResend();
  ASSERT_EQ(resend.size(), 2u);
  EXPECT_EQ(resend[0].kind, Outgoing::Kind::kPubrel);
  EXPECT_EQ(resend[0].packet_id, sent[2].packet_id);
  EXPECT_EQ(resend[1].kind, Outgoing::Kind::kPublish);
  EXPECT_EQ(resend[1].queued.message->payload, "n-q1-inflight");
  EXPECT_EQ(Payloads(Take(s, kOwnerA)), (std::vector<std::string>{"s-q0-queued", "n-q1-queued"}));
}

TEST(SessionTest, ResendAfterReconnectSetsDupAndKeepsOrder) {
  Session s("c", kPersistent);
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
  Session s("c", kCleanSession);
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

TEST(SessionTest, RepeatedPubrecIsKnownSoPubrelIsSentAgain) {
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("x", 2), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("q1", 1), Session::Limits{100, 20}, &counters);
  std::vector<Outgoing> out = Take(s, kOwnerA);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(s.OnPubrec(out[1].packet_id));  // PUBREC for a QoS 1 message
  EXPECT_FALSE(s.OnPubrec(999));               // unknown id
  EXPECT_TRUE(s.OnPubrec(out[0].packet_id));
  EXPECT_TRUE(s.OnPubrec(out[0].packet_id));
  std::vector<Outgoing> resend = s.InflightForResend();
  ASSERT_EQ(resend.size(), 2u);
  EXPECT_EQ(resend[0].kind, Outgoing::Kind::kPubrel);
  EXPECT_TRUE(s.OnPubcomp(out[0].packet_id));
}

TEST(SessionTest, FailedPubrecEndsTheExchange) {
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("refused", 2), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("next", 2), Session::Limits{100, 20}, &counters);
  std::vector<Outgoing> out = Take(s, kOwnerA, 1);
  ASSERT_EQ(out.size(), 1u);
  const uint16_t id = out[0].packet_id;
  EXPECT_TRUE(s.OnPubrec(id, /*failed=*/true));
  // No PUBREL owed, nothing to resend, and the window slot is free.
  EXPECT_EQ(s.inflight_count(), 0u);
  EXPECT_TRUE(s.InflightForResend().empty());
  EXPECT_FALSE(s.OnPubcomp(id));
  EXPECT_EQ(Payloads(Take(s, kOwnerA, 1)), std::vector<std::string>{"next"});
  // The exchange is over: a repeat of the failed PUBREC no longer names a message.
  EXPECT_FALSE(s.OnPubrec(id, /*failed=*/true));
}

TEST(SessionTest, FailedPubrecAfterASuccessfulOneKeepsAwaitingPubcomp) {
  Session s("c", kCleanSession);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("x", 2), Session::Limits{100, 20}, &counters);
  std::vector<Outgoing> out = Take(s, kOwnerA);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(s.OnPubrec(out[0].packet_id));
  EXPECT_TRUE(s.OnPubrec(out[0].packet_id, /*failed=*/true));
  EXPECT_EQ(s.inflight_count(), 1u);
  EXPECT_TRUE(s.OnPubcomp(out[0].packet_id));
}

TEST(SessionTest, PacketIdsSkipThoseInFlight) {
  Session s("c", kCleanSession);
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
  Session s("c", kCleanSession);
  EXPECT_EQ(s.inbound_qos2_count(), 0u);
  EXPECT_FALSE(s.ForgetInboundQos2(7));  // nothing remembered yet
  EXPECT_TRUE(s.RememberInboundQos2(7));
  EXPECT_FALSE(s.RememberInboundQos2(7));
  EXPECT_TRUE(s.RememberInboundQos2(8));
  EXPECT_EQ(s.inbound_qos2_count(), 2u);
  EXPECT_TRUE(s.ForgetInboundQos2(7));
  EXPECT_FALSE(s.ForgetInboundQos2(7));  // a repeated PUBREL
  EXPECT_FALSE(s.ForgetInboundQos2(9));
  EXPECT_EQ(s.inbound_qos2_count(), 1u);
  EXPECT_TRUE(s.RememberInboundQos2(7));
  EXPECT_EQ(s.inbound_qos2_count(), 2u);
}

TEST(SessionTest, DetachDropsQueuedQos0) {
  Session s("c", kPersistent);
  Counters counters;
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("q0", 0), Session::Limits{100, 20}, &counters);
  s.Enqueue(Queued("q1", 1), Session::Limits{100, 20}, &counters);
  EXPECT_FALSE(s.Detach(kOwnerB));  // not the owner
  EXPECT_TRUE(s.Detach(kOwnerA));
  EXPECT_EQ(s.queued_count(), 1u);
}

TEST(SessionTest, OnlineTracksTheOwner) {
  Session s("c", kPersistent);
  EXPECT_FALSE(s.online());
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_TRUE(s.online());
  EXPECT_FALSE(s.Detach(kOwnerB));
  EXPECT_TRUE(s.online());  // someone else's close does not take it offline
  EXPECT_TRUE(s.Detach(kOwnerA));
  EXPECT_FALSE(s.online());
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_EQ(s.Attach(kOwnerB, std::nullopt), kOwnerA);  // takeover
  EXPECT_TRUE(s.online());
  EXPECT_EQ(s.ReleaseOwner(), kOwnerB);
  EXPECT_FALSE(s.online());
  EXPECT_EQ(s.ReleaseOwner(), std::nullopt);
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_TRUE(s.online());
  EXPECT_FALSE(s.discarded());
  s.Discard([](const std::string&) {});
  EXPECT_FALSE(s.online());
  EXPECT_TRUE(s.discarded());
}

TEST(SessionTest, AddSubscriptionReportsNewReplacedAndLimit) {
  Session s("c", kPersistent);
  int inserted = 0;
  auto insert = [&] { ++inserted; };
  EXPECT_EQ(s.AddSubscription("a", Qos(0), 2, insert), Session::AddResult::kNew);
  EXPECT_EQ(s.AddSubscription("b", Qos(1), 2, insert), Session::AddResult::kNew);
  EXPECT_EQ(s.AddSubscription("c", Qos(1), 2, insert), Session::AddResult::kLimitReached);
  EXPECT_EQ(inserted, 2);
  // Replacing a subscription is not a new one: allowed at the limit, options updated.
  SubscriptionOptions options = Qos(2);
  options.subscription_id = 42;
  EXPECT_EQ(s.AddSubscription("a", options, 2, insert), Session::AddResult::kReplaced);
  EXPECT_EQ(inserted, 3);
  std::map<std::string, SubscriptionOptions> subs = s.subscriptions();
  ASSERT_EQ(subs.size(), 2u);
  EXPECT_EQ(subs["a"], options);
  EXPECT_EQ(subs["b"], Qos(1));
  // Room again after an unsubscribe.
  EXPECT_TRUE(s.RemoveSubscription("b", [] {}));
  EXPECT_EQ(s.AddSubscription("c", Qos(1), 2, insert), Session::AddResult::kNew);
}

TEST(SessionTest, ZeroMaxSubscriptionsMeansNoLimit) {
  Session s("c", kPersistent);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(s.AddSubscription(std::to_string(i), Qos(0), 0, [] {}), Session::AddResult::kNew);
  }
  EXPECT_EQ(s.subscriptions().size(), 100u);
}

TEST(SessionTest, DiscardedSessionTakesNoSubscriptionsOrMessages) {
  Session s("c", kCleanSession);
  Counters counters;
  int inserted = 0;
  EXPECT_EQ(s.AddSubscription("a/#", Qos(1), 0, [&] { ++inserted; }), Session::AddResult::kNew);
  std::vector<std::string> erased;
  s.Discard([&](const std::string& filter) { erased.push_back(filter); });
  EXPECT_EQ(erased, std::vector<std::string>{"a/#"});
  EXPECT_EQ(s.AddSubscription("b", Qos(0), 0, [&] { ++inserted; }), Session::AddResult::kDiscarded);
  EXPECT_EQ(inserted, 1);
  EXPECT_TRUE(s.subscriptions().empty());
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_FALSE(s.Enqueue(Queued("x", 1), Session::Limits{100, 20}, &counters));
  EXPECT_EQ(s.queued_count(), 0u);
}

TEST(SessionTest, DropQueuedQos0KeepsQos1AndRearmsTheWakeUp) {
  Session s("c", kCleanSession);
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
