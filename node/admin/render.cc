#include "node/admin/render.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "node/admin/table.h"

namespace meshmq::admin {
namespace {

constexpr uint32_t kNever = 0xFFFFFFFF;
constexpr size_t kPayloadPreview = 40;

std::string YesNo(bool value) { return value ? "yes" : "no"; }

std::string OrDash(const std::string& value) { return value.empty() ? "-" : value; }

// A keepalive in seconds, as the client asked for it (or the server imposed it): "60s"; 0 turns
// the mechanism off (MQTT-3.1.2-23).
std::string FormatKeepAlive(uint32_t seconds) {
  return seconds == 0 ? "none" : absl::StrCat(seconds, "s");
}

std::string SubscriptionOptionsText(const Subscription& sub) {
  std::vector<std::string> options;
  if (sub.no_local()) options.push_back("no-local");
  if (sub.retain_as_published()) options.push_back("retain-as-published");
  if (sub.retain_handling() != 0) options.push_back(absl::StrCat("rh=", sub.retain_handling()));
  if (sub.subscription_id() != 0) options.push_back(absl::StrCat("id=", sub.subscription_id()));
  return absl::StrJoin(options, ",");
}

std::string NoneIfEmpty(const Table& table, const char* what) {
  if (table.rows() == 0) return absl::StrCat("(no ", what, ")\n");
  return table.Render();
}

}  // namespace

std::string RenderJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "{}\n";
  if (json.empty() || json.back() != '\n') json.push_back('\n');
  return json;
}

std::string FormatUptime(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  const int64_t days = seconds / 86400, hours = seconds / 3600 % 24, minutes = seconds / 60 % 60;
  if (days > 0) return absl::StrFormat("%dd%02dh", days, hours);
  if (hours > 0) return absl::StrFormat("%dh%02dm", hours, minutes);
  if (minutes > 0) return absl::StrFormat("%dm%02ds", minutes, seconds % 60);
  return absl::StrFormat("%ds", seconds);
}

std::string FormatExpiry(uint32_t seconds) {
  if (seconds == kNever) return "never";
  return FormatUptime(seconds);
}

std::string RenderStatus(const StatusReply& reply) {
  Table table({"NODE", "VERSION", "UPTIME", "SERVING", "PEERS UP", "CLIENTS", "SESSIONS",
               "SUBSCRIPTIONS", "RETAINED", "LISTENERS"});
  size_t serving = 0;
  for (const NodeStatus& node : reply.nodes()) {
    int up = 0;
    for (const PeerLink& peer : node.peers()) up += peer.up() ? 1 : 0;
    std::vector<std::string> listeners;
    for (const Listener& listener : node.listeners()) {
      listeners.push_back(absl::StrCat(listener.name(), "=", listener.address()));
    }
    serving += node.serving() ? 1 : 0;
    table.AddRow({node.node_id(), node.version(), FormatUptime(node.uptime_seconds()),
                  YesNo(node.serving()),
                  node.clustered() ? absl::StrCat(up, "/", node.peers_size()) : "-",
                  absl::StrCat(node.clients()), absl::StrCat(node.sessions()),
                  absl::StrCat(node.subscriptions()), absl::StrCat(node.retained()),
                  absl::StrJoin(listeners, " ")});
  }
  const size_t total = reply.nodes_size() + reply.unreachable_size();
  const bool healthy =
      reply.unreachable().empty() && serving == static_cast<size_t>(reply.nodes_size());
  return absl::StrCat(table.Render(), "\ncluster: ", healthy ? "healthy" : "degraded", " (",
                      reply.nodes_size(), " of ", total, " nodes answered, ", serving,
                      " serving)\n");
}

std::string RenderMembers(const MembersReply& reply) {
  Table table({"NODE", "ADDRESS", "STATE", "SERVING"});
  for (const Member& member : reply.members()) {
    table.AddRow({member.node_id(), member.address().empty() ? "-" : member.address(),
                  member.state(), member.state() == "down" ? "?" : YesNo(member.serving())});
  }
  return table.Render();
}

std::string RenderClients(const ClientsReply& reply) {
  Table table({"CLIENT ID", "NODE", "PEER", "MQTT", "KEEPALIVE", "USERNAME", "EXPIRY", "SUBS",
               "QUEUED", "INFLIGHT"});
  for (const Client& client : reply.clients()) {
    table.AddRow({Printable(client.client_id()), client.node_id(), client.peer_address(),
                  OrDash(client.protocol()), FormatKeepAlive(client.keepalive()),
                  client.username().empty() ? "-" : Printable(client.username()),
                  FormatExpiry(client.session_expiry()), absl::StrCat(client.subscriptions()),
                  absl::StrCat(client.queued()), absl::StrCat(client.inflight())});
  }
  std::string out = NoneIfEmpty(table, "clients connected");
  if (reply.truncated()) out.append("(more clients not shown: raise --limit)\n");
  return out;
}

