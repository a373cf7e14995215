// meshmqd's durable state in RocksDB (layout: storage/schema.h): retained messages and persistent
// sessions with their subscriptions, queued and in-flight messages and inbound QoS 2 packet ids.
//
// Writes are group-committed. Any thread hands a Batch to Submit(), which appends it to the group
// being gathered and returns at once with a ticket; one writer thread writes each group as a
// single rocksdb::WriteBatch (one WAL append, one fsync under Durability::kFsync), in submission
// order, then publishes the group's ticket as durable and calls the OnDurable callback. So the
// event loops never wait on the disk: an ack that must follow durability waits for its ticket
// instead, and many acks share one write.
//
// Durability::kProcess: a group is durable once it is in RocksDB's WAL (the OS has it; it
// survives the process being killed, not the machine losing power). Durability::kFsync: the WAL
// is synced before the group counts as durable (survives power loss).
//
// A write that fails (disk full, I/O error) puts the store in a failed state: status() says why,
// later groups are not written and their tickets never become durable, so nothing is
// acknowledged that is not on disk. The OnDurable callback is still called once, so waiters can
// see status() and give up.
#ifndef MESHMQ_STORAGE_STORE_H_
#define MESHMQ_STORAGE_STORE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/metrics/histogram.h"
#include "proto/storage.pb.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace meshmq::storage {

enum class Durability { kProcess, kFsync };
// "process" or "fsync".
bool ParseDurability(std::string_view text, Durability* out);

// Changes applied together, atomically and in the order they were added.
class Batch {
 public:
  Batch();
  ~Batch();
  Batch(Batch&&) noexcept;
  Batch& operator=(Batch&&) noexcept;

  void PutRetained(std::string_view topic, const StoredMessage& message);
  void DeleteRetained(std::string_view topic);
  void PutSession(std::string_view client_id, const SessionRecord& record);
  // Removes the session and everything it holds: queued, in-flight and inbound QoS 2 records.
  void DeleteSession(std::string_view client_id);
  void PutQueued(std::string_view client_id, uint64_t seq, const QueuedRecord& record);
  void PutInflight(std::string_view client_id, uint64_t seq, const InflightRecord& record);
  // Removes both the queued and the in-flight record of message `seq`.
  void DeleteMessage(std::string_view client_id, uint64_t seq);
  void PutInboundQos2(std::string_view client_id, uint16_t packet_id);
  void DeleteInboundQos2(std::string_view client_id, uint16_t packet_id);

  bool empty() const { return count_ == 0; }
  size_t count() const { return count_; }

  // Replication (the cluster copies a session's records to another node's Store).
  //
  // Visits, in order, the changes this batch makes to session records (families sessions,
  // queued, inflight, inbound_qos2; retained ones are skipped) as RecordOps, with the client id
  // each belongs to (parsed from the key: the whole key for "sessions", the part before '\0' for
  // the others and for a DELETE_RANGE's begin key). DeleteSession is a DELETE on sessions then a
  // DELETE_RANGE on each of queued, inflight and inbound_qos2; DeleteMessage a DELETE on queued
  // then on inflight. `client_id` is valid during the call only.
  void ForEachSessionOp(
      const std::function<void(std::string_view client_id, RecordOp&& op)>& fn) const;
  // True if the batch changes any session record.
  bool has_session_ops() const { return session_ops_ > 0; }
  // Appends a change received from another node; every op ForEachSessionOp gives is accepted.
  // False (nothing appended) if its family is not one of the four session families, its kind is
  // unknown, its key does not parse as a key of that family (a client id without '\0' for
  // sessions; MessageKey / InboundQos2Key for the others), a DELETE_RANGE does not cover exactly
  // one client id's range (begin SessionRangeBegin(id), end SessionRangeEnd(id), on queued,
  // inflight or inbound_qos2), or a PUT's value is not what LoadSessions can read back (a
  // SessionRecord, QueuedRecord or InflightRecord; empty for inbound_qos2). A DELETE's value is
  // ignored. Each op appended counts as one change in count().
  bool AddRecordOp(const RecordOp& op);

 private:
  friend class Store;
  struct Op;
  void Add(Op&& op);

  std::vector<Op> ops_;
  size_t count_ = 0;
  size_t session_ops_ = 0;  // ops_ on the four session families
};

// A persistent session as read back at start.
struct LoadedSession {
  struct Message {
    uint64_t seq = 0;
    QueuedRecord queued;
    std::optional<InflightRecord> inflight;  // set if it was in flight
  };
  std::string client_id;
  SessionRecord record;
  std::vector<Message> messages;       // ascending seq: queue order
  std::vector<uint16_t> inbound_qos2;  // ascending
  // Only for a session moving between nodes (never stored): ids of the messages it received
  // lately, so the new node drops copies of them that still arrive (Session::StartMoveDedup).
  std::vector<uint64_t> recent_ids;
  // Likewise: the qos2_keys of QoS 2 messages it received lately (Message::qos2_key), so a resend
  // of one of them is dropped there too.
  std::vector<uint64_t> recent_qos2_keys;
};

