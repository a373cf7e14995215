// The copies of other nodes' sessions (cluster/replica_store.h), in a real RocksDB store: a
// snapshot (reset) from a node makes it the copy's owner, only the owner's changes and drops
// apply, Take hands the session back as the owner had it (naming that owner), and owners,
// takeover orders and data survive a restart. Frames are built as the owner's Replicator builds them: a storage::Batch's
// changes through Batch::ForEachSessionOp.
#include "cluster/replica_store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/cluster.pb.h"
#include "storage/store.h"

namespace meshmq::cluster {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr auto kWaitLimit = std::chrono::seconds(20);

// Polls `condition` until it holds or kWaitLimit passes.
template <typename Condition>
bool WaitFor(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

storage::StoredMessage Message(std::string payload, uint32_t qos = 1) {
  storage::StoredMessage message;
  message.set_topic("t");
  message.set_payload(std::move(payload));
  message.set_qos(qos);
  return message;
}

storage::QueuedRecord Queued(std::string payload, uint32_t qos = 1) {
  storage::QueuedRecord record;
  *record.mutable_message() = Message(std::move(payload), qos);
  record.set_qos(qos);
  return record;
}

storage::InflightRecord Inflight(uint32_t packet_id, bool awaiting_pubcomp = false) {
  storage::InflightRecord record;
  record.set_packet_id(packet_id);
  record.set_awaiting_pubcomp(awaiting_pubcomp);
  return record;
}

storage::SessionRecord Session(uint32_t expiry, std::vector<std::string> filters = {}) {
  storage::SessionRecord record;
  record.set_expiry_interval(expiry);
  for (std::string& filter : filters) {
    storage::SubscriptionRecord* subscription = record.add_subscriptions();
    subscription->set_filter(std::move(filter));
    subscription->set_qos(1);
  }
  return record;
}

// The frame an owner sends for `batch`'s changes to `client_id`; a snapshot if `replicas` is
// set (the takeover order).
ReplicaOps Frame(const std::string& client_id, const storage::Batch& batch,
                 std::optional<std::vector<std::string>> replicas = std::nullopt) {
  ReplicaOps ops;
  ops.set_client_id(client_id);
  if (replicas) {
    ops.set_reset(true);
    for (const std::string& replica : *replicas) ops.add_replicas(replica);
  }
  batch.ForEachSessionOp([&](std::string_view id, storage::RecordOp&& op) {
    EXPECT_EQ(id, client_id);
    *ops.add_ops() = std::move(op);
  });
  return ops;
}

// A snapshot of a session with `expiry` and queued messages `payloads` (seq 1, 2, ...).
ReplicaOps Snapshot(const std::string& client_id, std::vector<std::string> replicas,
                    uint32_t expiry, const std::vector<std::string>& payloads = {}) {
  storage::Batch batch;
  batch.PutSession(client_id, Session(expiry, {"a/#"}));
  uint64_t seq = 0;
  for (const std::string& payload : payloads) batch.PutQueued(client_id, ++seq, Queued(payload));
  return Frame(client_id, batch, std::move(replicas));
}

std::vector<uint64_t> Seqs(const storage::LoadedSession& session) {
  std::vector<uint64_t> seqs;
  for (const auto& message : session.messages) seqs.push_back(message.seq);
  return seqs;
}

std::vector<std::string> Payloads(const storage::LoadedSession& session) {
  std::vector<std::string> payloads;
  for (const auto& message : session.messages) {
    payloads.push_back(message.queued.message().payload());
  }
  return payloads;
}

// "client owner replica,replica" for every copy, sorted.
std::vector<std::string> Describe(const ReplicaStore& store) {
  std::vector<std::string> copies;
  for (const auto& [client_id, copy] : store.All()) {
    std::string replicas;
    for (const std::string& replica : copy.replicas) {
      absl::StrAppend(&replicas, replicas.empty() ? "" : ",", replica);
    }
    copies.push_back(absl::StrCat(client_id, " ", copy.owner, " ", replicas));
  }
  std::sort(copies.begin(), copies.end());
  return copies;
}

class ReplicaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = absl::StrCat(::testing::TempDir(), "replica_store_test.", getpid(), ".", test->name());
    std::error_code ec;
    fs::remove_all(root_, ec);
    dir_ = root_ + "/replica";
    Open();
  }

