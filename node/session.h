// A client's session: the state the standard says outlives a network connection when Clean
// Session is 0 (MQTT-3.1.2-4), or for its Session Expiry Interval in MQTT 5 (3.1.2.11.2): its
// subscriptions, the QoS 1/2 messages waiting for it, the outbound messages in flight and the
// inbound QoS 2 packet ids awaiting PUBREL. One model for every protocol level: a 3.1.1 clean
// session is a session whose expiry interval is 0, a persistent one never expires.
//
// THREADING: a Session is shared. Publishers on any worker call Enqueue(); everything else is
// called by the worker that owns the session's current connection. All state is guarded by mu_;
// no method calls out while holding it except the trie updates noted below, so lock order is
// always Session::mu_ -> TopicTrie lock. Delivery hands off to the owner through its worker's
// queue: Enqueue returns the owner to wake and the owner drains with TakeSendable().
#ifndef MESHMQ_NODE_SESSION_H_
#define MESHMQ_NODE_SESSION_H_

#include <atomic>
#include <cstddef>
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "node/counters.h"
#include "node/message.h"
#include "node/subscription.h"
#include "storage/store.h"

namespace meshmq {

class Persistence;
class SharedGroup;
class Worker;

// Where a session's connection lives: the worker thread and the connection's id on it.
struct SessionOwner {
  Worker* worker = nullptr;
  uint64_t connection_id = 0;
  bool operator==(const SessionOwner& o) const {
    return worker == o.worker && connection_id == o.connection_id;
  }
};

// What only some deliveries carry, kept out of line so that the common QueuedMessage (every
// 3.1.1 delivery) stays small: queues hold many of them and the fan-out path moves them around.
struct DeliveryExtras {
  // The Subscription Identifiers of the subscriptions that matched (MQTT 5 3.3.4).
  std::vector<uint32_t> subscription_ids;
  // Set when the message came through a shared subscription, so it can go to another member of
  // the group if this one disconnects before acknowledging it.
  std::shared_ptr<SharedGroup> shared_group;
};

// One message on its way to this session, at the QoS it is delivered with.
struct QueuedMessage {
  MessagePtr message;
  uint8_t qos = 0;
  bool retain = false;  // the RETAIN flag as delivered
  // message->expires_at_ms != 0, copied at Enqueue where the message is hot in this core's cache,
  // so the owner's TakeSendable only reads messages that can expire, under the session lock.
  bool may_expire = false;
  // Null for most deliveries; immutable and shared by the copies of this QueuedMessage (queued,
  // in flight, resent).
  std::shared_ptr<const DeliveryExtras> extras;
  // The message's number in a persistent session's stored queue (storage/schema.h); 0 when it
  // is not stored (QoS 0, or the session is not persistent).
  uint64_t seq = 0;

  const SharedGroup* shared_group() const { return extras ? extras->shared_group.get() : nullptr; }
};

// What the owner must put on the wire.
struct Outgoing {
  enum class Kind { kPublish, kPubrel };
  Kind kind = Kind::kPublish;
  QueuedMessage queued;  // for kPublish
  uint16_t packet_id = 0;
  bool dup = false;
};

class Session {
 public:
  // `persistence`: where the session writes its state while it is persistent (expiry > 0); null
  // for a node without a store.
  Session(std::string client_id, uint32_t expiry_interval, Persistence* persistence = nullptr);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::string& client_id() const { return client_id_; }
  // Session Expiry Interval in seconds (codec::kSessionNeverExpires: never). 0: the session ends
  // with its connection (a 3.1.1 clean session). Set at CONNECT, changeable at DISCONNECT.
  uint32_t expiry_interval() const;
  void set_expiry_interval(uint32_t seconds);
  // Lock-free, so shared-subscription groups can skip offline members without taking this lock.
  bool online() const { return online_.load(std::memory_order_acquire); }

  // --- Any thread -------------------------------------------------------------------------
  // Queues `queued` for delivery. A QoS 0 message for an offline session is not kept
  // (MQTT-3.1.2-5 asks only for QoS 1 and 2). The limit `max_queued` counts, as Mosquitto's
  // does, the QoS 1/2 messages that wait: all of them while offline, those beyond the
  // `max_inflight` window while online. QoS 0 to a live client is bounded by its output buffer
  // instead (see Connection::DeliverPending). When a QoS 1/2 message finds the queue full, the
  // oldest QoS 0 message goes first, else the oldest waiting message (counted in `counters`).
  // Returns the owner to wake when the owner has no flush scheduled yet. `detour`: the message
  // comes the long way round a move (its old node's stand-in, or a failover's redelivery), so
  // it does not wait behind a move hold (StartMoveDedup) as the direct ones do.
  struct Limits {
    size_t max_queued = 1000;
    size_t max_inflight = 20;
  };
  std::optional<SessionOwner> Enqueue(QueuedMessage queued, const Limits& limits,
                                      Counters* counters, bool detour = false);

