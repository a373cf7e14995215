#include "storage/store.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "storage/schema.h"

namespace meshmq::storage {
namespace {

// Index of a column family in Store::families_. RocksDB insists on "default"; meshmq keeps
// nothing in it. Families a meshmq data dir holds beyond these (none today) follow them.
enum Family : int {
  kDefault,
  kRetained,
  kSessions,
  kQueued,
  kInflight,
  kInboundQos2,
  // Last, and the schema version is written after all of them: a first start cut short leaves
  // some of our families, all empty, and no version; Open finishes that creation.
  kMeta,
  kFamilyCount,
};

constexpr std::array<std::string_view, kFamilyCount> kFamilyNames = {
    "default",       kRetainedFamily,    kSessionsFamily, kQueuedFamily,
    kInflightFamily, kInboundQos2Family, kMetaFamily,
};

int FamilyIndex(std::string_view name) {
  for (int i = 0; i < kFamilyCount; ++i) {
    if (kFamilyNames[i] == name) return i;
  }
  return -1;
}

// The families of session records: the ones the cluster replicates (Batch::ForEachSessionOp).
bool IsSessionFamily(int family) {
  return family == kSessions || family == kQueued || family == kInflight || family == kInboundQos2;
}

// Whether `key` is a key of session family `family` (storage/schema.h).
bool IsSessionKey(int family, const std::string& key) {
  std::string client_id;
  uint64_t seq = 0;
  uint16_t packet_id = 0;
  switch (family) {
    case kSessions:
      return key.find('\0') == std::string::npos;
    case kQueued:
    case kInflight:
      return ParseMessageKey(key, &client_id, &seq);
    case kInboundQos2:
      return ParseInboundQos2Key(key, &client_id, &packet_id);
  }
  return false;
}

// Whether `value` is a record of session family `family` that LoadSession(s) can read back.
bool IsSessionValue(int family, const std::string& value) {
  switch (family) {
    case kSessions:
      return SessionRecord().ParseFromString(value);
    case kQueued:
      return QueuedRecord().ParseFromString(value);
    case kInflight:
      return InflightRecord().ParseFromString(value);
    case kInboundQos2:
      return value.empty();
  }
  return false;
}

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }
// A key as error messages show it: client ids and topics are text, seqs are not.
std::string Printable(const rocksdb::Slice& key) {
  return absl::CHexEscape(absl::string_view(key.data(), key.size()));
}

// Small on purpose: meshmqd shares a 2-core VM with everything else, and its records are small.
rocksdb::DBOptions MakeDbOptions() {
  rocksdb::DBOptions options;
  options.IncreaseParallelism(2);
  // All memtables together; each family alone is capped by write_buffer_size.
  options.db_write_buffer_size = 64 << 20;
  // With several families one that is rarely written would otherwise pin old WAL files forever.
  options.max_total_wal_size = 64 << 20;
  // RocksDB's own info LOG: a few small files, not a growing diary.
  options.keep_log_file_num = 3;
  options.max_log_file_size = 4 << 20;
  return options;
}

rocksdb::ColumnFamilyOptions MakeFamilyOptions() {
  // One block cache for all families instead of RocksDB's default of one per family.
  static const std::shared_ptr<rocksdb::TableFactory> table_factory = [] {
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rocksdb::NewLRUCache(32 << 20);
    return std::shared_ptr<rocksdb::TableFactory>(rocksdb::NewBlockBasedTableFactory(table));
  }();
  rocksdb::ColumnFamilyOptions options;
  options.write_buffer_size = 16 << 20;
  options.table_factory = table_factory;
  return options;
}

// RocksDB's answer to opening `dir`, in words that name the dir and what to do about it.
absl::Status OpenError(const std::string& dir, const rocksdb::Status& s) {
  std::string text = s.ToString();
  // Another process holds LOCK: "While lock file: <dir>/LOCK: Resource temporarily unavailable";
  // this process does: "lock hold by current process ...: <dir>/LOCK: No locks available".
  if (s.IsIOError() && absl::StrContains(text, "LOCK") &&
      (absl::StrContains(text, "Resource temporarily unavailable") ||
       absl::StrContains(text, "lock hold by current process") ||
       absl::StrContains(text, "No locks available"))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", dir, " is in use by another meshmqd (lock ", dir, "/LOCK is held)"));
  }
  if (s.IsCorruption()) {
    return absl::DataLossError(absl::StrCat("data dir ", dir, " is corrupt: ", text));
  }
  return absl::FailedPreconditionError(absl::StrCat("cannot open data dir ", dir, ": ", text));
}

absl::Status NotOurs(const std::string& dir) {
  return absl::FailedPreconditionError(absl::StrCat(
      "data dir ", dir, " holds a RocksDB database that is not meshmq's (no schema version)"));
}

// Reads sessions with their records out of one snapshot of the four session families, for
// LoadSessions at start and LoadSession while running.
//
// Client ids hold no '\0', so the byte order of client ids is the order of their
// [id '\0', id '\1') ranges: reading sessions in key order moves the three record iterators
// forward only, session by session. Records before a session's range belong to no session
// (orphans) and are skipped.
class SessionReader {
 public:
  // `upper_bound`, if not empty, ends every iterator there (RocksDB then stops at it instead of
  // stepping over the deleted records of the sessions after it).
  SessionReader(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& families,
                const std::string& dir, std::string upper_bound = {})
      : db_(db), dir_(dir), snapshot_(db->GetSnapshot()), upper_bound_(std::move(upper_bound)) {
    rocksdb::ReadOptions read;
    read.fill_cache = false;  // read once, to rebuild sessions in memory
    read.snapshot = snapshot_;
    upper_bound_slice_ = ToSlice(upper_bound_);
    if (!upper_bound_.empty()) read.iterate_upper_bound = &upper_bound_slice_;
    sessions_.reset(db->NewIterator(read, families[kSessions]));
    queued_.reset(db->NewIterator(read, families[kQueued]));
    inflight_.reset(db->NewIterator(read, families[kInflight]));
    inbound_.reset(db->NewIterator(read, families[kInboundQos2]));
  }
  ~SessionReader() {
    for (auto* it : {&sessions_, &queued_, &inflight_, &inbound_}) it->reset();
    db_->ReleaseSnapshot(snapshot_);
  }
  SessionReader(const SessionReader&) = delete;
  SessionReader& operator=(const SessionReader&) = delete;