std::string RenderClient(const Client& client) {
  return RenderFields({{"client id", Printable(client.client_id())},
                       {"node", client.node_id()},
                       {"peer", client.peer_address()},
                       {"mqtt", OrDash(client.protocol())},
                       {"keepalive", FormatKeepAlive(client.keepalive())},
                       {"username", client.username().empty() ? "-" : Printable(client.username())},
                       {"session expiry", FormatExpiry(client.session_expiry())},
                       {"subscriptions", absl::StrCat(client.subscriptions())},
                       {"queued", absl::StrCat(client.queued())},
                       {"in flight", absl::StrCat(client.inflight())}});
}

std::string RenderSessions(const SessionsReply& reply) {
  Table table({"CLIENT ID", "NODE", "CONNECTED", "EXPIRY", "SUBS", "QUEUED", "INFLIGHT"});
  for (const Session& session : reply.sessions()) {
    table.AddRow({Printable(session.client_id()), session.node_id(), YesNo(session.connected()),
                  FormatExpiry(session.expiry_interval()),
                  absl::StrCat(session.subscription_count()), absl::StrCat(session.queued()),
                  absl::StrCat(session.inflight())});
  }
  std::string out = NoneIfEmpty(table, "sessions");
  if (reply.truncated()) out.append("(more sessions not shown: raise --limit)\n");
  return out;
}

std::string RenderSession(const Session& session) {
  std::string out = RenderFields({{"client id", Printable(session.client_id())},
                                  {"node", session.node_id()},
                                  {"connected", YesNo(session.connected())},
                                  {"expiry", FormatExpiry(session.expiry_interval())},
                                  {"queued", absl::StrCat(session.queued())},
                                  {"in flight", absl::StrCat(session.inflight())},
                                  {"subscriptions", absl::StrCat(session.subscription_count())}});
  if (session.subscriptions().empty()) return out;
  Table table({"FILTER", "QOS", "OPTIONS"});
  for (const Subscription& sub : session.subscriptions()) {
    table.AddRow({Printable(sub.filter()), absl::StrCat(sub.qos()), SubscriptionOptionsText(sub)});
  }
  return absl::StrCat(out, "\n", table.Render());
}

std::string RenderSubscriptions(const SubscriptionsReply& reply) {
  Table table({"CLIENT ID", "NODE", "FILTER", "QOS", "OPTIONS"});
  for (const Subscription& sub : reply.subscriptions()) {
    table.AddRow({Printable(sub.client_id()), sub.node_id(), Printable(sub.filter()),
                  absl::StrCat(sub.qos()), SubscriptionOptionsText(sub)});
  }
  return NoneIfEmpty(table, "subscriptions");
}

std::string RenderRoutes(const RoutesReply& reply) {
  Table table({"FILTER", "GROUP", "NODE", "SUBSCRIBERS"});
  for (const Route& route : reply.routes()) {
    table.AddRow({Printable(route.filter()), route.group().empty() ? "-" : Printable(route.group()),
                  route.node_id(), absl::StrCat(route.subscribers())});
  }
  return NoneIfEmpty(table, "routes");
}

std::string RenderRetainedList(const RetainedReply& reply) {
  Table table({"TOPIC", "QOS", "BYTES", "PAYLOAD"});
  for (const RetainedMessage& message : reply.messages()) {
    table.AddRow({Printable(message.topic()), absl::StrCat(message.qos()),
                  absl::StrCat(message.payload().size()),
                  Printable(message.payload(), kPayloadPreview)});
  }
  std::string out = NoneIfEmpty(table, "retained messages");
  if (reply.truncated()) out.append("(more retained messages not shown: raise --limit)\n");
  return out;
}

std::string RenderRetained(const RetainedMessage& message) {
  return RenderFields({{"topic", Printable(message.topic())},
                       {"qos", absl::StrCat(message.qos())},
                       {"bytes", absl::StrCat(message.payload().size())},
                       {"payload", Printable(message.payload())}});
}

std::string RenderMetrics(const MetricsReply& reply) {
  std::vector<std::string> headers = {"COUNTER"};
  std::vector<std::string> names;  // in the first node's order
  std::map<std::string, std::vector<std::string>> values;
  for (int n = 0; n < reply.nodes_size(); ++n) {
    const NodeMetrics& node = reply.nodes(n);
    headers.push_back(node.node_id());
    for (const Counter& counter : node.counters()) {
      std::vector<std::string>& row = values[counter.name()];
      if (row.empty()) names.push_back(counter.name());
      row.resize(reply.nodes_size());
      row[n] = absl::StrCat(counter.value());
    }
  }
  Table table(headers);
  for (const std::string& name : names) {
    std::vector<std::string> row = {name};
    for (std::string& value : values[name]) row.push_back(std::move(value));
    table.AddRow(std::move(row));
  }
  return table.Render();
}

std::string RenderUnreachable(const google::protobuf::RepeatedPtrField<NodeError>& unreachable) {
  std::string out;
  for (const NodeError& error : unreachable) {
    absl::StrAppend(&out, "meshmqctl: warning: node ",
                    error.node_id().empty() ? "?" : error.node_id(),
                    error.address().empty() ? "" : absl::StrCat(" (", error.address(), ")"),
                    " not included: ", error.error(), "\n");
  }
  return out;
}

}  // namespace meshmq::admin