  // The username the session's current connection authenticated with, for ACL read checks.
  std::optional<std::string> username() const;

  // --- Owner thread -----------------------------------------------------------------------
  // Makes `owner` the session's connection. Returns the previous owner, if one was attached:
  // that connection is being taken over and must be closed.
  std::optional<SessionOwner> Attach(SessionOwner owner, std::optional<std::string> username);
  // Detaches whatever connection owns the session and returns it (for a takeover that ends the
  // session).
  std::optional<SessionOwner> ReleaseOwner();
  // Detaches `owner` if it still owns the session. Returns true if it did.
  bool Detach(const SessionOwner& owner);
  bool IsOwner(const SessionOwner& owner) const;
  // True once the session ended (a clean session closed, an expired or replaced one).
  bool discarded() const;

  // Everything in flight, for resending after a reconnect (MQTT-4.4.0-1): PUBLISH with DUP=1
  // for messages awaiting PUBACK or PUBREC, PUBREL for those awaiting PUBCOMP, in send order.
  std::vector<Outgoing> InflightForResend() const;
  // Moves queued messages into flight while the window allows (`max_inflight` QoS 1/2
  // messages), assigning packet ids, and appends what to send to `out`. Messages whose expiry
  // passed by `now_ms` are dropped instead (MQTT-3.3.2-5); returns how many. Only the owner gets
  // anything; clears the scheduled-flush mark.
  size_t TakeSendable(const SessionOwner& owner, size_t max_inflight, int64_t now_ms,
                      std::vector<Outgoing>* out);
  // Forgets an in-flight message that will never be sent (too large for the client's Maximum
  // Packet Size), freeing its window slot.
  void DropInflight(uint16_t packet_id);
  // Removes and returns the messages from shared subscriptions that this session has not
  // acknowledged yet (queued, or in flight without PUBACK/PUBREC), for delivery to another member
  // of their groups. Called when the session's connection goes.
  std::vector<QueuedMessage> TakeSharedUnacknowledged();

  // Drops the queued QoS 0 messages (their reader is too slow to take them) and clears the
  // scheduled-flush mark so the next message wakes the owner again. Returns how many.
  size_t DropQueuedQos0(const SessionOwner& owner);

  // Outbound acknowledgements (MQTT-4.3). Return false for an unknown packet id.
  bool OnPuback(uint16_t packet_id);
  // QoS 2 step 1: now awaiting PUBCOMP. A PUBREC with a failure reason code (>= 0x80, MQTT 5)
  // ends the exchange instead: `failed` forgets the message.
  bool OnPubrec(uint16_t packet_id, bool failed = false);
  bool OnPubcomp(uint16_t packet_id);

  // Inbound QoS 2 (MQTT-4.3.3, method B): a packet id is remembered from PUBLISH until PUBREL,
  // and a PUBLISH with a remembered id is not delivered again. Returns true if `packet_id` is new.
  // The id is written to the store only by JournalInboundQos2, once the message is routed: a
  // stored (or replicated) id says the message reached every subscriber, so after a restart or a
  // failover a resent PUBLISH with it is rightly dropped, and one without it is routed again.
  bool RememberInboundQos2(uint16_t packet_id);
  void JournalInboundQos2(uint16_t packet_id);
  // The keys of the QoS 2 messages queued here lately, oldest first (Message::qos2_key): they go
  // with the session to its replicas and its next node, which drop resends of them.
  std::vector<uint64_t> recent_qos2_keys() const;
  // Returns false if `packet_id` was not remembered.
  bool ForgetInboundQos2(uint16_t packet_id);
  // Inbound QoS 2 messages awaiting PUBREL: what counts against the server's Receive Maximum.
  size_t inbound_qos2_count() const;

