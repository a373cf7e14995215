// The Store API the cluster replicates sessions with: a Batch's session changes as RecordOps, a
// replica's Batch rebuilt from them, tickets registered before they can be durable, and sessions
// read back while the store runs.
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "storage/schema.h"
#include "storage/store.h"
#include "tests/storage/test_records.h"

namespace meshmq::storage {
namespace {

namespace fs = std::filesystem;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

using test::Message;
using test::Queued;

InflightRecord Inflight(uint32_t packet_id, bool awaiting_pubcomp = false) {
  InflightRecord record;
  record.set_packet_id(packet_id);
  record.set_awaiting_pubcomp(awaiting_pubcomp);
  return record;
}

SessionRecord Session(uint32_t expiry, std::vector<std::string> filters = {}) {
  SessionRecord record;
  record.set_expiry_interval(expiry);
  for (std::string& filter : filters) {
    SubscriptionRecord* subscription = record.add_subscriptions();
    subscription->set_filter(std::move(filter));
    subscription->set_qos(1);
  }
  return record;
}

RecordOp Op(std::string_view family, RecordOp::Kind kind, std::string key, std::string value = {}) {
  RecordOp op;
  op.set_family(std::string(family));
  op.set_kind(kind);
  op.set_key(std::move(key));
  op.set_value(std::move(value));
  return op;
}

struct SeenOp {
  std::string client_id;
  RecordOp op;
};

std::vector<SeenOp> SessionOps(const Batch& batch) {
  std::vector<SeenOp> ops;
  batch.ForEachSessionOp([&ops](std::string_view client_id, RecordOp&& op) {
    ops.push_back({std::string(client_id), std::move(op)});
  });
  return ops;
}

// "client family KIND", for comparing op lists at a glance.
std::vector<std::string> Describe(const std::vector<SeenOp>& ops) {
  std::vector<std::string> described;
  for (const SeenOp& seen : ops) {
    described.push_back(seen.client_id + " " + seen.op.family() + " " +
                        RecordOp::Kind_Name(seen.op.kind()));
  }
  return described;
}

// What a replica does with what it receives.
Batch Replay(const std::vector<SeenOp>& ops) {
  Batch batch;
  for (const SeenOp& seen : ops) {
    EXPECT_TRUE(batch.AddRecordOp(seen.op)) << seen.op.ShortDebugString();
  }
  return batch;
}

void ExpectSameSession(const LoadedSession& a, const LoadedSession& b) {
  EXPECT_EQ(a.client_id, b.client_id);
  EXPECT_TRUE(MessageDifferencer::Equals(a.record, b.record)) << a.client_id;
  ASSERT_EQ(a.messages.size(), b.messages.size()) << a.client_id;
  for (size_t i = 0; i < a.messages.size(); ++i) {
    EXPECT_EQ(a.messages[i].seq, b.messages[i].seq) << a.client_id;
    EXPECT_TRUE(MessageDifferencer::Equals(a.messages[i].queued, b.messages[i].queued))
        << a.client_id << " seq " << a.messages[i].seq;
    ASSERT_EQ(a.messages[i].inflight.has_value(), b.messages[i].inflight.has_value())
        << a.client_id << " seq " << a.messages[i].seq;
    if (a.messages[i].inflight) {
      EXPECT_TRUE(MessageDifferencer::Equals(*a.messages[i].inflight, *b.messages[i].inflight))
          << a.client_id << " seq " << a.messages[i].seq;
    }
  }
  EXPECT_EQ(a.inbound_qos2, b.inbound_qos2) << a.client_id;
}

std::vector<uint64_t> Seqs(const LoadedSession& session) {
  std::vector<uint64_t> seqs;
  for (const LoadedSession::Message& message : session.messages) seqs.push_back(message.seq);
  return seqs;
}

class StoreReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/meshmq_store_replication_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  std::unique_ptr<Store> OpenStore(const std::string& name) {
    absl::StatusOr<std::unique_ptr<Store>> store =
        Store::Open(root_ + "/" + name, Durability::kProcess);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static void Write(Store& store, Batch batch) {
    uint64_t ticket = store.Submit(std::move(batch));
    ASSERT_TRUE(store.WaitDurable(ticket).ok());
  }

