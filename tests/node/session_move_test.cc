// Moving a session between cluster nodes (node/session.h, node/session_store.h): the old node
// takes the session out of its SessionStore (Extract, which deletes its records) and ends it with
// DiscardAndExport, which hands back everything it held in the store's form; the new node
// restores that into a fresh Session and writes all of it (JournalEverything). Nothing may be
// lost, duplicated or reordered on the way: the client resumes with the same packet ids.
// The tests that write use a real store in a fresh data dir and read it back by reopening it.
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/codec/packet.h"
#include "node/counters.h"
#include "node/event_loop.h"
#include "node/persistence.h"
#include "node/session.h"
#include "node/session_store.h"
#include "storage/store.h"

namespace meshmq {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Owners are only compared, never dereferenced.
Worker* const kWorkerA = reinterpret_cast<Worker*>(0x1000);
Worker* const kWorkerB = reinterpret_cast<Worker*>(0x2000);
const SessionOwner kOwnerA{kWorkerA, 1};
const SessionOwner kOwnerB{kWorkerB, 2};

constexpr uint32_t kHour = 3600;
// How far two clocks read a few statements apart may disagree (coarse clocks, slow sanitizers).
constexpr int64_t kSlackMs = 2000;

auto NoIndex = [] {};

MessagePtr MakeMessage(const std::string& payload, uint8_t qos, int64_t expires_at_ms = 0) {
  auto m = std::make_shared<Message>();
  m->topic = "t/" + payload;
  m->payload = payload;
  m->qos = qos;
  m->expires_at_ms = expires_at_ms;
  return m;
}

QueuedMessage Queued(const std::string& payload, uint8_t qos,
                     std::vector<uint32_t> subscription_ids = {}, int64_t expires_at_ms = 0) {
  QueuedMessage queued;
  queued.message = MakeMessage(payload, qos, expires_at_ms);
  queued.qos = qos;
  if (!subscription_ids.empty()) {
    auto extras = std::make_shared<DeliveryExtras>();
    extras->subscription_ids = std::move(subscription_ids);
    queued.extras = std::move(extras);
  }
  return queued;
}

// A message with a cluster-wide id (Message::id), as a session that just moved dedupes by.
QueuedMessage WithId(const std::string& payload, uint64_t id, uint8_t qos = 1) {
  QueuedMessage queued = Queued(payload, qos);
  std::const_pointer_cast<Message>(queued.message)->id = id;
  return queued;
}

SubscriptionOptions Qos(uint8_t qos) {
  SubscriptionOptions options;
  options.qos = qos;
  return options;
}

std::vector<Outgoing> Take(Session& s, const SessionOwner& owner, size_t window) {
  std::vector<Outgoing> out;
  s.TakeSendable(owner, window, MonotonicMillis(), &out);
  return out;
}

// "publish <id> <payload>" or "pubrel <id>" for each Outgoing, dup marked.
std::vector<std::string> Describe(const std::vector<Outgoing>& out) {
  std::vector<std::string> result;
  for (const Outgoing& o : out) {
    std::string line = o.kind == Outgoing::Kind::kPubrel ? "pubrel " : "publish ";
    line += std::to_string(o.packet_id);
    if (o.kind == Outgoing::Kind::kPublish) {
      line += " " + (o.queued.message ? o.queued.message->payload : std::string("<none>"));
    }
    if (o.dup) line += " dup";
    result.push_back(line);
  }
  return result;
}

std::vector<std::string> Payloads(const std::vector<Outgoing>& out) {
  std::vector<std::string> payloads;
  for (const Outgoing& o : out) payloads.push_back(o.queued.message->payload);
  return payloads;
}

// "payload" for a message with one, "<released>" for QoS 2 past PUBREC; "@id" if in flight.
std::vector<std::string> Describe(const storage::LoadedSession& session) {
  std::vector<std::string> result;
  for (const storage::LoadedSession::Message& m : session.messages) {
    std::string line = m.queued.has_message() ? m.queued.message().payload() : "<released>";
    if (m.inflight) {
      line += "@" + std::to_string(m.inflight->packet_id());
      if (m.inflight->awaiting_pubcomp()) line += "/pubcomp";
    }
    result.push_back(line);
  }
  return result;
}

std::map<std::string, SubscriptionOptions> Subscriptions(const storage::SessionRecord& record) {
  std::map<std::string, SubscriptionOptions> result;
  for (const storage::SubscriptionRecord& s : record.subscriptions()) {
    result.emplace(s.filter(), Persistence::FromRecord(s));
  }
  return result;
}

// A session in the middle of things, as a node holds it when its client reconnects elsewhere.
struct BusySession {
  std::map<std::string, SubscriptionOptions> subscriptions;
  uint16_t i1 = 0;               // QoS 1 in flight
  uint16_t i2 = 0;               // QoS 2 past PUBREC
  uint16_t i3 = 0;               // QoS 2 in flight, awaiting PUBREC
  std::vector<Outgoing> resend;  // InflightForResend() before the move
};

// Subscriptions with options; in flight: i1 (QoS 1), i2 (QoS 2 past PUBREC), i3 (QoS 2); queued
// behind a full window: q1 (QoS 1), zero (QoS 0), q2 (QoS 2, retained, expiring in an hour);
// inbound QoS 2 ids 9, 3 and 200.
BusySession MakeBusy(Session& s) {
  BusySession busy;
  Session::Limits limits;
  Counters counters;
  s.Attach(kOwnerA, std::string("alice"));
  SubscriptionOptions all;
  all.qos = 2;
  all.no_local = true;
  all.retain_as_published = true;
  all.retain_handling = 2;
  all.subscription_id = 7;
  SubscriptionOptions shared = Qos(1);
  shared.subscription_id = 268'435'455;
  EXPECT_EQ(s.AddSubscription("a/#", all, 0, NoIndex), Session::AddResult::kNew);
  EXPECT_EQ(s.AddSubscription("$share/g/jobs/+", shared, 0, NoIndex), Session::AddResult::kNew);
  EXPECT_EQ(s.AddSubscription("plain", Qos(0), 0, NoIndex), Session::AddResult::kNew);
  busy.subscriptions = s.subscriptions();

  s.Enqueue(Queued("i1", 1, {7}), limits, &counters);
  s.Enqueue(Queued("i2", 2), limits, &counters);
  s.Enqueue(Queued("i3", 2, {7, 268'435'455}), limits, &counters);
  std::vector<Outgoing> out = Take(s, kOwnerA, 3);
  EXPECT_EQ(out.size(), 3u);
  if (out.size() != 3u) return busy;
  busy.i1 = out[0].packet_id;
  busy.i2 = out[1].packet_id;
  busy.i3 = out[2].packet_id;
  EXPECT_TRUE(s.OnPubrec(busy.i2));

  s.Enqueue(Queued("q1", 1), limits, &counters);
  s.Enqueue(Queued("zero", 0), limits, &counters);
  QueuedMessage q2 = Queued("q2", 2, {}, MonotonicMillis() + 3'600'000);
  q2.retain = true;
  s.Enqueue(std::move(q2), limits, &counters);
  // The window is full: nothing more goes out, and the QoS 0 message waits behind q1.
  EXPECT_THAT(Take(s, kOwnerA, 3), IsEmpty());
  EXPECT_EQ(s.queued_count(), 3u);

  EXPECT_TRUE(s.RememberInboundQos2(9));
  EXPECT_TRUE(s.RememberInboundQos2(3));
  EXPECT_TRUE(s.RememberInboundQos2(200));
  busy.resend = s.InflightForResend();
  return busy;
}

// ---- DiscardAndExport ---------------------------------------------------------------------

TEST(SessionMoveTest, CurrentOwnerFollowsAttachAndDetach) {
  Session s("c", kHour);
  EXPECT_EQ(s.current_owner(), std::nullopt);
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_EQ(s.current_owner(), kOwnerA);
  s.Attach(kOwnerB, std::nullopt);  // taken over
  EXPECT_EQ(s.current_owner(), kOwnerB);
  EXPECT_FALSE(s.Detach(kOwnerA));
  EXPECT_EQ(s.current_owner(), kOwnerB);
  EXPECT_TRUE(s.Detach(kOwnerB));
  EXPECT_EQ(s.current_owner(), std::nullopt);
}

TEST(SessionMoveTest, ExportHoldsInflightInSendOrderThenTheQueueWithoutQos0) {
  Session s("mover", kHour);
  const BusySession busy = MakeBusy(s);
  ASSERT_NE(busy.i1, 0);
  EXPECT_EQ(s.current_owner(), kOwnerA);

  std::vector<std::string> erased;
  const int64_t before = Persistence::UnixMillis();
  const storage::LoadedSession exported =
      s.DiscardAndExport([&erased](const std::string& filter) { erased.push_back(filter); });
  const int64_t after = Persistence::UnixMillis();

  EXPECT_EQ(exported.client_id, "mover");
  EXPECT_EQ(exported.record.expiry_interval(), kHour);
  // It was online: its expiry countdown starts now, at the move.
  EXPECT_GE(exported.record.disconnected_at_unix_ms(), before);
  EXPECT_LE(exported.record.disconnected_at_unix_ms(), after);
  EXPECT_EQ(Subscriptions(exported.record), busy.subscriptions);

  const std::string i1 = "i1@" + std::to_string(busy.i1);
  const std::string i2 = "<released>@" + std::to_string(busy.i2) + "/pubcomp";
  const std::string i3 = "i3@" + std::to_string(busy.i3);
  EXPECT_THAT(Describe(exported), ElementsAre(i1, i2, i3, "q1", "q2"));
  // Numbered in that order, as the store's seq keys keep queue order.
  ASSERT_EQ(exported.messages.size(), 5u);
  for (size_t i = 1; i < exported.messages.size(); ++i) {
    EXPECT_LT(exported.messages[i - 1].seq, exported.messages[i].seq);
  }
  EXPECT_GT(exported.messages[0].seq, 0u);

  const storage::QueuedRecord& r1 = exported.messages[0].queued;
  EXPECT_EQ(r1.qos(), 1u);
  EXPECT_EQ(r1.message().topic(), "t/i1");
  EXPECT_THAT(r1.subscription_ids(), ElementsAre(7u));
  EXPECT_FALSE(exported.messages[0].inflight->awaiting_pubcomp());
  const storage::QueuedRecord& r2 = exported.messages[1].queued;
  EXPECT_EQ(r2.qos(), 2u);
  EXPECT_FALSE(r2.has_message());
  EXPECT_TRUE(exported.messages[1].inflight->awaiting_pubcomp());
  EXPECT_THAT(exported.messages[2].queued.subscription_ids(), ElementsAre(7u, 268'435'455u));
  EXPECT_EQ(exported.messages[2].queued.qos(), 2u);
  EXPECT_FALSE(exported.messages[3].inflight.has_value());
  EXPECT_EQ(exported.messages[3].queued.qos(), 1u);
  EXPECT_FALSE(exported.messages[3].queued.retain());
  const storage::QueuedRecord& rq2 = exported.messages[4].queued;
  EXPECT_FALSE(exported.messages[4].inflight.has_value());
  EXPECT_EQ(rq2.qos(), 2u);
  EXPECT_TRUE(rq2.retain());
  EXPECT_NEAR(rq2.message().expires_at_unix_ms(), before + 3'600'000, kSlackMs);

  EXPECT_THAT(exported.inbound_qos2, ElementsAre(3, 9, 200));

  // The session is over here: every filter was taken out of the index, nothing is left.
  EXPECT_THAT(erased, ElementsAre("$share/g/jobs/+", "a/#", "plain"));
  EXPECT_TRUE(s.discarded());
  EXPECT_FALSE(s.online());
  EXPECT_EQ(s.current_owner(), std::nullopt);
  EXPECT_THAT(s.subscriptions(), IsEmpty());
  EXPECT_EQ(s.queued_count(), 0u);
  EXPECT_EQ(s.inflight_count(), 0u);
  EXPECT_THAT(s.InflightForResend(), IsEmpty());
  // A publisher that still finds it, or a late SUBSCRIBE, changes nothing.
  Counters counters;
  EXPECT_EQ(s.Enqueue(Queued("late", 1), Session::Limits{}, &counters), std::nullopt);
  EXPECT_EQ(s.queued_count(), 0u);
  EXPECT_EQ(s.AddSubscription("late/#", Qos(1), 0, NoIndex), Session::AddResult::kDiscarded);
}

TEST(SessionMoveTest, ExportOfAnOfflineSessionKeepsWhenItWentOffline) {
  Session s("c", 600);
  s.Attach(kOwnerA, std::nullopt);
  Counters counters;
  s.Enqueue(Queued("m1", 1), Session::Limits{}, &counters);
  s.Enqueue(Queued("zero", 0), Session::Limits{}, &counters);
  const int64_t before = Persistence::UnixMillis();
  ASSERT_TRUE(s.Detach(kOwnerA));
  const int64_t after = Persistence::UnixMillis();
  s.Enqueue(Queued("m2", 2), Session::Limits{}, &counters);  // queued while offline

  int erased = 0;
  const storage::LoadedSession exported =
      s.DiscardAndExport([&erased](const std::string&) { ++erased; });
  EXPECT_EQ(erased, 0);
  EXPECT_EQ(exported.record.expiry_interval(), 600u);
  EXPECT_GE(exported.record.disconnected_at_unix_ms(), before);
  EXPECT_LE(exported.record.disconnected_at_unix_ms(), after);
  EXPECT_THAT(Describe(exported), ElementsAre("m1", "m2"));
  EXPECT_THAT(exported.inbound_qos2, IsEmpty());
  EXPECT_TRUE(s.discarded());
}

TEST(SessionMoveTest, ExportOfAnEmptySession) {
  Session s("empty", codec::kSessionNeverExpires);
  const storage::LoadedSession exported = s.DiscardAndExport([](const std::string&) {});
  EXPECT_EQ(exported.client_id, "empty");
  EXPECT_EQ(exported.record.expiry_interval(), codec::kSessionNeverExpires);
  EXPECT_EQ(exported.record.subscriptions_size(), 0);
  EXPECT_THAT(exported.messages, IsEmpty());
  EXPECT_THAT(exported.inbound_qos2, IsEmpty());
}

TEST(SessionMoveTest, RestoredExportResumesWithTheSamePacketIdsAndOrder) {
  Session s("mover", kHour);
  const BusySession busy = MakeBusy(s);
  ASSERT_NE(busy.i1, 0);
  const storage::LoadedSession exported = s.DiscardAndExport([](const std::string&) {});

  Session moved("mover", 0);
  moved.Restore(exported);
  EXPECT_EQ(moved.expiry_interval(), kHour);
  EXPECT_FALSE(moved.online());
  EXPECT_EQ(moved.subscriptions(), busy.subscriptions);
  EXPECT_EQ(moved.inflight_count(), 3u);
  EXPECT_EQ(moved.queued_count(), 2u);
  EXPECT_EQ(moved.inbound_qos2_count(), 3u);
  // Still remembered: a resent QoS 2 PUBLISH is not delivered twice.
  EXPECT_FALSE(moved.RememberInboundQos2(3));
  EXPECT_FALSE(moved.RememberInboundQos2(9));
  EXPECT_FALSE(moved.RememberInboundQos2(200));

  // What the client gets on reconnecting: exactly what the old node would have resent.
  const std::vector<Outgoing> resend = moved.InflightForResend();
  const std::string i1 = std::to_string(busy.i1);
  const std::string i2 = std::to_string(busy.i2);
  const std::string i3 = std::to_string(busy.i3);
  EXPECT_THAT(Describe(resend), ElementsAre("publish " + i1 + " i1 dup", "pubrel " + i2 + " dup",
                                            "publish " + i3 + " i3 dup"));
  EXPECT_EQ(Describe(resend), Describe(busy.resend));
  ASSERT_EQ(resend.size(), 3u);
  EXPECT_EQ(resend[0].queued.qos, 1);
  ASSERT_NE(resend[0].queued.extras, nullptr);
  EXPECT_THAT(resend[0].queued.extras->subscription_ids, ElementsAre(7u));
  EXPECT_EQ(resend[1].queued.qos, 2);
  EXPECT_EQ(resend[2].queued.qos, 2);
  ASSERT_NE(resend[2].queued.extras, nullptr);
  EXPECT_THAT(resend[2].queued.extras->subscription_ids, ElementsAre(7u, 268'435'455u));

  // The exchanges go on where they stopped, and the queue follows in its order.
  moved.Attach(kOwnerB, std::nullopt);
  EXPECT_TRUE(moved.OnPuback(busy.i1));
  EXPECT_TRUE(moved.OnPubcomp(busy.i2));
  EXPECT_FALSE(moved.OnPuback(busy.i3));  // QoS 2: needs PUBREC
  const std::vector<Outgoing> next = Take(moved, kOwnerB, 3);
  EXPECT_THAT(Payloads(next), ElementsAre("q1", "q2"));
  ASSERT_EQ(next.size(), 2u);
  EXPECT_TRUE(next[1].queued.retain);
  EXPECT_TRUE(next[1].queued.may_expire);
  for (const Outgoing& o : next) {
    EXPECT_NE(o.packet_id, 0);
    EXPECT_NE(o.packet_id, busy.i3);  // still in flight
    EXPECT_FALSE(o.dup);
  }
  EXPECT_NE(next[0].packet_id, next[1].packet_id);
  EXPECT_TRUE(moved.OnPubrec(busy.i3));
  EXPECT_TRUE(moved.OnPubcomp(busy.i3));
  EXPECT_TRUE(moved.ForgetInboundQos2(9));
  EXPECT_EQ(moved.inbound_qos2_count(), 2u);
}

// ---- With a store -------------------------------------------------------------------------

class SessionMoveStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/meshmq_session_move_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
    dir_ = root_ + "/data";
    OpenStore();
    sessions_.SetPersistence(persistence());
  }

  void TearDown() override {
    if (persistence_) persistence_->Close();
    store_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void OpenStore() {
    absl::StatusOr<std::unique_ptr<storage::Store>> store =
        storage::Store::Open(dir_, storage::Durability::kProcess);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    persistence_ = std::make_unique<Persistence>(store_.get());
  }

  Persistence* persistence() { return persistence_.get(); }
  storage::Store& store() { return *store_; }

  // Waits until everything submitted is durable, closes the store, reopens it and reads the
  // sessions back. Sessions made before keep their (now closed) Persistence.
  std::vector<storage::LoadedSession> Reload() {
    std::vector<storage::LoadedSession> sessions;
    EXPECT_TRUE(store_->WaitDurable(store_->last_ticket()).ok());
    persistence_->Close();
    retired_.push_back(std::move(persistence_));
    store_.reset();
    OpenStore();
    if (store_ == nullptr) return sessions;
    EXPECT_TRUE(
        store_->LoadSessions([&](storage::LoadedSession&& s) { sessions.push_back(std::move(s)); })
            .ok());
    return sessions;
  }

  std::string root_;
  std::string dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Persistence> persistence_;
  std::vector<std::unique_ptr<Persistence>> retired_;
  SessionStore sessions_;
  Session::Limits limits_;
  Counters counters_;
};

