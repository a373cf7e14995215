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
#ifndef MESHMQ_NODE_PERSISTENCE_H_
#define MESHMQ_NODE_PERSISTENCE_H_

#include <cstdint>
#include <map>
#include <string>

#include "node/message.h"
#include "node/subscription.h"
#include "proto/storage.pb.h"
#include "storage/store.h"

namespace meshmq {

struct QueuedMessage;

class Persistence {
 public:
  explicit Persistence(storage::Store* store) : store_(store) {}

  storage::Store& store() { return *store_; }
  // The store is going away (node shutdown): later Submits are dropped.
  void Close() { store_ = nullptr; }
  // Hands `batch` to the store and remembers its ticket as the calling thread's latest.
  void Submit(storage::Batch&& batch);
  // The ticket of the calling thread's latest Submit (0: none yet). Monotonic per thread.
  static uint64_t ThreadTicket();

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
  storage::Store* store_;
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_PERSISTENCE_H_