  void TearDown() override {
    store_.reset();
    // Every callback has run by now: the store wrote what was left as it closed.
    for (size_t i = 0; i < calls_.size(); ++i) {
      EXPECT_EQ(calls_[i]->load(), 1) << "done #" << i << " (" << what_[i] << ")";
    }
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void Open() {
    absl::StatusOr<std::unique_ptr<ReplicaStore>> store =
        ReplicaStore::Open(dir_, storage::Durability::kProcess);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // A restart of this node.
  void Reopen() {
    store_.reset();
    Open();
  }

  // A `done` callback that counts its calls (TearDown checks each ran exactly once).
  std::function<void()> Done(std::string what) {
    calls_.push_back(std::make_shared<std::atomic<int>>(0));
    what_.push_back(std::move(what));
    return [calls = calls_.back()] { calls->fetch_add(1); };
  }
  bool Called(size_t done) const { return calls_[done]->load() > 0; }
  bool AllCalled() const {
    return std::all_of(calls_.begin(), calls_.end(), [](const auto& c) { return c->load() > 0; });
  }

  // Each of these waits for its `done`.
  void Apply(const std::string& owner, const ReplicaOps& ops) {
    const size_t done = calls_.size();
    store_->Apply(owner, ops, Done(absl::StrCat("Apply from ", owner, " ", ops.client_id())));
    ASSERT_TRUE(WaitFor([&] { return Called(done); })) << "Apply's done never called";
  }
  void Drop(const std::string& owner, const std::string& client_id) {
    const size_t done = calls_.size();
    store_->Drop(owner, client_id, Done(absl::StrCat("Drop from ", owner, " ", client_id)));
    ASSERT_TRUE(WaitFor([&] { return Called(done); })) << "Drop's done never called";
  }
  void Purge(const std::string& owner) {
    const size_t done = calls_.size();
    store_->Purge(owner, Done(absl::StrCat("Purge from ", owner)));
    ASSERT_TRUE(WaitFor([&] { return Called(done); })) << "Purge's done never called";
  }

  std::string root_;
  std::string dir_;
  std::unique_ptr<ReplicaStore> store_;
  std::vector<std::shared_ptr<std::atomic<int>>> calls_;
  std::vector<std::string> what_;
};

// ---- Snapshots and changes ----

TEST_F(ReplicaStoreTest, StartsEmpty) {
  EXPECT_EQ(store_->size(), 0u);
  EXPECT_THAT(store_->All(), IsEmpty());
  EXPECT_FALSE(store_->Find("c").has_value());
}

TEST_F(ReplicaStoreTest, ASnapshotMakesACopyOwnedByItsSender) {
  Apply("n1", Snapshot("c", {"n1", "n3", "n2"}, 3600, {"one"}));
  std::optional<ReplicaStore::Copy> copy = store_->Find("c");
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->owner, "n1");
  EXPECT_THAT(copy->replicas, ElementsAre("n1", "n3", "n2"));
  EXPECT_EQ(store_->size(), 1u);
  EXPECT_THAT(Describe(*store_), ElementsAre("c n1 n1,n3,n2"));
}

TEST_F(ReplicaStoreTest, TheOwnersChangesApply) {
  Apply("n1", Snapshot("c", {"n1", "n2"}, 3600, {"one", "two"}));
  storage::Batch batch;
  batch.PutInflight("c", 1, Inflight(10));
  batch.PutQueued("c", 3, Queued("three"));
  batch.PutInflight("c", 2, Inflight(11));
  batch.DeleteMessage("c", 1);                   // seq 1 acknowledged
  batch.PutInflight("c", 2, Inflight(11, true));  // seq 2 reached PUBREC
  batch.PutInboundQos2("c", 9);
  batch.PutInboundQos2("c", 3);
  batch.PutInboundQos2("c", 5);
  batch.DeleteInboundQos2("c", 5);
  Apply("n1", Frame("c", batch));

  std::optional<storage::LoadedSession> session = store_->Take("c");
  ASSERT_TRUE(session.has_value());
  EXPECT_THAT(Seqs(*session), ElementsAre(2, 3));
  EXPECT_THAT(Payloads(*session), ElementsAre("two", "three"));
  ASSERT_TRUE(session->messages[0].inflight.has_value());
  EXPECT_EQ(session->messages[0].inflight->packet_id(), 11u);
  EXPECT_TRUE(session->messages[0].inflight->awaiting_pubcomp());
  EXPECT_FALSE(session->messages[1].inflight.has_value());
  EXPECT_THAT(session->inbound_qos2, ElementsAre(3, 9));
}

TEST_F(ReplicaStoreTest, ChangesFromAnotherNodeAreIgnored) {
  Apply("n1", Snapshot("c", {"n1", "n2"}, 3600, {"one"}));
  storage::Batch put;
  put.PutSession("c", Session(60, {"other/#"}));
  put.PutQueued("c", 2, Queued("from n2"));
  put.PutInboundQos2("c", 4);
  Apply("n2", Frame("c", put));
  storage::Batch ack;
  ack.DeleteMessage("c", 1);
  Apply("n2", Frame("c", ack));
  storage::Batch gone;
  gone.DeleteSession("c");
  Apply("n2", Frame("c", gone));

  std::optional<ReplicaStore::Copy> copy = store_->Find("c");
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->owner, "n1");
  std::optional<storage::LoadedSession> session = store_->Take("c");
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(session->record.expiry_interval(), 3600u);
  ASSERT_EQ(session->record.subscriptions_size(), 1);
  EXPECT_EQ(session->record.subscriptions(0).filter(), "a/#");
  EXPECT_THAT(Payloads(*session), ElementsAre("one"));
  EXPECT_THAT(session->inbound_qos2, IsEmpty());
}