// The stored form of one message, with its expiry left out (it is converted between clocks on
// the way and may move by a millisecond); the expiry is compared separately.
std::string Comparable(const storage::LoadedSession::Message& m) {
  storage::QueuedRecord queued = m.queued;
  queued.mutable_message()->clear_expires_at_unix_ms();
  if (!m.queued.has_message()) queued.clear_message();
  std::string text = std::to_string(m.seq) + " " + queued.SerializeAsString();
  if (m.inflight) text += " inflight " + m.inflight->SerializeAsString();
  return text;
}

void ExpectSameSession(const storage::LoadedSession& actual,
                       const storage::LoadedSession& expected) {
  EXPECT_EQ(actual.client_id, expected.client_id);
  EXPECT_EQ(actual.record.expiry_interval(), expected.record.expiry_interval());
  EXPECT_EQ(actual.record.disconnected_at_unix_ms(), expected.record.disconnected_at_unix_ms());
  EXPECT_EQ(Subscriptions(actual.record), Subscriptions(expected.record));
  EXPECT_EQ(Describe(actual), Describe(expected));
  ASSERT_EQ(actual.messages.size(), expected.messages.size());
  for (size_t i = 0; i < actual.messages.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(Comparable(actual.messages[i]), Comparable(expected.messages[i]));
    EXPECT_NEAR(actual.messages[i].queued.message().expires_at_unix_ms(),
                expected.messages[i].queued.message().expires_at_unix_ms(), kSlackMs);
  }
  EXPECT_EQ(actual.inbound_qos2, expected.inbound_qos2);
}

