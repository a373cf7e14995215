#include "node/admin/local_admin.h"

#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cluster/cluster_node.h"
#include "node/admin/log_level.h"
#include "node/broker.h"
#include "node/subscription.h"
#include "node/topic.h"
#include "node/worker.h"

namespace meshmq::admin {
namespace {

// The filter a subscription routes on: "$share/g/f" routes on f.
std::string RoutedFilter(const std::string& filter, std::string* group) {
  SharedFilter shared;
  if (ClassifyFilter(filter, &shared) == FilterKind::kShared) {
    if (group != nullptr) *group = std::string(shared.group);
    return std::string(shared.filter);
  }
  if (group != nullptr) group->clear();
  return filter;
}

// Every session here, by client id.
std::vector<std::shared_ptr<meshmq::Session>> SortedSessions(Broker* broker) {
  std::vector<std::string> ids = broker->sessions().ClientIds();
  std::sort(ids.begin(), ids.end());
  std::vector<std::shared_ptr<meshmq::Session>> sessions;
  for (const std::string& id : ids) {
    std::shared_ptr<meshmq::Session> session = broker->sessions().Find(id);
    if (session != nullptr && !session->discarded()) sessions.push_back(std::move(session));
  }
  return sessions;
}

// The session of `client_id` (none if it has none here), or every session if it is empty.
std::vector<std::shared_ptr<meshmq::Session>> SessionsFor(Broker* broker,
                                                         const std::string& client_id) {
  if (client_id.empty()) return SortedSessions(broker);
  std::vector<std::shared_ptr<meshmq::Session>> sessions;
  if (std::shared_ptr<meshmq::Session> session = broker->sessions().Find(client_id)) {
    sessions.push_back(std::move(session));
  }
  return sessions;
}

void FillSubscription(const std::string& node_id, const std::string& client_id,
                      const std::string& filter, const SubscriptionOptions& options,
                      Subscription* out) {
  out->set_node_id(node_id);
  out->set_client_id(client_id);
  out->set_filter(filter);
  out->set_qos(options.qos);
  out->set_no_local(options.no_local);
  out->set_retain_as_published(options.retain_as_published);
  out->set_retain_handling(options.retain_handling);
  out->set_subscription_id(options.subscription_id);
}

std::string HostOf(const std::string& address) {
  return address.substr(0, address.rfind(':'));
}

// CONNECT's protocol level as operators name the version (MQTT 3.1.1 section 3.1.2.2).
const char* ProtocolName(uint8_t level) {
  switch (level) {
    case 3:
      return "3.1";
    case 4:
      return "3.1.1";
    case 5:
      return "5.0";
  }
  return "?";
}

}  // namespace

LocalAdmin::LocalAdmin(Broker* broker, cluster::ClusterNode* cluster)
    : broker_(broker), cluster_(cluster) {}

const std::string& LocalAdmin::node_id() const { return broker_->config().node_id; }

void LocalAdmin::AddListener(std::string name, std::string address) {
  Listener listener;
  listener.set_name(std::move(name));
  listener.set_address(std::move(address));
  absl::MutexLock lock(&mu_);
  listeners_.push_back(std::move(listener));
}

NodeStatus LocalAdmin::Status() const {
  NodeStatus status;
  status.set_node_id(node_id());
  status.set_version(Broker::version());
  status.set_uptime_seconds(absl::ToInt64Seconds(absl::Now() - broker_->started_at()));
  Listener* mqtt = status.add_listeners();
  mqtt->set_name("mqtt");
  mqtt->set_address(absl::StrCat(HostOf(broker_->config().mqtt_listen), ":", broker_->mqtt_port()));
  {
    absl::MutexLock lock(&mu_);
    for (const Listener& listener : listeners_) *status.add_listeners() = listener;
  }
  status.set_clustered(cluster_ != nullptr);
  status.set_serving(cluster_ == nullptr || cluster_->Serving());
  if (cluster_ != nullptr) {
    for (const cluster::ClusterNode::PeerView& peer : cluster_->Peers()) {
      PeerLink* link = status.add_peers();
      link->set_node_id(peer.node_id);
      link->set_address(peer.address);
      link->set_up(peer.up);
    }
  }
  uint64_t clients = 0;
  for (const auto& worker : broker_->workers()) {
    clients += worker->stats().connections.load(std::memory_order_relaxed);
  }
  status.set_clients(clients);
  status.set_sessions(broker_->sessions().size());
  status.set_subscriptions(broker_->subscriptions().size());
  status.set_retained(broker_->retained().size());
  return status;
}

void LocalAdmin::Clients(const ClientsRequest& request,
                         std::function<void(ClientsReply)> done) const {
  if (!request.node_id().empty() && request.node_id() != node_id()) {
    done(ClientsReply());
    return;
  }
  // The connected sessions, grouped by the worker that owns their connection; each worker
  // then names its connections' peers.
  struct Pending {
    Client client;
    uint64_t connection_id = 0;
  };
  std::map<Worker*, std::vector<Pending>> by_worker;
  const std::vector<std::shared_ptr<meshmq::Session>> sessions =
      SessionsFor(broker_, request.client_id());
  for (const std::shared_ptr<meshmq::Session>& session : sessions) {
    std::optional<SessionOwner> owner = session->current_owner();
    if (!owner || owner->worker == nullptr) continue;
    Pending pending;
    pending.connection_id = owner->connection_id;
    Client& client = pending.client;
    client.set_client_id(session->client_id());
    client.set_node_id(node_id());
    client.set_username(session->username().value_or(""));
    client.set_session_expiry(session->expiry_interval());
    client.set_subscriptions(static_cast<uint32_t>(session->subscriptions().size()));
    client.set_queued(session->queued_count());
    client.set_inflight(session->inflight_count());
    by_worker[owner->worker].push_back(std::move(pending));
  }
  const uint32_t limit = request.limit();
  // Put together once every worker answered.
  struct Gather {
    absl::Mutex mu;
    size_t remaining = 0;
    std::vector<Client> clients;
    std::function<void(ClientsReply)> done;
    uint32_t limit = 0;
    void Add(std::vector<Client> some) {
      std::vector<Client> all;
      {
        absl::MutexLock lock(&mu);
        for (Client& client : some) clients.push_back(std::move(client));
        if (--remaining > 0) return;
        all = std::move(clients);
      }
      std::sort(all.begin(), all.end(), [](const Client& a, const Client& b) {
        return a.client_id() < b.client_id();
      });
      ClientsReply reply;
      for (Client& client : all) {
        if (limit > 0 && static_cast<uint32_t>(reply.clients_size()) >= limit) {
          reply.set_truncated(true);
          break;
        }
        *reply.add_clients() = std::move(client);
      }
      done(std::move(reply));
    }
  };
  auto gather = std::make_shared<Gather>();
  gather->remaining = by_worker.size() + 1;  // +1: released below, after every post
  gather->done = std::move(done);
  gather->limit = limit;
  for (auto& [worker, pendings] : by_worker) {
    std::vector<uint64_t> ids;
    for (const Pending& pending : pendings) ids.push_back(pending.connection_id);
    auto shared_pendings = std::make_shared<std::vector<Pending>>(std::move(pendings));
    const bool posted = worker->DescribeConnections(
        std::move(ids),
        [gather, shared_pendings](std::vector<Worker::ConnectionInfo> connections) {
          std::vector<Client> clients;
          for (Pending& pending : *shared_pendings) {
            for (const Worker::ConnectionInfo& connection : connections) {
              if (connection.connection_id != pending.connection_id) continue;
              pending.client.set_peer_address(connection.peer_address);
              pending.client.set_protocol(ProtocolName(connection.protocol_level));
              pending.client.set_keepalive(connection.keep_alive);
              clients.push_back(std::move(pending.client));
              break;
            }
          }
          gather->Add(std::move(clients));
        });
    if (!posted) gather->Add({});  // the worker has stopped: its connections are gone
  }
  gather->Add({});
}

bool LocalAdmin::Kick(const std::string& client_id) const {
  std::shared_ptr<meshmq::Session> session = broker_->sessions().Find(client_id);
  if (session == nullptr) return false;
  std::optional<SessionOwner> owner = session->current_owner();
  if (!owner || owner->worker == nullptr) return false;
  AdminLog(LogLevel::kInfo, absl::StrCat("kicking client ", client_id));
  owner->worker->CloseByAdmin(owner->connection_id, /*publish_will=*/true);
  return true;
}

SessionsReply LocalAdmin::Sessions(const SessionsRequest& request) const {
  SessionsReply reply;
  std::vector<std::shared_ptr<meshmq::Session>> sessions;
  const bool one = !request.client_id().empty();
  if (one) {
    std::shared_ptr<meshmq::Session> session = broker_->sessions().Find(request.client_id());
    if (session != nullptr && !session->discarded()) sessions.push_back(std::move(session));
  } else {
    sessions = SortedSessions(broker_);
  }
  for (const std::shared_ptr<meshmq::Session>& session : sessions) {
    if (request.limit() > 0 && static_cast<uint32_t>(reply.sessions_size()) >= request.limit()) {
      reply.set_truncated(true);
      break;
    }
    admin::Session* out = reply.add_sessions();
    out->set_client_id(session->client_id());
    out->set_node_id(node_id());
    out->set_connected(session->online());
    out->set_expiry_interval(session->expiry_interval());
    out->set_queued(session->queued_count());
    out->set_inflight(session->inflight_count());
    const std::map<std::string, SubscriptionOptions> subscriptions = session->subscriptions();
    out->set_subscription_count(static_cast<uint32_t>(subscriptions.size()));
    if (!one) continue;
    for (const auto& [filter, options] : subscriptions) {
      FillSubscription(node_id(), session->client_id(), filter, options,
                       out->add_subscriptions());
    }
  }
  return reply;
}

bool LocalAdmin::DropSession(const std::string& client_id) const {
  if (!broker_->DropSession(client_id)) return false;
  AdminLog(LogLevel::kInfo, absl::StrCat("dropped the session of ", client_id));
  return true;
}

absl::StatusOr<SubscriptionsReply> LocalAdmin::Subscriptions(
    const SubscriptionsRequest& request) const {
  const std::string& topic = request.topic();
  // A topic name: who receives a message published there. Anything else: that exact filter.
  const bool by_topic = !topic.empty() && IsValidTopicName(topic);
  if (!topic.empty() && !by_topic && !IsValidTopicFilter(RoutedFilter(topic, nullptr))) {
    return absl::InvalidArgumentError(absl::StrCat("not a topic or filter: '", topic, "'"));
  }
  SubscriptionsReply reply;
  const std::vector<std::shared_ptr<meshmq::Session>> sessions =
      SessionsFor(broker_, request.client_id());
  for (const std::shared_ptr<meshmq::Session>& session : sessions) {
    for (const auto& [filter, options] : session->subscriptions()) {
      if (by_topic && !TopicMatches(RoutedFilter(filter, nullptr), topic)) continue;
      if (!topic.empty() && !by_topic && filter != topic) continue;
      FillSubscription(node_id(), session->client_id(), filter, options,
                       reply.add_subscriptions());
    }
  }
  return reply;
}

RoutesReply LocalAdmin::Routes() const {
  std::map<std::pair<std::string, std::string>, uint32_t> counts;  // (filter, group)
  for (const std::shared_ptr<meshmq::Session>& session : SortedSessions(broker_)) {
    for (const auto& [filter, options] : session->subscriptions()) {
      std::string group;
      std::string routed = RoutedFilter(filter, &group);
      ++counts[{std::move(routed), std::move(group)}];
    }
  }
  RoutesReply reply;
  for (const auto& [key, count] : counts) {
    Route* route = reply.add_routes();
    route->set_node_id(node_id());
    route->set_filter(key.first);
    route->set_group(key.second);
    route->set_subscribers(count);
  }
  return reply;
}

NodeMetrics LocalAdmin::Metrics() const {
  NodeMetrics metrics;
  metrics.set_node_id(node_id());
  auto add = [&](const std::string& name, uint64_t value) {
    Counter* counter = metrics.add_counters();
    counter->set_name(name);
    counter->set_value(value);
  };
  uint64_t received = 0, sent = 0, connected = 0;
  for (const auto& worker : broker_->workers()) {
    received += worker->stats().messages_received.load(std::memory_order_relaxed);
    sent += worker->stats().messages_sent.load(std::memory_order_relaxed);
    connected += worker->stats().connections.load(std::memory_order_relaxed);
  }
  add("clients_connected", connected);
  add("messages_received", received);
  add("messages_sent", sent);
  add("sessions", broker_->sessions().size());
  add("subscriptions", broker_->subscriptions().size());
  add("retained_messages", broker_->retained().size());
  broker_->counters().ForEach([&](const char* name, uint64_t value) { add(name, value); });
  if (cluster_ != nullptr) {
    const cluster::TransportStats& stats = cluster_->transport().stats();
    add("cluster_links_up", stats.links_up.load(std::memory_order_relaxed));
    add("cluster_links_down", stats.links_down.load(std::memory_order_relaxed));
    add("cluster_peer_timeouts", stats.peer_timeouts.load(std::memory_order_relaxed));
    add("cluster_frames_sent", stats.frames_sent.load(std::memory_order_relaxed));
    add("cluster_frames_received", stats.frames_received.load(std::memory_order_relaxed));
  }
  return metrics;
}

NodeSysStats LocalAdmin::SysStats() const {
  const Broker::SysStats stats = broker_->sys_stats();
  NodeSysStats out;
  out.set_node_id(node_id());
  out.set_clients_connected(stats.clients_connected);
  out.set_clients_total(stats.clients_total);
  out.set_messages_received(stats.messages_received);
  out.set_messages_sent(stats.messages_sent);
  out.set_bytes_received(stats.bytes_received);
  out.set_bytes_sent(stats.bytes_sent);
  out.set_subscriptions(stats.subscriptions);
  out.set_retained(stats.retained);
  return out;
}

absl::Status LocalAdmin::SetLogLevel(const std::string& level) const {
  std::optional<LogLevel> parsed = ParseLogLevel(level);
  if (!parsed) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level '", level, "' (error, warning, info, debug)"));
  }
  admin::SetLogLevel(*parsed);
  LogAlways(absl::StrCat("meshmqd: admin: log level ", LogLevelName(*parsed)));
  return absl::OkStatus();
}