class Store {
 public:
  // Opens (creating if need be) the store in directory `dir`. Refuses, with a message naming the
  // directory and the problem, a dir that another process has open (RocksDB's LOCK), one that
  // cannot be read or created, one that is corrupt, and one written with a schema version other
  // than kSchemaVersion (or a RocksDB database that is not meshmq's).
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& dir, Durability durability);
  ~Store();  // writes every submitted group, then closes
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Reading, at start, before the first Submit. Each visits records in key order.
  absl::Status LoadRetained(const std::function<void(StoredMessage&&)>& fn);
  absl::Status LoadSessions(const std::function<void(LoadedSession&&)>& fn);

  // Reading while the store runs (any thread; not from the OnDurable callback, which they may
  // wait for). Each first waits until everything submitted before the call is written, then
  // reads one consistent snapshot. If the store failed, they return its status: what is on disk
  // may then lack batches submitted before the call.
  //
  // One session as LoadSessions gives it (messages in seq order with their in-flight state,
  // inbound_qos2 ascending); nullopt if it has no session record.
  absl::StatusOr<std::optional<LoadedSession>> LoadSession(std::string_view client_id);
  // Visits every session record (client id, record) in key order.
  absl::Status ForEachSession(
      const std::function<void(std::string_view client_id, const SessionRecord&)>& fn);

  // Thread-safe; never waits on the disk. An empty batch gets the last ticket handed out.
  uint64_t Submit(Batch&& batch);
  // As Submit(batch), and calls on_ticket(ticket) once, under the store's lock, before the group
  // holding the batch can be written: so a caller can register the ticket as "not yet fully
  // durable" (it also waits for a replica) before anyone can see it durable. on_ticket must not
  // call the Store. For an empty batch it is called too, with the last ticket handed out, which
  // may already be durable.
  uint64_t Submit(Batch&& batch, const std::function<void(uint64_t ticket)>& on_ticket);
  // Every ticket <= this is durable.
  uint64_t durable_ticket() const { return durable_ticket_.load(std::memory_order_acquire); }
  // The highest ticket Submit has handed out so far.
  uint64_t last_ticket() const;
  // Blocks until `ticket` is durable (returns OK) or the store failed (returns status()). Only
  // for tickets Submit handed out: a later one never becomes durable.
  absl::Status WaitDurable(uint64_t ticket);
  // Called on the writer thread after each group is durable (or a write failed), with
  // durable_ticket(). Set once, before the first Submit.
  void SetOnDurable(std::function<void(uint64_t durable)> fn);
  // A group is not written when the data dir's file system has less than this many bytes free
  // (room RocksDB needs for its log and for flushing memtables): the store fails as for a write
  // error instead. RocksDB itself must never meet a full disk: Debian's build aborts the
  // process on the write after one that failed with ENOSPC. Set before the first Submit.
  void SetMinFreeBytes(uint64_t bytes) { min_free_bytes_ = bytes; }
  absl::Status status() const;

  uint64_t groups_written() const { return groups_written_.load(std::memory_order_relaxed); }
  uint64_t batches_written() const { return batches_written_.load(std::memory_order_relaxed); }
  // How long each group's RocksDB write took (its fsync included under kFsync), in seconds.
  const metrics::Histogram& write_latency() const { return write_latency_; }

 private:
  Store(std::string dir, Durability durability);
  void WriterLoop();
  // Waits until everything submitted so far is written; the store's status if it failed.
  absl::Status WaitSubmitted();

  const std::string dir_;
  const Durability durability_;
  std::unique_ptr<rocksdb::DB> db_;
  // Indexed by the Family enum in store.cc; families meshmq does not know follow.
  std::vector<rocksdb::ColumnFamilyHandle*> families_;

  // std::mutex and condition variables rather than absl::Mutex::Await: the writer sleeps on them,
  // and ThreadSanitizer sees std's waits (it cannot see Debian's uninstrumented Abseil's).
  // Guarded by mu_: gathering_, next_ticket_, stopping_, status_.
  mutable std::mutex mu_;
  std::condition_variable submitted_;  // gathering_ became non-empty, or stopping_
  std::condition_variable written_;    // a group was written (or failed)
  std::vector<Batch> gathering_;
  uint64_t next_ticket_ = 1;  // the ticket of the group being gathered
  bool stopping_ = false;
  absl::Status status_;
  std::function<void(uint64_t)> on_durable_;
  std::atomic<uint64_t> durable_ticket_{0};
  uint64_t min_free_bytes_ = 0;
  std::atomic<uint64_t> groups_written_{0};
  std::atomic<uint64_t> batches_written_{0};
  metrics::Histogram write_latency_;  // observed by the writer thread only
  std::thread writer_;
};

}  // namespace meshmq::storage

#endif  // MESHMQ_STORAGE_STORE_H_
