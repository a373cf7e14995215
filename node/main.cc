// meshmqd: the meshmq node.
//
//   meshmqd [--flags]                          run a node
//   meshmqd passwd [-c] [-b] [-D] FILE USER [PASSWORD]
//                                              manage a Mosquitto-format password file
//
// SIGTERM and SIGINT stop the node gracefully; SIGHUP reloads --password_file and --acl_file.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cluster/cluster_node.h"
#include "node/broker.h"
#include "node/codec/packet.h"
#include "node/http/http_server.h"
#include "node/log.h"
#include "node/metrics/exposition.h"
#include "node/metrics/node_metrics.h"
#include "node/passwd_command.h"
#include "node/admin/admin.h"

ABSL_FLAG(std::string, mqtt_listen, "0.0.0.0:1883", "MQTT listener, HOST:PORT (port 0: any)");
ABSL_FLAG(std::string, data_dir, "./data",
          "Directory of the node's RocksDB store: retained messages and persistent sessions "
          "(created if missing; one meshmqd per directory)");
ABSL_FLAG(std::string, durability, "process",
          "When PUBACK/PUBREC may be sent for a message: 'process' (once in RocksDB's write-ahead "
          "log: survives the process dying) or 'fsync' (once the log is synced: survives power "
          "loss). Either way many acks share one write");
ABSL_FLAG(uint64_t, store_min_free_bytes, uint64_t{64} << 20,
          "Free space the store keeps in --data_dir's file system: below it nothing more is "
          "written, connections waiting for their acks are closed without them (counted as "
          "store_errors) and the node needs a restart once space is freed");
ABSL_FLAG(absl::Duration, session_expiry, absl::Hours(2),
          "How long a 3.1.1 persistent session (Clean Session 0) is kept while its client is "
          "offline ('inf': forever). MQTT 5 clients set their own Session Expiry Interval");
ABSL_FLAG(std::string, node_id, "",
          "This node's name in the cluster, unique among its nodes (default: host name)");
ABSL_FLAG(std::string, cluster_listen, "0.0.0.0:7883",
          "Cluster (node-to-node gRPC) listener, HOST:PORT (port 0: any; empty: no cluster)");
ABSL_FLAG(std::string, cluster_advertise, "",
          "HOST:PORT other nodes reach this one's cluster listener on (default: the listen "
          "address, or the host name for 0.0.0.0)");
ABSL_FLAG(std::vector<std::string>, peers, {},
          "Cluster seeds, HOST:PORT,...: nodes to join (they tell this node about the others)");
ABSL_FLAG(std::string, peers_dns, "",
          "A DNS name whose A records are cluster nodes (a Kubernetes headless Service), "
          "re-resolved every 5s; they are dialled on --cluster_listen's port");
ABSL_FLAG(absl::Duration, cluster_heartbeat_interval, absl::Milliseconds(500),
          "How often an idle link to a peer sends a heartbeat");
ABSL_FLAG(absl::Duration, cluster_peer_timeout, absl::Seconds(3),
          "A peer silent for this long is marked down and its routes dropped");
ABSL_FLAG(uint64_t, cluster_max_pending_bytes, uint64_t{64} << 20,
          "Bytes sent to one peer and not yet acknowledged; beyond it QoS 0 messages for that peer "
          "are dropped (cluster_forward_dropped) and QoS 1/2 publishers are disconnected without "
          "their ack (cluster_forward_refused), to send again");
ABSL_FLAG(int, replication_factor, 2,
          "Copies of each persistent session in a cluster, its owner's included (1: none)");
ABSL_FLAG(absl::Duration, cluster_leave_timeout, absl::Seconds(10),
          "On SIGTERM, how long each step of handing sessions to peers may take");
ABSL_FLAG(int, workers, 0, "Event-loop threads (0: one per core)");
ABSL_FLAG(std::string, password_file, "", "Mosquitto-format password file (mosquitto_passwd)");
ABSL_FLAG(std::string, acl_file, "", "Mosquitto-format ACL file");
ABSL_FLAG(bool, allow_anonymous, true, "Accept clients that send no username");
ABSL_FLAG(bool, log_connections, false, "Log every connect and disconnect to stderr");
ABSL_FLAG(uint64_t, max_packet_size, 16 << 20,
          "Largest packet accepted from a client, in bytes; larger ones close the connection");
ABSL_FLAG(uint64_t, max_inflight, 20, "Outgoing QoS 1/2 messages awaiting ack, per client");
ABSL_FLAG(uint64_t, max_queued_messages, 1000,
          "QoS 1/2 messages that may wait per session (while offline, or beyond the in-flight "
          "window); when full, the oldest QoS 0, else the oldest waiting message, is dropped");
