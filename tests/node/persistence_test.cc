// Persistence (node/persistence.h): the records of proto/storage.proto made from node types and
// back, and what Session and SessionStore write to a real store (storage/store.h) as their state
// changes. Each test writes to a fresh data dir and reads it back by closing and reopening the
// store, as meshmqd does at a restart.
#include "node/persistence.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/codec/packet.h"
#include "node/counters.h"
#include "node/event_loop.h"
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

struct Loaded {
  std::vector<storage::StoredMessage> retained;
  std::vector<storage::LoadedSession> sessions;
};

MessagePtr MakeMessage(const std::string& payload, uint8_t qos, int64_t expires_at_ms = 0) {
  auto m = std::make_shared<Message>();
  m->topic = "t";
  m->payload = payload;
  m->qos = qos;
  m->expires_at_ms = expires_at_ms;
  return m;
}

QueuedMessage Queued(const std::string& payload, uint8_t qos,
                     std::vector<uint32_t> subscription_ids = {}) {
  QueuedMessage queued;
  queued.message = MakeMessage(payload, qos);
  queued.qos = qos;
  if (!subscription_ids.empty()) {
    auto extras = std::make_shared<DeliveryExtras>();
    extras->subscription_ids = std::move(subscription_ids);
    queued.extras = std::move(extras);
  }
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

std::vector<uint64_t> Seqs(const storage::LoadedSession& session) {
  std::vector<uint64_t> seqs;
  for (const auto& m : session.messages) seqs.push_back(m.seq);
  return seqs;
}

std::vector<std::string> Payloads(const storage::LoadedSession& session) {
  std::vector<std::string> payloads;
  for (const auto& m : session.messages) payloads.push_back(m.queued.message().payload());
  return payloads;
}

std::vector<std::string> Filters(const storage::SessionRecord& record) {
  std::vector<std::string> filters;
  for (const auto& s : record.subscriptions()) filters.push_back(s.filter());
  return filters;
}

std::vector<uint16_t> InboundIds(const storage::LoadedSession& session) {
  return session.inbound_qos2;
}

// A round trip through the bytes the store keeps.
template <typename Record>
Record Reparsed(const Record& record) {
  Record parsed;
  EXPECT_TRUE(parsed.ParseFromString(record.SerializeAsString()));
  return parsed;
}

class PersistenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/meshmq_persistence_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
    dir_ = root_ + "/data";
    OpenStore();
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

  // Waits until everything submitted is durable, closes the store, reopens it and reads it back.
  // Sessions made before keep their (now closed) Persistence: their later writes are dropped.
  Loaded Reload() {
    Loaded loaded;
    EXPECT_TRUE(store_->WaitDurable(store_->last_ticket()).ok());
    persistence_->Close();
    retired_.push_back(std::move(persistence_));
    store_.reset();
    OpenStore();
    if (store_ == nullptr) return loaded;
    EXPECT_TRUE(store_
                    ->LoadRetained([&](storage::StoredMessage&& m) {
                      loaded.retained.push_back(std::move(m));
                    })
                    .ok());
    EXPECT_TRUE(store_
                    ->LoadSessions([&](storage::LoadedSession&& s) {
                      loaded.sessions.push_back(std::move(s));
                    })
                    .ok());
    return loaded;
  }

  std::string root_;
  std::string dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Persistence> persistence_;
  std::vector<std::unique_ptr<Persistence>> retired_;
};

// ---- Records ------------------------------------------------------------------------------

TEST_F(PersistenceTest, MessageRoundTripKeepsTopicPayloadFlagsAndProperties) {
  codec::Properties properties;
  properties.payload_format_indicator = 1;
  properties.content_type = "application/json";
  properties.response_topic = "reply/to/me";
  properties.correlation_data = std::string("corr\0id\xff", 8);
  properties.user_properties = {{"z", "1"}, {"a", "2"}, {"z", "3"}};  // order and duplicates kept

  auto message = std::make_shared<Message>();
  message->topic = "a/b/c";
  message->payload = std::string("bin\0ary\x01\xfe\xff", 10);
  message->qos = 2;
  message->retain = true;
  message->properties = std::make_unique<const codec::Properties>(properties);

  auto plain = std::make_shared<Message>();
  plain->topic = "plain";
  plain->payload = "";
  plain->qos = 0;

  storage::Batch batch;
  batch.PutRetained(message->topic, Persistence::ToRecord(*message));
  batch.PutRetained(plain->topic, Persistence::ToRecord(*plain));
  store().Submit(std::move(batch));
  Loaded loaded = Reload();
  ASSERT_EQ(loaded.retained.size(), 2u);  // in topic order

  MessagePtr back = Persistence::FromRecord(loaded.retained[0]);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->topic, "a/b/c");
  EXPECT_EQ(back->payload, message->payload);
  EXPECT_EQ(back->payload.size(), 10u);
  EXPECT_EQ(back->qos, 2);
  EXPECT_TRUE(back->retain);
  EXPECT_EQ(back->expires_at_ms, 0);
  ASSERT_NE(back->properties, nullptr);
  EXPECT_EQ(*back->properties, properties);
  EXPECT_THAT(back->properties->user_properties,
              ElementsAre(std::pair<std::string, std::string>("z", "1"),
                          std::pair<std::string, std::string>("a", "2"),
                          std::pair<std::string, std::string>("z", "3")));

  MessagePtr plain_back = Persistence::FromRecord(loaded.retained[1]);
  ASSERT_NE(plain_back, nullptr);
  EXPECT_EQ(plain_back->topic, "plain");
  EXPECT_EQ(plain_back->payload, "");
  EXPECT_EQ(plain_back->qos, 0);
  EXPECT_FALSE(plain_back->retain);
  EXPECT_EQ(plain_back->properties, nullptr);  // none stored, none made up
  EXPECT_TRUE(loaded.retained[1].properties().empty());
}

