#include "storage/store.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "storage/schema.h"
#include "tests/storage/test_records.h"

namespace meshmq::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Loaded {
  std::vector<StoredMessage> retained;
  std::vector<LoadedSession> sessions;
};

using test::Message;
using test::Queued;

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

std::vector<uint64_t> Seqs(const LoadedSession& session) {
  std::vector<uint64_t> seqs;
  for (const LoadedSession::Message& message : session.messages) seqs.push_back(message.seq);
  return seqs;
}

std::vector<std::string> ClientIds(const Loaded& loaded) {
  std::vector<std::string> ids;
  for (const LoadedSession& session : loaded.sessions) ids.push_back(session.client_id);
  return ids;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// Waits, without assuming how long it takes, for a condition another thread makes true.
template <typename Predicate>
bool Eventually(Predicate predicate) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/meshmq_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
    dir_ = root_ + "/data";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  std::unique_ptr<Store> OpenStore(Durability durability = Durability::kProcess) {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir_, durability);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Submits and waits until it is on disk.
  static void Write(Store& store, Batch batch) {
    uint64_t ticket = store.Submit(std::move(batch));
    ASSERT_TRUE(store.WaitDurable(ticket).ok());
    EXPECT_GE(store.durable_ticket(), ticket);
  }

  Loaded Reopen(Durability durability = Durability::kProcess) {
    Loaded loaded;
    std::unique_ptr<Store> store = OpenStore(durability);
    if (store == nullptr) return loaded;
    EXPECT_TRUE(
        store->LoadRetained([&](StoredMessage&& m) { loaded.retained.push_back(std::move(m)); })
            .ok());
    EXPECT_TRUE(
        store->LoadSessions([&](LoadedSession&& s) { loaded.sessions.push_back(std::move(s)); })
            .ok());
    return loaded;
  }

  // A RocksDB database made without meshmq: `families` besides "default", then `puts` as
  // (family, key, value).
  void CreateRawDb(const std::vector<std::string>& families,
                   const std::vector<std::tuple<std::string, std::string, std::string>>& puts) {
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
        {rocksdb::kDefaultColumnFamilyName, {}}};
    for (const std::string& name : families) descriptors.push_back({name, {}});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(options, dir_, descriptors, &handles, &db);
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (const auto& [family, key, value] : puts) {
      rocksdb::ColumnFamilyHandle* handle = nullptr;
      for (rocksdb::ColumnFamilyHandle* h : handles) {
        if (h->GetName() == family) handle = h;
      }
      ASSERT_NE(handle, nullptr) << family;
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handle, key, value).ok());
    }
    for (rocksdb::ColumnFamilyHandle* handle : handles) {
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
    }
    ASSERT_TRUE(db->Close().ok());
    delete db;
  }

  static std::vector<std::string> AllFamilies() {
    return {std::string(kRetainedFamily),    std::string(kSessionsFamily),
            std::string(kQueuedFamily),      std::string(kInflightFamily),
            std::string(kInboundQos2Family), std::string(kMetaFamily)};
  }

  std::string root_;
  std::string dir_;
};

TEST_F(StoreTest, FreshStoreIsEmpty) {
  Loaded loaded = Reopen();
  EXPECT_TRUE(loaded.retained.empty());
  EXPECT_TRUE(loaded.sessions.empty());
  EXPECT_TRUE(fs::exists(dir_ + "/CURRENT"));
}

TEST_F(StoreTest, CreatesMissingParentDirs) {
  dir_ = root_ + "/a/b/data";
  ASSERT_NE(OpenStore(), nullptr);
  EXPECT_TRUE(fs::exists(dir_ + "/CURRENT"));
}

TEST_F(StoreTest, OpensAnExistingEmptyDir) {
  ASSERT_TRUE(fs::create_directory(dir_));
  std::ofstream(dir_ + "/README") << "not a database\n";
  ASSERT_NE(OpenStore(), nullptr);
  Loaded loaded = Reopen();
  EXPECT_TRUE(loaded.sessions.empty());
  EXPECT_EQ(ReadFile(dir_ + "/README"), "not a database\n");
}

