#include "node/metrics/node_metrics.h"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cluster/cluster_node.h"
#include "node/broker.h"
#include "node/metrics/exposition.h"
#include "node/session.h"
#include "node/worker.h"
#include "storage/store.h"

namespace meshmq::metrics {
namespace {

// HELP text of each Counters entry, exported as meshmq_<name>_total. A counter missing here
// (added later) is exported all the same, with a generic text.
constexpr std::pair<std::string_view, std::string_view> kCounterHelp[] = {
    {"packets_malformed", "Connections closed for malformed input or a protocol violation."},
    {"packets_too_large", "Connections closed for a packet above --max_packet_size."},
    {"connections_refused_max", "Connections refused at --max_connections."},
    {"messages_dropped_queue_full",
     "Messages dropped from a full session queue (--max_queued_messages)."},
    {"messages_dropped_output_buffer",
     "QoS 0 messages dropped for a slow reader (--max_output_buffer)."},
    {"connect_timeouts", "Connections closed for sending no CONNECT within --connect_timeout."},
    {"keepalive_timeouts", "Connections closed for keepalive expiry."},
    {"publish_denied", "Publishes (and wills) refused by the ACL or to $SYS topics."},
    {"subscribe_denied", "Subscriptions refused by the ACL."},
    {"auth_failures", "CONNECTs refused for bad credentials or anonymous access."},
    {"takeovers", "Sessions taken over by a new connection with the same client id."},
    {"connections_refused_unavailable", "CONNECTs refused while the node was not serving."},
    {"wills_published", "Wills published."},
    {"wills_delayed", "Wills held back by a Will Delay Interval."},
    {"messages_expired", "Messages dropped when their Message Expiry Interval ran out."},
    {"messages_dropped_packet_size",
     "Messages dropped for a client whose Maximum Packet Size they exceed."},
    {"receive_maximum_exceeded", "Connections closed for exceeding the Receive Maximum."},
    {"topic_alias_invalid", "Connections closed for an invalid Topic Alias."},
    {"subscriptions_refused_max", "Subscriptions refused at --max_subscriptions."},
    {"sessions_expired", "Offline sessions ended by their expiry interval."},
    {"shared_redeliveries",
     "Unacknowledged shared-subscription messages given to another member."},
    {"sessions_restored", "Persistent sessions loaded from the store at start."},
    {"retained_restored", "Retained messages loaded from the store at start."},
    {"store_write_groups", "Group commits written to the store."},
    {"store_errors", "Failed store writes."},
    {"cluster_forwarded", "Messages forwarded to peers (one per peer per message)."},
    {"cluster_received", "Messages peers forwarded to this node."},
    {"cluster_forward_dropped",
     "QoS 0 messages not forwarded at a peer's --cluster_max_pending_bytes."},
    {"cluster_forward_refused",
     "QoS 1/2 messages refused at a peer's --cluster_max_pending_bytes (publisher disconnected)."},
    {"cluster_shared_undeliverable",
     "Forwarded shared-subscription messages whose group had no member here any more."},
    {"cluster_retained_received", "Retained changes applied from peers."},
    {"cluster_sessions_moved", "Sessions taken over from another node."},
    {"cluster_move_forwarded", "Messages for a session that moved away, passed on after it."},
    {"cluster_move_duplicates", "Second copies of messages a session that just moved dropped."},
    {"cluster_move_holds_overflowed",
     "Move holds ended before their fence: as many messages as --max_queued_messages waited."},
    {"cluster_sessions_taken_over", "Sessions of a dead or leaving node taken over here."},
    {"cluster_stale_sessions_dropped",
     "Own sessions dropped because another node took them later."},
    {"cluster_orphans_redelivered", "Messages a dead peer never acknowledged, delivered again."},
    {"cluster_publishes_held", "Publishes that waited for a takeover."},
    {"cluster_wills_published", "Wills of clients of a dead node published here."},
};

std::string_view CounterHelp(std::string_view name) {
  for (const auto& [counter, help] : kCounterHelp) {
    if (counter == name) return help;
  }
  return "A node counter (see $SYS/broker/counters/).";
}

constexpr std::string_view kQos[] = {"0", "1", "2"};

// Sums one per-worker counter.
template <typename Get>
uint64_t SumWorkers(const Broker& broker, Get get) {
  uint64_t total = 0;
  for (const auto& worker : broker.workers()) total += get(worker->stats());
  return total;
}

uint64_t Load(const std::atomic<uint64_t>& value) {
  return value.load(std::memory_order_relaxed);
}

void WriteClientMetrics(const Broker& broker, TextWriter& w) {
  w.Gauge("meshmq_connections",
          "Client TCP connections open now, including those that have not sent CONNECT yet.",
          static_cast<double>(SumWorkers(
              broker, [](const Worker::Stats& s) { return Load(s.connections); })));
  w.Gauge("meshmq_clients_connected", "Clients connected now (CONNECT accepted).",
          static_cast<double>(broker.connected_clients()));
  w.Counter("meshmq_connects_total", "CONNECTs accepted.",
            SumWorkers(broker, [](const Worker::Stats& s) { return Load(s.connects); }));
  w.Begin("meshmq_disconnects_total", MetricType::kCounter,
          "Connections of connected clients that ended, by reason.");
  for (int i = 0; i < static_cast<int>(DisconnectReason::kCount); ++i) {
    w.Sample(Labels{{"reason", DisconnectReasonName(static_cast<DisconnectReason>(i))}},
             SumWorkers(broker, [i](const Worker::Stats& s) { return Load(s.disconnects[i]); }));
  }
  w.Counter("meshmq_bytes_received_total", "Bytes read from client connections.",
            SumWorkers(broker, [](const Worker::Stats& s) { return Load(s.bytes_read); }));
  w.Counter("meshmq_bytes_sent_total", "Bytes written to client connections.",
            SumWorkers(broker, [](const Worker::Stats& s) { return Load(s.bytes_written); }));
}

void WriteMessageMetrics(const Broker& broker, TextWriter& w) {
  struct ByQos {
    const char* name;
    const char* help;
    std::atomic<uint64_t> (Worker::Stats::*field)[3];
  };
  const ByQos families[] = {
      {"meshmq_messages_received_total", "PUBLISH packets received from clients, by QoS.",
       &Worker::Stats::received_by_qos},
      {"meshmq_messages_sent_total", "PUBLISH packets sent to clients, by the QoS delivered at.",
       &Worker::Stats::sent_by_qos},
      {"meshmq_payload_bytes_received_total",
       "Payload bytes of the PUBLISH packets received from clients, by QoS.",
       &Worker::Stats::received_payload_bytes_by_qos},
      {"meshmq_payload_bytes_sent_total",
       "Payload bytes of the PUBLISH packets sent to clients, by the QoS delivered at.",
       &Worker::Stats::sent_payload_bytes_by_qos},
  };
  for (const ByQos& family : families) {
    w.Begin(family.name, MetricType::kCounter, family.help);
    for (int qos = 0; qos < 3; ++qos) {
      w.Sample(Labels{{"qos", kQos[qos]}}, SumWorkers(broker, [&](const Worker::Stats& s) {
                 return Load((s.*family.field)[qos]);
               }));
    }
  }
}

void WriteDropMetrics(Broker& broker, TextWriter& w) {
  const Counters& c = broker.counters();
  w.Begin("meshmq_messages_dropped_total", MetricType::kCounter,
          "Messages not delivered to a subscriber or peer, by reason.");
  const std::pair<std::string_view, uint64_t> drops[] = {
      {"queue_full", c.messages_dropped_queue_full.value()},
      {"output_buffer", c.messages_dropped_output_buffer.value()},
      {"packet_size", c.messages_dropped_packet_size.value()},
      {"expired", c.messages_expired.value()},
      {"not_authorized", c.publish_denied.value()},
      {"cluster_forward_dropped", c.cluster_forward_dropped.value()},
      {"cluster_shared_undeliverable", c.cluster_shared_undeliverable.value()},
  };
  for (const auto& [reason, value] : drops) w.Sample(Labels{{"reason", reason}}, value);
}

void WriteStateMetrics(Broker& broker, TextWriter& w) {
  // Sessions one at a time, each under its own lock: a scrape never holds up the session store
  // for longer than copying its client ids.
  uint64_t online = 0;
  uint64_t offline = 0;
  uint64_t queued = 0;
  uint64_t inflight = 0;
  for (const std::string& client_id : broker.sessions().ClientIds()) {
    std::shared_ptr<Session> session = broker.sessions().Find(client_id);
    if (session == nullptr) continue;
    (session->online() ? online : offline) += 1;
    queued += session->queued_count();
    inflight += session->inflight_count();
  }
  w.Begin("meshmq_sessions", MetricType::kGauge,
          "Sessions held by this node: online (a client connected) or offline (persistent).");
  w.Sample(Labels{{"state", "online"}}, online);
  w.Sample(Labels{{"state", "offline"}}, offline);
  w.Gauge("meshmq_queued_messages",
          "Messages waiting in session queues (offline, or beyond the in-flight window).",
          static_cast<double>(queued));
  w.Gauge("meshmq_inflight_messages",
          "QoS 1/2 messages sent to clients and not yet acknowledged.",
          static_cast<double>(inflight));
  w.Gauge("meshmq_retained_messages", "Retained messages held ($SYS topics included).",
          static_cast<double>(broker.retained().size()));
  w.Begin("meshmq_subscriptions", MetricType::kGauge,
          "Subscriptions of this node's sessions: ordinary ones, and shared ($share/...) ones.");
  w.Sample(Labels{{"type", "ordinary"}}, static_cast<uint64_t>(broker.subscriptions().size()));
  w.Sample(Labels{{"type", "shared"}},
           static_cast<uint64_t>(std::max<int64_t>(broker.shared_subscription_count(), 0)));
}

void WriteCounters(Broker& broker, TextWriter& w) {
  broker.counters().ForEach([&](const char* name, uint64_t value) {
    w.Counter(absl::StrCat("meshmq_", name, "_total"), CounterHelp(name), value);
  });
}

void WriteStoreMetrics(const Broker& broker, TextWriter& w) {
  const storage::Store* store = broker.store();
  w.Gauge("meshmq_store_ok",
          "1 while the store writes; 0 once a write failed (nothing more becomes durable).",
          store != nullptr && store->status().ok() ? 1 : 0);
  if (store == nullptr) return;
  w.Begin("meshmq_store_write_seconds", MetricType::kHistogram,
          "Duration of each group commit's RocksDB write (its fsync included with "
          "--durability=fsync).");
  w.Histogram(Labels{}, store->write_latency().Snapshot());
  w.Counter("meshmq_store_batches_written_total",
            "Batches (changes handed over by workers) written, many per group commit.",
            store->batches_written());
}

void WriteClusterMetrics(const cluster::ClusterNode& cluster, TextWriter& w) {
  std::string why;
  w.Gauge("meshmq_cluster_serving",
          "1 while the node serves clients: in touch with most of the cluster, not leaving.",
          cluster.Ready(&why) ? 1 : 0);
  w.Gauge("meshmq_cluster_replication_idle",
          "1 when no session change waits to be replicated or for a replica's acknowledgement.",
          cluster.ReplicationIdle() ? 1 : 0);
  const std::vector<cluster::ClusterNode::PeerMetric> peers = cluster.PeerMetrics();
  w.Gauge("meshmq_cluster_members",
          "Members counted for the quorum, this node included.",
          static_cast<double>(1 + std::count_if(peers.begin(), peers.end(),
                                                [](const auto& p) { return p.member; })));
  w.Begin("meshmq_cluster_peer_up", MetricType::kGauge,
          "1 while the peer is linked both ways with its routes synced (\"peer X up\").");
  for (const auto& p : peers) w.Sample(Labels{{"peer", p.node_id}}, uint64_t{p.up});
  w.Begin("meshmq_cluster_peer_link_up", MetricType::kGauge,
          "1 while a link with the peer is up: outbound (ours to it), inbound (its to us, routes "
          "synced).");
  for (const auto& p : peers) {
    w.Sample(Labels{{"peer", p.node_id}, {"direction", "outbound"}}, uint64_t{p.outbound});
    w.Sample(Labels{{"peer", p.node_id}, {"direction", "inbound"}}, uint64_t{p.synced});
  }
  w.Begin("meshmq_cluster_peer_queued_frames", MetricType::kGauge,
          "Frames (forwards, routes, replica changes) queued for the peer, not sent yet.");
  for (const auto& p : peers) w.Sample(Labels{{"peer", p.node_id}}, p.link.queued_frames);
  w.Begin("meshmq_cluster_peer_unacked_frames", MetricType::kGauge,
          "Frames sent to the peer and not yet acknowledged.");
  for (const auto& p : peers) w.Sample(Labels{{"peer", p.node_id}}, p.link.unacked_frames);
  w.Begin("meshmq_cluster_peer_pending_bytes", MetricType::kGauge,
          "Bytes queued for or sent to the peer and not acknowledged (bounded by "
          "--cluster_max_pending_bytes for QoS 0 forwards).");
  for (const auto& p : peers) w.Sample(Labels{{"peer", p.node_id}}, p.link.pending_bytes);
  w.Begin("meshmq_cluster_peer_lag_seconds", MetricType::kGauge,
          "Age of the oldest frame sent to the peer and not acknowledged (0: none): how far it "
          "is behind with forwards and session replication.");
  for (const auto& p : peers) {
    w.Sample(Labels{{"peer", p.node_id}}, absl::ToDoubleSeconds(p.link.oldest_unacked));
  }
  const cluster::TransportStats& t = cluster.transport().stats();
  w.Counter("meshmq_cluster_links_up_total", "Outbound links to peers that came up.",
            Load(t.links_up));
  w.Counter("meshmq_cluster_links_down_total", "Outbound links to peers lost.",
            Load(t.links_down));
  w.Counter("meshmq_cluster_peer_timeouts_total", "Links cancelled for silence.",
            Load(t.peer_timeouts));
  w.Counter("meshmq_cluster_frames_sent_total", "Frames sent to peers.", Load(t.frames_sent));
  w.Counter("meshmq_cluster_frames_received_total", "Frames received from peers.",
            Load(t.frames_received));
  w.Counter("meshmq_cluster_frames_refused_total",
            "Frames not queued for a peer over its --cluster_max_pending_bytes.",
            Load(t.frames_refused_full));
}

}  // namespace

std::string RenderNodeMetrics(Broker& broker, const cluster::ClusterNode* cluster) {
  TextWriter w;
  w.Begin("meshmq_build_info", MetricType::kGauge, "Always 1; the version is in its label.");
  w.Sample(Labels{{"version", Broker::version()}}, uint64_t{1});
  w.Gauge("meshmq_uptime_seconds", "Seconds since the node started.",
          static_cast<double>(absl::ToInt64Seconds(absl::Now() - broker.started_at())));
  w.Gauge("meshmq_workers", "Event-loop threads.", static_cast<double>(broker.workers().size()));
  WriteClientMetrics(broker, w);
  WriteMessageMetrics(broker, w);
  WriteDropMetrics(broker, w);
  WriteStateMetrics(broker, w);
  WriteStoreMetrics(broker, w);
  WriteCounters(broker, w);
  if (cluster != nullptr) WriteClusterMetrics(*cluster, w);
  return w.Take();
}

bool CheckLive(Broker& broker, absl::Duration timeout, std::string* why) {
  // A task on every loop; each marks its worker as having answered. Shared, because a late
  // answer may come after this call gave up.
  struct Answers {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<bool> answered;
  };
  auto answers = std::make_shared<Answers>();
  const auto& workers = broker.workers();
  answers->answered.assign(workers.size(), false);
  for (size_t i = 0; i < workers.size(); ++i) {
    const bool posted = workers[i]->Post([answers, i] {
      std::lock_guard lock(answers->mu);
      answers->answered[i] = true;
      answers->cv.notify_all();
    });
    if (!posted) {
      *why = absl::StrCat("event loop ", i, " has stopped");
      return false;
    }
  }
  std::unique_lock lock(answers->mu);
  const bool all = answers->cv.wait_for(
      lock, absl::ToChronoMilliseconds(timeout), [&] {
        return std::all_of(answers->answered.begin(), answers->answered.end(),
                           [](bool b) { return b; });
      });
  if (all) return true;
  const size_t late = std::find(answers->answered.begin(), answers->answered.end(), false) -
                      answers->answered.begin();
  *why = absl::StrCat("event loop ", late, " did not answer within ",
                      absl::FormatDuration(timeout));
  return false;
}

bool CheckReady(const Broker& broker, const cluster::ClusterNode* cluster, std::string* why) {
  if (broker.mqtt_port() <= 0) {
    *why = "the MQTT listener is not up";
    return false;
  }
  if (cluster != nullptr && !cluster->Ready(why)) return false;
  return true;
}

}  // namespace meshmq::metrics