TEST_F(PersistenceTest, MessageExpiryCountsDownAcrossTheConversion) {
  const int64_t now = MonotonicMillis();
  auto in_a_minute = std::make_shared<Message>();
  in_a_minute->topic = "soon";
  in_a_minute->expires_at_ms = now + 60'000;
  auto never = std::make_shared<Message>();
  never->topic = "never";
  auto expired = std::make_shared<Message>();
  expired->topic = "expired";
  expired->expires_at_ms = now - 10'000;

  // On disk: Unix milliseconds.
  const storage::StoredMessage soon_record = Persistence::ToRecord(*in_a_minute);
  const int64_t unix_now = Persistence::UnixMillis();
  EXPECT_NEAR(soon_record.expires_at_unix_ms(), unix_now + 60'000, kSlackMs);
  EXPECT_EQ(Persistence::ToRecord(*never).expires_at_unix_ms(), 0);
  const storage::StoredMessage expired_record = Persistence::ToRecord(*expired);
  EXPECT_NE(expired_record.expires_at_unix_ms(), 0);
  EXPECT_LT(expired_record.expires_at_unix_ms(), unix_now);

  MessagePtr soon_back = Persistence::FromRecord(Reparsed(soon_record));
  ASSERT_NE(soon_back, nullptr);
  EXPECT_NEAR(soon_back->expires_at_ms, in_a_minute->expires_at_ms, kSlackMs);
  EXPECT_FALSE(soon_back->expired(MonotonicMillis()));
  EXPECT_GE(soon_back->remaining_expiry_seconds(MonotonicMillis()), 58u);
  EXPECT_LE(soon_back->remaining_expiry_seconds(MonotonicMillis()), 60u);

  MessagePtr never_back = Persistence::FromRecord(Reparsed(Persistence::ToRecord(*never)));
  ASSERT_NE(never_back, nullptr);
  EXPECT_EQ(never_back->expires_at_ms, 0);
  EXPECT_FALSE(never_back->expired(MonotonicMillis() + 1'000'000'000));

  MessagePtr expired_back = Persistence::FromRecord(Reparsed(expired_record));
  ASSERT_NE(expired_back, nullptr);
  EXPECT_NE(expired_back->expires_at_ms, 0);
  EXPECT_TRUE(expired_back->expired(MonotonicMillis()));

  // Expired long before this machine booted: still expired, not "never expires".
  storage::StoredMessage ancient;
  ancient.set_topic("ancient");
  ancient.set_expires_at_unix_ms(1);
  MessagePtr ancient_back = Persistence::FromRecord(ancient);
  ASSERT_NE(ancient_back, nullptr);
  EXPECT_NE(ancient_back->expires_at_ms, 0);
  EXPECT_TRUE(ancient_back->expired(MonotonicMillis()));
}

TEST_F(PersistenceTest, UnreadablePropertiesGiveNoMessage) {
  storage::StoredMessage record;
  record.set_topic("t");
  record.set_properties(std::string("\x05\xff\xff\xff\xff\xff", 6));  // not a property block
  EXPECT_EQ(Persistence::FromRecord(record), nullptr);

  storage::QueuedRecord queued;
  *queued.mutable_message() = record;
  queued.set_qos(1);
  EXPECT_EQ(Persistence::FromRecord(queued).message, nullptr);
}

TEST_F(PersistenceTest, QueuedMessageRoundTripKeepsQosRetainAndSubscriptionIds) {
  QueuedMessage queued = Queued("hello", 2, {7, 1, 268'435'455});
  queued.qos = 1;  // delivered at min(published, granted)
  queued.retain = true;
  queued.seq = 42;  // the key's business, not the record's

  const storage::QueuedRecord record = Reparsed(Persistence::ToRecord(queued));
  EXPECT_EQ(record.qos(), 1u);
  EXPECT_EQ(record.message().qos(), 2u);  // the message keeps its published QoS
  QueuedMessage back = Persistence::FromRecord(record);
  ASSERT_NE(back.message, nullptr);
  EXPECT_EQ(back.message->payload, "hello");
  EXPECT_EQ(back.message->qos, 2);
  EXPECT_EQ(back.qos, 1);
  EXPECT_TRUE(back.retain);
  EXPECT_FALSE(back.may_expire);
  EXPECT_EQ(back.seq, 0u);
  ASSERT_NE(back.extras, nullptr);
  EXPECT_THAT(back.extras->subscription_ids, ElementsAre(7u, 1u, 268'435'455u));
  EXPECT_EQ(back.shared_group(), nullptr);

  // No subscription ids: no extras. An expiring message: may_expire.
  QueuedMessage expiring;
  expiring.message = MakeMessage("x", 1, MonotonicMillis() + 60'000);
  expiring.qos = 1;
  QueuedMessage expiring_back = Persistence::FromRecord(Reparsed(Persistence::ToRecord(expiring)));
  ASSERT_NE(expiring_back.message, nullptr);
  EXPECT_TRUE(expiring_back.may_expire);
  EXPECT_FALSE(expiring_back.retain);
  EXPECT_EQ(expiring_back.extras, nullptr);

  // QoS 2 past PUBREC: no message.
  QueuedMessage released;
  released.qos = 2;
  const storage::QueuedRecord released_record = Reparsed(Persistence::ToRecord(released));
  EXPECT_FALSE(released_record.has_message());
  QueuedMessage released_back = Persistence::FromRecord(released_record);
  EXPECT_EQ(released_back.message, nullptr);
  EXPECT_EQ(released_back.qos, 2);
  EXPECT_FALSE(released_back.may_expire);
}

TEST_F(PersistenceTest, SubscriptionOptionsAndSessionRecordRoundTrip) {
  SubscriptionOptions all;
  all.qos = 2;
  all.no_local = true;
  all.retain_as_published = true;
  all.retain_handling = 2;
  all.subscription_id = 268'435'455;
  SubscriptionOptions handling_one;
  handling_one.qos = 1;
  handling_one.retain_handling = 1;
  handling_one.subscription_id = 1;
  const std::map<std::string, SubscriptionOptions> subscriptions = {
      {"a/+/c", all}, {"$share/g/x/#", handling_one}, {"plain", SubscriptionOptions{}}};

  const storage::SessionRecord record =
      Reparsed(Persistence::ToRecord(kHour, 1'700'000'000'123, subscriptions));
  EXPECT_EQ(record.expiry_interval(), kHour);
  EXPECT_EQ(record.disconnected_at_unix_ms(), 1'700'000'000'123);
  EXPECT_THAT(Filters(record), ElementsAre("$share/g/x/#", "a/+/c", "plain"));  // map order
  std::map<std::string, SubscriptionOptions> back;
  for (const storage::SubscriptionRecord& s : record.subscriptions()) {
    back.emplace(s.filter(), Persistence::FromRecord(s));
  }
  EXPECT_EQ(back, subscriptions);

  const storage::SessionRecord never =
      Reparsed(Persistence::ToRecord(codec::kSessionNeverExpires, 0, {}));
  EXPECT_EQ(never.expiry_interval(), codec::kSessionNeverExpires);
  EXPECT_EQ(never.disconnected_at_unix_ms(), 0);
  EXPECT_EQ(never.subscriptions_size(), 0);
}

// ---- Session journaling -------------------------------------------------------------------

class SessionJournalTest : public PersistenceTest {
 protected:
  Session::Limits limits_;
  Counters counters_;
};

TEST_F(SessionJournalTest, PersistentSessionJournalsQueueAndWindow) {
  Session s("c1", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  SubscriptionOptions options = Qos(1);
  options.subscription_id = 5;
  ASSERT_EQ(s.AddSubscription("a/#", options, 0, NoIndex), Session::AddResult::kNew);
  s.Enqueue(Queued("m1", 1), limits_, &counters_);
  s.Enqueue(Queued("zero", 0), limits_, &counters_);
  s.Enqueue(Queued("m2", 1), limits_, &counters_);
  s.Enqueue(Queued("m3", 1), limits_, &counters_);

  std::vector<Outgoing> out = Take(s, kOwnerA, 2);
  ASSERT_EQ(out.size(), 3u);  // m1, zero (no window slot), m2; m3 waits
  EXPECT_EQ(out[0].queued.message->payload, "m1");
  EXPECT_EQ(out[1].queued.message->payload, "zero");
  EXPECT_EQ(out[1].queued.seq, 0u);
  EXPECT_EQ(out[2].queued.message->payload, "m2");
  const uint16_t m1_id = out[0].packet_id;
  const uint16_t m2_id = out[2].packet_id;
  EXPECT_NE(m1_id, 0);
  EXPECT_NE(m2_id, 0);
  EXPECT_EQ(s.inflight_count(), 2u);
  ASSERT_TRUE(s.OnPuback(m1_id));

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  const storage::LoadedSession& session = loaded.sessions[0];
  EXPECT_EQ(session.client_id, "c1");
  EXPECT_EQ(session.record.expiry_interval(), kHour);
  EXPECT_EQ(session.record.disconnected_at_unix_ms(), 0);  // online
  ASSERT_EQ(session.record.subscriptions_size(), 1);
  EXPECT_EQ(session.record.subscriptions(0).filter(), "a/#");
  EXPECT_EQ(Persistence::FromRecord(session.record.subscriptions(0)), options);
  // m1 was acknowledged, QoS 0 is never stored: m2 (in flight) and m3 (queued), in queue order.
  EXPECT_THAT(Payloads(session), ElementsAre("m2", "m3"));
  EXPECT_THAT(Seqs(session), ElementsAre(2u, 3u));
  ASSERT_TRUE(session.messages[0].inflight.has_value());
  EXPECT_EQ(session.messages[0].inflight->packet_id(), m2_id);
  EXPECT_FALSE(session.messages[0].inflight->awaiting_pubcomp());
  EXPECT_EQ(session.messages[0].queued.qos(), 1u);
  EXPECT_FALSE(session.messages[1].inflight.has_value());
  EXPECT_THAT(InboundIds(session), IsEmpty());
}

TEST_F(SessionJournalTest, Qos2ExchangeJournalsPubrecAndForgetsOnPubcompOrFailedPubrec) {
  Session s("c2", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  for (const char* payload : {"rec", "comp", "failed", "sent"}) {
    s.Enqueue(Queued(payload, 2), limits_, &counters_);
  }
  std::vector<Outgoing> out = Take(s, kOwnerA, 10);
  ASSERT_EQ(out.size(), 4u);
  ASSERT_TRUE(s.OnPubrec(out[0].packet_id));
  ASSERT_TRUE(s.OnPubrec(out[1].packet_id));
  ASSERT_TRUE(s.OnPubcomp(out[1].packet_id));
  ASSERT_TRUE(s.OnPubrec(out[2].packet_id, /*failed=*/true));
  EXPECT_EQ(s.inflight_count(), 2u);

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  const storage::LoadedSession& session = loaded.sessions[0];
  EXPECT_THAT(Seqs(session), ElementsAre(out[0].queued.seq, out[3].queued.seq));
  ASSERT_TRUE(session.messages[0].inflight.has_value());
  EXPECT_EQ(session.messages[0].inflight->packet_id(), out[0].packet_id);
  EXPECT_TRUE(session.messages[0].inflight->awaiting_pubcomp());
  EXPECT_EQ(session.messages[0].queued.qos(), 2u);
  ASSERT_TRUE(session.messages[1].inflight.has_value());
  EXPECT_EQ(session.messages[1].inflight->packet_id(), out[3].packet_id);
  EXPECT_FALSE(session.messages[1].inflight->awaiting_pubcomp());
  EXPECT_EQ(session.messages[1].queued.message().payload(), "sent");
}

TEST_F(SessionJournalTest, InboundQos2PacketIdsAreJournaled) {
  Session s("c3", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_TRUE(s.RememberInboundQos2(7));
  EXPECT_TRUE(s.RememberInboundQos2(9));
  EXPECT_FALSE(s.RememberInboundQos2(7));
  // Stored only once the message is routed (handle_publish): an id on disk means delivered.
  s.JournalInboundQos2(7);
  s.JournalInboundQos2(9);
  EXPECT_TRUE(s.RememberInboundQos2(11));  // still being routed when the node stops
  EXPECT_TRUE(s.ForgetInboundQos2(7));
  EXPECT_FALSE(s.ForgetInboundQos2(7));
  s.JournalInboundQos2(7);  // PUBREL came first: nothing to store

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_THAT(InboundIds(loaded.sessions[0]), ElementsAre(9));
  EXPECT_THAT(loaded.sessions[0].messages, IsEmpty());
}

TEST_F(SessionJournalTest, SessionWithExpiryZeroWritesNothing) {
  const uint64_t before = store().last_ticket();
  Session s("clean", 0, persistence());
  s.Attach(kOwnerA, std::nullopt);
  s.AddSubscription("a", Qos(2), 0, NoIndex);
  s.Enqueue(Queued("m1", 1), limits_, &counters_);
  s.Enqueue(Queued("m2", 2), limits_, &counters_);
  std::vector<Outgoing> out = Take(s, kOwnerA, 10);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].queued.seq, 0u);
  s.OnPuback(out[0].packet_id);
  s.OnPubrec(out[1].packet_id);
  s.RememberInboundQos2(3);
  s.JournalInboundQos2(3);
  s.Detach(kOwnerA);
  EXPECT_EQ(store().last_ticket(), before);

  Loaded loaded = Reload();
  EXPECT_THAT(loaded.sessions, IsEmpty());
}

TEST_F(SessionJournalTest, ExpiryToZeroDeletesTheSessionsRecords) {
  {
    Session s("c4", kHour, persistence());
    s.Attach(kOwnerA, std::nullopt);
    s.AddSubscription("a", Qos(1), 0, NoIndex);
    s.Enqueue(Queued("m1", 1), limits_, &counters_);
    s.Enqueue(Queued("m2", 1), limits_, &counters_);
    Take(s, kOwnerA, 1);
    s.RememberInboundQos2(4);
    s.JournalInboundQos2(4);
    s.set_expiry_interval(0);
    // No longer persistent: nothing more is written.
    const uint64_t after_delete = store().last_ticket();
    s.Enqueue(Queued("m3", 1), limits_, &counters_);
    s.RememberInboundQos2(5);
    s.JournalInboundQos2(5);
    s.AddSubscription("b", Qos(1), 0, NoIndex);
    EXPECT_EQ(store().last_ticket(), after_delete);
  }
  Loaded loaded = Reload();
  EXPECT_THAT(loaded.sessions, IsEmpty());

  // The queued, in-flight and inbound QoS 2 records went too, not only the session record: a
  // new session with the same client id finds none of them.
  Session again("c4", kHour, persistence());
  again.Attach(kOwnerB, std::nullopt);
  loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_THAT(loaded.sessions[0].messages, IsEmpty());
  EXPECT_THAT(InboundIds(loaded.sessions[0]), IsEmpty());
  EXPECT_THAT(Filters(loaded.sessions[0].record), IsEmpty());
}

TEST_F(SessionJournalTest, ExpiryChangeBetweenNonZeroValuesRewritesTheRecord) {
  Session s("c5", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  s.Enqueue(Queued("m1", 1), limits_, &counters_);
  s.set_expiry_interval(codec::kSessionNeverExpires);
  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_EQ(loaded.sessions[0].record.expiry_interval(), codec::kSessionNeverExpires);
  EXPECT_THAT(Payloads(loaded.sessions[0]), ElementsAre("m1"));
}

TEST_F(SessionJournalTest, QueueFullDropDeletesTheDroppedMessage) {
  Session s("c6", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  s.Detach(kOwnerA);  // offline: every QoS 1/2 message waits
  Session::Limits limits;
  limits.max_queued = 2;
  s.Enqueue(Queued("m1", 1), limits, &counters_);
  s.Enqueue(Queued("m2", 1), limits, &counters_);
  s.Enqueue(Queued("m3", 2), limits, &counters_);
  s.Enqueue(Queued("m4", 1), limits, &counters_);
  EXPECT_EQ(counters_.messages_dropped_queue_full.value(), 2u);
  EXPECT_EQ(s.queued_count(), 2u);

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_THAT(Payloads(loaded.sessions[0]), ElementsAre("m3", "m4"));
  EXPECT_THAT(Seqs(loaded.sessions[0]), ElementsAre(3u, 4u));
}

TEST_F(SessionJournalTest, QueueFullDropWhileOnlineDeletesTheDroppedMessage) {
  Session s("c7", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  Session::Limits limits;
  limits.max_queued = 1;
  limits.max_inflight = 1;
  s.Enqueue(Queued("m1", 1), limits, &counters_);
  std::vector<Outgoing> out = Take(s, kOwnerA, 1);  // m1 in flight, the window is full
  ASSERT_EQ(out.size(), 1u);
  s.Enqueue(Queued("m2", 1), limits, &counters_);
  s.Enqueue(Queued("m3", 1), limits, &counters_);  // m2 goes
  EXPECT_EQ(counters_.messages_dropped_queue_full.value(), 1u);

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_THAT(Payloads(loaded.sessions[0]), ElementsAre("m1", "m3"));
  ASSERT_TRUE(loaded.sessions[0].messages[0].inflight.has_value());
  EXPECT_EQ(loaded.sessions[0].messages[0].inflight->packet_id(), out[0].packet_id);
  EXPECT_FALSE(loaded.sessions[0].messages[1].inflight.has_value());
}

TEST_F(SessionJournalTest, ExpiredAndDroppedInflightMessagesAreDeleted) {
  Session s("c8", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  QueuedMessage expiring = Queued("expiring", 1);
  expiring.message = MakeMessage("expiring", 1, MonotonicMillis() + 60'000);
  s.Enqueue(expiring, limits_, &counters_);
  s.Enqueue(Queued("too-big", 1), limits_, &counters_);
  s.Enqueue(Queued("kept", 1), limits_, &counters_);
  std::vector<Outgoing> out;
  // Two minutes on: the first message expired and is dropped instead of sent.
  EXPECT_EQ(s.TakeSendable(kOwnerA, 10, MonotonicMillis() + 120'000, &out), 1u);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].queued.message->payload, "too-big");
  s.DropInflight(out[0].packet_id);
  EXPECT_EQ(s.inflight_count(), 1u);

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_THAT(Payloads(loaded.sessions[0]), ElementsAre("kept"));
  ASSERT_TRUE(loaded.sessions[0].messages[0].inflight.has_value());
  EXPECT_EQ(loaded.sessions[0].messages[0].inflight->packet_id(), out[1].packet_id);
}

TEST_F(SessionJournalTest, SubscriptionChangesRewriteTheRecord) {
  Session s("c9", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  s.AddSubscription("a", Qos(0), 0, NoIndex);
  s.AddSubscription("b", Qos(1), 0, NoIndex);
  EXPECT_EQ(s.AddSubscription("a", Qos(2), 0, NoIndex), Session::AddResult::kReplaced);
  EXPECT_TRUE(s.RemoveSubscription("b", NoIndex));
  EXPECT_EQ(s.AddSubscription("c", Qos(1), 2, NoIndex), Session::AddResult::kNew);
  EXPECT_EQ(s.AddSubscription("d", Qos(1), 2, NoIndex), Session::AddResult::kLimitReached);

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  const storage::SessionRecord& record = loaded.sessions[0].record;
  EXPECT_THAT(Filters(record), ElementsAre("a", "c"));
  EXPECT_EQ(record.subscriptions(0).qos(), 2u);
}

TEST_F(SessionJournalTest, DetachRecordsWhenTheSessionWentOffline) {
  Session s("c10", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  const int64_t before = Persistence::UnixMillis();
  ASSERT_TRUE(s.Detach(kOwnerA));
  const int64_t after = Persistence::UnixMillis();
  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_GE(loaded.sessions[0].record.disconnected_at_unix_ms(), before);
  EXPECT_LE(loaded.sessions[0].record.disconnected_at_unix_ms(), after);
}

TEST_F(SessionJournalTest, StopPersistenceStopsTheWrites) {
  Session s("c11", kHour, persistence());
  s.Attach(kOwnerA, std::nullopt);
  EXPECT_TRUE(s.StopPersistence());
  const uint64_t ticket = store().last_ticket();
  s.Enqueue(Queued("m1", 1), limits_, &counters_);
  s.AddSubscription("a", Qos(1), 0, NoIndex);
  s.RememberInboundQos2(1);
  s.JournalInboundQos2(1);
  s.Detach(kOwnerA);
  EXPECT_EQ(store().last_ticket(), ticket);
  EXPECT_FALSE(s.StopPersistence());                                 // nothing to stop any more
  EXPECT_FALSE(Session("c12", 0, persistence()).StopPersistence());  // never wrote
}

TEST_F(SessionJournalTest, RestoreRebuildsTheSessionAndContinuesItsSeq) {
  std::vector<Outgoing> out;
  std::map<std::string, SubscriptionOptions> subscriptions;
  {
    Session s("c", kHour, persistence());
    s.Attach(kOwnerA, std::nullopt);
    SubscriptionOptions all;
    all.qos = 2;
    all.no_local = true;
    all.retain_as_published = true;
    all.retain_handling = 1;
    all.subscription_id = 4;
    s.AddSubscription("a/#", all, 0, NoIndex);
    s.AddSubscription("b", Qos(1), 0, NoIndex);
    subscriptions = s.subscriptions();
    s.Enqueue(Queued("m1", 1, {4}), limits_, &counters_);
    s.Enqueue(Queued("m2", 2), limits_, &counters_);
    s.Enqueue(Queued("m3", 2), limits_, &counters_);
    s.Enqueue(Queued("m4", 1), limits_, &counters_);
    s.Enqueue(Queued("m5", 1), limits_, &counters_);
    out = Take(s, kOwnerA, 3);
    ASSERT_EQ(out.size(), 3u);
    ASSERT_TRUE(s.OnPubrec(out[1].packet_id));
    s.RememberInboundQos2(6);
    s.JournalInboundQos2(6);
    s.RememberInboundQos2(5);
    s.JournalInboundQos2(5);
    s.Detach(kOwnerA);
  }
  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_THAT(Seqs(loaded.sessions[0]), ElementsAre(1u, 2u, 3u, 4u, 5u));

  Session restored("c", 0, persistence());
  restored.Restore(loaded.sessions[0]);
  EXPECT_EQ(restored.expiry_interval(), kHour);
  EXPECT_FALSE(restored.online());
  EXPECT_EQ(restored.queued_count(), 2u);
  EXPECT_EQ(restored.inflight_count(), 3u);
  EXPECT_EQ(restored.inbound_qos2_count(), 2u);
  EXPECT_EQ(restored.subscriptions(), subscriptions);
  EXPECT_FALSE(restored.RememberInboundQos2(5));  // still remembered: not delivered twice

  std::vector<Outgoing> resend = restored.InflightForResend();
  ASSERT_EQ(resend.size(), 3u);
  EXPECT_EQ(resend[0].kind, Outgoing::Kind::kPublish);
  EXPECT_EQ(resend[0].packet_id, out[0].packet_id);
  EXPECT_TRUE(resend[0].dup);
  ASSERT_NE(resend[0].queued.message, nullptr);
  EXPECT_EQ(resend[0].queued.message->payload, "m1");
  EXPECT_EQ(resend[0].queued.qos, 1);
  ASSERT_NE(resend[0].queued.extras, nullptr);
  EXPECT_THAT(resend[0].queued.extras->subscription_ids, ElementsAre(4u));
  EXPECT_EQ(resend[1].kind, Outgoing::Kind::kPubrel);
  EXPECT_EQ(resend[1].packet_id, out[1].packet_id);
  EXPECT_TRUE(resend[1].dup);
  EXPECT_EQ(resend[1].queued.message, nullptr);
  EXPECT_EQ(resend[2].kind, Outgoing::Kind::kPublish);
  EXPECT_EQ(resend[2].packet_id, out[2].packet_id);
  EXPECT_TRUE(resend[2].dup);
  ASSERT_NE(resend[2].queued.message, nullptr);
  EXPECT_EQ(resend[2].queued.message->payload, "m3");
  EXPECT_EQ(resend[2].queued.qos, 2);

  // It carries on: acks delete the restored records, new messages queue after the old ones.
  restored.Attach(kOwnerB, std::nullopt);
  EXPECT_TRUE(restored.OnPuback(out[0].packet_id));
  EXPECT_TRUE(restored.OnPubcomp(out[1].packet_id));
  restored.Enqueue(Queued("m6", 1), limits_, &counters_);
  std::vector<Outgoing> more = Take(restored, kOwnerB, 3);  // m4, m5 join m3 in flight
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0].queued.message->payload, "m4");
  EXPECT_EQ(more[1].queued.message->payload, "m5");
  for (const Outgoing& o : more) {
    EXPECT_NE(o.packet_id, out[2].packet_id);  // not the id still in flight
    EXPECT_NE(o.packet_id, 0);
  }

  loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  const storage::LoadedSession& session = loaded.sessions[0];
  EXPECT_THAT(Seqs(session), ElementsAre(3u, 4u, 5u, 6u));
  EXPECT_THAT(Payloads(session), ElementsAre("m3", "m4", "m5", "m6"));
  ASSERT_TRUE(session.messages[0].inflight.has_value());
  EXPECT_EQ(session.messages[0].inflight->packet_id(), out[2].packet_id);
  ASSERT_TRUE(session.messages[1].inflight.has_value());
  EXPECT_EQ(session.messages[1].inflight->packet_id(), more[0].packet_id);
  ASSERT_TRUE(session.messages[2].inflight.has_value());
  EXPECT_EQ(session.messages[2].inflight->packet_id(), more[1].packet_id);
  EXPECT_FALSE(session.messages[3].inflight.has_value());
  EXPECT_THAT(InboundIds(session), ElementsAre(5, 6));
  EXPECT_EQ(session.record.disconnected_at_unix_ms(), 0);  // online again
}

TEST_F(SessionJournalTest, RestoreDropsRecordsItCannotResend) {
  storage::LoadedSession loaded;
  loaded.client_id = "c";
  loaded.record = Persistence::ToRecord(kHour, Persistence::UnixMillis(), {});
  auto add = [&](uint64_t seq, storage::QueuedRecord queued,
                 std::optional<storage::InflightRecord> inflight = std::nullopt) {
    storage::LoadedSession::Message m;
    m.seq = seq;
    m.queued = std::move(queued);
    m.inflight = std::move(inflight);
    loaded.messages.push_back(std::move(m));
  };
  add(1, Persistence::ToRecord(Queued("good", 1)));
  storage::QueuedRecord no_message;  // and not awaiting PUBCOMP: nothing to resend
  no_message.set_qos(1);
  add(2, no_message);
  add(3, Persistence::ToRecord(Queued("qos0", 0)));
  storage::QueuedRecord unreadable = Persistence::ToRecord(Queued("bad", 1));
  unreadable.mutable_message()->set_properties(std::string("\x05\xff", 2));
  add(4, unreadable);
  storage::InflightRecord released;
  released.set_packet_id(9);
  released.set_awaiting_pubcomp(true);
  storage::QueuedRecord released_queued;
  released_queued.set_qos(2);
  add(5, released_queued, released);  // PUBREL needs no message
  // Write them as they are, so the reload shows what Restore deleted.
  {
    storage::Batch batch;
    batch.PutSession(loaded.client_id, loaded.record);
    for (const auto& m : loaded.messages) {
      batch.PutQueued(loaded.client_id, m.seq, m.queued);
      if (m.inflight) batch.PutInflight(loaded.client_id, m.seq, *m.inflight);
    }
    store().Submit(std::move(batch));
  }

  Session restored("c", 0, persistence());
  restored.Restore(loaded);
  EXPECT_EQ(restored.queued_count(), 1u);
  EXPECT_EQ(restored.inflight_count(), 1u);
  std::vector<Outgoing> resend = restored.InflightForResend();
  ASSERT_EQ(resend.size(), 1u);
  EXPECT_EQ(resend[0].kind, Outgoing::Kind::kPubrel);
  EXPECT_EQ(resend[0].packet_id, 9);

  Loaded reloaded = Reload();
  ASSERT_EQ(reloaded.sessions.size(), 1u);
  EXPECT_THAT(Seqs(reloaded.sessions[0]), ElementsAre(1u, 5u));
}

// ---- SessionStore -------------------------------------------------------------------------

class SessionStorePersistenceTest : public PersistenceTest {
 protected:
  void SetUp() override {
    PersistenceTest::SetUp();
    sessions_.SetPersistence(persistence());
  }
  SessionStore sessions_;
  Session::Limits limits_;
  Counters counters_;
};

TEST_F(SessionStorePersistenceTest, DetachKeepsThePersistentSessionWithItsOfflineTime) {
  SessionStore::AttachResult first = sessions_.Attach("c", false, kHour, kOwnerA, std::nullopt);
  first.session->AddSubscription("old/#", Qos(1), 0, NoIndex);
  first.session->Enqueue(Queued("old", 1), limits_, &counters_);
  const int64_t before = Persistence::UnixMillis();
  EXPECT_EQ(sessions_.Detach(first.session, kOwnerA, MonotonicMillis()), nullptr);
  const int64_t after = Persistence::UnixMillis();

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  const storage::LoadedSession& session = loaded.sessions[0];
  EXPECT_EQ(session.client_id, "c");
  EXPECT_EQ(session.record.expiry_interval(), kHour);
  EXPECT_GE(session.record.disconnected_at_unix_ms(), before);
  EXPECT_LE(session.record.disconnected_at_unix_ms(), after);
  EXPECT_THAT(Filters(session.record), ElementsAre("old/#"));
  EXPECT_THAT(Payloads(session), ElementsAre("old"));
}

TEST_F(SessionStorePersistenceTest, CleanStartDeletesTheOldRecordsBeforeTheNewSessionWrites) {
  SessionStore::AttachResult first = sessions_.Attach("c", false, kHour, kOwnerA, std::nullopt);
  first.session->AddSubscription("old/#", Qos(1), 0, NoIndex);
  first.session->Enqueue(Queued("old", 1), limits_, &counters_);
  first.session->RememberInboundQos2(3);
  first.session->JournalInboundQos2(3);
  sessions_.Detach(first.session, kOwnerA, MonotonicMillis());

  // Attach is all the new session writes here: its record must come after the old one's delete.
  SessionStore::AttachResult second = sessions_.Attach("c", true, 2 * kHour, kOwnerB, std::nullopt);
  EXPECT_FALSE(second.session_present);
  EXPECT_EQ(second.discarded, first.session);
  // The discarded session can no longer write (its owner may still be finishing up).
  first.session->RememberInboundQos2(4);
  first.session->JournalInboundQos2(4);
  first.session->AddSubscription("late", Qos(1), 0, NoIndex);
  first.session->Enqueue(Queued("late", 1), limits_, &counters_);

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  const storage::LoadedSession& session = loaded.sessions[0];
  EXPECT_EQ(session.client_id, "c");
  EXPECT_EQ(session.record.expiry_interval(), 2 * kHour);  // the new session's record
  EXPECT_EQ(session.record.disconnected_at_unix_ms(), 0);
  EXPECT_THAT(Filters(session.record), IsEmpty());
  EXPECT_THAT(session.messages, IsEmpty());
  EXPECT_THAT(InboundIds(session), IsEmpty());
}

TEST_F(SessionStorePersistenceTest, TakeoverWithCleanStartReplacesTheRecordsToo) {
  SessionStore::AttachResult first = sessions_.Attach("c", false, kHour, kOwnerA, std::nullopt);
  first.session->AddSubscription("old/#", Qos(1), 0, NoIndex);
  // Still online: the new CONNECT takes the client id over.
  SessionStore::AttachResult second = sessions_.Attach("c", true, kHour, kOwnerB, std::nullopt);
  ASSERT_TRUE(second.taken_over);
  EXPECT_EQ(*second.taken_over, kOwnerA);
  EXPECT_EQ(sessions_.Detach(first.session, kOwnerA, MonotonicMillis()), nullptr);

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_THAT(Filters(loaded.sessions[0].record), IsEmpty());
  EXPECT_EQ(loaded.sessions[0].record.disconnected_at_unix_ms(), 0);
}

TEST_F(SessionStorePersistenceTest, ResumingWithExpiryZeroDeletesTheRecords) {
  SessionStore::AttachResult first = sessions_.Attach("c", false, kHour, kOwnerA, std::nullopt);
  first.session->Enqueue(Queued("old", 1), limits_, &counters_);
  sessions_.Detach(first.session, kOwnerA, MonotonicMillis());
  SessionStore::AttachResult second = sessions_.Attach("c", false, 0, kOwnerB, std::nullopt);
  EXPECT_TRUE(second.session_present);
  EXPECT_EQ(sessions_.Detach(second.session, kOwnerB, MonotonicMillis()), second.session);

  Loaded loaded = Reload();
  EXPECT_THAT(loaded.sessions, IsEmpty());
}

TEST_F(SessionStorePersistenceTest, ExpireDueDeletesTheRecords) {
  SessionStore::AttachResult kept =
      sessions_.Attach("kept", false, codec::kSessionNeverExpires, kOwnerA, std::nullopt);
  SessionStore::AttachResult expiring = sessions_.Attach("c", false, 60, kOwnerB, std::nullopt);
  expiring.session->Enqueue(Queued("m", 1), limits_, &counters_);
  const int64_t now = 1'000;
  sessions_.Detach(kept.session, kOwnerA, now);
  sessions_.Detach(expiring.session, kOwnerB, now);
  EXPECT_THAT(sessions_.ExpireDue(now + 59'999), IsEmpty());
  std::vector<std::shared_ptr<Session>> ended = sessions_.ExpireDue(now + 60'000);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0], expiring.session);
  // It ended: a message that still reaches it is not written.
  const uint64_t ticket = store().last_ticket();
  expiring.session->Enqueue(Queued("late", 1), limits_, &counters_);
  EXPECT_EQ(store().last_ticket(), ticket);

  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_EQ(loaded.sessions[0].client_id, "kept");
}

TEST_F(SessionStorePersistenceTest, RestoreCountsDownFromWhenTheClientWent) {
  const int64_t unix_now = Persistence::UnixMillis();
  {
    // Written as a node that stopped long ago would have left them.
    storage::Batch batch;
    std::map<std::string, SubscriptionOptions> subscriptions = {{"a/#", Qos(1)}};
    batch.PutSession("gone", Persistence::ToRecord(60, unix_now - 3'600'000, subscriptions));
    batch.PutQueued("gone", 1, Persistence::ToRecord(Queued("m", 1)));
    batch.PutSession("recent", Persistence::ToRecord(60, unix_now - 10'000, subscriptions));
    batch.PutSession("crashed", Persistence::ToRecord(60, 0, subscriptions));  // was online
    batch.PutSession("forever",
                     Persistence::ToRecord(codec::kSessionNeverExpires, unix_now - 3'600'000, {}));
    store().Submit(std::move(batch));
  }
  Loaded loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 4u);
  sessions_.SetPersistence(persistence());

  const int64_t now = 1'000'000;
  std::map<std::string, std::shared_ptr<Session>> restored;
  for (const storage::LoadedSession& s : loaded.sessions) {
    restored[s.client_id] = sessions_.Restore(s, now);
  }
  EXPECT_EQ(sessions_.size(), 4u);
  EXPECT_EQ(restored["gone"]->queued_count(), 1u);
  EXPECT_EQ(restored["gone"]->subscriptions().size(), 1u);
  EXPECT_FALSE(restored["gone"]->online());

  // Its 60 s ran out while the node was down: it ends at the first ExpireDue.
  std::vector<std::shared_ptr<Session>> ended = sessions_.ExpireDue(now);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0], restored["gone"]);
  // 10 s of 60 gone: about 50 s left.
  EXPECT_THAT(sessions_.ExpireDue(now + 50'000 - kSlackMs), IsEmpty());
  ended = sessions_.ExpireDue(now + 50'000 + kSlackMs);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0], restored["recent"]);
  // Offline since the restart: the whole 60 s.
  EXPECT_THAT(sessions_.ExpireDue(now + 60'000 - kSlackMs), IsEmpty());
  ended = sessions_.ExpireDue(now + 60'000);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0], restored["crashed"]);
  EXPECT_THAT(sessions_.ExpireDue(now + int64_t{1000} * 0xFFFFFFFFLL), IsEmpty());
  EXPECT_EQ(sessions_.size(), 1u);

  loaded = Reload();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_EQ(loaded.sessions[0].client_id, "forever");
}

// ---- Tickets --------------------------------------------------------------------------------

storage::Batch OneRetained(const std::string& topic) {
  storage::Batch batch;
  storage::StoredMessage message;
  message.set_topic(topic);
  batch.PutRetained(topic, message);
  return batch;
}

TEST_F(PersistenceTest, ThreadTicketRisesWithThisThreadsSubmitsOnly) {
  // Fresh threads: the ticket is per thread, and this test's main thread may have submitted
  // before.
  std::thread a([&] {
    EXPECT_EQ(Persistence::ThreadTicket(), 0u);
    persistence()->Submit(OneRetained("a1"));
    const uint64_t first = Persistence::ThreadTicket();
    EXPECT_GT(first, 0u);
    EXPECT_EQ(first, store().last_ticket());
    ASSERT_TRUE(store().WaitDurable(first).ok());  // so the next Submit opens a new group

    uint64_t b_ticket = 0;
    std::thread b([&] {
      EXPECT_EQ(Persistence::ThreadTicket(), 0u);
      persistence()->Submit(OneRetained("b1"));
      persistence()->Submit(OneRetained("b2"));
      b_ticket = Persistence::ThreadTicket();
    });
    b.join();
    EXPECT_GT(b_ticket, first);
    EXPECT_EQ(Persistence::ThreadTicket(), first);  // b's Submits are not a's

    persistence()->Submit(OneRetained("a2"));
    const uint64_t second = Persistence::ThreadTicket();
    EXPECT_GE(second, b_ticket);
    EXPECT_EQ(second, store().last_ticket());

    // An empty batch, and a Submit after Close, never lower it.
    persistence()->Submit(storage::Batch());
    EXPECT_EQ(Persistence::ThreadTicket(), second);
    ASSERT_TRUE(store().WaitDurable(second).ok());
    persistence()->Close();
    persistence()->Submit(OneRetained("dropped"));
    EXPECT_EQ(Persistence::ThreadTicket(), second);
    EXPECT_EQ(store().last_ticket(), second);
  });
  a.join();

  persistence_ = std::make_unique<Persistence>(store_.get());
  Loaded loaded = Reload();
  std::vector<std::string> topics;
  for (const storage::StoredMessage& m : loaded.retained) topics.push_back(m.topic());
  EXPECT_THAT(topics, ElementsAre("a1", "a2", "b1", "b2"));
}

}  // namespace
}  // namespace meshmq
