// A node's part in the cluster: what the links (cluster/transport.h) carry for the broker.
//
// - Routes: this node counts its subscriptions per (filter, shared group) and tells every peer
//   each change (Route frames), and the whole set when a link comes up (RouteSnapshot). What
//   peers tell it lands in RemoteRoutes. A SUBACK waits for a Barrier frame acknowledged by every
//   up peer, so the route is known cluster-wide before the client can rely on it.
// - Publishes: a message published here goes, once, to each peer whose routes match it (a
//   Forward frame), with the shared groups this node chose that peer for. The peer delivers it
//   to its local subscribers and acknowledges it once what it queued for persistent sessions is
//   durable; QoS 1/2 publishers get their ack after that.
// - Retained: this node's own writes are versioned by the hybrid logical clock and sent to every
//   peer; the whole retained state (tombstones too) goes to a peer when a link comes up; each
//   node keeps the highest version (node/retained_store.h).
//
// - Node loss (issue 6; cluster/README.md has the whole policy): persistent sessions are
//   replicated (cluster/replicator.h) into peers' replica stores (cluster/replica_store.h). When
//   a peer has been down for the peer timeout, and this node is in the majority (Membership),
//   the copies whose first surviving replica is this node are taken over: imported as sessions
//   here, their routes announced, and every other node told (SessionClaims), so stale copies
//   anywhere drop. Publishes racing with that are held and orphaned forwards redelivered
//   (cluster/failover.h). A node in the minority stops serving clients.
//
// THREADING: thread-safe. ClusterHooks methods run on the broker's threads, Transport::Handler
// methods on gRPC's; neither blocks. A maintenance thread checks quorum, takes sessions over and
// completes failovers every heartbeat interval.
#ifndef MESHMQ_CLUSTER_CLUSTER_NODE_H_
#define MESHMQ_CLUSTER_CLUSTER_NODE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "cluster/failover.h"
#include "cluster/membership.h"
#include "cluster/remote_routes.h"
#include "cluster/replica_store.h"
#include "cluster/replicator.h"
#include "cluster/transport.h"
#include "node/cluster_hooks.h"

namespace meshmq {
class Broker;
}

namespace meshmq::cluster {

class ClusterNode : public ClusterHooks, public Transport::Handler {
 public:
  // `broker` must outlive this; call broker->SetCluster(this) before the broker starts, and
  // Start() after it did.
  // `replication_factor`: copies of each persistent session, its owner's included
  // (--replication_factor).
  ClusterNode(Broker* broker, TransportConfig config, int replication_factor = 2);
  ~ClusterNode() override;

  // Opens the replica store (<data_dir>/replica) and the links.
  absl::Status Start();
  void Stop();
  // Graceful leave (SIGTERM): stops serving, closes the clients (no wills: they go on
  // elsewhere), waits until their sessions are on the replicas, then has the replicas take them
  // over, waiting at most `timeout` for each step.
  void Leave(absl::Duration timeout);
  int port() const { return transport_.port(); }
  const Transport& transport() const { return transport_; }

  // --- Admin (node/admin/) ---
  // Serves `service` on the cluster listener too (AdminPeer); before Start().
  void AddService(grpc::Service* service) { transport_.AddService(service); }
  // Dials a node's cluster listener at `address` as if it were in --peers (cluster join).
  void Join(const std::string& address) { transport_.AddPeer(address); }
  struct PeerView {
    std::string node_id;  // empty: an address that has not answered yet
    std::string address;
    bool up = false;  // linked both ways, routes synced ("peer X up" in the log)
  };
  // The peers this node knows of now.
  std::vector<PeerView> Peers();
  // The members this node counts for its quorum, itself included.
  std::vector<std::string> Members() const;
  // Force-leave (`meshmqctl cluster leave NODE` for a node that is down): forgets `node` as a
  // member, in the members file too, so it no longer counts for the quorum, and takes it for
  // gone as if it had left: copies of its sessions kept here are taken over. Should it come back,
  // it joins as a new member, and its stale sessions lose to the later claims of whoever took
  // them over (as for any node that returns). FailedPrecondition if `node` is up here or is this
  // node. `was_member`: whether this node counted it.
  absl::Status ForgetMember(const std::string& node, bool* was_member);