  static std::optional<LoadedSession> Load(Store& store, std::string_view client_id) {
    absl::StatusOr<std::optional<LoadedSession>> loaded = store.LoadSession(client_id);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded.ok() ? std::move(*loaded) : std::nullopt;
  }

  static std::vector<std::string> SessionIds(Store& store) {
    std::vector<std::string> ids;
    absl::Status status = store.ForEachSession(
        [&ids](std::string_view client_id, const SessionRecord&) { ids.emplace_back(client_id); });
    EXPECT_TRUE(status.ok()) << status;
    return ids;
  }

  std::string root_;
};

// ---- Batch → RecordOps ----

TEST_F(StoreReplicationTest, ForEachSessionOpGivesEveryChangeInOrderWithItsClientId) {
  Batch batch;
  batch.PutRetained("r/1", Message("r/1", "x"));
  batch.PutSession("c1", Session(60, {"a/#"}));
  batch.PutQueued("c1", 7, Queued("seven"));
  batch.PutInflight("c1", 7, Inflight(3));
  batch.DeleteRetained("r/2");
  batch.DeleteMessage("c1", 6);
  batch.PutInboundQos2("c2", 300);
  batch.DeleteInboundQos2("c2", 299);
  batch.DeleteSession("gone");
  EXPECT_TRUE(batch.has_session_ops());

  std::vector<SeenOp> ops = SessionOps(batch);
  EXPECT_THAT(Describe(ops),
              ElementsAre("c1 sessions PUT", "c1 queued PUT", "c1 inflight PUT", "c1 queued DELETE",
                          "c1 inflight DELETE", "c2 inbound_qos2 PUT", "c2 inbound_qos2 DELETE",
                          "gone sessions DELETE", "gone queued DELETE_RANGE",
                          "gone inflight DELETE_RANGE", "gone inbound_qos2 DELETE_RANGE"));
  // The records exactly as the store keeps them.
  EXPECT_EQ(ops[0].op.key(), "c1");
  EXPECT_EQ(ops[0].op.value(), Session(60, {"a/#"}).SerializeAsString());
  EXPECT_EQ(ops[1].op.key(), MessageKey("c1", 7));
  EXPECT_EQ(ops[1].op.value(), Queued("seven").SerializeAsString());
  EXPECT_EQ(ops[2].op.value(), Inflight(3).SerializeAsString());
  EXPECT_EQ(ops[3].op.key(), MessageKey("c1", 6));
  EXPECT_EQ(ops[4].op.key(), MessageKey("c1", 6));
  EXPECT_EQ(ops[5].op.key(), InboundQos2Key("c2", 300));
  EXPECT_EQ(ops[5].op.value(), "");
  EXPECT_EQ(ops[6].op.key(), InboundQos2Key("c2", 299));
  EXPECT_EQ(ops[7].op.key(), "gone");
  for (size_t i = 8; i < ops.size(); ++i) {
    EXPECT_EQ(ops[i].op.key(), SessionRangeBegin("gone"));
    EXPECT_EQ(ops[i].op.value(), SessionRangeEnd("gone"));
  }
}

// The seq's and packet id's bytes may hold '\0' too: the client id ends at the first one.
TEST_F(StoreReplicationTest, ClientIdEndsAtTheFirstNul) {
  Batch batch;
  batch.PutQueued("c", 0, Queued("zero"));
  batch.PutInboundQos2("c", 0);
  batch.PutQueued("", 1, Queued("no id"));
  EXPECT_THAT(Describe(SessionOps(batch)),
              ElementsAre("c queued PUT", "c inbound_qos2 PUT", " queued PUT"));
}

TEST_F(StoreReplicationTest, RetainedOnlyBatchHasNoSessionOps) {
  Batch batch;
  EXPECT_FALSE(batch.has_session_ops());
  batch.PutRetained("t", Message("t", "x"));
  batch.DeleteRetained("u");
  EXPECT_FALSE(batch.has_session_ops());
  EXPECT_THAT(SessionOps(batch), IsEmpty());

  Batch with_session;
  with_session.PutInboundQos2("c", 1);
  EXPECT_TRUE(with_session.has_session_ops());
  Batch moved = std::move(with_session);
  EXPECT_TRUE(moved.has_session_ops());
  EXPECT_FALSE(with_session.has_session_ops());  // NOLINT(bugprone-use-after-move)
  batch = std::move(moved);
  EXPECT_TRUE(batch.has_session_ops());
}

// ---- RecordOps → a replica's Batch ----

// Every Batch method, over several batches, replayed on a second store: both stores then hold
// the same sessions. "a" is a prefix of "ab": deleting "a" on the replica leaves "ab" whole.
TEST_F(StoreReplicationTest, ReplayedOpsReproduceEverySession) {
  std::unique_ptr<Store> owner = OpenStore("owner");
  std::unique_ptr<Store> replica = OpenStore("replica");
  ASSERT_NE(owner, nullptr);
  ASSERT_NE(replica, nullptr);

  std::vector<Batch> batches(3);
  for (std::string id : {"a", "ab", "c"}) {
    batches[0].PutSession(id, Session(60, {id + "/#"}));
    batches[0].PutQueued(id, 1, Queued(id + "1"));
    batches[0].PutQueued(id, 2, Queued(id + "2", 2));
    batches[0].PutQueued(id, uint64_t{1} << 40, Queued(id + "big"));
    batches[0].PutInflight(id, 1, Inflight(10));
    batches[0].PutInflight(id, 2, Inflight(11));
    batches[0].PutInboundQos2(id, 5);
    batches[0].PutInboundQos2(id, 256);
  }
  batches[0].PutRetained("r", Message("r", "retained"));

  batches[1].DeleteMessage("ab", 1);
  QueuedRecord released;  // QoS 2 after PUBREC: only PUBREL is resent
  released.set_qos(2);
  batches[1].PutQueued("ab", 2, released);
  batches[1].PutInflight("ab", 2, Inflight(11, true));
  batches[1].DeleteInboundQos2("ab", 5);
  batches[1].PutSession("ab", Session(120, {"x", "y"}));
  batches[1].DeleteRetained("r");

  batches[2].DeleteSession("a");
  batches[2].DeleteSession("c");
  batches[2].PutSession("c", Session(30));  // made again: starts empty
  batches[2].PutQueued("c", 9, Queued("c9"));

  for (Batch& batch : batches) {
    std::vector<SeenOp> ops = SessionOps(batch);
    for (const SeenOp& seen : ops) {
      // Every op belongs to the client its key names.
      const std::string& key = seen.op.key();
      EXPECT_EQ(seen.client_id,
                seen.op.family() == kSessionsFamily ? key : key.substr(0, key.find('\0')));
    }
    Batch copy = Replay(ops);
    EXPECT_TRUE(copy.has_session_ops());
    EXPECT_EQ(Describe(SessionOps(copy)), Describe(ops));
    Write(*owner, std::move(batch));
    Write(*replica, std::move(copy));
  }

  EXPECT_THAT(SessionIds(*owner), ElementsAre("ab", "c"));
  EXPECT_THAT(SessionIds(*replica), ElementsAre("ab", "c"));
  EXPECT_EQ(Load(*replica, "a"), std::nullopt);
  for (std::string id : {"ab", "c"}) {
    std::optional<LoadedSession> original = Load(*owner, id);
    std::optional<LoadedSession> copy = Load(*replica, id);
    ASSERT_TRUE(original.has_value()) << id;
    ASSERT_TRUE(copy.has_value()) << id;
    ExpectSameSession(*original, *copy);
  }
  // And the replica holds what was meant, not just the same as the owner.
  std::optional<LoadedSession> ab = Load(*replica, "ab");
  ASSERT_TRUE(ab.has_value());
  EXPECT_EQ(ab->record.expiry_interval(), 120u);
  EXPECT_THAT(Seqs(*ab), ElementsAre(2, uint64_t{1} << 40));
  EXPECT_FALSE(ab->messages[0].queued.has_message());
  ASSERT_TRUE(ab->messages[0].inflight.has_value());
  EXPECT_TRUE(ab->messages[0].inflight->awaiting_pubcomp());
  EXPECT_FALSE(ab->messages[1].inflight.has_value());
  EXPECT_THAT(ab->inbound_qos2, ElementsAre(256));
  std::optional<LoadedSession> c = Load(*replica, "c");
  ASSERT_TRUE(c.has_value());
  EXPECT_THAT(Seqs(*c), ElementsAre(9));
  EXPECT_THAT(c->inbound_qos2, IsEmpty());

  // Retained messages stayed on the owner.
  int retained = 0;
  replica.reset();
  replica = OpenStore("replica");
  ASSERT_TRUE(replica->LoadRetained([&](StoredMessage&&) { ++retained; }).ok());
  EXPECT_EQ(retained, 0);
}

TEST_F(StoreReplicationTest, AddRecordOpAcceptsWhatItShouldAndCountsIt) {
  Batch batch;
  EXPECT_TRUE(
      batch.AddRecordOp(Op(kSessionsFamily, RecordOp::PUT, "c", Session(1).SerializeAsString())));
  EXPECT_TRUE(batch.AddRecordOp(Op(kSessionsFamily, RecordOp::PUT, "", "")));  // all defaults
  EXPECT_TRUE(batch.AddRecordOp(Op(kSessionsFamily, RecordOp::DELETE, "c")));
  EXPECT_TRUE(batch.AddRecordOp(
      Op(kQueuedFamily, RecordOp::PUT, MessageKey("c", 1), Queued("x").SerializeAsString())));
  EXPECT_TRUE(batch.AddRecordOp(
      Op(kInflightFamily, RecordOp::PUT, MessageKey("c", 1), Inflight(1).SerializeAsString())));
  EXPECT_TRUE(batch.AddRecordOp(Op(kInboundQos2Family, RecordOp::PUT, InboundQos2Key("c", 1))));
  // A DELETE's value means nothing; it is not kept.
  EXPECT_TRUE(batch.AddRecordOp(Op(kQueuedFamily, RecordOp::DELETE, MessageKey("c", 1), "junk")));
  for (std::string_view family : {kQueuedFamily, kInflightFamily, kInboundQos2Family}) {
    EXPECT_TRUE(batch.AddRecordOp(
        Op(family, RecordOp::DELETE_RANGE, SessionRangeBegin("c"), SessionRangeEnd("c"))))
        << family;
  }
  EXPECT_EQ(batch.count(), 10u);
  EXPECT_TRUE(batch.has_session_ops());
  std::vector<SeenOp> ops = SessionOps(batch);
  ASSERT_EQ(ops.size(), 10u);
  EXPECT_EQ(ops[6].op.value(), "");
}

TEST_F(StoreReplicationTest, AddRecordOpRejectsWhatIsNotASessionRecord) {
  const std::string session = Session(1).SerializeAsString();
  const std::string queued = Queued("x").SerializeAsString();
  const std::vector<std::pair<std::string, RecordOp>> rejected = {
      {"unknown family", Op("nope", RecordOp::PUT, "c", session)},
      {"empty family", Op("", RecordOp::PUT, "c", session)},
      {"default family", Op("default", RecordOp::PUT, "c", session)},
      {"retained", Op(kRetainedFamily, RecordOp::PUT, "t", Message("t", "x").SerializeAsString())},
      {"retained delete", Op(kRetainedFamily, RecordOp::DELETE, "t")},
      {"meta", Op(kMetaFamily, RecordOp::PUT, std::string(kSchemaVersionKey), "2")},
      {"family case", Op("Sessions", RecordOp::PUT, "c", session)},
      {"bad kind", Op(kSessionsFamily, static_cast<RecordOp::Kind>(7), "c", session)},
      {"negative kind", Op(kQueuedFamily, static_cast<RecordOp::Kind>(-1), MessageKey("c", 1))},
      {"session id with NUL", Op(kSessionsFamily, RecordOp::PUT, std::string("c\0d", 3), session)},
      {"queued key without NUL", Op(kQueuedFamily, RecordOp::PUT, "c12345678", queued)},
      {"queued delete without NUL", Op(kQueuedFamily, RecordOp::DELETE, "c12345678")},
      {"queued key short seq", Op(kQueuedFamily, RecordOp::PUT, std::string("c\0\1\2", 4), queued)},
      {"inflight key is an inbound key",
       Op(kInflightFamily, RecordOp::PUT, InboundQos2Key("c", 1), Inflight(1).SerializeAsString())},
      {"inbound key is a message key", Op(kInboundQos2Family, RecordOp::PUT, MessageKey("c", 1))},
      {"inbound delete without NUL", Op(kInboundQos2Family, RecordOp::DELETE, "c12")},
      {"queued value unreadable", Op(kQueuedFamily, RecordOp::PUT, MessageKey("c", 1), "\xff\xff")},
      {"session value unreadable", Op(kSessionsFamily, RecordOp::PUT, "c", "\x0a\x05")},
      {"inbound value not empty",
       Op(kInboundQos2Family, RecordOp::PUT, InboundQos2Key("c", 1), "x")},
      {"range on sessions",
       Op(kSessionsFamily, RecordOp::DELETE_RANGE, SessionRangeBegin("c"), SessionRangeEnd("c"))},
      {"range of two ids",
       Op(kQueuedFamily, RecordOp::DELETE_RANGE, SessionRangeBegin("a"), SessionRangeEnd("b"))},
      {"range end of a longer id",
       Op(kQueuedFamily, RecordOp::DELETE_RANGE, SessionRangeBegin("a"), SessionRangeEnd("ab"))},
      {"range begin without NUL",
       Op(kInflightFamily, RecordOp::DELETE_RANGE, "a", SessionRangeEnd("a"))},
      {"range begin is a message key",
       Op(kQueuedFamily, RecordOp::DELETE_RANGE, MessageKey("a", 1), SessionRangeEnd("a"))},
      {"range of an id with NUL",
       Op(kQueuedFamily, RecordOp::DELETE_RANGE, SessionRangeBegin(std::string("a\0b", 3)),
          SessionRangeEnd(std::string("a\0b", 3)))},
      {"range without end", Op(kInboundQos2Family, RecordOp::DELETE_RANGE, SessionRangeBegin("a"))},
      {"empty range", Op(kQueuedFamily, RecordOp::DELETE_RANGE, "", "")},
  };
  Batch batch;
  for (const auto& [why, op] : rejected) {
    EXPECT_FALSE(batch.AddRecordOp(op)) << why;
  }
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.count(), 0u);
  EXPECT_FALSE(batch.has_session_ops());
  EXPECT_THAT(SessionOps(batch), IsEmpty());
}

// ---- Submit with on_ticket ----

TEST_F(StoreReplicationTest, OnTicketGetsTheTicketBeforeItIsDurable) {
  std::unique_ptr<Store> store = OpenStore("store");
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 20; ++i) {
    Batch batch;
    batch.PutInboundQos2("c", static_cast<uint16_t>(i));
    int calls = 0;
    uint64_t seen = 0;
    uint64_t durable_then = 0;
    uint64_t ticket = store->Submit(std::move(batch), [&](uint64_t t) {
      ++calls;
      seen = t;
      durable_then = store->durable_ticket();
    });
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(seen, ticket);
    EXPECT_LT(durable_then, ticket);
    EXPECT_TRUE(store->WaitDurable(ticket).ok());
  }