TEST_F(StoreTest, RetainedRoundTrip) {
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Batch batch;
    batch.PutRetained("b/2", Message("b/2", "two"));
    batch.PutRetained("a/1", Message("a/1", "one", 2));
    batch.PutRetained("c/3", Message("c/3", "three"));
    Write(*store, std::move(batch));
    Batch more;
    more.DeleteRetained("c/3");
    more.PutRetained("b/2", Message("b/2", "two again"));
    Write(*store, std::move(more));
  }
  Loaded loaded = Reopen();
  ASSERT_EQ(loaded.retained.size(), 2u);
  EXPECT_EQ(loaded.retained[0].topic(), "a/1");
  EXPECT_EQ(loaded.retained[0].payload(), "one");
  EXPECT_EQ(loaded.retained[0].qos(), 2u);
  EXPECT_EQ(loaded.retained[1].topic(), "b/2");
  EXPECT_EQ(loaded.retained[1].payload(), "two again");
}

TEST_F(StoreTest, SessionRoundTripWithSubscriptions) {
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    SessionRecord record = Session(0xFFFFFFFF, {"a/#", "$share/g/b/+"});
    record.set_disconnected_at_unix_ms(1700000000123);
    record.mutable_subscriptions(1)->set_subscription_id(7);
    record.mutable_subscriptions(1)->set_no_local(true);
    Batch batch;
    batch.PutSession("client-1", record);
    Write(*store, std::move(batch));
  }
  Loaded loaded = Reopen();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  const LoadedSession& session = loaded.sessions[0];
  EXPECT_EQ(session.client_id, "client-1");
  EXPECT_EQ(session.record.expiry_interval(), 0xFFFFFFFFu);
  EXPECT_EQ(session.record.disconnected_at_unix_ms(), 1700000000123);
  ASSERT_EQ(session.record.subscriptions_size(), 2);
  EXPECT_EQ(session.record.subscriptions(0).filter(), "a/#");
  EXPECT_EQ(session.record.subscriptions(1).filter(), "$share/g/b/+");
  EXPECT_EQ(session.record.subscriptions(1).subscription_id(), 7u);
  EXPECT_TRUE(session.record.subscriptions(1).no_local());
  EXPECT_TRUE(session.messages.empty());
  EXPECT_TRUE(session.inbound_qos2.empty());
}

TEST_F(StoreTest, QueuedAndInflightComeBackInSeqOrder) {
  const uint64_t kBig = (uint64_t{1} << 32) + 5;
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Batch batch;
    batch.PutSession("c", Session(60));
    // Out of order, and across byte boundaries: only big-endian keys sort these right.
    batch.PutQueued("c", kBig, Queued("big"));
    batch.PutQueued("c", 300, Queued("300", 2));
    batch.PutQueued("c", 2, Queued("2"));
    batch.PutQueued("c", 1, Queued("1"));
    batch.PutQueued("c", 256, Queued("256"));
    InflightRecord inflight;
    inflight.set_packet_id(42);
    batch.PutInflight("c", 300, inflight);
    Write(*store, std::move(batch));

    Batch acks;
    acks.DeleteMessage("c", 2);
    // QoS 2 after PUBREC: the message is gone, only PUBREL is resent.
    QueuedRecord released;
    released.set_qos(2);
    acks.PutQueued("c", 256, released);
    inflight.set_packet_id(43);
    inflight.set_awaiting_pubcomp(true);
    acks.PutInflight("c", 256, inflight);
    Write(*store, std::move(acks));
  }
  Loaded loaded = Reopen();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  const LoadedSession& session = loaded.sessions[0];
  EXPECT_THAT(Seqs(session), ElementsAre(1, 256, 300, kBig));
  EXPECT_EQ(session.messages[0].queued.message().payload(), "1");
  EXPECT_FALSE(session.messages[0].inflight.has_value());

  EXPECT_FALSE(session.messages[1].queued.has_message());
  ASSERT_TRUE(session.messages[1].inflight.has_value());
  EXPECT_EQ(session.messages[1].inflight->packet_id(), 43u);
  EXPECT_TRUE(session.messages[1].inflight->awaiting_pubcomp());

  EXPECT_EQ(session.messages[2].queued.message().payload(), "300");
  EXPECT_EQ(session.messages[2].queued.qos(), 2u);
  ASSERT_TRUE(session.messages[2].inflight.has_value());
  EXPECT_EQ(session.messages[2].inflight->packet_id(), 42u);
  EXPECT_FALSE(session.messages[2].inflight->awaiting_pubcomp());

  EXPECT_EQ(session.messages[3].queued.message().payload(), "big");
  EXPECT_FALSE(session.messages[3].inflight.has_value());
}

