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
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration sys_interval = absl::Seconds(10);  // $SYS publishing; zero disables
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_CONFIG_H_