  rocksdb::Iterator* sessions() { return sessions_.get(); }

  // Puts the record iterators at `begin` ("": the first record).
  void SeekRecords(std::string_view begin) {
    for (rocksdb::Iterator* it : {queued_.get(), inflight_.get(), inbound_.get()}) {
      it->Seek(ToSlice(begin));
    }
  }

  // The session sessions() is at, with its records. The record iterators must not be past its
  // range; they are left after it.
  absl::Status Read(LoadedSession* session) {
    session->client_id = sessions_->key().ToString();
    if (!session->record.ParseFromArray(sessions_->value().data(),
                                        static_cast<int>(sessions_->value().size()))) {
      return Corrupt("session", sessions_->key());
    }
    const std::string begin = SessionRangeBegin(session->client_id);
    const std::string end = SessionRangeEnd(session->client_id);
    std::string client_id;
    for (; Enter(queued_.get(), begin, end); queued_->Next()) {
      LoadedSession::Message message;
      if (!ParseMessageKey(ToView(queued_->key()), &client_id, &message.seq) ||
          !message.queued.ParseFromArray(queued_->value().data(),
                                         static_cast<int>(queued_->value().size()))) {
        return Corrupt("queued message", queued_->key());
      }
      session->messages.push_back(std::move(message));
    }
    // Both ascend by seq: match them like a merge. An inflight record without its queued record
    // cannot be resent, so it is dropped.
    auto next_message = session->messages.begin();
    for (; Enter(inflight_.get(), begin, end); inflight_->Next()) {
      uint64_t seq = 0;
      InflightRecord record;
      if (!ParseMessageKey(ToView(inflight_->key()), &client_id, &seq) ||
          !record.ParseFromArray(inflight_->value().data(),
                                 static_cast<int>(inflight_->value().size()))) {
        return Corrupt("in-flight record", inflight_->key());
      }
      while (next_message != session->messages.end() && next_message->seq < seq) ++next_message;
      if (next_message != session->messages.end() && next_message->seq == seq) {
        next_message->inflight = std::move(record);
      }
    }
    for (; Enter(inbound_.get(), begin, end); inbound_->Next()) {
      uint16_t packet_id = 0;
      if (!ParseInboundQos2Key(ToView(inbound_->key()), &client_id, &packet_id)) {
        return Corrupt("inbound QoS 2 record", inbound_->key());
      }
      session->inbound_qos2.push_back(packet_id);
    }
    return absl::OkStatus();
  }