  // Subscriptions, filter (as the client sent it, "$share/..." included) -> options. The tries
  // are the routing index; this is the session's own record, used to remove it from them and,
  // later, to persist it.
  enum class AddResult { kNew, kReplaced, kDiscarded, kLimitReached };
  // Records the subscription and calls insert_into_index() under the session lock, unless the
  // session was discarded or `max_subscriptions` (0: no limit) new filters are already there.
  template <typename Fn>
  AddResult AddSubscription(const std::string& filter, const SubscriptionOptions& options,
                            size_t max_subscriptions, Fn&& insert_into_index) {
    absl::MutexLock lock(&mu_);
    if (discarded_) return AddResult::kDiscarded;
    auto it = subscriptions_.find(filter);
    if (it != subscriptions_.end()) {
      it->second = options;
      insert_into_index();
      JournalSessionLocked();
      return AddResult::kReplaced;
    }
    if (max_subscriptions > 0 && subscriptions_.size() >= max_subscriptions) {
      return AddResult::kLimitReached;
    }
    subscriptions_.emplace(filter, options);
    insert_into_index();
    JournalSessionLocked();
    return AddResult::kNew;
  }
  template <typename Fn>
  bool RemoveSubscription(const std::string& filter, Fn&& erase_from_trie) {
    absl::MutexLock lock(&mu_);
    if (subscriptions_.erase(filter) == 0) return false;
    erase_from_trie();
    JournalSessionLocked();
    return true;
  }
  // Marks the session dead and calls fn(filter) for each subscription, under the lock, so no
  // subscription can be added after. Used when a clean session ends or is replaced.
  template <typename Fn>
  void Discard(Fn&& erase_filter_from_trie) {
    absl::MutexLock lock(&mu_);
    DiscardLocked(erase_filter_from_trie);
  }
  template <typename Fn>
  void DiscardLocked(Fn& erase_filter_from_trie) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    discarded_ = true;
    for (const auto& [filter, options] : subscriptions_) erase_filter_from_trie(filter);
    subscriptions_.clear();
    owner_.reset();
    online_.store(false, std::memory_order_release);
    pending_.reset();
    pending_qos0_ = 0;
    inflight_.clear();
    if (move_) {
      move_->held.clear();
      move_->holding = false;
    }
  }
  std::map<std::string, SubscriptionOptions> subscriptions() const;

  // --- Moving between nodes (cluster/) --------------------------------------------------------
  // The connection that owns the session, if any.
  std::optional<SessionOwner> current_owner() const;
  // Ends the session as Discard does and returns, in one step, everything it held in the form
  // the store uses (in-flight messages first, in send order, then the queue; QoS 0 left out), so
  // another node resumes it with nothing lost or duplicated.
  template <typename Fn>
  storage::LoadedSession DiscardAndExport(Fn&& erase_filter_from_trie);
  // Writes all of the session to the store: a session that arrived from another node.
  void JournalEverything();
  // In a cluster: this node's claim on the session (an HLC stamp; 0: none), stored with its
  // record so that a restart keeps it. Setting a new one writes the record.
  uint64_t claim() const;
  void set_claim(uint64_t claim);
  // Calls `fn`, under the session's lock, with a batch that writes all of the session as
  // JournalEverything would (empty, and `persistent` false, if the session is not stored): so
  // no change of the session slips between the snapshot and what `fn` does with it. For the
  // cluster's replicas (cluster/replicator.h).
  void WithSnapshot(const std::function<void(storage::Batch&&, bool persistent)>& fn);
  // Returns everything the session holds, as DiscardAndExport does, and in the same step makes
  // it a stand-in for the session that moves to another node: it keeps its subscriptions, but
  // Enqueue hands every later message to `forward` (under the session's lock) instead of
  // queuing it. So a message is either in the export or forwarded, whatever publishes race
  // with the move. Discard() the stand-in once the move is known everywhere.
  using Forwarder = std::function<void(const QueuedMessage&)>;
  storage::LoadedSession ExportAndForwardTo(Forwarder forward);
  // For a session that just moved here: until `until_ms` (MonotonicMillis()), a message whose id
  // is in `ids` or was enqueued before is dropped, since during the move one message can reach
  // the session by two paths (through the old node's stand-in and directly).
  // With `hold`, messages that come directly also wait (stored, but not sent) until
  // ReleaseMoveHold: one its publisher sent before them may still be on the stand-in's detour.
  void StartMoveDedup(const std::vector<uint64_t>& ids, int64_t until_ms, bool hold);
  // Queues what the move hold kept back, behind what came the long way meanwhile. Returns the
  // owner to wake, as Enqueue does. Nothing if no hold is on.
  std::optional<SessionOwner> ReleaseMoveHold();
  bool move_hold_on() const;

  // --- Persistence (see node/persistence.h) ------------------------------------------------
  // Stops writing this session's state and returns true if it was writing it: the caller
  // (SessionStore, under its lock) then deletes the session's records. Called when the session
  // leaves the store (ended, expired or replaced).
  bool StopPersistence();
  // Fills a new, offline session with what was stored: subscriptions (the caller adds them to
  // the routing index), queued and in-flight messages, inbound QoS 2 packet ids. Messages that
  // cannot be read back are dropped from the store.
  void Restore(const storage::LoadedSession& loaded);

  size_t queued_count() const;
  size_t inflight_count() const;

