// What a node tells Prometheus (/metrics) and its probes (/healthz, /readyz), from the state
// the broker, its workers, its store and the cluster keep anyway: the message path gains only
// per-worker counters (Worker::Stats), and everything is read here, on the HTTP server's
// threads, with atomics or the owners' locks.
//
// Metric names start with meshmq_; counters end in _total. README.md ("Operations: metrics and
// health") lists them.
//
// THREADING: any thread, while the broker (and cluster node) run: between Broker::Start and
// Broker::Stop.
#ifndef MESHMQ_NODE_METRICS_NODE_METRICS_H_
#define MESHMQ_NODE_METRICS_NODE_METRICS_H_

#include <string>

#include "absl/time/time.h"

namespace meshmq {
class Broker;
namespace cluster {
class ClusterNode;
}

namespace metrics {

// The whole /metrics page, Prometheus text format 0.0.4. `cluster` is null on a node without
// one.
std::string RenderNodeMetrics(Broker& broker, const cluster::ClusterNode* cluster);

// /healthz: the process is alive and every worker's event loop runs a task posted to it within
// `timeout`. Else false, and `why` names the first loop that did not answer.
bool CheckLive(Broker& broker, absl::Duration timeout, std::string* why);

// /readyz: the MQTT listener is up and, in a cluster, the node serves (ClusterNode::Ready).
bool CheckReady(const Broker& broker, const cluster::ClusterNode* cluster, std::string* why);

}  // namespace metrics
}  // namespace meshmq

#endif  // MESHMQ_NODE_METRICS_NODE_METRICS_H_