TEST_F(StoreTest, DeleteMessageRemovesQueuedAndInflight) {
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Batch batch;
    batch.PutSession("c", Session(60));
    batch.PutQueued("c", 1, Queued("1"));
    InflightRecord inflight;
    inflight.set_packet_id(1);
    batch.PutInflight("c", 1, inflight);
    Write(*store, std::move(batch));
    Batch ack;
    ack.DeleteMessage("c", 1);
    // Queued again under the same seq, not in flight: the old in-flight record must not return.
    ack.PutQueued("c", 1, Queued("1 again"));
    Write(*store, std::move(ack));
  }
  Loaded loaded = Reopen();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  ASSERT_EQ(loaded.sessions[0].messages.size(), 1u);
  EXPECT_EQ(loaded.sessions[0].messages[0].queued.message().payload(), "1 again");
  EXPECT_FALSE(loaded.sessions[0].messages[0].inflight.has_value());
}

TEST_F(StoreTest, InboundQos2PutAndDelete) {
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Batch batch;
    batch.PutSession("c", Session(60));
    batch.PutInboundQos2("c", 300);
    batch.PutInboundQos2("c", 7);
    batch.PutInboundQos2("c", 65535);
    Write(*store, std::move(batch));
    Batch release;
    release.DeleteInboundQos2("c", 65535);
    Write(*store, std::move(release));
  }
  Loaded loaded = Reopen();
  ASSERT_EQ(loaded.sessions.size(), 1u);
  EXPECT_THAT(loaded.sessions[0].inbound_qos2, ElementsAre(7, 300));
}

// "a" is a prefix of "ab": deleting "a" must leave every record of "ab" alone.
TEST_F(StoreTest, DeleteSessionRemovesOnlyThatClient) {
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Batch batch;
    InflightRecord inflight;
    inflight.set_packet_id(9);
    for (std::string id : {"a", "ab", "b"}) {
      batch.PutSession(id, Session(60));
      batch.PutQueued(id, 1, Queued(id + "1"));
      batch.PutQueued(id, uint64_t{1} << 40, Queued(id + "2"));
      batch.PutInflight(id, 1, inflight);
      batch.PutInboundQos2(id, 5);
    }
    Write(*store, std::move(batch));
    Batch remove;
    remove.DeleteSession("a");
    Write(*store, std::move(remove));
  }
  Loaded loaded = Reopen();
  EXPECT_THAT(ClientIds(loaded), ElementsAre("ab", "b"));
  for (const LoadedSession& session : loaded.sessions) {
    EXPECT_THAT(Seqs(session), ElementsAre(1, uint64_t{1} << 40)) << session.client_id;
    EXPECT_EQ(session.messages[0].queued.message().payload(), session.client_id + "1");
    EXPECT_TRUE(session.messages[0].inflight.has_value());
    EXPECT_THAT(session.inbound_qos2, ElementsAre(5));
  }

  // A session of the same id made later starts empty.
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Batch batch;
    batch.PutSession("a", Session(60));
    Write(*store, std::move(batch));
  }
  loaded = Reopen();
  ASSERT_THAT(ClientIds(loaded), ElementsAre("a", "ab", "b"));
  EXPECT_TRUE(loaded.sessions[0].messages.empty());
  EXPECT_TRUE(loaded.sessions[0].inbound_qos2.empty());
}

// Records of a client with no session record belong to nobody; they must not end up in a
// neighbour's session.
TEST_F(StoreTest, OrphanRecordsAreIgnored) {
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Batch batch;
    InflightRecord inflight;
    inflight.set_packet_id(1);
    for (std::string orphan : {"0", "m", "z", "a0"}) {
      batch.PutQueued(orphan, 1, Queued("orphan"));
      batch.PutInflight(orphan, 1, inflight);
      batch.PutInboundQos2(orphan, 1);
    }
    batch.PutSession("a", Session(60));
    batch.PutQueued("a", 2, Queued("a2"));
    batch.PutSession("n", Session(60));
    batch.PutInflight("n", 3, inflight);  // in flight without a queued record
    batch.PutInboundQos2("n", 4);
    Write(*store, std::move(batch));
  }
  Loaded loaded = Reopen();
  ASSERT_THAT(ClientIds(loaded), ElementsAre("a", "n"));
  EXPECT_THAT(Seqs(loaded.sessions[0]), ElementsAre(2));
  EXPECT_FALSE(loaded.sessions[0].messages[0].inflight.has_value());
  EXPECT_TRUE(loaded.sessions[0].inbound_qos2.empty());
  EXPECT_TRUE(loaded.sessions[1].messages.empty());
  EXPECT_THAT(loaded.sessions[1].inbound_qos2, ElementsAre(4));
}