TEST_F(ReplicaStoreTest, ChangesWithoutASnapshotMakeNoCopy) {
  storage::Batch batch;
  batch.PutSession("c", Session(3600));
  batch.PutQueued("c", 1, Queued("one"));
  Apply("n1", Frame("c", batch));
  EXPECT_FALSE(store_->Find("c").has_value());
  EXPECT_EQ(store_->size(), 0u);
  Reopen();
  EXPECT_EQ(store_->size(), 0u);
  EXPECT_FALSE(store_->Take("c").has_value());
}

TEST_F(ReplicaStoreTest, ASnapshotFromAnotherNodeTakesTheCopyOver) {
  Apply("n1", Snapshot("c", {"n1", "n2", "n3"}, 3600, {"one", "two"}));
  storage::Batch inbound;
  inbound.PutInboundQos2("c", 4);
  Apply("n1", Frame("c", inbound));

  // The session moved to n3, which sends its snapshot: everything n1 sent is replaced.
  storage::Batch snapshot;
  snapshot.PutSession("c", Session(120, {"b/#"}));
  snapshot.PutQueued("c", 7, Queued("seven"));
  Apply("n3", Frame("c", snapshot, std::vector<std::string>{"n3", "n2"}));
  std::optional<ReplicaStore::Copy> copy = store_->Find("c");
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->owner, "n3");
  EXPECT_THAT(copy->replicas, ElementsAre("n3", "n2"));

  // A late change from n1 is ignored; n3's apply.
  storage::Batch late;
  late.PutQueued("c", 8, Queued("late from n1"));
  Apply("n1", Frame("c", late));
  storage::Batch next;
  next.PutQueued("c", 9, Queued("nine"));
  Apply("n3", Frame("c", next));
  Drop("n1", "c");
  ASSERT_TRUE(store_->Find("c").has_value());

  std::optional<storage::LoadedSession> session = store_->Take("c");
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(session->record.replica_owner(), "n3");
  EXPECT_EQ(session->record.replica_set_size(), 0);
  EXPECT_EQ(session->record.expiry_interval(), 120u);
  ASSERT_EQ(session->record.subscriptions_size(), 1);
  EXPECT_EQ(session->record.subscriptions(0).filter(), "b/#");
  EXPECT_THAT(Seqs(*session), ElementsAre(7, 9));
  EXPECT_THAT(session->inbound_qos2, IsEmpty());
}

TEST_F(ReplicaStoreTest, ASecondSnapshotFromTheOwnerReplacesTheFirst) {
  Apply("n1", Snapshot("c", {"n1", "n2", "n3"}, 3600, {"one", "two", "three"}));
  Apply("n1", Snapshot("c", {"n1", "n3"}, 60, {"only"}));
  EXPECT_THAT(Describe(*store_), ElementsAre("c n1 n1,n3"));
  std::optional<storage::LoadedSession> session = store_->Take("c");
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(session->record.expiry_interval(), 60u);
  EXPECT_THAT(Payloads(*session), ElementsAre("only"));
  EXPECT_EQ(session->record.replica_set_size(), 0);
}

