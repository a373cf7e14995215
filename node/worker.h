// A worker: one thread, one epoll loop, and the connections it owns for life (FlashMQ's
// threadloop). Other threads reach a worker only through Post(); each cross-thread request below
// is a posted task.
//
// THREADING: Post, AdoptSocket, RequestFlush, Kick and Stop may be called from any thread;
// everything else runs on the worker's own thread.
#ifndef MESHMQ_NODE_WORKER_H_
#define MESHMQ_NODE_WORKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "node/event_loop.h"
#include "storage/store.h"

namespace meshmq {

class Broker;
class Connection;

// Why a connected client's connection ended (meshmq_disconnects_total{reason=...}).
enum class DisconnectReason : uint8_t {
  kClientDisconnect,  // the client sent DISCONNECT
  kConnectionLost,    // the socket closed or failed without DISCONNECT
  kKeepaliveTimeout,
  kSessionTakenOver,  // a new connection with its client id, here or on another node
  kProtocolError,     // malformed or forbidden input
  kPacketTooLarge,
  kServerShutdown,    // the node stopped or left the cluster
  kNotServing,        // the node lost the cluster's majority
  kClusterRefused,    // a peer could not take its message (--cluster_max_pending_bytes)
  kServerError,       // the store failed
  kAdministrativeAction,  // kicked, or its session dropped, by an administrator
  kCount
};
// The label value: "client_disconnect", "connection_lost", ...
const char* DisconnectReasonName(DisconnectReason reason);

class Worker : public EventLoop::Handler {
 public:
  // Per-worker message counters: only this worker writes them, so they cost no shared cache line.
  struct alignas(64) Stats {
    std::atomic<uint64_t> messages_received{0};
    std::atomic<uint64_t> messages_sent{0};
    std::atomic<uint64_t> connections{0};
    // For metrics (node/metrics/node_metrics.h). PUBLISH packets and their payload bytes, by QoS
    // (sent: the QoS delivered at).
    std::atomic<uint64_t> received_by_qos[3] = {};
    std::atomic<uint64_t> received_payload_bytes_by_qos[3] = {};
    std::atomic<uint64_t> sent_by_qos[3] = {};
    std::atomic<uint64_t> sent_payload_bytes_by_qos[3] = {};
    // Every byte read from and written to client sockets.
    std::atomic<uint64_t> bytes_read{0};
    std::atomic<uint64_t> bytes_written{0};
    std::atomic<uint64_t> connects{0};  // CONNECTs accepted (CONNACK sent with success)
    std::atomic<uint64_t> disconnects[static_cast<int>(DisconnectReason::kCount)] = {};

    // Adds `n` to a counter that only this worker's thread writes: a relaxed load and store, not
    // a locked read-modify-write (that, several times per message, cost over a fifth of the
    // QoS 0 fan-in rate). Readers on other threads see a value at most a little behind.
    static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
      counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
  };

  Worker(Broker* broker, int index);
  ~Worker() override;

  int index() const { return index_; }
  const Stats& stats() const { return stats_; }
  Stats& mutable_stats() { return stats_; }
  // A scratch buffer of at least `size` bytes for socket reads, this worker's thread only.
  char* read_buffer(size_t size) {
    if (read_buffer_.size() < size) read_buffer_.resize(size);
    return read_buffer_.data();
  }

  // --- Any thread ---
  void Start();
  // Closes every connection (publishing wills, as for any loss without DISCONNECT) and ends
  // the loop.
  void Stop();
  void Join();
  // False once the worker's loop has ended: the task is dropped.
  bool Post(EventLoop::Task task) { return loop_.Post(std::move(task)); }
  // Takes ownership of accepted, non-blocking sockets. One task per batch keeps a burst of
  // connections from leaving a trail of freed allocations behind.
  // `over_quota`: accepted beyond --max_connections, to be refused at CONNECT.
  void AdoptSockets(std::vector<int> fds, bool over_quota);
  // Asks the owner of `connection_id` to move its session's queued messages onto the wire.
  // Requests on the worker's own thread are batched until the end of the loop iteration.
  void RequestFlush(uint64_t connection_id);
  // Closes `connection_id` because another connection took its client id over.
  void Kick(uint64_t connection_id);
  // Closes every connection (MQTT 5 clients get DISCONNECT `reason`), without their wills when
  // `publish_wills` is false: this node stops serving while its clients go on elsewhere.
  void CloseAll(std::string reason, uint8_t disconnect_reason, bool publish_wills);
  // Input of `connection_id`, paused by a held publish (ClusterHooks::HoldPublish), goes on.
  void ResumeInput(uint64_t connection_id);
  // --- Admin (node/admin/), any thread ---
  // What the admin lists of one connection.
  struct ConnectionInfo {
    uint64_t connection_id = 0;
    std::string peer_address;  // IP:PORT
    uint8_t protocol_level = 4;  // CONNECT's: 3 (MQTT 3.1), 4 (3.1.1), 5 (5.0)
    uint16_t keep_alive = 0;     // seconds, as in force
  };
  // Each of `connection_ids` this worker still owns, given to `done` on the worker's thread.
  // False, and `done` is never called, once the loop has ended.
  bool DescribeConnections(std::vector<uint64_t> connection_ids,
                           std::function<void(std::vector<ConnectionInfo>)> done);
  // Closes `connection_id` on an administrator's request (MQTT 5: DISCONNECT 0x98), with its will
  // if `publish_will`.
  void CloseByAdmin(uint64_t connection_id, bool publish_will);
  bool InWorkerThread() const {
    return std::this_thread::get_id() == thread_id_.load(std::memory_order_relaxed);
  }

  // --- Worker thread ---
  // Output is written once per loop iteration, however many packets were queued.
  void MarkForWrite(Connection* connection);
  // The connection is destroyed at the end of the iteration, after its last output.
  void ScheduleClose(Connection* connection);
  void SetWritable(Connection* connection, bool want_write);
  // Stops (and restarts) watching the connection's socket while its CONNECT waits for peers.
  void SetReading(Connection* connection, bool reading);
  // Closes a connection whose client id a connection on another node took over.
  void CloseTakenOver(uint64_t connection_id, bool publish_will = true);
  // The cluster answered `connection_id`'s paused CONNECT.
  void OnSessionTaken(uint64_t connection_id, std::optional<storage::LoadedSession> moved);
  // `connection` holds acks that wait for a store ticket (Connection::SendDurableAck).
  void AwaitDurable(uint64_t connection_id) { durable_waiters_.push_back(connection_id); }
  // The store made everything up to `durable` durable (or failed): releases waiting acks.
  void OnDurable(uint64_t durable);
  // Cluster wait `seq` of `connection_id` completed (Connection::ClusterWaitCallback).
  void OnClusterWaitDone(uint64_t connection_id, uint64_t seq, bool ok);

  // EventLoop::Handler
  void OnIo(uint64_t token, uint32_t events) override;
  void OnIterationEnd() override;
  void OnTick(absl::Time now) override;

 private:
  Connection* Find(uint64_t connection_id);

  Broker* const broker_;
  const int index_;
  EventLoop loop_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_;  // read by publishers on other workers
  // On cache lines of its own: the owning thread writes it per message, while other threads
  // post to this worker (its queue lives next to it).
  alignas(64) Stats stats_;
  std::vector<char> read_buffer_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::vector<uint64_t> flush_requests_;
  std::vector<uint64_t> to_write_;
  std::vector<uint64_t> to_close_;
  std::vector<uint64_t> durable_waiters_;
  absl::Time next_sys_publish_ = absl::InfinitePast();
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_WORKER_H_
