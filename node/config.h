// Everything a node is configured with. main.cc fills it from flags; tests fill it directly.
#ifndef MESHMQ_NODE_CONFIG_H_
#define MESHMQ_NODE_CONFIG_H_

#include <cstddef>
#include <string>

#include "absl/time/time.h"

namespace meshmq {

struct BrokerConfig {
  std::string mqtt_listen = "0.0.0.0:1883";  // HOST:PORT; port 0 picks a free one
  std::string data_dir = "./data";
  // How durable an acknowledged message is (--durability): false: in RocksDB's WAL, which
  // survives the process dying; true: the WAL synced to disk first, which survives power loss.
  bool durability_fsync = false;
  // The store stops writing (and acks stop) below this much free space in --data_dir's file
  // system, so RocksDB never meets a full disk.
  uint64_t store_min_free_bytes = uint64_t{64} << 20;
  // Expiry of 3.1.1 persistent sessions (Clean Session 0), in seconds; MQTT 5 clients give their
  // own. codec::kSessionNeverExpires: never.
  uint32_t session_expiry = 2 * 3600;
  std::string node_id;  // defaults to the host name
  int workers = 0;      // event-loop threads; 0 means one per core
  std::string password_file;
  std::string acl_file;
  bool allow_anonymous = true;
  bool log_connections = false;  // one stderr line per connect and disconnect

  // Limits. Each has a flag and a counter in Counters when it is hit.
  size_t max_packet_size = 16 << 20;  // whole packet, fixed header included
  size_t max_inflight = 20;           // outbound QoS 1/2 awaiting ack, per client
  size_t max_queued_messages = 1000;  // per session, waiting for a window or a reconnect
  size_t max_connections = 50000;
  size_t max_output_buffer = 16 << 20;  // bytes buffered for a slow reader before QoS 0 drops
  size_t max_subscriptions = 0;         // per client; 0: no limit
  uint16_t max_topic_alias = 10;        // Topic Alias Maximum offered to MQTT 5 clients
  uint16_t max_keepalive = 0;           // seconds; 0: no limit (Server Keep Alive otherwise)
  absl::Duration connect_timeout = absl::Seconds(10);

  // Features, announced to MQTT 5 clients in CONNACK.
  uint8_t max_qos = 2;
  bool retain_available = true;
  // Prefix of the Response Information given to MQTT 5 clients that ask; empty: none offered.
  std::string response_information;
  absl::Duration sys_interval = absl::Seconds(10);  // $SYS publishing; zero disables
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_CONFIG_H_