TEST_F(SessionMoveStoreTest, JournalEverythingWritesTheWholeArrivedSession) {
  Session source("mover", kHour);  // the old node's copy
  const BusySession busy = MakeBusy(source);
  ASSERT_NE(busy.i1, 0);
  const storage::LoadedSession exported = source.DiscardAndExport([](const std::string&) {});

  Session arrived("mover", 0, persistence());
  arrived.Restore(exported);
  arrived.JournalEverything();

  std::vector<storage::LoadedSession> loaded = Reload();
  ASSERT_EQ(loaded.size(), 1u);
  ExpectSameSession(loaded[0], exported);

  // A restart of the new node resumes it as the old node would have.
  Session restarted("mover", 0, persistence());
  restarted.Restore(loaded[0]);
  EXPECT_EQ(Describe(restarted.InflightForResend()), Describe(busy.resend));
  EXPECT_EQ(restarted.queued_count(), 2u);
  EXPECT_EQ(restarted.subscriptions(), busy.subscriptions);
  EXPECT_EQ(restarted.inbound_qos2_count(), 3u);
}

TEST_F(SessionMoveStoreTest, ArrivedSessionKeepsJournalingFromWhereTheExportLeftOff) {
  Session source("mover", kHour);
  const BusySession busy = MakeBusy(source);
  ASSERT_NE(busy.i1, 0);
  const storage::LoadedSession exported = source.DiscardAndExport([](const std::string&) {});

  // As the new node imports it.
  std::shared_ptr<Session> arrived = sessions_.Restore(exported, MonotonicMillis());
  arrived->JournalEverything();
  arrived->Attach(kOwnerB, std::nullopt);
  ASSERT_TRUE(arrived->OnPuback(busy.i1));
  ASSERT_TRUE(arrived->OnPubcomp(busy.i2));
  ASSERT_TRUE(arrived->ForgetInboundQos2(3));
  arrived->Enqueue(Queued("new", 1), limits_, &counters_);  // after the moved queue

  std::vector<storage::LoadedSession> loaded = Reload();
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_THAT(Describe(loaded[0]), ElementsAre("i3@" + std::to_string(busy.i3), "q1", "q2", "new"));
  EXPECT_THAT(loaded[0].inbound_qos2, ElementsAre(9, 200));
  EXPECT_EQ(loaded[0].record.disconnected_at_unix_ms(), 0);  // online
  EXPECT_EQ(Subscriptions(loaded[0].record), busy.subscriptions);
}