  // Whether every iterator ended for lack of records rather than for an error.
  absl::Status status() {
    for (rocksdb::Iterator* it :
         {sessions_.get(), queued_.get(), inflight_.get(), inbound_.get()}) {
      if (!it->status().ok()) return OpenError(dir_, it->status());
    }
    return absl::OkStatus();
  }

 private:
  // Positions `it` at the first key of [begin, end) and says whether there is one.
  static bool Enter(rocksdb::Iterator* it, const std::string& begin, const std::string& end) {
    while (it->Valid() && it->key().compare(begin) < 0) it->Next();
    return it->Valid() && it->key().compare(end) < 0;
  }

  absl::Status Corrupt(const char* what, const rocksdb::Slice& key) const {
    return absl::DataLossError(absl::StrCat("data dir ", dir_, " is corrupt: unreadable ", what,
                                            " \"", Printable(key), "\""));
  }

  rocksdb::DB* const db_;
  const std::string& dir_;
  const rocksdb::Snapshot* const snapshot_;
  const std::string upper_bound_;
  rocksdb::Slice upper_bound_slice_;
  std::unique_ptr<rocksdb::Iterator> sessions_, queued_, inflight_, inbound_;
};

}  // namespace

// ---- Batch ----

struct Batch::Op {
  enum Kind { kPut, kDelete, kDeleteRange };
  Family family;
  Kind kind;
  std::string key;
  std::string value;  // kPut: the record; kDeleteRange: the end of the range (exclusive)
};

Batch::Batch() = default;
Batch::~Batch() = default;
Batch::Batch(Batch&& other) noexcept
    : ops_(std::move(other.ops_)),
      count_(std::exchange(other.count_, 0)),
      session_ops_(std::exchange(other.session_ops_, 0)) {
  other.ops_.clear();
}
Batch& Batch::operator=(Batch&& other) noexcept {
  ops_ = std::move(other.ops_);
  count_ = std::exchange(other.count_, 0);
  session_ops_ = std::exchange(other.session_ops_, 0);
  other.ops_.clear();
  return *this;
}

void Batch::Add(Op&& op) {
  if (IsSessionFamily(op.family)) ++session_ops_;
  ops_.push_back(std::move(op));
}

void Batch::PutRetained(std::string_view topic, const StoredMessage& message) {
  Add({kRetained, Op::kPut, std::string(topic), message.SerializeAsString()});
  ++count_;
}

void Batch::DeleteRetained(std::string_view topic) {
  Add({kRetained, Op::kDelete, std::string(topic), {}});
  ++count_;
}

void Batch::PutSession(std::string_view client_id, const SessionRecord& record) {
  Add({kSessions, Op::kPut, std::string(client_id), record.SerializeAsString()});
  ++count_;
}