TEST_F(ReplicaStoreTest, ADeletedSessionLeavesTheIndex) {
  Apply("n1", Snapshot("c", {"n1", "n2"}, 3600, {"one"}));
  Apply("n1", Snapshot("d", {"n1", "n2"}, 3600, {"one"}));
  storage::Batch batch;
  batch.DeleteSession("c");
  Apply("n1", Frame("c", batch));
  EXPECT_FALSE(store_->Find("c").has_value());
  EXPECT_THAT(Describe(*store_), ElementsAre("d n1 n1,n2"));
  EXPECT_FALSE(store_->Take("c").has_value());
  Reopen();
  EXPECT_THAT(Describe(*store_), ElementsAre("d n1 n1,n2"));
  EXPECT_FALSE(store_->Take("c").has_value());
}

TEST_F(ReplicaStoreTest, ASessionRecreatedInTheSameFrameStays) {
  Apply("n1", Snapshot("c", {"n1", "n2"}, 3600, {"one"}));
  storage::Batch batch;
  batch.DeleteSession("c");  // a clean start: the old session goes, a new one begins
  batch.PutSession("c", Session(30));
  Apply("n1", Frame("c", batch));
  std::optional<ReplicaStore::Copy> copy = store_->Find("c");
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->owner, "n1");
  Reopen();
  EXPECT_THAT(Describe(*store_), ElementsAre("c n1 n1,n2"));
  std::optional<storage::LoadedSession> session = store_->Take("c");
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(session->record.expiry_interval(), 30u);
  EXPECT_THAT(session->messages, IsEmpty());
}

// ---- Drop and Purge ----

TEST_F(ReplicaStoreTest, DropFromAnotherNodeIsIgnored) {
  Apply("n1", Snapshot("c", {"n1", "n2"}, 3600, {"one"}));
  Drop("n2", "c");
  Drop("n1", "unknown");
  EXPECT_THAT(Describe(*store_), ElementsAre("c n1 n1,n2"));
  Reopen();
  EXPECT_THAT(Describe(*store_), ElementsAre("c n1 n1,n2"));
  std::optional<storage::LoadedSession> session = store_->Take("c");
  ASSERT_TRUE(session.has_value());
  EXPECT_THAT(Payloads(*session), ElementsAre("one"));
}

TEST_F(ReplicaStoreTest, DropFromTheOwnerRemovesTheCopy) {
  Apply("n1", Snapshot("c", {"n1", "n2"}, 3600, {"one"}));
  Apply("n1", Snapshot("d", {"n1", "n2"}, 3600, {"one"}));
  Drop("n1", "c");
  EXPECT_FALSE(store_->Find("c").has_value());
  EXPECT_THAT(Describe(*store_), ElementsAre("d n1 n1,n2"));
  // Its changes no longer apply either.
  storage::Batch batch;
  batch.PutQueued("c", 2, Queued("two"));
  Apply("n1", Frame("c", batch));
  EXPECT_FALSE(store_->Find("c").has_value());
  Reopen();
  EXPECT_THAT(Describe(*store_), ElementsAre("d n1 n1,n2"));
  EXPECT_FALSE(store_->Take("c").has_value());
}

TEST_F(ReplicaStoreTest, PurgeRemovesOnlyThatOwnersCopies) {
  Apply("n1", Snapshot("a", {"n1", "n3"}, 3600, {"a1"}));
  Apply("n1", Snapshot("b", {"n1", "n3"}, 3600, {"b1"}));
  Apply("n2", Snapshot("c", {"n2", "n3"}, 3600, {"c1"}));
  Purge("n1");
  EXPECT_THAT(Describe(*store_), ElementsAre("c n2 n2,n3"));
  Purge("n9");  // holds nothing here
  EXPECT_THAT(Describe(*store_), ElementsAre("c n2 n2,n3"));
  Reopen();
  EXPECT_THAT(Describe(*store_), ElementsAre("c n2 n2,n3"));
  EXPECT_FALSE(store_->Take("a").has_value());
  EXPECT_FALSE(store_->Take("b").has_value());
  std::optional<storage::LoadedSession> session = store_->Take("c");
  ASSERT_TRUE(session.has_value());
  EXPECT_THAT(Payloads(*session), ElementsAre("c1"));
}

// ---- Take ----