  // An empty batch: the last ticket handed out, durable already here.
  Batch empty;
  int calls = 0;
  uint64_t seen = 0;
  uint64_t ticket = store->Submit(std::move(empty), [&](uint64_t t) {
    ++calls;
    seen = t;
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, ticket);
  EXPECT_EQ(ticket, store->last_ticket());
}

// What the cluster relies on: whenever a ticket becomes durable, its on_ticket has run, however
// submitters and the writer interleave.
TEST_F(StoreReplicationTest, NoTicketIsDurableBeforeItsOnTicketRan) {
  constexpr int kThreads = 4;
  constexpr int kBatches = 500;
  // Declared before the store: its writer may call OnDurable until the store is gone.
  std::mutex mu;
  std::set<uint64_t> registered;
  std::atomic<int> unregistered_durable{0};
  std::unique_ptr<Store> store = OpenStore("store");
  ASSERT_NE(store, nullptr);
  store->SetOnDurable([&](uint64_t durable) {
    std::lock_guard lock(mu);
    if (durable > 0 && registered.count(durable) == 0) ++unregistered_durable;
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string client_id = "client-" + std::to_string(t);
      uint64_t last = 0;
      for (int i = 1; i <= kBatches; ++i) {
        Batch batch;
        batch.PutQueued(client_id, i, Queued(std::to_string(i)));
        last = store->Submit(std::move(batch), [&](uint64_t ticket) {
          EXPECT_LT(store->durable_ticket(), ticket);
          std::lock_guard lock(mu);
          registered.insert(ticket);
        });
      }
      EXPECT_TRUE(store->WaitDurable(last).ok());
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(unregistered_durable.load(), 0);
  EXPECT_EQ(store->batches_written(), uint64_t{kThreads} * kBatches);
}

// ---- Reading while running ----

TEST_F(StoreReplicationTest, LoadSessionOfAnUnknownClientIsNullopt) {
  std::unique_ptr<Store> store = OpenStore("store");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Load(*store, "nobody"), std::nullopt);
  EXPECT_EQ(Load(*store, ""), std::nullopt);

  // Records without a session record (orphans), and neighbours, are not a session.
  Batch batch;
  batch.PutQueued("nobody", 1, Queued("orphan"));
  batch.PutInboundQos2("nobody", 1);
  batch.PutSession("nobod", Session(60));
  batch.PutSession("nobody2", Session(60));
  store->Submit(std::move(batch));
  EXPECT_EQ(Load(*store, "nobody"), std::nullopt);
  ASSERT_TRUE(Load(*store, "nobod").has_value());
  EXPECT_THAT(Load(*store, "nobod")->messages, IsEmpty());
  EXPECT_THAT(Load(*store, "nobod")->inbound_qos2, IsEmpty());
}

// LoadSession reads after everything submitted before it, without the caller waiting.
TEST_F(StoreReplicationTest, LoadSessionSeesWhatWasSubmittedBeforeIt) {
  std::unique_ptr<Store> store = OpenStore("store");
  ASSERT_NE(store, nullptr);
  Batch create;
  create.PutSession("c", Session(60));
  create.PutQueued("c", 1, Queued("one"));
  create.PutInflight("c", 1, Inflight(4));
  create.PutInboundQos2("c", 9);
  store->Submit(std::move(create));
  std::optional<LoadedSession> loaded = Load(*store, "c");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->client_id, "c");
  EXPECT_EQ(loaded->record.expiry_interval(), 60u);
  EXPECT_THAT(Seqs(*loaded), ElementsAre(1));
  ASSERT_TRUE(loaded->messages[0].inflight.has_value());
  EXPECT_EQ(loaded->messages[0].inflight->packet_id(), 4u);
  EXPECT_THAT(loaded->inbound_qos2, ElementsAre(9));

  Batch remove;
  remove.DeleteSession("c");
  store->Submit(std::move(remove));
  EXPECT_EQ(Load(*store, "c"), std::nullopt);

  // Made again: nothing of the old one comes back.
  Batch again;
  again.PutSession("c", Session(5));
  store->Submit(std::move(again));
  loaded = Load(*store, "c");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->record.expiry_interval(), 5u);
  EXPECT_THAT(loaded->messages, IsEmpty());
  EXPECT_THAT(loaded->inbound_qos2, IsEmpty());
}

