// Which nodes make up the cluster, for the partition policy (cluster/README.md): this node and
// every node it has been linked with, minus nodes that left gracefully and nodes an operator
// removed while they were down (`meshmqctl cluster leave` of a dead node). Kept in a file (one
// node id per line, replaced atomically), so a node that restarts remembers the cluster it
// belongs to and does not serve on its own before it has heard from most of it, and a removed
// node stays removed. A removed node that links up again is added again, as a new member.
//
// THREADING: thread-safe.
#ifndef MESHMQ_CLUSTER_MEMBERSHIP_H_
#define MESHMQ_CLUSTER_MEMBERSHIP_H_

#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace meshmq::cluster {

class Membership {
 public:
  // Loads `path` if it exists (empty path: nothing is kept).
  Membership(std::string self, std::string path);

  // True if `node` was not a member yet.
  bool Add(const std::string& node);
  // True if `node` was a member (this node never is removed). Written to the file at once.
  bool Remove(const std::string& node);
  std::vector<std::string> members() const;

  // The partition policy: true if this node and the members among `up` (peers it is linked
  // with now) are more than half of the members, or exactly half and include the member with
  // the lowest node id (so that of two equal halves, one serves).
  bool HasQuorum(const std::vector<std::string>& up) const;

 private:
  void SaveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string self_;
  const std::string path_;
  mutable absl::Mutex mu_;
  std::set<std::string> members_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meshmq::cluster

#endif  // MESHMQ_CLUSTER_MEMBERSHIP_H_