DrainReply LocalAdmin::Drain() const {
  DrainReply reply;
  reply.set_node_id(node_id());
  reply.set_sessions(broker_->sessions().size());
  AdminLog(LogLevel::kInfo, absl::StrCat("drain requested: handing ", broker_->sessions().size(),
                                         " sessions to peers, then stopping"));
  if (drain_) drain_();
  return reply;
}

absl::StatusOr<bool> LocalAdmin::ForgetMember(const std::string& node) const {
  if (cluster_ == nullptr) {
    return absl::FailedPreconditionError(
        "this node runs without a cluster (--cluster_listen is empty)");
  }
  bool was_member = false;
  if (absl::Status status = cluster_->ForgetMember(node, &was_member); !status.ok()) {
    return status;
  }
  return was_member;
}

absl::StatusOr<RetainedReply> LocalAdmin::ListRetained(const RetainedRequest& request) const {
  const std::string filter = request.filter().empty() ? "#" : request.filter();
  if (!IsValidTopicFilter(filter)) {
    return absl::InvalidArgumentError(absl::StrCat("not a topic filter: '", filter, "'"));
  }
  std::vector<MessagePtr> messages;
  broker_->retained().Match(filter, &messages);
  std::sort(messages.begin(), messages.end(),
            [](const MessagePtr& a, const MessagePtr& b) { return a->topic < b->topic; });
  RetainedReply reply;
  for (const MessagePtr& message : messages) {
    if (request.limit() > 0 && static_cast<uint32_t>(reply.messages_size()) >= request.limit()) {
      reply.set_truncated(true);
      break;
    }
    RetainedMessage* out = reply.add_messages();
    out->set_topic(message->topic);
    out->set_payload(message->payload);
    out->set_qos(message->qos);
  }
  return reply;
}