TEST_F(ReplicaStoreTest, TakeReturnsTheSessionAsTheOwnerHadIt) {
  storage::Batch snapshot;
  storage::SessionRecord record = Session(3600, {"a/#", "b/+"});
  record.set_disconnected_at_unix_ms(1234);
  snapshot.PutSession("c", record);
  snapshot.PutQueued("c", 1, Queued("one", 1));
  snapshot.PutInflight("c", 1, Inflight(10));
  snapshot.PutQueued("c", 2, Queued("two", 2));
  snapshot.PutInflight("c", 2, Inflight(11, true));
  snapshot.PutQueued("c", 3, Queued("three", 0));
  snapshot.PutInboundQos2("c", 300);
  snapshot.PutInboundQos2("c", 7);
  Apply("n1", Frame("c", snapshot, std::vector<std::string>{"n1", "n2", "n3"}));
  // Queued later, in flight later: order is by seq.
  storage::Batch more;
  more.PutQueued("c", 4, Queued("four"));
  more.PutInflight("c", 3, Inflight(12));
  Apply("n1", Frame("c", more));

  std::optional<storage::LoadedSession> session = store_->Take("c");
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(session->client_id, "c");
  // The record as the owner stored it, naming the owner it is taken from (for the caller to
  // note, then clear), without the takeover order.
  EXPECT_EQ(session->record.replica_owner(), "n1");
  EXPECT_EQ(session->record.replica_set_size(), 0);
  EXPECT_EQ(session->record.expiry_interval(), 3600u);
  EXPECT_EQ(session->record.disconnected_at_unix_ms(), 1234);
  ASSERT_EQ(session->record.subscriptions_size(), 2);
  EXPECT_EQ(session->record.subscriptions(0).filter(), "a/#");
  EXPECT_EQ(session->record.subscriptions(1).filter(), "b/+");
  storage::SessionRecord expected = record;
  expected.set_replica_owner("n1");
  EXPECT_EQ(session->record.SerializeAsString(), expected.SerializeAsString());

  EXPECT_THAT(Seqs(*session), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(Payloads(*session), ElementsAre("one", "two", "three", "four"));
  EXPECT_EQ(session->messages[1].queued.qos(), 2u);
  ASSERT_TRUE(session->messages[0].inflight.has_value());
  EXPECT_EQ(session->messages[0].inflight->packet_id(), 10u);
  EXPECT_FALSE(session->messages[0].inflight->awaiting_pubcomp());
  ASSERT_TRUE(session->messages[1].inflight.has_value());
  EXPECT_EQ(session->messages[1].inflight->packet_id(), 11u);
  EXPECT_TRUE(session->messages[1].inflight->awaiting_pubcomp());
  ASSERT_TRUE(session->messages[2].inflight.has_value());
  EXPECT_EQ(session->messages[2].inflight->packet_id(), 12u);
  EXPECT_FALSE(session->messages[3].inflight.has_value());
  EXPECT_THAT(session->inbound_qos2, ElementsAre(7, 300));
}

TEST_F(ReplicaStoreTest, TakeRemovesTheCopy) {
  Apply("n1", Snapshot("c", {"n1", "n2"}, 3600, {"one"}));
  Apply("n1", Snapshot("d", {"n1", "n2"}, 3600, {"one"}));
  ASSERT_TRUE(store_->Take("c").has_value());
  EXPECT_FALSE(store_->Find("c").has_value());
  EXPECT_EQ(store_->size(), 1u);
  EXPECT_FALSE(store_->Take("c").has_value());
  // The owner's later changes find no copy to change.
  storage::Batch batch;
  batch.PutQueued("c", 2, Queued("two"));
  Apply("n1", Frame("c", batch));
  EXPECT_FALSE(store_->Find("c").has_value());
  Reopen();
  EXPECT_THAT(Describe(*store_), ElementsAre("d n1 n1,n2"));
  EXPECT_FALSE(store_->Take("c").has_value());
}

TEST_F(ReplicaStoreTest, TakeOfAnUnknownClientIsNothing) {
  EXPECT_FALSE(store_->Take("nobody").has_value());
  Apply("n1", Snapshot("c", {"n1", "n2"}, 3600));
  EXPECT_FALSE(store_->Take("nobody").has_value());
  EXPECT_EQ(store_->size(), 1u);
}

TEST_F(ReplicaStoreTest, TakeRightAfterApplySeesTheChange) {
  // No wait for `done` in between: Take reads what was applied before it.
  store_->Apply("n1", Snapshot("c", {"n1", "n2"}, 3600, {"one"}), Done("snapshot"));
  storage::Batch batch;
  batch.PutQueued("c", 2, Queued("two"));
  store_->Apply("n1", Frame("c", batch), Done("change"));
  std::optional<storage::LoadedSession> session = store_->Take("c");
  ASSERT_TRUE(session.has_value());
  EXPECT_THAT(Payloads(*session), ElementsAre("one", "two"));
  EXPECT_TRUE(WaitFor([&] { return AllCalled(); }));
}

// ---- Restart and durability ----

TEST_F(ReplicaStoreTest, ACopyKeepsItsOwnersClaimAcrossChangesAndARestart) {
  ReplicaOps snapshot = Snapshot("c", {"n1", "n2"}, 3600, {"one"});
  snapshot.set_claim(12345);
  Apply("n1", snapshot);
  ASSERT_TRUE(store_->Find("c").has_value());
  EXPECT_EQ(store_->Find("c")->claim, 12345u);
  // A change to the session record keeps it (the record is rewritten with the copy's marks).
  storage::Batch subscribe;
  subscribe.PutSession("c", Session(7200, {"a/#"}));
  Apply("n1", Frame("c", subscribe));
  Reopen();
  ASSERT_TRUE(store_->Find("c").has_value());
  EXPECT_EQ(store_->Find("c")->claim, 12345u);
  // Whoever adopts the session makes its own claim: the copy's is not handed on.
  std::optional<storage::LoadedSession> taken = store_->Take("c");
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->record.replica_claim(), 0u);
}

