// AdminService (proto/admin.proto): what meshmqctl calls. Each call is checked against the bearer
// token, answered for this node by LocalAdmin and for every peer that is up through AdminPeer
// (PeerFanout), and merged; peers that cannot be asked are named in `unreachable`.
//
// THREADING: a synchronous gRPC service: each call runs on one of the admin server's threads and
// may block it (on the workers, or on the peers, each bounded by a deadline).
#ifndef MESHMQ_NODE_ADMIN_ADMIN_SERVICE_H_
#define MESHMQ_NODE_ADMIN_ADMIN_SERVICE_H_

#include <string>

#include "absl/time/time.h"
#include "node/admin/local_admin.h"
#include "node/admin/peer_fanout.h"
#include "proto/admin.grpc.pb.h"

namespace meshmq::admin {

class AdminServiceImpl : public AdminService::Service {
 public:
  // `token`: the bearer token every call must carry; empty: none asked for (loopback only, see
  // node/admin/admin.h).
  AdminServiceImpl(LocalAdmin* local, std::string token, absl::Duration peer_deadline);

  grpc::Status Status(grpc::ServerContext* context, const StatusRequest* request,
                      StatusReply* reply) override;
  grpc::Status ClusterMembers(grpc::ServerContext* context, const MembersRequest* request,
                              MembersReply* reply) override;
  grpc::Status ClusterJoin(grpc::ServerContext* context, const JoinRequest* request,
                           JoinReply* reply) override;
  grpc::Status ClusterLeave(grpc::ServerContext* context, const LeaveRequest* request,
                            LeaveReply* reply) override;
  grpc::Status Drain(grpc::ServerContext* context, const DrainRequest* request,
                     DrainReply* reply) override;
  grpc::Status ListClients(grpc::ServerContext* context, const ClientsRequest* request,
                           ClientsReply* reply) override;
  grpc::Status KickClient(grpc::ServerContext* context, const ClientRequest* request,
                          KickReply* reply) override;
  grpc::Status ListSessions(grpc::ServerContext* context, const SessionsRequest* request,
                            SessionsReply* reply) override;
  grpc::Status DropSession(grpc::ServerContext* context, const ClientRequest* request,
                           DropSessionReply* reply) override;
  grpc::Status ListSubscriptions(grpc::ServerContext* context,
                                 const SubscriptionsRequest* request,
                                 SubscriptionsReply* reply) override;
  grpc::Status Routes(grpc::ServerContext* context, const RoutesRequest* request,
                      RoutesReply* reply) override;
  grpc::Status ListRetained(grpc::ServerContext* context, const RetainedRequest* request,
                            RetainedReply* reply) override;
  grpc::Status GetRetained(grpc::ServerContext* context, const RetainedRequest* request,
                           RetainedMessage* reply) override;
  grpc::Status DeleteRetained(grpc::ServerContext* context, const RetainedRequest* request,
                              DeleteRetainedReply* reply) override;
  grpc::Status Publish(grpc::ServerContext* context, const PublishRequest* request,
                       PublishReply* reply) override;
  grpc::Status Metrics(grpc::ServerContext* context, const MetricsRequest* request,
                       MetricsReply* reply) override;
  grpc::Status SetLogLevel(grpc::ServerContext* context, const LogLevelRequest* request,
                           LogLevelReply* reply) override;

 private:
  // OK if the call carries "authorization: Bearer <token>" (or no token is configured).
  grpc::Status Authorize(grpc::ServerContext* context, const char* method) const;
  // This node's clients, waiting for its workers.
  ClientsReply LocalClients(const ClientsRequest& request);
  // cluster leave of `node`, which is not up here: every node that is up forgets it as a member
  // (unless one has it up: then nothing changes).
  grpc::Status ForceLeave(const std::string& node, LeaveReply* reply);

  LocalAdmin* const local_;
  const std::string token_;
  PeerFanout peers_;
};

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_ADMIN_SERVICE_H_