  // --- Metrics (node/metrics/): read-only views, any thread; they change nothing ---
  struct PeerMetric {
    std::string node_id;
    bool member = false;    // counted for the quorum (cluster/membership.h)
    bool outbound = false;  // our link to it is up
    bool synced = false;    // its link to us is up and its routes arrived
    bool up = false;        // both ("peer X up" in the log)
    Transport::LinkStats link;  // what waits for it; zero unless our link to it is up
  };
  // Every member and every peer a link was made with, by node id (this node left out).
  std::vector<PeerMetric> PeerMetrics() const;
  // Whether the node should be given clients now (/readyz): serving (in touch with most of the
  // cluster, their routes and retained messages synced) and not leaving. Else `why` says why.
  bool Ready(std::string* why) const;
  // Nothing waits to be replicated or for a replica's acknowledgement.
  bool ReplicationIdle() const { return replicator_.Idle(); }

  // ClusterHooks
  size_t Forward(const MessagePtr& message,
                 const std::vector<std::shared_ptr<SharedGroup>>& local_groups,
                 std::vector<char>* deliver_here, std::function<void(bool)> on_accepted) override;
  bool HasRemoteRoutes() const override { return !remote_.empty(); }
  void LocalRouteAdded(const std::string& filter, const std::string& group) override;
  void LocalRouteRemoved(const std::string& filter, const std::string& group) override;
  void Barrier(std::function<void()> done) override;
  void RetainedChanged(const std::string& topic, const Message* message,
                       const RetainedVersion& version) override;
  void OnDurable(uint64_t durable) override;
  void Shutdown() override { Stop(); }
  bool TakeSession(const std::string& client_id, bool clean_start,
                   std::function<void(std::optional<storage::LoadedSession>)> done) override;
  void DeliverTo(const std::string& node, const std::string& client_id,
                 const QueuedMessage& queued) override;
  void SessionImported(const std::string& client_id) override;
  uint64_t ClaimOf(const std::string& client_id) override;
  int64_t move_grace_ms() const override { return move_grace_ms_; }
  bool Serving() const override { return serving_.load(std::memory_order_acquire); }
  bool HoldPublish(std::string_view topic, std::function<void()> resume) override;
  SessionReplication* replication() override { return &replicator_; }
  void WillChanged(const std::string& client_id, const MessagePtr& will,
                   uint32_t delay_seconds, std::function<void()> copied = nullptr) override;

  // Transport::Handler
  void OnOutboundUp(const std::string& peer, std::vector<Frame>* snapshot) override;
  void OnOutboundDown(const std::string& peer) override;
  void OnInboundUp(const std::string& peer) override;
  void OnInboundDown(const std::string& peer) override;
  void OnFrame(const std::string& peer, Frame& frame, std::function<void()> done) override;
  void OnTakeSession(const TakeSessionRequest& request, TakeSessionReply* reply,
                     std::function<void()> done) override;

 private:
  // Routes and retained values per snapshot frame, so no gRPC message grows past its limit.
  static constexpr size_t kSnapshotChunk = 1000;

  void ChangeLocalRoute(const std::string& filter, const std::string& group, int delta);
  // Calls `done` once what this thread wrote to the store is durable.
  void AfterDurable(std::function<void()> done);
  // Sends a Forward frame; `answer` (if any) gets true when the peer confirms it durable, false
  // if it cannot (link down before the confirmation). kFull: `answer` is not called.
  Transport::SendResult SendForward(const std::string& peer, Frame frame,
                                    std::function<void(bool)> answer, bool droppable);
  // Appends to a new link's snapshot the forwards to `peer` that wait as orphans though no
  // failover of it is under way (our link was not up yet, or dropped while it stayed up).
  void ResendEarlyOrphans(const std::string& peer, std::vector<Frame>* snapshot);
  // The id a Forward to `peer` carries; `answer` gets Confirmed's verdict on it (false for all
  // of a peer's at FailConfirms).
  uint64_t AwaitConfirm(const std::string& peer, std::function<void(bool)> answer);
  void Confirmed(const std::string& peer, uint64_t id, bool ok);
  void FailConfirms(const std::string& peer);
  // The receiving side: confirms forward `id` to `peer` once this thread's writes are durable.
  void ConfirmWhenDurable(const std::string& peer, uint64_t id);
  void ApplyRetained(const RetainedChange& change);
  // Logs "peer X up/down" as the pair of links with X comes and goes.
  void UpdatePeer(const std::string& peer, int outbound, int synced);
  // Peers that are up (both links, routes synced).
  std::vector<std::string> UpPeers();
  // Up peers that are not leaving: where session copies may go.
  std::vector<std::string> ReplicaCandidates();
  // `peer` began to leave: copies on it move to peers that stay.
  void OnLeaveStarting(const std::string& peer);
  // True while an up peer with a lower node id is leaving too: leaves go one at a time, lowest
  // id first, so a leaving node never has to take over the sessions of another.
  bool LowerPeerLeaving();
  bool IsUp(const std::string& peer);

