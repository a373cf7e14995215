// What one node knows of itself, in the admin contract's terms (proto/admin.proto): the answers
// of AdminPeer, and the called node's own share of every AdminService answer.
//
// Sessions, subscriptions and retained messages are read through their stores' own locks.
// Connections belong to their workers: their peer addresses, protocol versions and keepalives
// are asked for, and closes requested, with tasks posted to the owning worker
// (Worker::DescribeConnections, Worker::CloseByAdmin), never by touching a Connection from the
// caller's thread.
//
// THREADING: thread-safe. Clients() answers through a callback that runs on a worker thread (or
// the caller's, when no worker is asked).
#ifndef MESHMQ_NODE_ADMIN_LOCAL_ADMIN_H_
#define MESHMQ_NODE_ADMIN_LOCAL_ADMIN_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/admin.pb.h"

namespace meshmq {
class Broker;
namespace cluster {
class ClusterNode;
}
}  // namespace meshmq

namespace meshmq::admin {

class LocalAdmin {
 public:
  // `cluster`: null for a node on its own. Both must outlive this.
  LocalAdmin(Broker* broker, cluster::ClusterNode* cluster);

  const std::string& node_id() const;
  cluster::ClusterNode* cluster() const { return cluster_; }
  // Listeners reported by Status ("mqtt" is added from the broker).
  void AddListener(std::string name, std::string address);
  // What Drain() calls once it has counted the sessions: starts the node's graceful stop (the
  // SIGTERM path in node/main.cc). Set before serving.
  void SetDrainHandler(std::function<void()> handler) { drain_ = std::move(handler); }

  NodeStatus Status() const;
  // Connected clients, by client id; `done` gets them (truncated to request.limit).
  void Clients(const ClientsRequest& request, std::function<void(ClientsReply)> done) const;
  // Closes the client's connection here (its will is published). False: not connected here.
  bool Kick(const std::string& client_id) const;
  SessionsReply Sessions(const SessionsRequest& request) const;
  // False: no session of the client id here.
  bool DropSession(const std::string& client_id) const;
  absl::StatusOr<SubscriptionsReply> Subscriptions(const SubscriptionsRequest& request) const;
  RoutesReply Routes() const;
  NodeMetrics Metrics() const;
  // What $SYS/broker/ reports now (Broker::sys_stats).
  NodeSysStats SysStats() const;
  absl::Status SetLogLevel(const std::string& level) const;
  DrainReply Drain() const;
  // Forgets `node`, a member that is not up here (ClusterNode::ForgetMember): true if it was a
  // member here. FAILED_PRECONDITION without a cluster, or if it is up here.
  absl::StatusOr<bool> ForgetMember(const std::string& node) const;

  // Retained messages are the same on every node: these answer for the cluster.
  absl::StatusOr<RetainedReply> ListRetained(const RetainedRequest& request) const;
  absl::StatusOr<RetainedMessage> GetRetained(const std::string& topic) const;
  // Deletes the retained message of `topic` here and, through the ordinary replication of
  // retained changes, on every node. NOT_FOUND if there is none.
  absl::Status DeleteRetained(const std::string& topic) const;
  absl::StatusOr<PublishReply> Publish(const PublishRequest& request) const;

 private:
  Broker* const broker_;
  cluster::ClusterNode* const cluster_;
  mutable absl::Mutex mu_;
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(mu_);
  std::function<void()> drain_;
};

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_LOCAL_ADMIN_H_
