// What the broker asks of the cluster (cluster/cluster_node.h implements it), so that node/ does
// not depend on cluster/: the broker tells it about local routes and retained changes, and hands
// it every message published here to forward to the peers that want it.
//
// THREADING: every method may be called from any thread.
#ifndef MESHMQ_NODE_CLUSTER_HOOKS_H_
#define MESHMQ_NODE_CLUSTER_HOOKS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/message.h"
#include "node/persistence.h"
#include "node/retained_store.h"
#include "node/session.h"
#include "storage/store.h"

namespace meshmq {

class SharedGroup;

class ClusterHooks {
 public:
  virtual ~ClusterHooks() = default;

  // Forwards `message`, published on this node, to each peer that has subscribers for it, once
  // per peer. `local_groups` are this node's shared groups whose filter matches; the cluster
  // picks, for every group that also has members on peers, which node gets the message, so one
  // member cluster-wide receives it: (*deliver_here)[i] says whether this node delivers to
  // local_groups[i]. `on_accepted`, if not null, is called once, from any thread, when every peer
  // it was forwarded to has taken it (true), or when one refused it at its flow-control limit
  // (false); it is called only if the return value (the number of peers) is not 0.
  virtual size_t Forward(const MessagePtr& message,
                         const std::vector<std::shared_ptr<SharedGroup>>& local_groups,
                         std::vector<char>* deliver_here,
                         std::function<void(bool)> on_accepted) = 0;

  // False while no peer has any route: Forward would send nothing, so a publisher need not
  // prepare to wait for peers. A route that a client's SUBACK waited for is seen here.
  virtual bool HasRemoteRoutes() const = 0;

  // This node gained or lost a subscription on `filter` (ordinary when `group` is empty, else a
  // member of "$share/{group}/{filter}"). Called under the lock of the index that changed, so
  // changes to one filter arrive in order.
  virtual void LocalRouteAdded(const std::string& filter, const std::string& group) = 0;
  virtual void LocalRouteRemoved(const std::string& filter, const std::string& group) = 0;
  // Calls `done`, from any thread, once every route change made before this call is known to
  // every peer that is up: what SUBACK and UNSUBACK wait for.
  virtual void Barrier(std::function<void()> done) = 0;

  // A retained value this node wrote (`message` null: deleted), with its version. Called under
  // the retained store's lock, so that peers see one topic's changes in order.
  virtual void RetainedChanged(const std::string& topic, const Message* message,
                               const RetainedVersion& version) = 0;

  // A client connects here with `client_id`: every other node ends what it has of that client id
  // (closing its live connection there, will and all) and, unless `clean_start`, `done` (any
  // thread) gets the session one of them had, to resume here. Returns false, and never calls
  // `done`, when no peer is up.
  virtual bool TakeSession(const std::string& client_id, bool clean_start,
                           std::function<void(std::optional<storage::LoadedSession>)> done) = 0;

  // A session moved from this node to `node`: a message that still reaches this node for it
  // (published before every peer knew of the move) goes there, for `client_id`'s session.
  virtual void DeliverTo(const std::string& node, const std::string& client_id,
                         const QueuedMessage& queued) = 0;
  // The session of `client_id` arrived here (Broker::ImportSession): what its old node
  // forwarded before it was in place can be delivered now. The session holds what reaches it
  // directly until Broker::ReleaseMoveHold, which this calls once nothing sent the old way
  // before the move can still be on its way (at once if the session did not come from a
  // live owner).
  virtual void SessionImported(const std::string& client_id) = 0;
  // This node's claim on `client_id`'s session (0: none), which the session stores with its
  // record (Session::set_claim) so that it outlives a restart.
  virtual uint64_t ClaimOf(const std::string& client_id) = 0;
  // How long, in ms, a moved session is followed on its old node (messages forwarded after it)
  // and on its new one (copies that arrive twice dropped).
  virtual int64_t move_grace_ms() const = 0;

  // The store made everything up to `durable` durable (called on the store's writer thread).
  virtual void OnDurable(uint64_t durable) = 0;

  // False while this node may not serve clients (it is cut off from most of the cluster, or
  // leaving): CONNECTs are refused with Server unavailable.
  virtual bool Serving() const = 0;
  // While a dead peer's sessions are being taken over elsewhere, a publish whose topic its
  // routes matched must wait, or it would miss them: returns true, and calls `resume` (any
  // thread) once the takeover is done; false (the usual case, cheap) to go on now.
  virtual bool HoldPublish(std::string_view topic, std::function<void()> resume) = 0;
  // The will of the client connected here with `client_id` is now `will` (published after
  // `delay_seconds` if the client goes without DISCONNECT), or gone (`will` null: the client
  // disconnected, or this node dealt with it). Peers keep a copy, to publish it if this node
  // dies with the client connected. `copied` (if set; any thread) runs once every peer chosen
  // to keep the copy has it, or is gone: CONNACK waits for it, so that a node dying right after
  // a CONNACK does not take the will with it.
  virtual void WillChanged(const std::string& client_id, const MessagePtr& will,
                           uint32_t delay_seconds, std::function<void()> copied = nullptr) = 0;
  // Where the store's session changes are replicated (Persistence::SetReplication).
  virtual SessionReplication* replication() = 0;

  // The broker is stopping: its workers are gone (their connections' wills were forwarded) and
  // its store closes next, so nothing may arrive from peers any more. Ends the links.
  virtual void Shutdown() = 0;
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_CLUSTER_HOOKS_H_
