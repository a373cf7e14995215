// Copies of persistent sessions that other nodes own, kept so that one of them can be taken over
// here if its owner dies (cluster/replicator.h is the sending side). They live in a second
// RocksDB store, <data_dir>/replica, with the schema of the node's own (storage/schema.h): the
// owner's record changes are applied there as they come, record by record.
//
// Each copy belongs to the node that last sent a snapshot of it (ReplicaOps.reset): changes and
// drops from any other node are ignored, so a session that moved between owners is never
// corrupted by a late frame from its previous one. The owner and the takeover order are kept in
// the copy's SessionRecord (replica_owner, replica_set), so they survive a restart.
//
// THREADING: thread-safe; `done` callbacks run on the store's writer thread (or the caller's).
#ifndef MESHMQ_CLUSTER_REPLICA_STORE_H_
#define MESHMQ_CLUSTER_REPLICA_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/cluster.pb.h"
#include "storage/store.h"

namespace meshmq::cluster {

class ReplicaStore {
 public:
  struct Copy {
    std::string owner;
    std::vector<std::string> replicas;  // takeover order
    uint64_t claim = 0;                 // the owner's claim (HLC) when it sent the copy
    // Ids of its messages by seq, and of the last kMaxDoneIds it finished (its owner delivered
    // them): a session taken over drops copies of those that are redelivered (orphans).
    std::map<uint64_t, uint64_t> ids_by_seq;
    std::deque<uint64_t> done_ids;
    // The same for QoS 2 messages' qos2_keys (Message::qos2_key): a resend of one is dropped too.
    std::map<uint64_t, uint64_t> qos2_keys_by_seq;
    std::deque<uint64_t> done_qos2_keys;
  };
  static constexpr size_t kMaxDoneIds = 1000;

  static absl::StatusOr<std::unique_ptr<ReplicaStore>> Open(const std::string& dir,
                                                            storage::Durability durability);
  ~ReplicaStore();

  // Applies a ReplicaOps frame from `owner`; `done` once it is durable here.
  void Apply(const std::string& owner, const ReplicaOps& ops, std::function<void()> done);
  // Forgets `owner`'s copy of `client_id` / every copy `owner` has here.
  void Drop(const std::string& owner, const std::string& client_id, std::function<void()> done);
  void Purge(const std::string& owner, std::function<void()> done);

  std::optional<Copy> Find(const std::string& client_id) const;
  // Every copy, by client id.
  std::vector<std::pair<std::string, Copy>> All() const;
  size_t size() const;
  // Removes the copy of `client_id` and returns the session it holds (its record still naming
  // the replica_owner, for the caller to note and clear before Broker::ImportSession; its
  // recent_ids the messages the owner finished lately); nullopt if there is none (or it cannot
  // be read).
  std::optional<storage::LoadedSession> Take(const std::string& client_id);

 private:
  explicit ReplicaStore(std::unique_ptr<storage::Store> store);
  // Submits `batch` and calls `done` once it is durable.
  void Write(storage::Batch&& batch, std::function<void()> done);
  void OnDurable(uint64_t durable, bool failed);
  // Follows the ids of `copy`'s queued messages through `op`.
  static void TrackIds(const storage::RecordOp& op, Copy* copy);

  std::unique_ptr<storage::Store> store_;
  // Serializes index changes with the Submits that make them, so the store sees one client id's
  // changes in index order.
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Copy> copies_ ABSL_GUARDED_BY(mu_);

  absl::Mutex waiters_mu_;
  std::multimap<uint64_t, std::function<void()>> waiters_ ABSL_GUARDED_BY(waiters_mu_);
};

}  // namespace meshmq::cluster

#endif  // MESHMQ_CLUSTER_REPLICA_STORE_H_