void Batch::DeleteSession(std::string_view client_id) {
  Add({kSessions, Op::kDelete, std::string(client_id), {}});
  for (Family family : {kQueued, kInflight, kInboundQos2}) {
    Add({family, Op::kDeleteRange, SessionRangeBegin(client_id), SessionRangeEnd(client_id)});
  }
  ++count_;
}

void Batch::PutQueued(std::string_view client_id, uint64_t seq, const QueuedRecord& record) {
  Add({kQueued, Op::kPut, MessageKey(client_id, seq), record.SerializeAsString()});
  ++count_;
}

void Batch::PutInflight(std::string_view client_id, uint64_t seq, const InflightRecord& record) {
  Add({kInflight, Op::kPut, MessageKey(client_id, seq), record.SerializeAsString()});
  ++count_;
}

void Batch::DeleteMessage(std::string_view client_id, uint64_t seq) {
  std::string key = MessageKey(client_id, seq);
  Add({kQueued, Op::kDelete, key, {}});
  Add({kInflight, Op::kDelete, std::move(key), {}});
  ++count_;
}

void Batch::PutInboundQos2(std::string_view client_id, uint16_t packet_id) {
  Add({kInboundQos2, Op::kPut, InboundQos2Key(client_id, packet_id), {}});
  ++count_;
}

void Batch::DeleteInboundQos2(std::string_view client_id, uint16_t packet_id) {
  Add({kInboundQos2, Op::kDelete, InboundQos2Key(client_id, packet_id), {}});
  ++count_;
}

// ---- Replication ----

void Batch::ForEachSessionOp(
    const std::function<void(std::string_view client_id, RecordOp&& op)>& fn) const {
  for (const Op& op : ops_) {
    if (!IsSessionFamily(op.family)) continue;
    RecordOp record_op;
    record_op.set_family(std::string(kFamilyNames[op.family]));
    switch (op.kind) {
      case Op::kPut:
        record_op.set_kind(RecordOp::PUT);
        break;
      case Op::kDelete:
        record_op.set_kind(RecordOp::DELETE);
        break;
      case Op::kDeleteRange:
        record_op.set_kind(RecordOp::DELETE_RANGE);
        break;
    }
    record_op.set_key(op.key);
    record_op.set_value(op.value);
    // Batch's own keys always parse: in every family but sessions the id ends at the first '\0'.
    std::string_view client_id = op.key;
    if (op.family != kSessions) client_id = client_id.substr(0, client_id.find('\0'));
    fn(client_id, std::move(record_op));
  }
}

bool Batch::AddRecordOp(const RecordOp& op) {
  const int family = FamilyIndex(op.family());
  if (!IsSessionFamily(family)) return false;
  const std::string& key = op.key();
  switch (op.kind()) {
    case RecordOp::PUT:
      // A value LoadSession(s) cannot parse would make the whole session unreadable on this
      // node: it is refused here, record by record, instead.
      if (!IsSessionKey(family, key) || !IsSessionValue(family, op.value())) return false;
      Add({static_cast<Family>(family), Op::kPut, key, op.value()});
      break;
    case RecordOp::DELETE:
      if (!IsSessionKey(family, key)) return false;
      Add({static_cast<Family>(family), Op::kDelete, key, {}});
      break;
    case RecordOp::DELETE_RANGE: {
      // Only ever one whole session's records: [id '\0', id '\1'), the id holding no '\0'.
      if (family == kSessions || key.empty() || key.find('\0') != key.size() - 1) return false;
      if (op.value() != SessionRangeEnd(std::string_view(key).substr(0, key.size() - 1))) {
        return false;
      }
      Add({static_cast<Family>(family), Op::kDeleteRange, key, op.value()});
      break;
    }
    default:  // a kind this node does not know (proto3 enums keep unknown values)
      return false;
  }
  ++count_;
  return true;
}

bool ParseDurability(std::string_view text, Durability* out) {
  if (text == "process") {
    *out = Durability::kProcess;
  } else if (text == "fsync") {
    *out = Durability::kFsync;
  } else {
    return false;
  }
  return true;
}