  // --- A CONNECT resuming a session that may live on a peer ---
  struct SessionRequest {
    std::string client_id;
    bool clean_start = false;
    // Past it, what the peers that answered said is taken as it is.
    int64_t give_up_ms = 0;
    std::function<void(std::optional<storage::LoadedSession>)> done;
  };
  // Asks every up peer for the session: after any failover under way, and again if a peer did
  // not answer (it may hold the session).
  void AskForSession(std::shared_ptr<SessionRequest> request);
  void OnSessionReplies(const std::shared_ptr<SessionRequest>& request,
                        std::vector<TakeSessionReply> replies);
  absl::Mutex later_mu_;
  std::multimap<int64_t, std::function<void()>> later_ ABSL_GUARDED_BY(later_mu_);

  // --- Node loss ---
  void MaintenanceLoop();
  void CheckQuorum();
  // This node and the peers up now are most of the cluster (and it is not leaving).
  bool HasQuorumNow();
  // Since when HasQuorumNow() held while not serving (0: it does not); CheckQuorum's (the
  // maintenance thread's, and Start's before it runs).
  int64_t quorum_since_ms_ = 0;
  // Takes over the copies whose owner is gone (down for the peer timeout, or left) and this node
  // is the first surviving replica of; reports FailoverDone for the nodes it finished.
  void TakeOverOrphanedSessions();
  bool TakeOver(const std::string& client_id, const std::string& owner);
  // A session adopted from a replica copy: where it came from is noted (orphans of that node
  // go to it) and the copy's marks are cleared.
  void NoteTaken(storage::LoadedSession* session);
  void CompleteFailovers();
  // Delivers a forward its first receiver died with (or sends it back to that node).
  // Returns what completes the orphan's local part (to run once every orphan is delivered).
  std::function<void()> Redeliver(const std::string& node, Failovers::Orphan orphan);
  void SendToUpPeers(const Frame& frame);
  // Delivers an orphan of `node` to the sessions taken from it here; one still on its way in
  // (adopted, not imported yet) gets it once it is.
  void DeliverToTaken(const std::string& node, const MessagePtr& message);
  // Runs `task` on the maintenance thread once `at_ms` (MonotonicMillis) has passed; Stop runs
  // what is left.
  void RunLater(int64_t at_ms, std::function<void()> task);
  void RunDueTasks(int64_t now_ms);
  void OnSessionClaims(const std::string& peer, const SessionClaims& claims);
  void OnLeaving(const std::string& peer);
  void Claim(const std::string& client_id);
  // A session copy for a client connecting elsewhere (or here), if its owner is gone.
  std::optional<storage::LoadedSession> TakeReplicaCopy(const std::string& client_id,
                                                        const std::string& except_owner);

  Broker* const broker_;
  const std::string node_id_;
  const int64_t move_grace_ms_;
  const absl::Duration heartbeat_interval_;
  const absl::Duration peer_timeout_;
  Transport transport_;
  RemoteRoutes remote_;
  Replicator replicator_;
  std::unique_ptr<ReplicaStore> replicas_;
  std::unique_ptr<Membership> membership_;
  Failovers failovers_;
  std::atomic<bool> serving_{true};
  std::atomic<bool> leaving_{false};
  std::atomic<bool> leave_announced_{false};  // Leaving sent: sessions are the replicas' now
  const int64_t started_ms_;
  // How many peer timeouts a node never seen since this one started has to show up.
  static constexpr int64_t kNeverSeenTimeouts = 10;

  absl::Mutex maintenance_mu_;
  bool stopping_ ABSL_GUARDED_BY(maintenance_mu_) = false;
  bool wake_ ABSL_GUARDED_BY(maintenance_mu_) = false;
  std::thread maintenance_;

  // When each peer was last seen going down (MonotonicMillis), whether its failover was
  // reported, and which sessions this node took from it.
  struct LossState {
    bool down = false;
    int64_t down_since_ms = 0;
    bool reported = false;
    bool left = false;  // it left gracefully (Leaving)
    // Seen down while this node kept its quorum: only then is the node taken for dead here. A
    // loss seen from the minority side (or from before a restart) may be this node's own cut:
    // the others may have that peer up and serving.
    bool trusted = false;
    std::vector<std::string> taken;
  };

  absl::Mutex loss_mu_;
  absl::flat_hash_map<std::string, LossState> losses_ ABSL_GUARDED_BY(loss_mu_);

