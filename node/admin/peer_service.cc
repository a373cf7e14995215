#include "node/admin/peer_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "node/admin/status_convert.h"

namespace meshmq::admin {
namespace {

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                 const grpc::Status& status = grpc::Status::OK) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* PeerService::LocalStatus(grpc::CallbackServerContext* context,
                                                   const StatusRequest* request,
                                                   NodeStatus* reply) {
  *reply = local_->Status();
  return Finish(context);
}

grpc::ServerUnaryReactor* PeerService::LocalClients(grpc::CallbackServerContext* context,
                                                    const ClientsRequest* request,
                                                    ClientsReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The call (and `reply`) lives until Finish, however late the workers answer.
  local_->Clients(*request, [reactor, reply](ClientsReply clients) {
    *reply = std::move(clients);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* PeerService::LocalKick(grpc::CallbackServerContext* context,
                                                 const ClientRequest* request, KickReply* reply) {
  if (!local_->Kick(request->client_id())) {
    return Finish(context, grpc::Status(grpc::StatusCode::NOT_FOUND, "not connected here"));
  }
  reply->set_node_id(local_->node_id());
  return Finish(context);
}

grpc::ServerUnaryReactor* PeerService::LocalSessions(grpc::CallbackServerContext* context,
                                                     const SessionsRequest* request,
                                                     SessionsReply* reply) {
  *reply = local_->Sessions(*request);
  return Finish(context);
}

grpc::ServerUnaryReactor* PeerService::LocalDropSession(grpc::CallbackServerContext* context,
                                                        const ClientRequest* request,
                                                        DropSessionReply* reply) {
  if (local_->DropSession(request->client_id())) reply->add_node_ids(local_->node_id());
  return Finish(context);
}

grpc::ServerUnaryReactor* PeerService::LocalSubscriptions(grpc::CallbackServerContext* context,
                                                          const SubscriptionsRequest* request,
                                                          SubscriptionsReply* reply) {
  absl::StatusOr<SubscriptionsReply> subscriptions = local_->Subscriptions(*request);
  if (!subscriptions.ok()) return Finish(context, ToGrpc(subscriptions.status()));
  *reply = std::move(*subscriptions);
  return Finish(context);
}

grpc::ServerUnaryReactor* PeerService::LocalRoutes(grpc::CallbackServerContext* context,
                                                   const RoutesRequest* request,
                                                   RoutesReply* reply) {
  *reply = local_->Routes();
  return Finish(context);
}

grpc::ServerUnaryReactor* PeerService::LocalMetrics(grpc::CallbackServerContext* context,
                                                    const MetricsRequest* request,
                                                    NodeMetrics* reply) {
  *reply = local_->Metrics();
  return Finish(context);
}

grpc::ServerUnaryReactor* PeerService::LocalSetLogLevel(grpc::CallbackServerContext* context,
                                                        const LogLevelRequest* request,
                                                        LogLevelReply* reply) {
  absl::Status status = local_->SetLogLevel(request->level());
  if (status.ok()) reply->add_node_ids(local_->node_id());
  return Finish(context, ToGrpc(status));
}

grpc::ServerUnaryReactor* PeerService::LocalDrain(grpc::CallbackServerContext* context,
                                                  const DrainRequest* request, DrainReply* reply) {
  *reply = local_->Drain();
  return Finish(context);
}

grpc::ServerUnaryReactor* PeerService::LocalSysStats(grpc::CallbackServerContext* context,
                                                     const SysStatsRequest* request,
                                                     NodeSysStats* reply) {
  *reply = local_->SysStats();
  return Finish(context);
}

grpc::ServerUnaryReactor* PeerService::LocalForgetMember(grpc::CallbackServerContext* context,
                                                         const ForgetRequest* request,
                                                         ForgetReply* reply) {
  absl::StatusOr<bool> forgot = local_->ForgetMember(request->node_id());
  if (!forgot.ok()) return Finish(context, ToGrpc(forgot.status()));
  reply->set_node_id(local_->node_id());
  reply->set_was_member(*forgot);
  return Finish(context);
}

}  // namespace meshmq::admin
