#include "node/admin/admin_service.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "node/admin/access.h"
#include "node/admin/log_level.h"
#include "node/admin/status_convert.h"

namespace meshmq::admin {
namespace {

using Stub = AdminPeer::Stub;
using Done = std::function<void(grpc::Status)>;

// How long `cluster join` waits for the new peer's link to come up.
constexpr absl::Duration kJoinTimeout = absl::Seconds(10);
// How long this node's workers may take to list their connections.
constexpr absl::Duration kWorkerTimeout = absl::Seconds(5);

grpc::Status NotFound(std::string what) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND, std::move(what));
}

// " (not asked: n2, n3)" when some nodes could not be asked, so a NOT_FOUND says it may be
// incomplete.
std::string NotAskedSuffix(const google::protobuf::RepeatedPtrField<NodeError>& unreachable) {
  if (unreachable.empty()) return "";
  std::vector<std::string> names;
  for (const NodeError& error : unreachable) {
    names.push_back(error.node_id().empty() ? error.address() : error.node_id());
  }
  return absl::StrCat(" (not asked: ", absl::StrJoin(names, ", "), ")");
}

template <typename Reply>
void AddNotUp(PeerFanout& peers, Reply* reply) {
  for (NodeError& error : peers.NotUp()) *reply->add_unreachable() = std::move(error);
}

}  // namespace

AdminServiceImpl::AdminServiceImpl(LocalAdmin* local, std::string token,
                                   absl::Duration peer_deadline)
    : local_(local), token_(std::move(token)), peers_(local->cluster(), peer_deadline) {}

grpc::Status AdminServiceImpl::Authorize(grpc::ServerContext* context, const char* method) const {
  AdminLog(LogLevel::kDebug, absl::StrCat(method, " from ", context->peer()));
  if (token_.empty()) return grpc::Status::OK;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end() ||
      !BearerMatches(std::string_view(it->second.data(), it->second.size()), token_)) {
    AdminLog(LogLevel::kWarning,
             absl::StrCat(method, " from ", context->peer(), " refused: bad or missing token"));
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing or wrong admin token (see --token_file)");
  }
  return grpc::Status::OK;
}

ClientsReply AdminServiceImpl::LocalClients(const ClientsRequest& request) {
  struct Result {
    absl::Notification done;
    ClientsReply reply;
  };
  auto result = std::make_shared<Result>();
  local_->Clients(request, [result](ClientsReply reply) {
    result->reply = std::move(reply);
    result->done.Notify();
  });
  if (!result->done.WaitForNotificationWithTimeout(kWorkerTimeout)) return ClientsReply();
  return std::move(result->reply);
}

