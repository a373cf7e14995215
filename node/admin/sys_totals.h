// The cluster-wide $SYS totals (README "Operations: metrics and health"). Every --sys_interval
// this node asks each peer that is up for what it reports under $SYS/broker/
// (AdminPeer.LocalSysStats, over the cluster port), adds its own values, and publishes the
// totals under $SYS/cluster/, retained like the rest of $SYS and, like it, to this node's own
// subscribers only. Every node does the same, so a subscriber on any node sees the cluster's
// totals. A node on its own (or whose peers are all down) publishes its own values.
//
// - $SYS/cluster/nodes: how many nodes the totals cover (this one, and the peers that answered
//   in time; a peer that did not is left out of that round).
// - clients/connected, clients/disconnected, clients/total, messages/received, messages/sent,
//   bytes/received, bytes/sent, subscriptions/count: sums (a client id, a session and a
//   subscription live on one node at a time).
// - retained messages/count: the largest node's count, not a sum: every node holds every
//   retained message.
//
// THREADING: Start and Stop from one thread (main). Rounds run on a thread of their own, never
// on an event loop: asking the peers blocks for up to the deadline.
#ifndef MESHMQ_NODE_ADMIN_SYS_TOTALS_H_
#define MESHMQ_NODE_ADMIN_SYS_TOTALS_H_

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "node/admin/local_admin.h"
#include "node/admin/peer_fanout.h"
#include "proto/admin.pb.h"

namespace meshmq::admin {

class SysTotals {
 public:
  // `interval`: --sys_interval (zero: nothing is published). `deadline`: how long a peer may
  // take to answer (at most the interval). `broker` and `local` must outlive this.
  SysTotals(Broker* broker, LocalAdmin* local, absl::Duration interval, absl::Duration deadline);
  ~SysTotals();  // Stop()s
  SysTotals(const SysTotals&) = delete;
  SysTotals& operator=(const SysTotals&) = delete;

  // Publishes this node's own values at once, so the topics exist from the start, then starts
  // the rounds.
  void Start();
  // Ends the rounds (waiting for one under way).
  void Stop();

  // The topics under $SYS/cluster/ and their payloads for the values of `nodes`, in the order
  // they are published ("nodes" last: a reader of that topic has the whole round).
  static std::vector<std::pair<std::string, std::string>> Totals(
      const std::vector<NodeSysStats>& nodes);

 private:
  void Run();
  // One round: this node's values and its up peers' answers, published.
  void Round();
  void Publish(const std::vector<NodeSysStats>& nodes);

  Broker* const broker_;
  LocalAdmin* const local_;
  const absl::Duration interval_;
  PeerFanout peers_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_SYS_TOTALS_H_