TEST_F(SessionMoveStoreTest, JournalEverythingWritesNothingForASessionThatEndsWithItsConnection) {
  Session source("clean", 0);
  source.Attach(kOwnerA, std::nullopt);
  source.Enqueue(Queued("m", 1), limits_, &counters_);
  const storage::LoadedSession exported = source.DiscardAndExport([](const std::string&) {});
  ASSERT_EQ(exported.record.expiry_interval(), 0u);

  const uint64_t ticket = store().last_ticket();
  Session arrived("clean", 0, persistence());
  arrived.Restore(exported);
  arrived.JournalEverything();
  EXPECT_EQ(store().last_ticket(), ticket);
  EXPECT_EQ(arrived.queued_count(), 1u);  // kept in memory all the same
  EXPECT_THAT(Reload(), IsEmpty());
}

// ---- The move hold (StartMoveDedup with hold, ReleaseMoveHold) ------------------------------

TEST(SessionMoveTest, MoveHoldKeepsDirectMessagesBehindThoseThatComeTheLongWay) {
  Session s("mover", kHour);
  Counters counters;
  const Session::Limits limits;
  s.Attach(kOwnerB, std::nullopt);
  s.StartMoveDedup({}, MonotonicMillis() + 60'000, /*hold=*/true);
  EXPECT_TRUE(s.move_hold_on());
  s.Enqueue(WithId("direct 1", 11), limits, &counters);
  s.Enqueue(WithId("detour 1", 1), limits, &counters, /*detour=*/true);
  s.Enqueue(WithId("direct 2", 12), limits, &counters);
  s.Enqueue(WithId("detour 1", 1), limits, &counters, /*detour=*/true);  // a second copy
  EXPECT_EQ(counters.cluster_move_duplicates.value(), 1u);
  EXPECT_EQ(Payloads(Take(s, kOwnerB, 20)), (std::vector<std::string>{"detour 1"}));

  std::optional<SessionOwner> wake = s.ReleaseMoveHold();
  ASSERT_TRUE(wake);
  EXPECT_EQ(*wake, kOwnerB);
  EXPECT_FALSE(s.move_hold_on());
  EXPECT_FALSE(s.ReleaseMoveHold());  // once
  s.Enqueue(WithId("direct 3", 13), limits, &counters);
  s.Enqueue(WithId("direct 3", 13), limits, &counters, /*detour=*/true);  // a second copy
  EXPECT_EQ(Payloads(Take(s, kOwnerB, 20)),
            (std::vector<std::string>{"direct 1", "direct 2", "direct 3"}));
  EXPECT_EQ(counters.cluster_move_duplicates.value(), 2u);
}

TEST_F(SessionMoveStoreTest, ADetourCopyOfAHeldMessageTakesItsPlace) {
  // The detour brings everything sent that way before the message first: its copy there is
  // where the message belongs, and the held copy goes, from the store too.
  Session s("mover", kHour, persistence());
  s.JournalEverything();
  s.Attach(kOwnerB, std::nullopt);
  s.StartMoveDedup({}, MonotonicMillis() + 60'000, /*hold=*/true);
  s.Enqueue(WithId("m", 11), limits_, &counters_);
  s.Enqueue(WithId("n", 12), limits_, &counters_);
  s.Enqueue(WithId("before m", 1), limits_, &counters_, /*detour=*/true);
  s.Enqueue(WithId("m", 11), limits_, &counters_, /*detour=*/true);
  EXPECT_EQ(counters_.cluster_move_duplicates.value(), 1u);
  std::vector<storage::LoadedSession> loaded = Reload();
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_THAT(Describe(loaded[0]), ElementsAre("before m", "m", "n"));
  s.ReleaseMoveHold();
  EXPECT_EQ(Payloads(Take(s, kOwnerB, 20)), (std::vector<std::string>{"before m", "m", "n"}));
}

TEST(SessionMoveTest, ExportDuringAMoveHoldTakesTheHeldMessagesAlongInOrder) {
  Session s("mover", kHour);
  Counters counters;
  const Session::Limits limits;
  s.StartMoveDedup({}, MonotonicMillis() + 60'000, /*hold=*/true);
  s.Enqueue(WithId("direct", 11), limits, &counters);
  s.Enqueue(WithId("detour", 1), limits, &counters, /*detour=*/true);
  const storage::LoadedSession exported = s.DiscardAndExport([](const std::string&) {});
  EXPECT_THAT(Describe(exported), ElementsAre("detour", "direct"));
}

TEST(SessionMoveTest, MoveHoldEndsEarlyOnceMaxQueuedMessagesWait) {
  Session s("mover", kHour);
  Counters counters;
  const Session::Limits limits{2, 20};
  s.Attach(kOwnerB, std::nullopt);
  s.StartMoveDedup({}, MonotonicMillis() + 60'000, /*hold=*/true);
  s.Enqueue(WithId("a", 11), limits, &counters);
  s.Enqueue(WithId("b", 12), limits, &counters);
  EXPECT_THAT(Take(s, kOwnerB, 20), IsEmpty());
  s.Enqueue(WithId("c", 13), limits, &counters);  // a third would pass the queue's limit
  EXPECT_EQ(counters.cluster_move_holds_overflowed.value(), 1u);
  EXPECT_FALSE(s.move_hold_on());
  EXPECT_EQ(Payloads(Take(s, kOwnerB, 20)), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(SessionMoveTest, MoveHoldOutlivesTheDedupWindowUntilReleased) {
  Session s("mover", kHour);
  Counters counters;
  const Session::Limits limits;
  s.Attach(kOwnerB, std::nullopt);
  s.StartMoveDedup({}, MonotonicMillis() - 1, /*hold=*/true);  // dedup window already over
  s.Enqueue(WithId("direct", 11), limits, &counters);
  EXPECT_THAT(Take(s, kOwnerB, 20), IsEmpty());
  s.ReleaseMoveHold();
  EXPECT_EQ(Payloads(Take(s, kOwnerB, 20)), (std::vector<std::string>{"direct"}));
}

TEST_F(SessionMoveStoreTest, HeldMessagesAreStoredBehindThoseThatComeTheLongWay) {
  // Stored at once (their publishers were acknowledged), in the order they will be sent: a
  // restart during the hold, or after it, resumes with the detour's messages first.
  Session s("mover", kHour, persistence());
  s.JournalEverything();
  s.Enqueue(WithId("before", 10), limits_, &counters_);
  s.StartMoveDedup({}, MonotonicMillis() + 60'000, /*hold=*/true);
  s.Enqueue(WithId("direct 1", 11), limits_, &counters_);
  s.Enqueue(WithId("detour", 1), limits_, &counters_, /*detour=*/true);
  s.Enqueue(WithId("direct 2", 12), limits_, &counters_);
  std::vector<storage::LoadedSession> loaded = Reload();
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_THAT(Describe(loaded[0]), ElementsAre("before", "detour", "direct 1", "direct 2"));

  Session again("mover", kHour, persistence());
  again.Restore(loaded[0]);
  again.StartMoveDedup({}, MonotonicMillis() + 60'000, /*hold=*/true);
  again.Enqueue(WithId("held", 13), limits_, &counters_);
  again.ReleaseMoveHold();
  again.Enqueue(WithId("after", 14), limits_, &counters_);
  loaded = Reload();
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_THAT(Describe(loaded[0]),
              ElementsAre("before", "detour", "direct 1", "direct 2", "held", "after"));
}

// ---- SessionStore::Find and Extract --------------------------------------------------------

TEST_F(SessionMoveStoreTest, FindReturnsTheSessionWithoutChangingIt) {
  EXPECT_EQ(sessions_.Find("c"), nullptr);
  SessionStore::AttachResult attached = sessions_.Attach("c", false, kHour, kOwnerA, std::nullopt);
  EXPECT_EQ(sessions_.Find("c"), attached.session);
  EXPECT_EQ(sessions_.Find("other"), nullptr);
  EXPECT_EQ(sessions_.Find("c")->current_owner(), kOwnerA);
  EXPECT_EQ(sessions_.size(), 1u);
}

TEST_F(SessionMoveStoreTest, ExtractRemovesTheSessionAndDeletesItsRecords) {
  SessionStore::AttachResult moving = sessions_.Attach("c", false, kHour, kOwnerA, std::nullopt);
  moving.session->AddSubscription("a/#", Qos(1), 0, NoIndex);
  moving.session->Enqueue(Queued("m1", 1), limits_, &counters_);
  moving.session->RememberInboundQos2(4);
  SessionStore::AttachResult staying = sessions_.Attach("d", false, kHour, kOwnerB, std::nullopt);
  staying.session->Enqueue(Queued("d1", 1), limits_, &counters_);

  EXPECT_EQ(sessions_.Extract("nobody"), nullptr);
  std::shared_ptr<Session> extracted = sessions_.Extract("c");
  EXPECT_EQ(extracted, moving.session);
  EXPECT_EQ(sessions_.Find("c"), nullptr);
  EXPECT_EQ(sessions_.Extract("c"), nullptr);
  EXPECT_EQ(sessions_.size(), 1u);
  EXPECT_EQ(sessions_.Find("d"), staying.session);
  // Still connected until the caller ends it.
  EXPECT_EQ(extracted->current_owner(), kOwnerA);

  // Ending it writes nothing more: its records are gone for good.
  const uint64_t ticket = store().last_ticket();
  const storage::LoadedSession exported = extracted->DiscardAndExport([](const std::string&) {});
  extracted->RememberInboundQos2(5);
  EXPECT_EQ(store().last_ticket(), ticket);
  EXPECT_THAT(Describe(exported), ElementsAre("m1"));
  EXPECT_THAT(exported.inbound_qos2, ElementsAre(4));

  std::vector<storage::LoadedSession> loaded = Reload();
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].client_id, "d");
  EXPECT_THAT(Describe(loaded[0]), ElementsAre("d1"));
}

TEST_F(SessionMoveStoreTest, ExtractedSessionsStaleDeadlineExpiresNothing) {
  SessionStore::AttachResult first = sessions_.Attach("c", false, 60, kOwnerA, std::nullopt);
  const int64_t now = 1'000;
  ASSERT_EQ(sessions_.Detach(first.session, kOwnerA, now), nullptr);  // due at now + 60 s
  ASSERT_EQ(sessions_.Extract("c"), first.session);

  // The client comes back to this node later with a longer expiry and goes again.
  SessionStore::AttachResult second = sessions_.Attach("c", false, 120, kOwnerB, std::nullopt);
  EXPECT_FALSE(second.session_present);
  EXPECT_NE(second.session, first.session);
  ASSERT_EQ(sessions_.Detach(second.session, kOwnerB, now + 1'000), nullptr);  // due at 121 s

  EXPECT_THAT(sessions_.ExpireDue(now + 60'000), IsEmpty());
  EXPECT_EQ(sessions_.Find("c"), second.session);
  EXPECT_THAT(sessions_.ExpireDue(now + 120'999), IsEmpty());
  std::vector<std::shared_ptr<Session>> ended = sessions_.ExpireDue(now + 121'000);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0], second.session);
  EXPECT_EQ(sessions_.Find("c"), nullptr);
}

TEST_F(SessionMoveStoreTest, StaleDeadlineDoesNotEndASessionMovedBackThatNeverExpires) {
  SessionStore::AttachResult first = sessions_.Attach("c", false, 60, kOwnerA, std::nullopt);
  ASSERT_EQ(sessions_.Detach(first.session, kOwnerA, 1'000), nullptr);
  std::shared_ptr<Session> extracted = sessions_.Extract("c");
  ASSERT_NE(extracted, nullptr);
  storage::LoadedSession exported = extracted->DiscardAndExport([](const std::string&) {});

  // It comes back from the other node, now never expiring.
  exported.record.set_expiry_interval(codec::kSessionNeverExpires);
  std::shared_ptr<Session> back = sessions_.Restore(exported, 2'000);
  back->JournalEverything();
  EXPECT_THAT(sessions_.ExpireDue(61'000), IsEmpty());
  EXPECT_THAT(sessions_.ExpireDue(int64_t{1} << 50), IsEmpty());
  EXPECT_EQ(sessions_.Find("c"), back);

  std::vector<storage::LoadedSession> loaded = Reload();
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].record.expiry_interval(), codec::kSessionNeverExpires);
}

TEST_F(SessionMoveStoreTest, ExtractOfAnOfflineSessionStopsItsExpiry) {
  SessionStore::AttachResult first = sessions_.Attach("c", false, 60, kOwnerA, std::nullopt);
  ASSERT_EQ(sessions_.Detach(first.session, kOwnerA, 1'000), nullptr);
  ASSERT_EQ(sessions_.Extract("c"), first.session);
  EXPECT_THAT(sessions_.ExpireDue(61'000), IsEmpty());
  EXPECT_THAT(sessions_.ExpireDue(1'000'000), IsEmpty());
  EXPECT_EQ(sessions_.size(), 0u);
  EXPECT_FALSE(first.session->discarded());  // the caller ends it, not the store
}

}  // namespace
}  // namespace meshmq