grpc::Status AdminServiceImpl::Status(grpc::ServerContext* context, const StatusRequest* request,
                                      StatusReply* reply) {
  if (grpc::Status denied = Authorize(context, "status"); !denied.ok()) return denied;
  auto answers = peers_.Ask<NodeStatus>([&](Stub* stub, grpc::ClientContext* call,
                                            NodeStatus* out, Done done) {
    stub->async()->LocalStatus(call, request, out, std::move(done));
  });
  *reply->add_nodes() = local_->Status();
  for (auto& answer : answers) {
    if (answer.status.ok()) *reply->add_nodes() = std::move(answer.reply);
  }
  AddFailures(answers, reply->mutable_unreachable());
  AddNotUp(peers_, reply);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ClusterMembers(grpc::ServerContext* context,
                                              const MembersRequest* request,
                                              MembersReply* reply) {
  if (grpc::Status denied = Authorize(context, "cluster members"); !denied.ok()) return denied;
  const NodeStatus self = local_->Status();
  std::map<std::string, Member> members;
  Member& me = members[self.node_id()];
  me.set_node_id(self.node_id());
  for (const Listener& listener : self.listeners()) {
    if (listener.name() == "cluster") me.set_address(listener.address());
  }
  me.set_state("self");
  me.set_serving(self.serving());
  cluster::ClusterNode* cluster = local_->cluster();
  if (cluster != nullptr) {
    for (const std::string& node : cluster->Members()) {
      Member& member = members[node];
      member.set_node_id(node);
      if (member.state().empty()) member.set_state("down");
    }
    for (const cluster::ClusterNode::PeerView& peer : cluster->Peers()) {
      // Not linked and not a member: a node that left, or was removed; its address is still
      // dialled, so it can come back as a new member.
      if (peer.node_id.empty() || (!peer.up && members.count(peer.node_id) == 0)) continue;
      Member& member = members[peer.node_id];
      member.set_node_id(peer.node_id);
      member.set_address(peer.address);
      member.set_state(peer.up ? "up" : "down");
    }
    // Whether each serves, as it says itself.
    StatusRequest status_request;
    auto answers = peers_.Ask<NodeStatus>([&](Stub* stub, grpc::ClientContext* call,
                                              NodeStatus* out, Done done) {
      stub->async()->LocalStatus(call, &status_request, out, std::move(done));
    });
    for (const auto& answer : answers) {
      if (answer.status.ok()) members[answer.node_id].set_serving(answer.reply.serving());
    }
    AddFailures(answers, reply->mutable_unreachable());
  }
  for (auto& [node, member] : members) *reply->add_members() = std::move(member);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ClusterJoin(grpc::ServerContext* context,
                                           const JoinRequest* request, JoinReply* reply) {
  if (grpc::Status denied = Authorize(context, "cluster join"); !denied.ok()) return denied;
  cluster::ClusterNode* cluster = local_->cluster();
  if (cluster == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this node runs without a cluster (--cluster_listen is empty)");
  }
  const std::string& address = request->address();
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("not HOST:PORT: '", address, "'"));
  }
  AdminLog(LogLevel::kInfo, absl::StrCat("joining ", address));
  cluster->Join(address);
  // Polled: the link comes up on the transport's threads, which say nothing to us.
  // At most kJoinTimeout, and done before the caller's own deadline, so it gets this answer.
  const absl::Time deadline =
      std::min(absl::Now() + kJoinTimeout,
               absl::FromChrono(context->deadline()) - absl::Milliseconds(500));
  while (!context->IsCancelled()) {
    for (const cluster::ClusterNode::PeerView& peer : cluster->Peers()) {
      if (peer.address == address && peer.up) {
        reply->set_node_id(peer.node_id);
        return grpc::Status::OK;
      }
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                      absl::StrCat("no node linked up at ", address,
                                   " in time (this node keeps dialling it)"));
}

grpc::Status AdminServiceImpl::ClusterLeave(grpc::ServerContext* context,
                                            const LeaveRequest* request, LeaveReply* reply) {
  if (grpc::Status denied = Authorize(context, "cluster leave"); !denied.ok()) return denied;
  const std::string& node = request->node_id();
  if (node.empty() || node == local_->node_id()) {
    DrainReply drained = local_->Drain();
    reply->set_node_id(drained.node_id());
    reply->set_sessions(drained.sessions());
    return grpc::Status::OK;
  }
  if (local_->cluster() == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this node runs without a cluster (--cluster_listen is empty)");
  }
  bool up = false;
  for (const cluster::ClusterNode::PeerView& peer : peers_.UpPeers()) up |= peer.node_id == node;
  if (!up) return ForceLeave(node, reply);
  DrainRequest drain;
  auto answers = peers_.Ask<DrainReply>(
      [&](Stub* stub, grpc::ClientContext* call, DrainReply* out, Done done) {
        stub->async()->LocalDrain(call, &drain, out, std::move(done));
      },
      node);
  if (answers.empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("node ", node, " is not up in this cluster"));
  }
  if (!answers.front().status.ok()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        absl::StrCat("node ", node, " did not answer: ",
                                     answers.front().status.error_message()));
  }
  reply->set_node_id(answers.front().reply.node_id());
  reply->set_sessions(answers.front().reply.sessions());
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ForceLeave(const std::string& node, LeaveReply* reply) {
  // Not up here. Up on a peer (a link between two nodes is down, not the node): it is alive,
  // and its sessions are its own; forgetting it would have them taken over twice.
  StatusRequest status_request;
  auto statuses = peers_.Ask<NodeStatus>([&](Stub* stub, grpc::ClientContext* call,
                                             NodeStatus* out, Done done) {
    stub->async()->LocalStatus(call, &status_request, out, std::move(done));
  });
  for (const auto& answer : statuses) {
    if (!answer.status.ok()) continue;
    for (const PeerLink& peer : answer.reply.peers()) {
      if (peer.node_id() == node && peer.up()) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            absl::StrCat("node ", node, " is not up here but is up on ",
                                         answer.node_id, ": not removed (a link is down, not "
                                         "the node; ask ", answer.node_id, " to drain it)"));
      }
    }
  }
  // Forgotten here first: should it have come back meanwhile, nobody is asked.
  absl::StatusOr<bool> mine = local_->ForgetMember(node);
  if (!mine.ok()) return ToGrpc(mine.status());
  bool anywhere = *mine;
  reply->set_node_id(node);
  reply->set_removed(true);
  reply->add_node_ids(local_->node_id());
  ForgetRequest forget;
  forget.set_node_id(node);
  auto answers = peers_.Ask<ForgetReply>(
      [&](Stub* stub, grpc::ClientContext* call, ForgetReply* out, Done done) {
        stub->async()->LocalForgetMember(call, &forget, out, std::move(done));
      });
  for (const auto& answer : answers) {
    if (!answer.status.ok()) continue;
    anywhere |= answer.reply.was_member();
    reply->add_node_ids(answer.node_id);
  }
  AddFailures(answers, reply->mutable_unreachable());
  AddNotUp(peers_, reply);
  if (!anywhere && reply->unreachable().empty()) {
    return NotFound(absl::StrCat("node ", node, " is not up, and no node counts it as a member"));
  }
  AdminLog(LogLevel::kInfo, absl::StrCat("removed member ", node, " (not up) from ",
                                         absl::StrJoin(reply->node_ids(), ", ")));
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::Drain(grpc::ServerContext* context, const DrainRequest* request,
                                     DrainReply* reply) {
  if (grpc::Status denied = Authorize(context, "node drain"); !denied.ok()) return denied;
  *reply = local_->Drain();
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListClients(grpc::ServerContext* context,
                                           const ClientsRequest* request, ClientsReply* reply) {
  if (grpc::Status denied = Authorize(context, "clients list"); !denied.ok()) return denied;
  const std::string& only = request->node_id();
  std::vector<PeerFanout::Answer<ClientsReply>> answers;
  if (only != local_->node_id()) {
    answers = peers_.Ask<ClientsReply>(
        [&](Stub* stub, grpc::ClientContext* call, ClientsReply* out, Done done) {
          stub->async()->LocalClients(call, request, out, std::move(done));
        },
        only);
  }
  std::vector<Client> clients;
  bool truncated = false;
  if (only.empty() || only == local_->node_id()) {
    ClientsReply mine = LocalClients(*request);
    truncated |= mine.truncated();
    for (Client& client : *mine.mutable_clients()) clients.push_back(std::move(client));
  }
  for (auto& answer : answers) {
    if (!answer.status.ok()) continue;
    truncated |= answer.reply.truncated();
    for (Client& client : *answer.reply.mutable_clients()) clients.push_back(std::move(client));
  }
  std::sort(clients.begin(), clients.end(), [](const Client& a, const Client& b) {
    return std::tie(a.client_id(), a.node_id()) < std::tie(b.client_id(), b.node_id());
  });
  for (Client& client : clients) {
    if (request->limit() > 0 && static_cast<uint32_t>(reply->clients_size()) >= request->limit()) {
      truncated = true;
      break;
    }
    *reply->add_clients() = std::move(client);
  }
  reply->set_truncated(truncated);
  AddFailures(answers, reply->mutable_unreachable());
  if (only.empty()) AddNotUp(peers_, reply);
  if (!request->client_id().empty() && reply->clients().empty()) {
    return NotFound(absl::StrCat("client ", request->client_id(), " is not connected",
                                 NotAskedSuffix(reply->unreachable())));
  }
  if (!only.empty() && only != local_->node_id() && answers.empty()) {
    return NotFound(absl::StrCat("node ", only, " is not up in this cluster"));
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::KickClient(grpc::ServerContext* context,
                                          const ClientRequest* request, KickReply* reply) {
  if (grpc::Status denied = Authorize(context, "clients kick"); !denied.ok()) return denied;
  if (local_->Kick(request->client_id())) {
    reply->set_node_id(local_->node_id());
    return grpc::Status::OK;
  }
  auto answers = peers_.Ask<KickReply>(
      [&](Stub* stub, grpc::ClientContext* call, KickReply* out, Done done) {
        stub->async()->LocalKick(call, request, out, std::move(done));
      });
  google::protobuf::RepeatedPtrField<NodeError> unreachable;
  for (auto& answer : answers) {
    if (answer.status.ok()) {
      reply->set_node_id(answer.reply.node_id());
      return grpc::Status::OK;
    }
    if (answer.status.error_code() != grpc::StatusCode::NOT_FOUND) {
      std::vector<PeerFanout::Answer<KickReply>> failed;
      failed.push_back(std::move(answer));
      AddFailures(failed, &unreachable);
    }
  }
  for (NodeError& error : peers_.NotUp()) *unreachable.Add() = std::move(error);
  return NotFound(absl::StrCat("client ", request->client_id(), " is not connected",
                               NotAskedSuffix(unreachable)));
}

grpc::Status AdminServiceImpl::ListSessions(grpc::ServerContext* context,
                                            const SessionsRequest* request,
                                            SessionsReply* reply) {
  if (grpc::Status denied = Authorize(context, "sessions list"); !denied.ok()) return denied;
  auto answers = peers_.Ask<SessionsReply>(
      [&](Stub* stub, grpc::ClientContext* call, SessionsReply* out, Done done) {
        stub->async()->LocalSessions(call, request, out, std::move(done));
      });
  std::vector<admin::Session> sessions;
  SessionsReply mine = local_->Sessions(*request);
  bool truncated = mine.truncated();
  for (admin::Session& session : *mine.mutable_sessions()) sessions.push_back(std::move(session));
  for (auto& answer : answers) {
    if (!answer.status.ok()) continue;
    truncated |= answer.reply.truncated();
    for (admin::Session& session : *answer.reply.mutable_sessions()) {
      sessions.push_back(std::move(session));
    }
  }
  std::sort(sessions.begin(), sessions.end(),
            [](const admin::Session& a, const admin::Session& b) {
              return std::tie(a.client_id(), a.node_id()) < std::tie(b.client_id(), b.node_id());
            });
  for (admin::Session& session : sessions) {
    if (request->limit() > 0 && static_cast<uint32_t>(reply->sessions_size()) >= request->limit()) {
      truncated = true;
      break;
    }
    *reply->add_sessions() = std::move(session);
  }
  reply->set_truncated(truncated);
  AddFailures(answers, reply->mutable_unreachable());
  AddNotUp(peers_, reply);
  if (!request->client_id().empty() && reply->sessions().empty()) {
    return NotFound(absl::StrCat("no session of client ", request->client_id(),
                                 NotAskedSuffix(reply->unreachable())));
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::DropSession(grpc::ServerContext* context,
                                           const ClientRequest* request, DropSessionReply* reply) {
  if (grpc::Status denied = Authorize(context, "sessions drop"); !denied.ok()) return denied;
  auto answers = peers_.Ask<DropSessionReply>(
      [&](Stub* stub, grpc::ClientContext* call, DropSessionReply* out, Done done) {
        stub->async()->LocalDropSession(call, request, out, std::move(done));
      });
  if (local_->DropSession(request->client_id())) reply->add_node_ids(local_->node_id());
  google::protobuf::RepeatedPtrField<NodeError> unreachable;
  for (auto& answer : answers) {
    if (!answer.status.ok()) continue;
    for (const std::string& node : answer.reply.node_ids()) reply->add_node_ids(node);
  }
  if (reply->node_ids().empty()) {
    AddFailures(answers, &unreachable);
    for (NodeError& error : peers_.NotUp()) *unreachable.Add() = std::move(error);
    return NotFound(absl::StrCat("no session of client ", request->client_id(),
                                 NotAskedSuffix(unreachable)));
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListSubscriptions(grpc::ServerContext* context,
                                                 const SubscriptionsRequest* request,
                                                 SubscriptionsReply* reply) {
  if (grpc::Status denied = Authorize(context, "subscriptions list"); !denied.ok()) return denied;
  absl::StatusOr<SubscriptionsReply> mine = local_->Subscriptions(*request);
  if (!mine.ok()) return ToGrpc(mine.status());
  auto answers = peers_.Ask<SubscriptionsReply>(
      [&](Stub* stub, grpc::ClientContext* call, SubscriptionsReply* out, Done done) {
        stub->async()->LocalSubscriptions(call, request, out, std::move(done));
      });
  std::vector<Subscription> subscriptions(mine->subscriptions().begin(),
                                          mine->subscriptions().end());
  for (auto& answer : answers) {
    if (!answer.status.ok()) continue;
    for (Subscription& sub : *answer.reply.mutable_subscriptions()) {
      subscriptions.push_back(std::move(sub));
    }
  }
  std::sort(subscriptions.begin(), subscriptions.end(),
            [](const Subscription& a, const Subscription& b) {
              return std::tie(a.client_id(), a.filter(), a.node_id()) <
                     std::tie(b.client_id(), b.filter(), b.node_id());
            });
  for (Subscription& sub : subscriptions) *reply->add_subscriptions() = std::move(sub);
  AddFailures(answers, reply->mutable_unreachable());
  AddNotUp(peers_, reply);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::Routes(grpc::ServerContext* context, const RoutesRequest* request,
                                      RoutesReply* reply) {
  if (grpc::Status denied = Authorize(context, "routes"); !denied.ok()) return denied;
  auto answers = peers_.Ask<RoutesReply>(
      [&](Stub* stub, grpc::ClientContext* call, RoutesReply* out, Done done) {
        stub->async()->LocalRoutes(call, request, out, std::move(done));
      });
  RoutesReply mine = local_->Routes();
  std::vector<Route> routes(mine.routes().begin(), mine.routes().end());
  for (auto& answer : answers) {
    if (!answer.status.ok()) continue;
    for (Route& route : *answer.reply.mutable_routes()) routes.push_back(std::move(route));
  }
  std::sort(routes.begin(), routes.end(), [](const Route& a, const Route& b) {
    return std::tie(a.filter(), a.group(), a.node_id()) <
           std::tie(b.filter(), b.group(), b.node_id());
  });
  for (Route& route : routes) *reply->add_routes() = std::move(route);
  AddFailures(answers, reply->mutable_unreachable());
  AddNotUp(peers_, reply);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListRetained(grpc::ServerContext* context,
                                            const RetainedRequest* request,
                                            RetainedReply* reply) {
  if (grpc::Status denied = Authorize(context, "retained list"); !denied.ok()) return denied;
  absl::StatusOr<RetainedReply> retained = local_->ListRetained(*request);
  if (!retained.ok()) return ToGrpc(retained.status());
  *reply = std::move(*retained);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::GetRetained(grpc::ServerContext* context,
                                           const RetainedRequest* request,
                                           RetainedMessage* reply) {
  if (grpc::Status denied = Authorize(context, "retained get"); !denied.ok()) return denied;
  absl::StatusOr<RetainedMessage> retained = local_->GetRetained(request->filter());
  if (!retained.ok()) return ToGrpc(retained.status());
  *reply = std::move(*retained);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::DeleteRetained(grpc::ServerContext* context,
                                              const RetainedRequest* request,
                                              DeleteRetainedReply* reply) {
  if (grpc::Status denied = Authorize(context, "retained delete"); !denied.ok()) return denied;
  return ToGrpc(local_->DeleteRetained(request->filter()));
}

grpc::Status AdminServiceImpl::Publish(grpc::ServerContext* context,
                                       const PublishRequest* request, PublishReply* reply) {
  if (grpc::Status denied = Authorize(context, "publish"); !denied.ok()) return denied;
  absl::StatusOr<PublishReply> published = local_->Publish(*request);
  if (!published.ok()) return ToGrpc(published.status());
  *reply = std::move(*published);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::Metrics(grpc::ServerContext* context,
                                       const MetricsRequest* request, MetricsReply* reply) {
  if (grpc::Status denied = Authorize(context, "metrics"); !denied.ok()) return denied;
  auto answers = peers_.Ask<NodeMetrics>(
      [&](Stub* stub, grpc::ClientContext* call, NodeMetrics* out, Done done) {
        stub->async()->LocalMetrics(call, request, out, std::move(done));
      });
  *reply->add_nodes() = local_->Metrics();
  for (auto& answer : answers) {
    if (answer.status.ok()) *reply->add_nodes() = std::move(answer.reply);
  }
  AddFailures(answers, reply->mutable_unreachable());
  AddNotUp(peers_, reply);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::SetLogLevel(grpc::ServerContext* context,
                                           const LogLevelRequest* request, LogLevelReply* reply) {
  if (grpc::Status denied = Authorize(context, "log-level"); !denied.ok()) return denied;
  if (absl::Status status = local_->SetLogLevel(request->level()); !status.ok()) {
    return ToGrpc(status);
  }
  reply->add_node_ids(local_->node_id());
  auto answers = peers_.Ask<LogLevelReply>(
      [&](Stub* stub, grpc::ClientContext* call, LogLevelReply* out, Done done) {
        stub->async()->LocalSetLogLevel(call, request, out, std::move(done));
      });
  for (auto& answer : answers) {
    if (!answer.status.ok()) continue;
    for (const std::string& node : answer.reply.node_ids()) reply->add_node_ids(node);
  }
  AddFailures(answers, reply->mutable_unreachable());
  AddNotUp(peers_, reply);
  return grpc::Status::OK;
}

}  // namespace meshmq::admin