TEST_F(StoreTest, TicketsIncreaseAndOnDurableReportsThem) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::atomic<uint64_t> reported{0};
  store->SetOnDurable([&](uint64_t durable) { reported.store(durable); });

  Batch empty;
  EXPECT_EQ(store->Submit(std::move(empty)), 0u);  // nothing handed out yet
  EXPECT_TRUE(store->WaitDurable(0).ok());

  uint64_t previous = 0;
  for (int i = 0; i < 20; ++i) {
    Batch batch;
    batch.PutRetained("t/" + std::to_string(i), Message("t", "x"));
    uint64_t ticket = store->Submit(std::move(batch));
    EXPECT_GE(ticket, 1u);
    EXPECT_GE(ticket, previous);
    EXPECT_EQ(store->last_ticket(), ticket);
    previous = ticket;
  }
  // An empty batch waits for everything submitted before it.
  Batch nothing;
  EXPECT_EQ(store->Submit(std::move(nothing)), previous);
  EXPECT_TRUE(store->WaitDurable(previous).ok());
  EXPECT_GE(store->durable_ticket(), previous);
  EXPECT_TRUE(Eventually([&] { return reported.load() >= previous; }));
  EXPECT_EQ(store->batches_written(), 20u);
  EXPECT_LE(store->groups_written(), store->batches_written());
  EXPECT_TRUE(store->status().ok());

  // Once everything is durable, a new batch gets a new, higher ticket.
  Batch later;
  later.PutRetained("later", Message("later", "x"));
  uint64_t ticket = store->Submit(std::move(later));
  EXPECT_GT(ticket, previous);
  EXPECT_TRUE(store->WaitDurable(ticket).ok());
  EXPECT_TRUE(Eventually([&] { return reported.load() >= ticket; }));
}

// The destructor writes what was submitted and not yet written.
TEST_F(StoreTest, CloseWritesPendingBatches) {
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 100; ++i) {
      Batch batch;
      batch.PutRetained("t/" + std::to_string(1000 + i), Message("t", "x"));
      store->Submit(std::move(batch));
    }
  }
  EXPECT_EQ(Reopen().retained.size(), 100u);
}

TEST_F(StoreTest, ConcurrentSubmittersShareGroups) {
  constexpr int kThreads = 4;
  constexpr int kBatches = 2000;
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&store, t] {
        const std::string client_id = "client-" + std::to_string(t);
        Batch session;
        session.PutSession(client_id, Session(60));
        store->Submit(std::move(session));
        uint64_t last = 0;
        for (int i = 1; i <= kBatches; ++i) {
          Batch batch;
          batch.PutQueued(client_id, i, Queued(std::to_string(i)));
          last = store->Submit(std::move(batch));
        }
        EXPECT_TRUE(store->WaitDurable(last).ok());
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(store->batches_written(), uint64_t{kThreads} * (kBatches + 1));
    EXPECT_LE(store->groups_written(), store->batches_written());
    EXPECT_GE(store->groups_written(), 1u);
  }
  Loaded loaded = Reopen();
  ASSERT_EQ(loaded.sessions.size(), size_t{kThreads});
  for (const LoadedSession& session : loaded.sessions) {
    ASSERT_EQ(session.messages.size(), size_t{kBatches}) << session.client_id;
    for (int i = 0; i < kBatches; ++i) {
      EXPECT_EQ(session.messages[i].seq, uint64_t(i + 1));
      EXPECT_EQ(session.messages[i].queued.message().payload(), std::to_string(i + 1));
    }
  }
}

TEST_F(StoreTest, BothDurabilitiesWrite) {
  for (Durability durability : {Durability::kProcess, Durability::kFsync}) {
    const std::string topic = durability == Durability::kFsync ? "fsync" : "process";
    {
      std::unique_ptr<Store> store = OpenStore(durability);
      ASSERT_NE(store, nullptr);
      Batch batch;
      batch.PutRetained(topic, Message(topic, "x"));
      batch.PutSession(topic, Session(1));
      Write(*store, std::move(batch));
    }
    Loaded loaded = Reopen(durability);
    bool found = false;
    for (const StoredMessage& message : loaded.retained) found |= message.topic() == topic;
    EXPECT_TRUE(found) << topic;
  }
  Loaded loaded = Reopen();
  EXPECT_EQ(loaded.retained.size(), 2u);
  EXPECT_THAT(ClientIds(loaded), ElementsAre("fsync", "process"));
}

