// What a node does for the publishes in flight when a peer dies, so that none that was
// acknowledged misses the dead peer's sessions while their replicas take them over:
//
// - From the moment the peer is seen down until every up node reports that its takeover of the
//   dead node's sessions is done (FailoverDone, sent after the routes of the sessions it took),
//   or a deadline passes, a publish whose topic the dead node's routes matched is held
//   (ClusterHooks::HoldPublish): routed now, it would find neither the dead node nor the
//   sessions' new homes.
// - Forwards the dead node never acknowledged are orphans: their publishers' acks wait, and
//   when the failover completes they are delivered again, to the sessions taken over from it
//   (which drop copies they already have), or to the node itself if it came back.
//
// THREADING: thread-safe; never calls out under its lock (callers run what Poll returns).
#ifndef MESHMQ_CLUSTER_FAILOVER_H_
#define MESHMQ_CLUSTER_FAILOVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "node/message.h"
#include "proto/cluster.pb.h"

namespace meshmq::cluster {

class Failovers {
 public:
  struct Orphan {
    std::shared_ptr<const Message> message;
    Forward plan;                        // what the dead node was to deliver it to (no message)
    std::function<void(bool)> answer;    // the publisher's tally
    // When it was forwarded (a counter of this node's): orphans are redelivered in this order.
    // The order they become orphans in is not it: the link fails the frames it never sent when
    // it drops, and those it sent but were not yet confirmed only when the peer is seen down.
    uint64_t order = 0;
  };
  struct Completed {
    std::string node;
    std::vector<Orphan> orphans;
  };

  // `node` went down. Its routes were `filters`; `reporters` are the nodes (this one included)
  // whose FailoverDone completes it (a reporter that goes down counts as reported: so listing
  // `node` itself makes the failover wait until it is gone). Reports that came before count.
  // If one is under way for `node` already, it goes on with `filters` added.
  void Begin(const std::string& node, std::vector<std::string> filters,
             const std::vector<std::string>& reporters, int64_t deadline_ms);
  // `reporter` finished taking over what it could of `node`.
  void Report(const std::string& node, const std::string& reporter);
  // `peer` went down: it reports nothing any more.
  void PeerGone(const std::string& peer);
  // `node` is up again: its failover completes now, its orphans go back to it.
  void NodeBack(const std::string& node);
  // A forward to `node` that its link dropped before acknowledging (or found down). It waits for
  // `node`'s failover (which may begin a little later), at most kOrphanWaitMs if none does.
  void AddOrphan(const std::string& node, Orphan orphan, int64_t now_ms);
  // Orphans of `node` that no failover will take (it was not up, or this node has no quorum).
  std::vector<Orphan> TakeOrphans(const std::string& node);

  // True (and `resume` kept) if a publish to `topic` must wait.
  bool Hold(std::string_view topic, std::function<void()> resume);
  // True (and `resume` kept) if any failover is under way: a CONNECT waits for it, since the
  // session it resumes may be one being taken over (whose holder does not answer for it yet).
  bool HoldAny(std::function<void()> resume);
  bool active() const { return active_.load(std::memory_order_acquire); }

  // Failovers that completed (all reports in, node back, or deadline passed), the held
  // publishes that may go on now, and orphans no failover took within kOrphanWaitMs.
  std::vector<Completed> Poll(int64_t now_ms, std::vector<std::function<void()>>* resumes,
                              std::vector<Orphan>* unclaimed);
  static constexpr int64_t kOrphanWaitMs = 2000;

 private:
  struct State {
    std::vector<std::string> filters;
    std::set<std::string> awaiting;
    int64_t deadline_ms = 0;
    bool complete = false;
    std::vector<Orphan> orphans;
  };

  void UpdateActiveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, State> failovers_ ABSL_GUARDED_BY(mu_);
  // Reports received for a node before its failover began (a leaving node's replicas report
  // before its links drop); cleared when it comes back.
  absl::flat_hash_map<std::string, std::set<std::string>> early_reports_ ABSL_GUARDED_BY(mu_);
  // Orphans whose node's failover has not begun yet (the link drops them before it is marked
  // down).
  struct EarlyOrphans {
    int64_t since_ms = 0;
    std::vector<Orphan> orphans;
  };
  absl::flat_hash_map<std::string, EarlyOrphans> early_orphans_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> held_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> active_{false};
};

}  // namespace meshmq::cluster

#endif  // MESHMQ_CLUSTER_FAILOVER_H_