// One session read while running is the session LoadSessions gives at the next start.
TEST_F(StoreReplicationTest, LoadSessionMatchesLoadSessionsAtStart) {
  const std::vector<std::string> ids = {"", "a", "a0", "ab", "b", "z"};
  std::vector<std::optional<LoadedSession>> running;
  {
    std::unique_ptr<Store> store = OpenStore("store");
    ASSERT_NE(store, nullptr);
    Batch batch;
    for (const std::string& id : {std::string("a"), std::string("ab"), std::string("z")}) {
      batch.PutSession(id, Session(60, {id}));
      batch.PutQueued(id, 300, Queued(id + "300"));
      batch.PutQueued(id, 2, Queued(id + "2"));
      batch.PutQueued(id, uint64_t{1} << 33, Queued(id + "big"));
      batch.PutInflight(id, 300, Inflight(1, true));
      batch.PutInflight(id, 7, Inflight(2));  // no queued record: dropped
      batch.PutInboundQos2(id, 65535);
      batch.PutInboundQos2(id, 3);
    }
    batch.PutQueued("a0", 1, Queued("orphan"));
    batch.PutInboundQos2("b", 1);
    batch.PutSession("", Session(1));
    store->Submit(std::move(batch));
    for (const std::string& id : ids) running.push_back(Load(*store, id));
  }
  std::unique_ptr<Store> store = OpenStore("store");
  ASSERT_NE(store, nullptr);
  std::vector<LoadedSession> at_start;
  ASSERT_TRUE(
      store->LoadSessions([&](LoadedSession&& s) { at_start.push_back(std::move(s)); }).ok());
  ASSERT_EQ(at_start.size(), 4u);
  size_t next = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (next < at_start.size() && at_start[next].client_id == ids[i]) {
      ASSERT_TRUE(running[i].has_value()) << ids[i];
      ExpectSameSession(*running[i], at_start[next]);
      ++next;
    } else {
      EXPECT_EQ(running[i], std::nullopt) << ids[i];
    }
  }
  EXPECT_EQ(next, at_start.size());
  EXPECT_THAT(Seqs(at_start[1]), ElementsAre(2, 300, uint64_t{1} << 33));
  EXPECT_TRUE(at_start[1].messages[1].inflight.has_value());
  EXPECT_THAT(at_start[1].inbound_qos2, ElementsAre(3, 65535));
}

