// The links between nodes (proto/cluster.proto): membership, one outbound Link stream per peer
// with batching, acknowledgements and flow control, heartbeats and failure detection, and the
// TakeSession call. It knows nothing of MQTT: what frames mean is the Handler's business.
//
// - Peers come from --peers (seeds), from --peers_dns (A records, re-resolved every
//   dns_interval) and from what peers tell us (Hello.advertise, Hello/Heartbeat.members). An
//   address that turns out to be this node (Hello reply with our own node id) is ignored from
//   then on; two addresses of one node id keep one link.
// - Outbound: a gRPC callback-API ClientBidiReactor per peer. The first frame is Hello; once the
//   peer's first LinkReply names it, the link is up: Handler::OnOutboundUp supplies the snapshot
//   frames, which are sent before anything else queued. One write outstanding at a time; frames
//   queued meanwhile go out together as one FrameBatch (up to max_batch_bytes).
// - Every frame gets the next seq; on_ack(true) runs when the peer's cumulative ack reaches it,
//   on_ack(false) if the link goes down first (then the frame may or may not have been handled).
// - Flow control: frames sent but not acknowledged, per peer, are bounded by
//   max_pending_bytes. Past it, Send refuses (kFull) a frame marked `droppable`; frames that are
//   not droppable (routes, barriers, retained changes) are always queued, they are small and
//   rare. The caller counts what it drops.
// - Failure detection: a heartbeat frame goes out on every idle outbound link each
//   heartbeat_interval. If an outbound link has had no reply for peer_timeout while frames are
//   unacknowledged, or an inbound link has received nothing for peer_timeout, it is cancelled.
//   Outbound links are redialled with backoff (100 ms doubling to 2 s) for as long as the address
//   is known.
// - Inbound: a ServerBidiReactor per stream. The first frame must be Hello
//   (Handler::OnInboundUp); each later frame goes to Handler::OnFrame with a `done` callback, and
//   acks are sent cumulatively as the frames complete, in seq order. When the stream ends (or
//   times out), Handler::OnInboundDown. A new inbound stream from a node id replaces the old one
//   (OnInboundDown for the old one first).
//
// THREADING: thread-safe. Handler methods run on gRPC's threads and must not block; `done` and
// on_ack callbacks may run on any thread, never under a lock the caller of Send holds.
#ifndef MESHMQ_CLUSTER_TRANSPORT_H_
#define MESHMQ_CLUSTER_TRANSPORT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/cluster.pb.h"

namespace grpc {
class Service;
}

namespace meshmq::cluster {

struct TransportConfig {
  std::string listen = "0.0.0.0:7883";  // --cluster_listen; port 0 picks a free one
  std::string node_id;                  // --node_id
  // HOST:PORT peers dial to reach us (--cluster_advertise). Empty: the listen host (or, for
  // 0.0.0.0, this machine's host name) with the bound port.
  std::string advertise;
  std::vector<std::string> seeds;  // --peers: HOST:PORT each
  std::string peers_dns;           // --peers_dns: a name whose A records are peers, or empty
  int peers_dns_port = 7883;       // the cluster port of the addresses --peers_dns yields
  absl::Duration dns_interval = absl::Seconds(5);
  absl::Duration heartbeat_interval = absl::Milliseconds(500);  // --cluster_heartbeat_interval
  absl::Duration peer_timeout = absl::Seconds(3);               // --cluster_peer_timeout
  size_t max_pending_bytes = size_t{64} << 20;  // --cluster_max_pending_bytes, per peer
  size_t max_batch_bytes = size_t{1} << 20;
};

// Counters the transport keeps; read by metrics and tests.
struct TransportStats {
  std::atomic<uint64_t> links_up{0};       // outbound links that came up (cumulative)
  std::atomic<uint64_t> links_down{0};     // outbound links lost (cumulative)
  std::atomic<uint64_t> peer_timeouts{0};  // links cancelled for silence
  std::atomic<uint64_t> frames_sent{0};
  std::atomic<uint64_t> batches_sent{0};
  std::atomic<uint64_t> frames_received{0};
  std::atomic<uint64_t> frames_refused_full{0};  // Send() returned kFull
};

class Transport {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // Our outbound link to `peer` (its node id) is up. Fill `snapshot` with the frames that must
    // precede everything else on it (route and retained snapshots); seq is set by the transport.
    virtual void OnOutboundUp(const std::string& peer, std::vector<Frame>* snapshot) = 0;
    // It went down (after on_ack(false) for every frame it still held).
    virtual void OnOutboundDown(const std::string& peer) = 0;
    // `peer`'s link to us is up / gone.
    virtual void OnInboundUp(const std::string& peer) = 0;
    virtual void OnInboundDown(const std::string& peer) = 0;
    // A frame from `peer` (never Hello or Heartbeat: the transport handles those). `done` must
    // be called exactly once, from any thread, when it is handled.
    virtual void OnFrame(const std::string& peer, Frame& frame, std::function<void()> done) = 0;
    // A TakeSession call; `done` is called exactly once, from any thread, with the reply filled.
    virtual void OnTakeSession(const TakeSessionRequest& request, TakeSessionReply* reply,
                               std::function<void()> done) = 0;
  };