absl::StatusOr<RetainedMessage> LocalAdmin::GetRetained(const std::string& topic) const {
  if (!IsValidTopicName(topic)) {
    return absl::InvalidArgumentError(absl::StrCat("not a topic name: '", topic, "'"));
  }
  std::vector<MessagePtr> messages;
  broker_->retained().Match(topic, &messages);
  if (messages.empty()) {
    return absl::NotFoundError(absl::StrCat("no retained message on '", topic, "'"));
  }
  RetainedMessage out;
  out.set_topic(messages.front()->topic);
  out.set_payload(messages.front()->payload);
  out.set_qos(messages.front()->qos);
  return out;
}

absl::Status LocalAdmin::DeleteRetained(const std::string& topic) const {
  absl::StatusOr<RetainedMessage> existing = GetRetained(topic);
  if (!existing.ok()) return existing.status();
  // As Broker::Publish stores an empty retained message, minus the delivery: in a cluster the
  // deletion is versioned by the clock, so it replicates and wins over older values everywhere.
  const RetainedVersion version = broker_->cluster() != nullptr && !IsSysTopic(topic)
                                      ? RetainedVersion{broker_->clock().Now(), node_id()}
                                      : RetainedVersion{};
  broker_->retained().Apply(topic, nullptr, version);
  AdminLog(LogLevel::kInfo, absl::StrCat("deleted the retained message of ", topic));
  return absl::OkStatus();
}

absl::StatusOr<PublishReply> LocalAdmin::Publish(const PublishRequest& request) const {
  if (!IsValidTopicName(request.topic())) {
    return absl::InvalidArgumentError(absl::StrCat("not a topic name: '", request.topic(), "'"));
  }
  if (IsSysTopic(request.topic())) {
    return absl::InvalidArgumentError("$SYS topics are the broker's own");
  }
  if (request.qos() > 2) return absl::InvalidArgumentError("QoS must be 0, 1 or 2");
  auto message = std::make_shared<Message>();
  message->topic = request.topic();
  message->payload = request.payload();
  message->qos = static_cast<uint8_t>(request.qos());
  message->retain = request.retain();
  message->id = broker_->NewMessageId();
  PublishReply reply;
  reply.set_receivers(broker_->Publish(message));
  AdminLog(LogLevel::kDebug, absl::StrCat("published on ", request.topic()));
  return reply;
}

}  // namespace meshmq::admin