// Each read is one snapshot: a session is never seen half-way through a batch, while other
// threads keep submitting.
TEST_F(StoreReplicationTest, LoadSessionIsConsistentWhileOthersSubmit) {
  constexpr int kBatches = 2000;
  std::unique_ptr<Store> store = OpenStore("store");
  ASSERT_NE(store, nullptr);
  std::atomic<bool> done{false};
  // Each batch adds message n and says so in the session record, atomically.
  std::thread counting([&] {
    for (int n = 1; n <= kBatches; ++n) {
      Batch batch;
      batch.PutQueued("c", n, Queued(std::to_string(n)));
      if (n % 2 == 0) batch.PutInflight("c", n, Inflight(n));
      batch.PutSession("c", Session(n));
      store->Submit(std::move(batch));
    }
    done = true;
  });
  std::thread others([&] {
    for (int n = 1; !done; ++n) {
      Batch batch;
      batch.PutSession("other", Session(1));
      batch.PutQueued("other", n, Queued("x"));
      if (n > 1) batch.DeleteMessage("other", n - 1);
      store->Submit(std::move(batch));
    }
  });
  int reads = 0;
  bool consistent = true;
  while (!done || reads == 0) {
    absl::StatusOr<std::optional<LoadedSession>> loaded = store->LoadSession("c");
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status();
      break;
    }
    ++reads;
    if (!loaded->has_value()) continue;
    const LoadedSession& session = **loaded;
    const uint32_t n = session.record.expiry_interval();
    consistent &= session.messages.size() == n;
    for (size_t i = 0; i < session.messages.size() && consistent; ++i) {
      consistent &= session.messages[i].seq == i + 1;
      consistent &= session.messages[i].inflight.has_value() == ((i + 1) % 2 == 0);
    }
    // And it reads after its own submits: a batch of this thread is always there.
    Batch mine;
    mine.PutInboundQos2("mine", static_cast<uint16_t>(reads));
    mine.PutSession("mine", Session(reads));
    store->Submit(std::move(mine));
    std::optional<LoadedSession> own = Load(*store, "mine");
    EXPECT_TRUE(own.has_value() && own->record.expiry_interval() == static_cast<uint32_t>(reads));
  }
  counting.join();
  others.join();
  EXPECT_TRUE(consistent);
  std::optional<LoadedSession> final_state = Load(*store, "c");
  ASSERT_TRUE(final_state.has_value());
  EXPECT_EQ(final_state->messages.size(), size_t{kBatches});
}