 private:
  storage::LoadedSession ExportLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds what JournalEverything writes to `batch`.
  void AddEverythingLocked(storage::Batch* batch) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Inflight {
    uint16_t packet_id = 0;
    QueuedMessage queued;
    bool awaiting_pubcomp = false;  // QoS 2 after PUBREC
  };

  uint16_t NextPacketId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True while this session's state goes to the store.
  bool journaling() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return persistence_ != nullptr && expiry_interval_ > 0 && !discarded_;
  }
  // Writes the session's record (expiry, subscriptions, offline time) if journaling.
  void JournalSessionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  storage::SessionRecord RecordLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the stored copy of a message that leaves the session, if it has one.
  void JournalForgetLocked(const QueuedMessage& queued) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<Inflight>::iterator FindInflight(uint16_t packet_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::deque<QueuedMessage>& pending() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes every queued QoS 0 message; returns how many.
  size_t DropPendingQos0() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  size_t pending_size() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_ ? pending_->size() : 0;
  }

  const std::string client_id_;
  std::atomic<bool> online_{false};  // owner_.has_value(), readable without mu_

  mutable absl::Mutex mu_;
  uint32_t expiry_interval_ ABSL_GUARDED_BY(mu_);
  uint64_t claim_ ABSL_GUARDED_BY(mu_) = 0;  // the cluster's claim stamp (claim())
  std::optional<SessionOwner> owner_ ABSL_GUARDED_BY(mu_);
  std::optional<std::string> username_ ABSL_GUARDED_BY(mu_);
  bool flush_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  bool discarded_ ABSL_GUARDED_BY(mu_) = false;
  // Allocated on first use and freed when drained: most sessions are idle most of the time,
  // and an empty libstdc++ deque still costs over 500 bytes.
  std::unique_ptr<std::deque<QueuedMessage>> pending_ ABSL_GUARDED_BY(mu_);
  size_t pending_qos0_ ABSL_GUARDED_BY(mu_) = 0;         // lets a full queue skip the QoS 0 scan
  std::vector<Inflight> inflight_ ABSL_GUARDED_BY(mu_);  // in send order, at most max_inflight
  uint16_t last_packet_id_ ABSL_GUARDED_BY(mu_) = 0;
  // Allocated on the first inbound QoS 2 message.
  std::unique_ptr<absl::flat_hash_set<uint16_t>> inbound_qos2_ ABSL_GUARDED_BY(mu_);
  // The qos2_keys of the last kRecentQos2Keys QoS 2 messages queued here (a ring, allocated on
  // the first one in a cluster): a resend routed again is dropped if its key is among them.
  static constexpr size_t kRecentQos2Keys = 2048;
  struct RecentQos2Keys {
    std::array<uint64_t, kRecentQos2Keys> keys{};
    size_t next = 0;
  };
  std::unique_ptr<RecentQos2Keys> recent_qos2_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> RecentQos2KeysLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // True if `message` is a resend this session already has (then counted); else notes its key.
  bool Qos2ResendSeenLocked(const Message& message, Counters* counters)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::map<std::string, SubscriptionOptions> subscriptions_ ABSL_GUARDED_BY(mu_);
  Persistence* persistence_ ABSL_GUARDED_BY(mu_);
  uint64_t last_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t disconnected_at_unix_ms_ ABSL_GUARDED_BY(mu_) = 0;  // 0 while online
  // Only around a move between nodes (ForwardTo, StartMoveDedup).
  struct MoveState {
    Forwarder forward;
    absl::flat_hash_set<uint64_t> seen;
    int64_t dedup_until_ms = 0;
    // The move hold (StartMoveDedup). Held messages are stored as they come, numbered from
    // 2^32 past the queue's last seq: what comes the long way meanwhile takes the numbers
    // below, so the store's order is the order they are sent in, even after a crash.
    bool holding = false;
    uint64_t held_last_seq = 0;
    std::vector<QueuedMessage> held;
  };
  std::unique_ptr<MoveState> move_ ABSL_GUARDED_BY(mu_);
  // True if the move state took `queued` (forwarded it, or dropped it as a duplicate). A
  // `detour` copy of a held message takes its place: the held one is dropped instead, and
  // `replaced_seq` set to its seq.
  bool TakenByMoveLocked(const QueuedMessage& queued, Counters* counters, bool detour,
                         std::optional<uint64_t>* replaced_seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends the held messages to the queue and ends the hold.
  void ReleaseMoveHoldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

template <typename Fn>
storage::LoadedSession Session::DiscardAndExport(Fn&& erase_filter_from_trie) {
  absl::MutexLock lock(&mu_);
  storage::LoadedSession exported = ExportLocked();
  DiscardLocked(erase_filter_from_trie);
  return exported;
}

}  // namespace meshmq

#endif  // MESHMQ_NODE_SESSION_H_
