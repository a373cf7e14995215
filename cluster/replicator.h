// The owner's side of session replication: every change this node makes to a persistent
// session's records (node/persistence.h hands them over as they are submitted) also goes, as
// record operations, to the session's replicas, which keep a copy (cluster/replica_store.h) and
// take the session over if this node dies. An ack that promises durability waits for them.
//
// - Replicas: the replication factor minus one, chosen among the peers whose links are up by
//   rendezvous hashing of (client id, node id): each node gets an even share of the sessions,
//   and a node joining or leaving moves only the copies it gains or had.
// - A session the replicas do not have yet (new, restored at start, moved or taken over here,
//   or whose replica set changed) gets a snapshot first: under the session's lock, a ReplicaOps
//   frame with reset set and everything the session holds, so no change can fall between the
//   snapshot and the changes that follow it. Changes submitted before the snapshot is sent wait
//   for it (their acks too); after it they go to the replicas as they come.
// - A new link to a peer starts with ReplicaPurge, then gets snapshots of the sessions it
//   should hold: whatever it kept from before is stale.
// - A replica that does not answer (its link drops) does not count: the session gets a new
//   snapshot on the replicas it has then, and the changes wait for that. A node that has no
//   replica to send to while it is not serving (cut off from most of the cluster) holds them:
//   what it acknowledged must be on the side that takes its sessions over. Alone by design
//   (no other member), it acknowledges what its own store has.
//
// THREADING: thread-safe. Replicate runs under the session's lock; a snapshot thread takes the
// session's lock, then mu_. Lock order: session -> mu_ -> the transport's.
#ifndef MESHMQ_CLUSTER_REPLICATOR_H_
#define MESHMQ_CLUSTER_REPLICATOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "cluster/transport.h"
#include "node/persistence.h"

namespace meshmq {
class Broker;
}

namespace meshmq::cluster {

class Replicator : public SessionReplication {
 public:
  // `eligible` returns the peers that may hold copies now (linked and in the cluster).
  // `serving`: whether the node may act without replicas (ClusterHooks::Serving). `claim_of`
  // gives this node's claim on a session (sent with each snapshot).
  Replicator(Broker* broker, Transport* transport, int replication_factor,
             std::function<std::vector<std::string>()> eligible, std::function<bool()> serving,
             std::function<uint64_t(const std::string&)> claim_of = nullptr);
  ~Replicator() override;

  void Start();
  void Stop();

  // SessionReplication
  void Replicate(std::vector<std::pair<std::string, storage::RecordOp>> ops,
                 uint64_t ticket) override;
  bool active() const override { return active_.load(std::memory_order_acquire); }

  // Peers came or went: every session's replica set is checked, and re-sent where it changed.
  void MembersChanged();
  // Our link to `peer` came up: `snapshot` gets ReplicaPurge, and the sessions it should hold
  // are sent again.
  void LinkUp(const std::string& peer, std::vector<Frame>* snapshot);
  // The replicas of `client_id` now, in takeover order (for will copies).
  std::vector<std::string> Choose(const std::string& client_id) const;
  // True when nothing is waiting to be replicated or acknowledged (graceful leave polls it).
  bool Idle() const;

 private:
  // Releases one ticket's replication once every send it waits for is answered.
  class TicketTally;
  using Tallies = std::vector<std::shared_ptr<TicketTally>>;
  struct ClientState {
    std::vector<std::string> replicas;  // where changes go now
    bool synced = false;                // the replicas hold a snapshot
    bool queued = false;                // waiting for the snapshot thread
    Tallies waiting;                    // tickets held until the snapshot
  };

  // The new replicas of `client_id` have their snapshot: the old ones drop their copies.
  void RetireReplicas(const std::string& client_id, const std::vector<std::string>& retiring);
  void SnapshotLoop();
  void Snapshot(const std::string& client_id);
  void Enqueue(const std::string& client_id, ClientState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends `ops` of `client_id` to `peer`, split into frames of bounded size; the first carries
  // `reset` and `replicas`. Each frame holds every one of `tallies` until it is answered.
  void SendOps(const std::string& peer, const std::string& client_id, bool reset,
               const std::vector<std::string>& replicas,
               const std::vector<storage::RecordOp>& ops, const Tallies& tallies,
               const std::vector<uint64_t>& recent_qos2_keys = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendDrop(const std::string& peer, const std::string& client_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Broker* const broker_;
  Transport* const transport_;
  const int replication_factor_;
  const std::function<std::vector<std::string>()> eligible_;
  const std::function<bool()> serving_;
  const std::function<uint64_t(const std::string&)> claim_of_;
  // A frame to a replica went unanswered: its tallies wait for a new snapshot instead.
  void RequeueLocked(const std::string& client_id, const Tallies& tallies)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No replica can take changes now, and the node may not go on without one.
  bool MustHoldLocked(const std::vector<std::string>& replicas) const;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, ClientState> clients_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> snapshot_queue_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> unanswered_{0};  // frames sent and not yet answered
  // Peers to replicate to, or acks to hold without them (updated by MembersChanged).
  std::atomic<bool> active_{true};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace meshmq::cluster

#endif  // MESHMQ_CLUSTER_REPLICATOR_H_