// ---- Opening ----

Store::Store(std::string dir, Durability durability)
    : dir_(std::move(dir)), durability_(durability) {}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir, Durability durability) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status dir_status = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open data dir ", dir, ": ", ec.message()));
  }
  if (!fs::exists(dir_status)) {
    if (!fs::create_directories(dir, ec) && ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open data dir ", dir, ": cannot create it: ", ec.message()));
    }
  } else if (!fs::is_directory(dir_status)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open data dir ", dir, ": not a directory"));
  }
  // RocksDB's own test for "a database is here": CURRENT names the live MANIFEST.
  bool fresh = !fs::exists(fs::path(dir) / "CURRENT", ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open data dir ", dir, ": ", ec.message()));
  }

  std::unique_ptr<Store> store(new Store(dir, durability));
  rocksdb::DBOptions db_options = MakeDbOptions();
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  bool needs_version = fresh;
  if (fresh) {
    // error_if_exists: if a database appeared since the check above, never create over it.
    db_options.create_if_missing = true;
    db_options.error_if_exists = true;
    db_options.create_missing_column_families = true;
    for (std::string_view name : kFamilyNames) {
      descriptors.emplace_back(std::string(name), MakeFamilyOptions());
    }
  } else {
    std::vector<std::string> names;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, dir, &names);
    if (!s.ok()) return OpenError(dir, s);
    bool has_meta = false, only_ours = true;
    for (const std::string& name : names) {
      has_meta |= name == kMetaFamily;
      only_ours &= FamilyIndex(name) >= 0;
    }
    // Without a meta family this can only be ours if our own creation was cut short; then it
    // holds nothing but (some of) our families. Refuse anything else before opening it at all.
    if (!has_meta && !only_ours) return NotOurs(dir);
    for (const std::string& name : names) {
      descriptors.emplace_back(name, MakeFamilyOptions());
    }
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw_db);
  if (!s.ok()) return OpenError(dir, s);
  store->db_.reset(raw_db);
  // Our families at their enum index, any other after them; the destructor closes them all.
  store->families_.assign(kFamilyCount, nullptr);
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    int index = FamilyIndex(handle->GetName());
    if (index >= 0) {
      store->families_[index] = handle;
    } else {
      store->families_.push_back(handle);
    }
  }

  if (!fresh) {
    std::string version;
    s = store->families_[kMeta] == nullptr
            ? rocksdb::Status::NotFound()
            : store->db_->Get(rocksdb::ReadOptions(), store->families_[kMeta],
                              ToSlice(kSchemaVersionKey), &version);
    if (s.ok()) {
      int number = 0;
      if (!absl::SimpleAtoi(version, &number)) {
        return absl::DataLossError(absl::StrCat(
            "data dir ", dir, " is corrupt: unreadable schema version \"", version, "\""));
      }
      if (number != kSchemaVersion) {
        return absl::FailedPreconditionError(
            absl::StrCat("data dir ", dir, " was written with schema version ", number,
                         "; this meshmqd reads version ", kSchemaVersion));
      }
    } else if (s.IsNotFound()) {
      // No version: ours only if a first start died between creating the database and writing
      // the version, which leaves nothing but our families, all of them empty.
      for (rocksdb::ColumnFamilyHandle* handle : store->families_) {
        if (handle == nullptr) continue;
        if (FamilyIndex(handle->GetName()) < 0) return NotOurs(dir);
        std::unique_ptr<rocksdb::Iterator> it(
            store->db_->NewIterator(rocksdb::ReadOptions(), handle));
        it->SeekToFirst();
        if (!it->status().ok()) return OpenError(dir, it->status());
        if (it->Valid()) return NotOurs(dir);
      }
      needs_version = true;
    } else {
      return OpenError(dir, s);
    }
    // A version 1 store has every family; only an interrupted creation lacks some.
    for (int i = 0; i < kFamilyCount; ++i) {
      if (store->families_[i] != nullptr) continue;
      if (!needs_version) {
        return absl::DataLossError(absl::StrCat("data dir ", dir, " is corrupt: column family ",
                                                std::string(kFamilyNames[i]), " is missing"));
      }
      s = store->db_->CreateColumnFamily(MakeFamilyOptions(), std::string(kFamilyNames[i]),
                                         &store->families_[i]);
      if (!s.ok()) return OpenError(dir, s);
    }
  }
  if (needs_version) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = store->db_->Put(sync, store->families_[kMeta], ToSlice(kSchemaVersionKey),
                        absl::StrCat(kSchemaVersion));
    if (!s.ok()) return OpenError(dir, s);
  }

  store->writer_ = std::thread([raw = store.get()] { raw->WriterLoop(); });
  return store;
}