ABSL_FLAG(uint64_t, max_connections, 50000, "Connections accepted at once; more are closed");
ABSL_FLAG(uint64_t, max_output_buffer, 16 << 20,
          "Bytes buffered for a client that reads slowly; beyond that its QoS 0 messages are "
          "dropped and QoS 1/2 ones wait in its queue");
ABSL_FLAG(uint64_t, max_subscriptions, 0,
          "Subscriptions per client (0: no limit); more are refused (SUBACK 0x97 / 0x80)");
ABSL_FLAG(uint32_t, max_topic_alias, 10,
          "Topic Alias Maximum offered to MQTT 5 clients (0: no topic aliases)");
ABSL_FLAG(uint32_t, max_keepalive, 0,
          "Longest keepalive, in seconds (0: no limit). MQTT 5 clients asking more, or 0, are "
          "told this one (Server Keep Alive); 3.1.1 clients are refused (CONNACK 2)");
ABSL_FLAG(uint32_t, max_qos, 2, "Highest QoS served (0, 1 or 2)");
ABSL_FLAG(bool, retain_available, true, "Accept retained messages");
ABSL_FLAG(std::string, response_information, "",
          "MQTT 5 Response Information for clients that ask: '<value>/<client id>' (empty: "
          "none offered)");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(10),
          "Time a new connection has to send CONNECT");
ABSL_FLAG(absl::Duration, sys_interval, absl::Seconds(10),
          "How often $SYS topics are published (0: never)");
ABSL_FLAG(std::string, http_listen, "0.0.0.0:18083",
          "HTTP listener for /metrics (Prometheus), /healthz and /readyz, IPv4 HOST:PORT (port 0: "
          "any; empty or 'off': none)");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9883",
          "Admin gRPC listener (meshmqctl), HOST:PORT (port 0: any; empty: none). Without "
          "--admin_token_file it must be a loopback address");
ABSL_FLAG(std::string, admin_token_file, "",
          "File holding the bearer token every admin call must carry");
ABSL_FLAG(std::string, admin_tls_cert, "", "PEM certificate for the admin listener (TLS)");
ABSL_FLAG(std::string, admin_tls_key, "", "PEM private key for --admin_tls_cert");

namespace {

// Lets the node use as many descriptors as the system allows it, so --max_connections is the
// limit that applies rather than a default soft limit of 1024.
void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

meshmq::BrokerConfig ConfigFromFlags() {
  meshmq::BrokerConfig config;
  config.mqtt_listen = absl::GetFlag(FLAGS_mqtt_listen);
  config.data_dir = absl::GetFlag(FLAGS_data_dir);
  config.durability_fsync = absl::GetFlag(FLAGS_durability) == "fsync";
  config.store_min_free_bytes = absl::GetFlag(FLAGS_store_min_free_bytes);
  const absl::Duration session_expiry = absl::GetFlag(FLAGS_session_expiry);
  config.session_expiry =
      session_expiry == absl::InfiniteDuration() ||
              session_expiry >= absl::Seconds(meshmq::codec::kSessionNeverExpires)
          ? meshmq::codec::kSessionNeverExpires
          : static_cast<uint32_t>(
                absl::ToInt64Seconds(absl::Ceil(session_expiry, absl::Seconds(1))));
  config.node_id = absl::GetFlag(FLAGS_node_id);
  if (config.node_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    config.node_id = host;
  }
  config.workers = absl::GetFlag(FLAGS_workers);
  config.password_file = absl::GetFlag(FLAGS_password_file);
  config.acl_file = absl::GetFlag(FLAGS_acl_file);
  config.allow_anonymous = absl::GetFlag(FLAGS_allow_anonymous);
  config.log_connections = absl::GetFlag(FLAGS_log_connections);
  config.max_packet_size = absl::GetFlag(FLAGS_max_packet_size);
  config.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  config.max_queued_messages = absl::GetFlag(FLAGS_max_queued_messages);
  config.max_connections = absl::GetFlag(FLAGS_max_connections);
  config.max_output_buffer = absl::GetFlag(FLAGS_max_output_buffer);
  config.max_subscriptions = absl::GetFlag(FLAGS_max_subscriptions);
  config.max_topic_alias =
      static_cast<uint16_t>(std::min<uint32_t>(absl::GetFlag(FLAGS_max_topic_alias), 65535));
  config.max_keepalive =
      static_cast<uint16_t>(std::min<uint32_t>(absl::GetFlag(FLAGS_max_keepalive), 65535));
  config.max_qos = static_cast<uint8_t>(std::min<uint32_t>(absl::GetFlag(FLAGS_max_qos), 2));
  config.retain_available = absl::GetFlag(FLAGS_retain_available);
  config.response_information = absl::GetFlag(FLAGS_response_information);
  config.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  config.sys_interval = absl::GetFlag(FLAGS_sys_interval);
  return config;
}

}  // namespace

