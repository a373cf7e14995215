// AdminPeer (proto/admin.proto): what a node answers, for itself only, to the node an operator
// called. Served on the cluster listener (ClusterNode::AddService).
//
// THREADING: gRPC's callback threads; nothing here blocks (LocalAdmin::Clients answers from the
// workers through a callback).
#ifndef MESHMQ_NODE_ADMIN_PEER_SERVICE_H_
#define MESHMQ_NODE_ADMIN_PEER_SERVICE_H_

#include "node/admin/local_admin.h"
#include "proto/admin.grpc.pb.h"

namespace meshmq::admin {

class PeerService : public AdminPeer::CallbackService {
 public:
  explicit PeerService(LocalAdmin* local) : local_(local) {}

  grpc::ServerUnaryReactor* LocalStatus(grpc::CallbackServerContext* context,
                                        const StatusRequest* request,
                                        NodeStatus* reply) override;
  grpc::ServerUnaryReactor* LocalClients(grpc::CallbackServerContext* context,
                                         const ClientsRequest* request,
                                         ClientsReply* reply) override;
  grpc::ServerUnaryReactor* LocalKick(grpc::CallbackServerContext* context,
                                      const ClientRequest* request, KickReply* reply) override;
  grpc::ServerUnaryReactor* LocalSessions(grpc::CallbackServerContext* context,
                                          const SessionsRequest* request,
                                          SessionsReply* reply) override;
  grpc::ServerUnaryReactor* LocalDropSession(grpc::CallbackServerContext* context,
                                             const ClientRequest* request,
                                             DropSessionReply* reply) override;
  grpc::ServerUnaryReactor* LocalSubscriptions(grpc::CallbackServerContext* context,
                                               const SubscriptionsRequest* request,
                                               SubscriptionsReply* reply) override;
  grpc::ServerUnaryReactor* LocalRoutes(grpc::CallbackServerContext* context,
                                        const RoutesRequest* request,
                                        RoutesReply* reply) override;
  grpc::ServerUnaryReactor* LocalMetrics(grpc::CallbackServerContext* context,
                                         const MetricsRequest* request,
                                         NodeMetrics* reply) override;
  grpc::ServerUnaryReactor* LocalSetLogLevel(grpc::CallbackServerContext* context,
                                             const LogLevelRequest* request,
                                             LogLevelReply* reply) override;
  grpc::ServerUnaryReactor* LocalDrain(grpc::CallbackServerContext* context,
                                       const DrainRequest* request, DrainReply* reply) override;
  grpc::ServerUnaryReactor* LocalSysStats(grpc::CallbackServerContext* context,
                                          const SysStatsRequest* request,
                                          NodeSysStats* reply) override;
  grpc::ServerUnaryReactor* LocalForgetMember(grpc::CallbackServerContext* context,
                                              const ForgetRequest* request,
                                              ForgetReply* reply) override;

 private:
  LocalAdmin* const local_;
};

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_PEER_SERVICE_H_