  // Wills: where this node sent copies of its clients' wills, and the copies peers sent here.
  void OnWillCopy(const std::string& peer, const WillCopy& copy);
  // Publishes (or schedules, after their delay) the wills of clients of gone nodes that this
  // node is the first surviving holder of; `is_gone` judges a node.
  void PublishOrphanedWills(const std::function<bool(const std::string&)>& is_gone);
  void ForgetWillCopy(const std::string& client_id);
  struct HeldWill {
    std::string owner;
    WillCopy copy;
  };
  absl::Mutex wills_mu_;
  absl::flat_hash_map<std::string, std::vector<std::string>> will_targets_
      ABSL_GUARDED_BY(wills_mu_);
  absl::flat_hash_map<std::string, HeldWill> will_copies_ ABSL_GUARDED_BY(wills_mu_);

  // When this node took each session it owns (HLC; absent: before its last start).
  absl::Mutex claims_mu_;
  absl::flat_hash_map<std::string, uint64_t> claims_ ABSL_GUARDED_BY(claims_mu_);

  // This node's subscription counts, by "{filter}\0{group}"; changed and sent under the lock so
  // peers see one filter's counts in order.
  absl::Mutex routes_mu_;
  absl::flat_hash_map<std::string, uint32_t> local_routes_ ABSL_GUARDED_BY(routes_mu_);

  // Round-robin position per shared group ("{group}\0{filter}"), across the cluster's members.
  absl::Mutex shared_mu_;
  absl::flat_hash_map<std::string, uint64_t> shared_next_ ABSL_GUARDED_BY(shared_mu_);

  // Numbers the forwards a publisher waits for, in the order they were made (Failovers::Orphan).
  std::atomic<uint64_t> next_forward_order_{1};

  absl::Mutex confirms_mu_;
  uint64_t last_confirm_ ABSL_GUARDED_BY(confirms_mu_) = 0;
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, std::function<void(bool)>>>
      confirms_ ABSL_GUARDED_BY(confirms_mu_);

  absl::Mutex durable_mu_;
  std::multimap<uint64_t, std::function<void()>> durable_waiters_ ABSL_GUARDED_BY(durable_mu_);

  // A Deliver frame for `client_id` (a session on its way here).
  void OnDeliver(const Deliver& deliver);

  // Sessions this node asked its peers for (TakeSession) and has not imported yet: what their
  // old node forwarded before they were in place waits here (at most kMaxEarlyDeliveries each).
  static constexpr size_t kMaxEarlyDeliveries = 10000;
  struct IncomingMove {
    std::vector<QueuedMessage> early;
    // Orphans of a node it was taken from, redelivered before it was in place.
    std::vector<MessagePtr> early_redelivered;
    bool imported = false;
    int64_t until_ms = 0;
    // The live owner it came from (empty: a replica copy, or nothing moved), and once imported
    // the nodes whose move fence has not come back yet (StartMoveFences).
    std::string from_node;
    uint64_t move_id = 0;
    absl::flat_hash_set<std::string> fences;
  };
  absl::Mutex moves_mu_;
  absl::flat_hash_map<std::string, IncomingMove> moves_in_ ABSL_GUARDED_BY(moves_mu_);
  uint64_t last_move_id_ ABSL_GUARDED_BY(moves_mu_) = 0;
  // Sends the move fences of a session just imported from a live owner; false if none went
  // (then nothing needs holding).
  bool StartMoveFences(const std::string& client_id, IncomingMove* move,
                       const std::vector<std::string>& peers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(moves_mu_);
  void OnMoveFence(const std::string& peer, MoveFence fence);
  // Returns once every Forward that was in progress has queued its frames.
  void FenceForwards();
  absl::Mutex forwarding_mu_;
  void OnMoveFenceDone(const MoveFenceDone& done);

  struct PeerState {
    bool outbound = false;  // our link to it is up
    bool synced = false;    // its link to us is up and its route snapshot arrived
    bool logged_up = false;
    bool leaving = false;  // it began to leave (Leaving.starting): no new copies go there
    bool ever_up = false;  // up at least once since this node started (Ready)
    std::vector<std::string> filters;  // its routes when it went down
  };
  mutable absl::Mutex peers_mu_;  // mutable: the metrics views read peers_
  absl::flat_hash_map<std::string, PeerState> peers_ ABSL_GUARDED_BY(peers_mu_);
};

}  // namespace meshmq::cluster

#endif  // MESHMQ_CLUSTER_CLUSTER_NODE_H_