TEST_F(StoreReplicationTest, ForEachSessionListsExactlyTheLiveSessions) {
  std::unique_ptr<Store> store = OpenStore("store");
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(SessionIds(*store), IsEmpty());

  Batch batch;
  for (std::string id : {"b", "a", "ab", "c", "d"}) {
    batch.PutSession(id, Session(static_cast<uint32_t>(id.size()), {id + "/#"}));
    batch.PutQueued(id, 1, Queued(id));
  }
  batch.PutQueued("orphan", 1, Queued("x"));
  batch.PutInboundQos2("orphan", 1);
  batch.PutRetained("retained", Message("retained", "x"));
  store->Submit(std::move(batch));
  Batch changes;
  changes.DeleteSession("b");
  changes.DeleteSession("d");
  changes.PutSession("d", Session(9));
  changes.DeleteSession("never-was");
  store->Submit(std::move(changes));  // ForEachSession waits for it

  std::vector<std::pair<std::string, SessionRecord>> seen;
  ASSERT_TRUE(store
                  ->ForEachSession([&](std::string_view client_id, const SessionRecord& record) {
                    seen.emplace_back(std::string(client_id), record);
                  })
                  .ok());
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].first, "a");
  EXPECT_EQ(seen[1].first, "ab");
  EXPECT_EQ(seen[2].first, "c");
  EXPECT_EQ(seen[3].first, "d");
  EXPECT_TRUE(MessageDifferencer::Equals(seen[1].second, Session(2, {"ab/#"})));
  EXPECT_TRUE(MessageDifferencer::Equals(seen[3].second, Session(9)));
}

// A store that failed may lack what was submitted: reading it back says so instead.
TEST_F(StoreReplicationTest, ReadsOfAFailedStoreReturnItsStatus) {
  std::unique_ptr<Store> store = OpenStore("store");
  ASSERT_NE(store, nullptr);
  store->SetMinFreeBytes(UINT64_MAX);  // every group is refused as for a full disk
  Batch batch;
  batch.PutSession("c", Session(60));
  store->Submit(std::move(batch));

  absl::StatusOr<std::optional<LoadedSession>> loaded = store->LoadSession("c");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status(), store->status());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->LoadSession("other").status(), store->status());
  absl::Status listed = store->ForEachSession([](std::string_view, const SessionRecord&) {});
  EXPECT_EQ(listed, store->status());
}

}  // namespace
}  // namespace meshmq::storage