TEST_F(ReplicaStoreTest, ASnapshotOfAnOlderClaimDoesNotReplaceTheCopy) {
  // n3 owns the session now (claimed at 200); n2, back from a partition, still has its own
  // older one (claimed at 100) and sends it before the claims reach it.
  ReplicaOps live = Snapshot("c", {"n3", "n1"}, 3600, {"live"});
  live.set_claim(200);
  Apply("n3", live);
  ReplicaOps stale = Snapshot("c", {"n2", "n1"}, 3600, {"stale"});
  stale.set_claim(100);
  Apply("n2", stale);
  ASSERT_TRUE(store_->Find("c").has_value());
  EXPECT_EQ(store_->Find("c")->owner, "n3");
  // n2's changes, and its deletion of its stale session, leave n3's copy alone.
  storage::Batch gone;
  gone.DeleteSession("c");
  Apply("n2", Frame("c", gone));
  ASSERT_TRUE(store_->Find("c").has_value());
  EXPECT_EQ(store_->Find("c")->owner, "n3");
  // A later claim does take the copy over.
  ReplicaOps later = Snapshot("c", {"n2", "n1"}, 3600, {"later"});
  later.set_claim(300);
  Apply("n2", later);
  EXPECT_EQ(store_->Find("c")->owner, "n2");
  EXPECT_EQ(store_->Find("c")->claim, 300u);
}

TEST_F(ReplicaStoreTest, TakeHandsOnTheQos2KeysTheSessionHadLately) {
  // The snapshot brings the keys its owner's session had; a taken-over session drops resends of
  // those (Message::qos2_key), and of what the copy still holds.
  ReplicaOps snapshot = Snapshot("c", {"n1", "n2"}, 3600, {});
  snapshot.add_recent_qos2_keys(11);
  snapshot.add_recent_qos2_keys(12);
  Apply("n1", snapshot);
  std::optional<storage::LoadedSession> taken = store_->Take("c");
  ASSERT_TRUE(taken.has_value());
  EXPECT_THAT(taken->recent_qos2_keys, ElementsAre(11, 12));
}