using meshmq::Log;
using meshmq::LogLevel;

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "passwd") == 0) {
    return meshmq::RunPasswdCommand(std::vector<std::string>(argv + 2, argv + argc));
  }
  // --help lists meshmqd's own flags (absl would otherwise look for a file named after the
  // binary and find none).
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "node/main.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(
      "meshmq node.\n  meshmqd [--flags]\n  meshmqd passwd [-c] [-b] [-D] FILE USER [PASSWORD]");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    Log(LogLevel::kError, "meshmqd: unexpected argument '%s' (see --help)", rest[1]);
    return 2;
  }
  meshmq::BrokerConfig config = ConfigFromFlags();
  if (config.max_inflight == 0 || config.max_inflight > 65535) {
    Log(LogLevel::kError, "meshmqd: --max_inflight must be between 1 and 65535");
    return 2;
  }
  if (absl::GetFlag(FLAGS_max_qos) > 2 || absl::GetFlag(FLAGS_max_topic_alias) > 65535 ||
      absl::GetFlag(FLAGS_max_keepalive) > 65535) {
    Log(LogLevel::kError,
        "meshmqd: --max_qos must be 0..2, --max_topic_alias and --max_keepalive 0..65535");
    return 2;
  }
  if (const std::string durability = absl::GetFlag(FLAGS_durability);
      durability != "process" && durability != "fsync") {
    Log(LogLevel::kError, "meshmqd: --durability must be 'process' or 'fsync', not '%s'",
        durability.c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_session_expiry) <= absl::ZeroDuration()) {
    Log(LogLevel::kError, "meshmqd: --session_expiry must be positive ('inf': never)");
    return 2;
  }
  if (config.max_packet_size < 2) {
    Log(LogLevel::kError, "meshmqd: --max_packet_size must be at least 2");
    return 2;
  }
  RaiseFileLimit();
  // Debian's Abseil is built with Mutex deadlock detection on: it tracks every mutex ever
  // locked in a global graph (hundreds of bytes per session, and work on every lock). Our lock
  // order is fixed and documented (Session -> TopicTrie), so the node runs without it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Signals are taken by this thread alone (sigwait below); the workers inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  meshmq::Broker broker(config);
  meshmq::admin::AdminOptions admin_options;
  admin_options.listen = absl::GetFlag(FLAGS_admin_listen);
  admin_options.token_file = absl::GetFlag(FLAGS_admin_token_file);
  admin_options.tls_cert = absl::GetFlag(FLAGS_admin_tls_cert);
  admin_options.tls_key = absl::GetFlag(FLAGS_admin_tls_key);
  admin_options.cluster_listen = absl::GetFlag(FLAGS_cluster_listen);
  // node drain / cluster leave: the SIGTERM path below.
  admin_options.on_drain = [] { kill(getpid(), SIGTERM); };
  if (absl::Status status = meshmq::admin::CheckAdminOptions(admin_options); !status.ok()) {
    Log(LogLevel::kError, "meshmqd: %s", std::string(status.message()).c_str());
    return 2;
  }
  // Before the cluster: its listener serves the admin's AdminPeer until it stops.
  std::unique_ptr<meshmq::admin::Admin> admin;
  std::unique_ptr<meshmq::cluster::ClusterNode> cluster;
  if (!absl::GetFlag(FLAGS_cluster_listen).empty()) {
    meshmq::cluster::TransportConfig cluster_config;
    cluster_config.listen = absl::GetFlag(FLAGS_cluster_listen);
    cluster_config.node_id = config.node_id;
    cluster_config.advertise = absl::GetFlag(FLAGS_cluster_advertise);
    cluster_config.seeds = absl::GetFlag(FLAGS_peers);
    cluster_config.peers_dns = absl::GetFlag(FLAGS_peers_dns);
    const std::string& listen = cluster_config.listen;
    cluster_config.peers_dns_port = std::atoi(listen.substr(listen.rfind(':') + 1).c_str());
    cluster_config.heartbeat_interval = absl::GetFlag(FLAGS_cluster_heartbeat_interval);
    cluster_config.peer_timeout = absl::GetFlag(FLAGS_cluster_peer_timeout);
    cluster_config.max_pending_bytes = absl::GetFlag(FLAGS_cluster_max_pending_bytes);
    const int replication_factor = absl::GetFlag(FLAGS_replication_factor);
    if (replication_factor < 1) {
      Log(LogLevel::kError, "meshmqd: --replication_factor must be at least 1");
      return 2;
    }
    cluster = std::make_unique<meshmq::cluster::ClusterNode>(&broker, std::move(cluster_config),
                                                             replication_factor);
    broker.SetCluster(cluster.get());
  }
  admin = std::make_unique<meshmq::admin::Admin>(&broker, cluster.get(), admin_options);
  if (absl::Status status = broker.Start(); !status.ok()) {
    Log(LogLevel::kError, "meshmqd: %s", std::string(status.message()).c_str());
    return 1;
  }
  if (cluster != nullptr) {
    if (absl::Status status = cluster->Start(); !status.ok()) {
      Log(LogLevel::kError, "meshmqd: %s", std::string(status.message()).c_str());
      broker.Stop();
      return 1;
    }
  }
  if (absl::Status status = admin->Start(); !status.ok()) {
    Log(LogLevel::kError, "meshmqd: %s", std::string(status.message()).c_str());
    broker.Stop();
    return 1;
  }
  // Operations endpoints (node/metrics/node_metrics.h), once everything they report runs.
  meshmq::http::HttpServer http;
  std::atomic<bool> http_stopping{false};  // /readyz says so from the signal on
  const std::string http_listen = absl::GetFlag(FLAGS_http_listen);
  if (!http_listen.empty() && http_listen != "off") {
    using Response = meshmq::http::HttpServer::Response;
    const meshmq::cluster::ClusterNode* cluster_node = cluster.get();
    http.Handle("/metrics", [&broker, cluster_node] {
      return Response{200, meshmq::metrics::kContentType,
                      meshmq::metrics::RenderNodeMetrics(broker, cluster_node)};
    });
    http.Handle("/healthz", [&broker] {
      std::string why;
      if (!meshmq::metrics::CheckLive(broker, absl::Seconds(2), &why)) {
        return Response{503, "text/plain; charset=utf-8", why + "\n"};
      }
      return Response{200, "text/plain; charset=utf-8", "ok\n"};
    });
    http.Handle("/readyz", [&broker, cluster_node, &http_stopping] {
      std::string why = "shutting down";
      if (http_stopping.load() || !meshmq::metrics::CheckReady(broker, cluster_node, &why)) {
        return Response{503, "text/plain; charset=utf-8", why + "\n"};
      }
      return Response{200, "text/plain; charset=utf-8", "ok\n"};
    });
    if (absl::Status status = http.Start(http_listen); !status.ok()) {
      Log(LogLevel::kError, "meshmqd: %s", std::string(status.message()).c_str());
      broker.Stop();
      return 1;
    }
  }
  std::string host = config.mqtt_listen.substr(0, config.mqtt_listen.rfind(':'));
  Log(LogLevel::kInfo, "meshmqd: node %s, %zu workers, data in %s", config.node_id.c_str(),
      broker.workers().size(), config.data_dir.c_str());
  if (cluster != nullptr) {
    const std::string& listen = absl::GetFlag(FLAGS_cluster_listen);
    Log(LogLevel::kInfo, "meshmqd: listening on cluster %s:%d",
        listen.substr(0, listen.rfind(':')).c_str(), cluster->port());
  }
  if (admin->port() != 0) {
    Log(LogLevel::kInfo, "meshmqd: listening on admin %s", admin->address().c_str());
  }
  if (http.port() != 0) {
    Log(LogLevel::kInfo, "meshmqd: listening on http %s:%d",
        http_listen.substr(0, http_listen.rfind(':')).c_str(), http.port());
  }
  Log(LogLevel::kInfo, "meshmqd: listening on mqtt %s:%d", host.c_str(), broker.mqtt_port());

  while (true) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    if (signal_number == SIGHUP) {
      absl::Status status = broker.ReloadAuth();
      if (status.ok()) {
        Log(LogLevel::kInfo, "meshmqd: SIGHUP: reloaded password and ACL files");
      } else {
        Log(LogLevel::kError, "meshmqd: SIGHUP: reload failed, keeping the old files: %s",
            std::string(status.message()).c_str());
      }
      continue;
    }
    Log(LogLevel::kInfo, "meshmqd: %s, shutting down", strsignal(signal_number));
    break;
  }
  http_stopping.store(true);
  // A graceful stop hands this node's sessions to its peers first (a rolling restart loses
  // nothing; clients see a reconnect).
  if (cluster != nullptr) cluster->Leave(absl::GetFlag(FLAGS_cluster_leave_timeout));
  admin->Stop();  // after the leave, which `meshmqctl node drain` waits for
  http.Stop();    // before what it reports on goes
  broker.Stop();  // ends the cluster links too, once the wills of its clients went out
  Log(LogLevel::kInfo, "meshmqd: stopped");
  return 0;
}