TEST(ParseDurabilityTest, KnowsBothNames) {
  Durability durability = Durability::kFsync;
  EXPECT_TRUE(ParseDurability("process", &durability));
  EXPECT_EQ(durability, Durability::kProcess);
  EXPECT_TRUE(ParseDurability("fsync", &durability));
  EXPECT_EQ(durability, Durability::kFsync);
  EXPECT_FALSE(ParseDurability("FSYNC", &durability));
  EXPECT_FALSE(ParseDurability("", &durability));
}

// ---- Data dirs meshmqd must refuse ----

TEST_F(StoreTest, SecondOpenOfTheSameDirIsRefused) {
  std::unique_ptr<Store> first = OpenStore();
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open(dir_, Durability::kProcess);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use"));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(dir_));

  // The first keeps working.
  Batch batch;
  batch.PutRetained("t", Message("t", "x"));
  Write(*first, std::move(batch));
  first.reset();
  EXPECT_EQ(Reopen().retained.size(), 1u);
}

TEST_F(StoreTest, RegularFileIsRefused) {
  std::ofstream(dir_) << "a file\n";
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir_, Durability::kProcess);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(dir_));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not a directory"));
  EXPECT_EQ(ReadFile(dir_), "a file\n");

  // Nor can a dir be made under a file.
  store = Store::Open(dir_ + "/sub", Durability::kProcess);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(dir_ + "/sub"));
}

TEST_F(StoreTest, UnknownSchemaVersionIsRefused) {
  CreateRawDb(AllFamilies(), {{std::string(kMetaFamily), std::string(kSchemaVersionKey), "999"},
                              {std::string(kSessionsFamily), "c", ""}});
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir_, Durability::kProcess);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("schema version 999"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(dir_));
  // Refusing changed nothing: still version 999.
  store = Store::Open(dir_, Durability::kProcess);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("schema version 999"));
}

TEST_F(StoreTest, ForeignRocksDbIsRefused) {
  CreateRawDb({"things"}, {{"things", "k", "v"}});
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir_, Durability::kProcess);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not meshmq's"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(dir_));
}

TEST_F(StoreTest, ForeignRocksDbWithOnlyDefaultFamilyIsRefused) {
  CreateRawDb({}, {{"default", "k", "v"}});
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir_, Durability::kProcess);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not meshmq's"));
}

TEST_F(StoreTest, MetaFamilyWithoutVersionButWithDataIsRefused) {
  CreateRawDb(AllFamilies(), {{std::string(kRetainedFamily), "t", ""}});
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir_, Durability::kProcess);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not meshmq's"));
}

// A first start that died after RocksDB created the database but before the schema version was
// written leaves our families, empty. That is finished, not refused.
TEST_F(StoreTest, InterruptedCreationIsFinished) {
  CreateRawDb({std::string(kRetainedFamily), std::string(kSessionsFamily)}, {});
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Batch batch;
    batch.PutSession("c", Session(60));
    batch.PutInboundQos2("c", 1);
    Write(*store, std::move(batch));
  }
  Loaded loaded = Reopen();
  ASSERT_THAT(ClientIds(loaded), ElementsAre("c"));
  EXPECT_THAT(loaded.sessions[0].inbound_qos2, ElementsAre(1));
}

TEST_F(StoreTest, CorruptDirIsRefusedAndLeftAlone) {
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Batch batch;
    batch.PutRetained("t", Message("t", "x"));
    Write(*store, std::move(batch));
  }
  std::vector<std::string> files_before;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir_)) {
    files_before.push_back(entry.path().filename());
  }
  const std::string garbage = "\x01\x02 this is not a MANIFEST name";
  std::ofstream(dir_ + "/CURRENT", std::ios::binary | std::ios::trunc) << garbage;

  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir_, Durability::kProcess);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(dir_));
  EXPECT_EQ(ReadFile(dir_ + "/CURRENT"), garbage);
  for (const std::string& name : files_before) {
    EXPECT_TRUE(fs::exists(fs::path(dir_) / name)) << name;
  }
}

}  // namespace
}  // namespace meshmq::storage