Store::~Store() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  submitted_.notify_one();
  if (writer_.joinable()) writer_.join();
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle* handle : families_) {
    if (handle != nullptr) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();
}

// ---- Loading ----

absl::Status Store::LoadRetained(const std::function<void(StoredMessage&&)>& fn) {
  rocksdb::ReadOptions read;
  read.fill_cache = false;  // read once, at start
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, families_[kRetained]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    StoredMessage message;
    if (!message.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat("data dir ", dir_,
                                              " is corrupt: unreadable retained message \"",
                                              Printable(it->key()), "\""));
    }
    fn(std::move(message));
  }
  if (!it->status().ok()) return OpenError(dir_, it->status());
  return absl::OkStatus();
}

absl::Status Store::LoadSessions(const std::function<void(LoadedSession&&)>& fn) {
  SessionReader reader(db_.get(), families_, dir_);
  reader.SeekRecords("");
  for (reader.sessions()->SeekToFirst(); reader.sessions()->Valid(); reader.sessions()->Next()) {
    LoadedSession session;
    if (absl::Status s = reader.Read(&session); !s.ok()) return s;
    fn(std::move(session));
  }
  return reader.status();
}

absl::Status Store::WaitSubmitted() {
  if (absl::Status s = WaitDurable(last_ticket()); !s.ok()) return s;
  // Failed after the wait's ticket was written: later batches may be missing.
  return status();
}

absl::StatusOr<std::optional<LoadedSession>> Store::LoadSession(std::string_view client_id) {
  if (absl::Status s = WaitSubmitted(); !s.ok()) return s;
  // Bounded by the session's range: no session key lies in [id, id '\1') but id itself.
  SessionReader reader(db_.get(), families_, dir_, SessionRangeEnd(client_id));
  rocksdb::Iterator* sessions = reader.sessions();
  sessions->Seek(ToSlice(client_id));
  if (!sessions->Valid() || ToView(sessions->key()) != client_id) {
    if (absl::Status s = reader.status(); !s.ok()) return s;
    return std::optional<LoadedSession>();
  }
  reader.SeekRecords(SessionRangeBegin(client_id));
  LoadedSession session;
  if (absl::Status s = reader.Read(&session); !s.ok()) return s;
  if (absl::Status s = reader.status(); !s.ok()) return s;
  return std::optional<LoadedSession>(std::move(session));
}

absl::Status Store::ForEachSession(
    const std::function<void(std::string_view client_id, const SessionRecord&)>& fn) {
  if (absl::Status s = WaitSubmitted(); !s.ok()) return s;
  rocksdb::ReadOptions read;  // one iterator: its own implicit snapshot
  read.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, families_[kSessions]));
  SessionRecord record;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat(
          "data dir ", dir_, " is corrupt: unreadable session \"", Printable(it->key()), "\""));
    }
    fn(ToView(it->key()), record);
  }
  if (!it->status().ok()) return OpenError(dir_, it->status());
  return absl::OkStatus();
}

// ---- Writing ----

uint64_t Store::Submit(Batch&& batch) { return Submit(std::move(batch), nullptr); }