TEST_F(ReplicaStoreTest, ARestartKeepsOwnersAndTakeoverOrders) {
  Apply("n1", Snapshot("a", {"n1", "n2", "n3"}, 3600, {"a1"}));
  Apply("n1", Snapshot("b", {"n1", "n3", "n2"}, 3600, {"b1"}));
  Apply("n2", Snapshot("c", {"n2", "n3"}, 3600, {"c1"}));
  // A record change by the owner keeps the bookkeeping too.
  storage::Batch subscribe;
  subscribe.PutSession("a", Session(7200, {"a/#", "new/#"}));
  Apply("n1", Frame("a", subscribe));
  const std::vector<std::string> before = Describe(*store_);
  ASSERT_THAT(before, ElementsAre("a n1 n1,n2,n3", "b n1 n1,n3,n2", "c n2 n2,n3"));

  Reopen();
  EXPECT_EQ(Describe(*store_), before);
  EXPECT_EQ(store_->size(), 3u);

  // Ownership holds after the restart: n2's change to a and drop of b are ignored, n1's apply.
  storage::Batch from_n2;
  from_n2.PutQueued("a", 5, Queued("from n2"));
  Apply("n2", Frame("a", from_n2));
  Drop("n2", "b");
  storage::Batch from_n1;
  from_n1.PutQueued("a", 6, Queued("from n1"));
  Apply("n1", Frame("a", from_n1));
  EXPECT_EQ(Describe(*store_), before);

  std::optional<storage::LoadedSession> a = store_->Take("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->record.expiry_interval(), 7200u);
  EXPECT_EQ(a->record.subscriptions_size(), 2);
  EXPECT_EQ(a->record.replica_owner(), "n1");
  EXPECT_EQ(a->record.replica_set_size(), 0);
  EXPECT_THAT(Payloads(*a), ElementsAre("a1", "from n1"));
  Purge("n2");
  Reopen();
  EXPECT_THAT(Describe(*store_), ElementsAre("b n1 n1,n3,n2"));
}

TEST_F(ReplicaStoreTest, EveryDoneIsCalledExactlyOnce) {
  // Frames that apply and frames that are ignored, without waiting in between.
  for (int i = 0; i < 50; ++i) {
    const std::string client = absl::StrCat("c", i % 5);
    const std::string owner = i % 3 == 0 ? "n2" : "n1";
    if (i % 7 == 0) {
      store_->Apply(owner, Snapshot(client, {owner, "n3"}, 3600, {"s"}), Done("snapshot"));
    } else if (i % 11 == 0) {
      store_->Drop(owner, client, Done("drop"));
    } else if (i % 13 == 0) {
      store_->Purge(owner, Done("purge"));
    } else {
      storage::Batch batch;
      batch.PutQueued(client, 100 + i, Queued(absl::StrCat("m", i)));
      store_->Apply(owner, Frame(client, batch), Done("change"));
    }
  }
  ASSERT_TRUE(WaitFor([&] { return AllCalled(); }));
  // TearDown checks, after the store has closed, that none was called twice.
}

TEST_F(ReplicaStoreTest, ClosingAnswersEveryWriteStillPending) {
  for (int i = 0; i < 100; ++i) {
    store_->Apply("n1", Snapshot(absl::StrCat("c", i), {"n1", "n2"}, 3600, {"one"}),
                  Done("snapshot"));
  }
  store_.reset();
  EXPECT_TRUE(AllCalled());
  Open();
  EXPECT_EQ(store_->size(), 100u);
}

// A `done` means durable: a process that dies right after the last one loses none of them.
TEST_F(ReplicaStoreTest, WhatDoneConfirmedSurvivesTheProcessDying) {
  store_.reset();  // this process's store is not needed, and a fork is best without RocksDB open
  constexpr int kSessions = 50;
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    // No gtest here: the exit code says what happened.
    absl::StatusOr<std::unique_ptr<ReplicaStore>> store =
        ReplicaStore::Open(dir_, storage::Durability::kProcess);
    if (!store.ok()) _exit(2);
    std::atomic<int> done{0};
    for (int i = 0; i < kSessions; ++i) {
      (*store)->Apply("n1", Snapshot(absl::StrCat("c", i), {"n1", "n2"}, 3600, {"one", "two"}),
                      [&done] { done.fetch_add(1); });
    }
    if (!WaitFor([&] { return done.load() == kSessions; })) _exit(3);
    _exit(0);  // no destructor: nothing gets written on the way out
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "child died with status " << status;
  ASSERT_EQ(WEXITSTATUS(status), 0);

  Open();
  EXPECT_EQ(store_->size(), static_cast<size_t>(kSessions));
  for (int i = 0; i < kSessions; ++i) {
    const std::string client = absl::StrCat("c", i);
    std::optional<ReplicaStore::Copy> copy = store_->Find(client);
    ASSERT_TRUE(copy.has_value()) << client;
    EXPECT_EQ(copy->owner, "n1");
    EXPECT_THAT(copy->replicas, ElementsAre("n1", "n2"));
    std::optional<storage::LoadedSession> session = store_->Take(client);
    ASSERT_TRUE(session.has_value()) << client;
    EXPECT_THAT(Payloads(*session), ElementsAre("one", "two"));
  }
}

}  // namespace
}  // namespace meshmq::cluster
