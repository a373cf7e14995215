// The bridge between the node's in-memory state and storage/: turns messages, queued deliveries,
// subscriptions and sessions into the records of proto/storage.proto and back, and hands batches
// of changes to the store.
//
// Who writes what (every write is a storage::Batch submitted by the thread that made the change,
// while it holds the lock that orders that change, so the store sees changes in the order memory
// did):
// - Session (under its mutex): queued messages, in-flight state, inbound QoS 2 packet ids, its
//   own record (subscriptions, expiry, when it went offline), for persistent sessions only.
// - SessionStore (under its mutex): deleting a session's records when it ends, so a new session
//   with the same client id always writes after the old one's records are gone.
// - RetainedStore's change hook (under its lock): retained messages.
//
// Acks that promise durability (PUBACK, PUBREC) wait for the ticket of the calling thread's
// latest Submit (ThreadTicket()): see Connection::SendDurableAck.
//
// In a cluster, a batch that changes persistent sessions is also replicated to other nodes
// (cluster/replicator.h), and its ticket counts as durable only once the replicas have it too:
// durable_ticket() is the store's durable ticket held back below the oldest ticket still being
// replicated. A ticket is registered as replicating under the store's lock, before the store can
// write it, so durable_ticket() never goes backwards.
#ifndef MESHMQ_NODE_PERSISTENCE_H_
#define MESHMQ_NODE_PERSISTENCE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "node/message.h"
#include "node/subscription.h"
#include "proto/storage.pb.h"
#include "storage/store.h"

namespace meshmq {

struct QueuedMessage;

// Where batches that change sessions are replicated (the cluster's Replicator).
class SessionReplication {
 public:
  virtual ~SessionReplication() = default;
  // `ops` (client id, change) were submitted with store ticket `ticket`; called under the lock
  // that ordered the changes (the session's), so one session's changes arrive in order. Must
  // call Persistence::ReplicaDone(ticket) exactly once, from any thread, when the replicas have
  // them (or replicating them was given up).
  virtual void Replicate(std::vector<std::pair<std::string, storage::RecordOp>> ops,
                         uint64_t ticket) = 0;
  // False while there is nobody to replicate to and no need to hold acks (a node alone in its
  // cluster): batches skip Replicate, at no cost. When peers come, every session is sent whole.
  virtual bool active() const = 0;
};

class Persistence {
 public:
  explicit Persistence(storage::Store* store) : store_(store) {}

  storage::Store& store() { return *store_; }
  // The store is going away (node shutdown): later Submits are dropped.
  void Close() { store_ = nullptr; }
  // Hands `batch` to the store (and its session changes to the replication, if any) and
  // remembers its ticket as the calling thread's latest.
  void Submit(storage::Batch&& batch);
  // Set before the first Submit that should be replicated; null: none.
  void SetReplication(SessionReplication* replication) { replication_ = replication; }
  // Every ticket <= this is durable in the store and, where replicated, on the replicas.
  uint64_t durable_ticket() const;
  // Called (any thread) whenever durable_ticket() may have advanced, with its value, and
  // whether the store just wrote a group (else a replica answered); replaces the store's own
  // OnDurable. Set once, before the first Submit.
  void SetOnDurable(std::function<void(uint64_t durable, bool store_wrote)> fn);
  // The replication of `ticket`'s changes is done (SessionReplication::Replicate).
  void ReplicaDone(uint64_t ticket);
  // The ticket of the calling thread's latest Submit (0: none yet). Monotonic per thread.
  static uint64_t ThreadTicket();
  // How many batches this thread has submitted: whether a change went to the store since some
  // point (two submits can share a ticket, so ThreadTicket() cannot tell).
  static uint64_t ThreadSubmits();

  // Records. Times: in memory a message expires on the MonotonicMillis() clock, on disk on Unix
  // milliseconds, so that the countdown survives a restart.
  static storage::StoredMessage ToRecord(const Message& message);
  static MessagePtr FromRecord(const storage::StoredMessage& record);
  static storage::QueuedRecord ToRecord(const QueuedMessage& queued);
  // Null message if the record has none (QoS 2 past PUBREC) or it could not be read.
  static QueuedMessage FromRecord(const storage::QueuedRecord& record);
  static storage::SessionRecord ToRecord(
      uint32_t expiry_interval, int64_t disconnected_at_unix_ms,
      const std::map<std::string, SubscriptionOptions>& subscriptions);
  static SubscriptionOptions FromRecord(const storage::SubscriptionRecord& record);

  static int64_t UnixMillis();

 private:
  void Notify(bool store_wrote);

  storage::Store* store_;
  SessionReplication* replication_ = nullptr;
  std::function<void(uint64_t, bool)> on_durable_;
  // Tickets whose replication is not done, with how many Submits each; the smallest mirrored in
  // min_replicating_ (UINT64_MAX: none) so durable_ticket() takes no lock.
  absl::Mutex replicating_mu_;
  std::map<uint64_t, int> replicating_ ABSL_GUARDED_BY(replicating_mu_);
  std::atomic<uint64_t> min_replicating_{UINT64_MAX};
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_PERSISTENCE_H_