uint64_t Store::Submit(Batch&& batch, const std::function<void(uint64_t ticket)>& on_ticket) {
  std::lock_guard lock(mu_);
  if (batch.empty()) {
    const uint64_t last = gathering_.empty() ? next_ticket_ - 1 : next_ticket_;
    if (on_ticket) on_ticket(last);
    return last;
  }
  // The writer takes the group, and publishes its ticket durable, under mu_ only: so on_ticket
  // runs before either.
  if (on_ticket) on_ticket(next_ticket_);
  gathering_.push_back(std::move(batch));
  if (gathering_.size() == 1) submitted_.notify_one();  // the writer waits only when empty
  return next_ticket_;
}

uint64_t Store::last_ticket() const {
  std::lock_guard lock(mu_);
  return gathering_.empty() ? next_ticket_ - 1 : next_ticket_;
}

absl::Status Store::WaitDurable(uint64_t ticket) {
  std::unique_lock lock(mu_);
  written_.wait(lock, [this, ticket] { return durable_ticket() >= ticket || !status_.ok(); });
  if (durable_ticket() >= ticket) return absl::OkStatus();
  return status_;
}

void Store::SetOnDurable(std::function<void(uint64_t durable)> fn) {
  std::lock_guard lock(mu_);
  on_durable_ = std::move(fn);
}

absl::Status Store::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void Store::WriterLoop() {
  rocksdb::WriteOptions write_options;
  write_options.sync = durability_ == Durability::kFsync;
  for (;;) {
    std::vector<Batch> group;
    uint64_t ticket = 0;
    bool failed = false;
    {
      std::unique_lock lock(mu_);
      submitted_.wait(lock, [this] { return !gathering_.empty() || stopping_; });
      if (gathering_.empty()) return;  // stopping, and everything submitted is written
      group.swap(gathering_);
      ticket = next_ticket_++;
      failed = !status_.ok();
    }
    // After a failed write nothing more is written: a later group must not become durable
    // while an earlier one is lost.
    if (failed) {
      // Still tell the waiters, so they can see status() and give up rather than hang.
      if (on_durable_) on_durable_(durable_ticket());
      continue;
    }

    rocksdb::WriteBatch write;
    rocksdb::Status s;
    if (min_free_bytes_ > 0) {
      struct statvfs fs {};
      if (statvfs(dir_.c_str(), &fs) == 0 &&
          static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < min_free_bytes_) {
        s = rocksdb::Status::NoSpace(absl::StrCat("less than ", min_free_bytes_,
                                                  " bytes free (--store_min_free_bytes)"));
      }
    }
    for (const Batch& batch : group) {
      if (!s.ok()) break;
      for (const Batch::Op& op : batch.ops_) {
        rocksdb::ColumnFamilyHandle* family = families_[op.family];
        switch (op.kind) {
          case Batch::Op::kPut:
            s = write.Put(family, op.key, op.value);
            break;
          case Batch::Op::kDelete:
            s = write.Delete(family, op.key);
            break;
          case Batch::Op::kDeleteRange:
            s = write.DeleteRange(family, op.key, op.value);
            break;
        }
        if (!s.ok()) break;
      }
      if (!s.ok()) break;
    }
    if (s.ok()) {
      const auto write_start = std::chrono::steady_clock::now();
      s = db_->Write(write_options, &write);
      write_latency_.Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count());
    }
    {
      std::lock_guard lock(mu_);
      if (s.ok()) {
        durable_ticket_.store(ticket, std::memory_order_release);
        groups_written_.fetch_add(1, std::memory_order_relaxed);
        batches_written_.fetch_add(group.size(), std::memory_order_relaxed);
      } else if (status_.ok()) {
        status_ = absl::UnavailableError(
            absl::StrCat("writing to data dir ", dir_, " failed: ", s.ToString()));
      }
    }
    written_.notify_all();
    if (on_durable_) on_durable_(durable_ticket());
  }
}

}  // namespace meshmq::storage
