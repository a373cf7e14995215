// Counters a node exposes (under $SYS/broker/counters/ now, Prometheus later). Every limit that
// can be hit has one, so an operator can see why messages or connections went missing.
//
// THREADING: plain relaxed atomics, written from every worker. The per-message counters
// (received/sent) are kept per worker instead (see Worker::Stats) to keep the publish path free
// of shared cache lines.
#ifndef MESHMQ_NODE_COUNTERS_H_
#define MESHMQ_NODE_COUNTERS_H_

#include <atomic>
#include <cstdint>

namespace meshmq {

class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

struct Counters {
  Counter packets_malformed;
  Counter packets_too_large;
  Counter connections_refused_max;
  Counter messages_dropped_queue_full;
  Counter messages_dropped_output_buffer;
  Counter connect_timeouts;
  Counter keepalive_timeouts;
  Counter publish_denied;
  Counter subscribe_denied;
  Counter auth_failures;
  Counter takeovers;
  Counter connections_refused_unavailable;  // CONNECT while not serving (no quorum, leaving)
  Counter wills_published;
  Counter wills_delayed;
  Counter messages_expired;
  Counter messages_dropped_packet_size;
  Counter receive_maximum_exceeded;
  Counter topic_alias_invalid;
  Counter subscriptions_refused_max;
  Counter sessions_expired;
  Counter shared_redeliveries;
  Counter sessions_restored;
  Counter retained_restored;
  Counter store_write_groups;       // group commits written (each one WAL write)
  Counter store_errors;             // failed store writes (connections waiting on them are closed)
  Counter cluster_forwarded;        // messages sent to peers (one per peer per message)
  Counter cluster_received;         // messages peers forwarded here
  Counter cluster_forward_dropped;  // QoS 0 messages not forwarded: the peer's
                                    // --cluster_max_pending_bytes was reached
  Counter cluster_forward_refused;  // QoS 1/2 messages refused at that limit (their publisher is
                                    // disconnected unacknowledged)
  Counter cluster_shared_undeliverable;  // forwarded to this node for a shared group that had no
                                         // member here any more
  Counter cluster_retained_received;     // retained changes applied from peers
  Counter cluster_sessions_moved;        // sessions taken over from another node
  Counter cluster_move_forwarded;        // messages for a session that moved away, sent after it
  Counter cluster_move_duplicates;       // copies a session that just moved here got twice, dropped
  Counter cluster_move_holds_overflowed;  // move holds ended early: max_queued messages waited
  Counter qos2_resends_dropped;          // QoS 2 resends routed again that a session already had
  Counter cluster_sessions_taken_over;   // sessions of a dead or leaving node taken over here
  Counter cluster_stale_sessions_dropped;  // own sessions dropped: another node took them later
  Counter cluster_orphans_redelivered;   // messages a dead peer never acked, delivered again
  Counter cluster_publishes_held;        // publishes that waited for a takeover
  Counter cluster_wills_published;       // wills of clients of a dead node, published here

  // Calls fn(name, value) for each counter, in a stable order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    fn("packets_malformed", packets_malformed.value());
    fn("packets_too_large", packets_too_large.value());
    fn("connections_refused_max", connections_refused_max.value());
    fn("messages_dropped_queue_full", messages_dropped_queue_full.value());
    fn("messages_dropped_output_buffer", messages_dropped_output_buffer.value());
    fn("connect_timeouts", connect_timeouts.value());
    fn("keepalive_timeouts", keepalive_timeouts.value());
    fn("publish_denied", publish_denied.value());
    fn("subscribe_denied", subscribe_denied.value());
    fn("auth_failures", auth_failures.value());
    fn("takeovers", takeovers.value());
    fn("wills_published", wills_published.value());
    fn("wills_delayed", wills_delayed.value());
    fn("messages_expired", messages_expired.value());
    fn("messages_dropped_packet_size", messages_dropped_packet_size.value());
    fn("receive_maximum_exceeded", receive_maximum_exceeded.value());
    fn("topic_alias_invalid", topic_alias_invalid.value());
    fn("subscriptions_refused_max", subscriptions_refused_max.value());
    fn("sessions_expired", sessions_expired.value());
    fn("shared_redeliveries", shared_redeliveries.value());
    fn("sessions_restored", sessions_restored.value());
    fn("retained_restored", retained_restored.value());
    fn("store_write_groups", store_write_groups.value());
    fn("connections_refused_unavailable", connections_refused_unavailable.value());
    fn("store_errors", store_errors.value());
    fn("cluster_forwarded", cluster_forwarded.value());
    fn("cluster_received", cluster_received.value());
    fn("cluster_forward_dropped", cluster_forward_dropped.value());
    fn("cluster_forward_refused", cluster_forward_refused.value());
    fn("cluster_shared_undeliverable", cluster_shared_undeliverable.value());
    fn("cluster_retained_received", cluster_retained_received.value());
    fn("cluster_sessions_moved", cluster_sessions_moved.value());
    fn("cluster_move_forwarded", cluster_move_forwarded.value());
    fn("cluster_move_duplicates", cluster_move_duplicates.value());
    fn("cluster_move_holds_overflowed", cluster_move_holds_overflowed.value());
    fn("qos2_resends_dropped", qos2_resends_dropped.value());
    fn("cluster_sessions_taken_over", cluster_sessions_taken_over.value());
    fn("cluster_stale_sessions_dropped", cluster_stale_sessions_dropped.value());
    fn("cluster_orphans_redelivered", cluster_orphans_redelivered.value());
    fn("cluster_publishes_held", cluster_publishes_held.value());
    fn("cluster_wills_published", cluster_wills_published.value());
  }
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_COUNTERS_H_