  Transport(TransportConfig config, Handler* handler);
  ~Transport();  // Stop()s
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Binds the listener (errors name the address) and starts dialling the seeds.
  absl::Status Start();
  // Cancels every link (on_ack(false) for what is pending), stops the listener.
  void Stop();
  // The bound cluster port.
  int port() const;
  const std::string& node_id() const;

  enum class SendResult { kQueued, kNotUp, kFull };
  // Queues `frame` for `peer` (a node id). kNotUp: its outbound link is not up; kFull: the peer's
  // pending bytes are over max_pending_bytes and `droppable`. Only kQueued calls on_ack (if not
  // null), exactly once.
  SendResult Send(const std::string& peer, Frame frame, std::function<void(bool)> on_ack,
                  bool droppable);
  // Node ids whose outbound link is up now.
  std::vector<std::string> UpPeers() const;
  // Calls TakeSession on every up peer; `done` gets their replies once all are in (a peer that
  // fails or does not answer within peer_timeout gives one marked `unanswered`).
  void TakeSessionFromPeers(const TakeSessionRequest& request,
                            std::function<void(std::vector<TakeSessionReply>)> done);
  const TransportStats& stats() const;

  // --- Admin (node/admin/) ---
  // Serves `service` on the cluster listener too (AdminPeer). Before Start(); not owned.
  void AddService(grpc::Service* service);
  struct PeerInfo {
    std::string node_id;  // empty: an address that has not answered yet
    std::string address;  // the address we dial it on (or, if we do not, the one it advertises)
    bool outbound_up = false;
    bool inbound_up = false;
  };
  // The peers known now, one per node id (plus the addresses not answered yet), by node id.
  std::vector<PeerInfo> Peers() const;
  // Dials `address` (HOST:PORT) as if it had been given in --peers.
  void AddPeer(const std::string& address);

  // --- Metrics (node/metrics/): read-only ---
  // What waits on one up outbound link: frames not written yet, frames written and not
  // acknowledged, their bytes (what --cluster_max_pending_bytes bounds), and how long the oldest
  // unacknowledged frame has waited (zero when none does): how far the peer is behind.
  struct LinkStats {
    std::string peer;  // node id
    uint64_t queued_frames = 0;
    uint64_t unacked_frames = 0;
    uint64_t pending_bytes = 0;
    absl::Duration oldest_unacked = absl::ZeroDuration();
  };
  // One per peer whose outbound link is up, by node id.
  std::vector<LinkStats> OutboundLinkStats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshmq::cluster

#endif  // MESHMQ_CLUSTER_TRANSPORT_H_
