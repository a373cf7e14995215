// What the peers subscribe to: each peer's Route frames (proto/cluster.proto), indexed so that a
// topic published here finds the interested peers in one trie walk, whatever the number of
// peers. A peer's routes go when its link does (DropPeer) and are replaced whole by the snapshot
// it sends when it links up again.
//
// THREADING: thread-safe. Match takes the trie's reader lock only; changes are serialized by mu_.
#ifndef MESHMQ_CLUSTER_REMOTE_ROUTES_H_
#define MESHMQ_CLUSTER_REMOTE_ROUTES_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "node/topic_trie.h"
#include "proto/cluster.pb.h"

namespace meshmq::cluster {

class RemoteRoutes {
 public:
  struct Entry {
    std::string peer;
    std::string filter;
    std::string group;  // empty: ordinary subscriptions
    uint32_t count = 0;
  };
  using EntryPtr = std::shared_ptr<const Entry>;

  // Sets `peer`'s count on (route.filter, route.group); count 0 removes it. Invalid filters are
  // ignored.
  void Apply(const std::string& peer, const Route& route);
  // Replaces everything known of `peer` by `snapshot`.
  void Replace(const std::string& peer, const RouteSnapshot& snapshot);
  // Forgets `peer`'s routes; returns their filters.
  std::vector<std::string> DropPeer(const std::string& peer);
  // The filters `peer` has routes on.
  std::vector<std::string> Filters(const std::string& peer);
  // Appends the routes whose filter matches `topic`.
  void Match(std::string_view topic, std::vector<EntryPtr>* out) const;
  // No route at all: the publish path skips the trie.
  bool empty() const { return size_.load(std::memory_order_relaxed) == 0; }
  size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  void ApplyLocked(const std::string& peer, const Route& route) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropPeerLocked(const std::string& peer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::string> FiltersLocked(const std::string& peer) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Keyed by filter, then by "{peer}\0{group}".
  TopicTrie<EntryPtr> trie_;
  absl::Mutex mu_;
  // Per peer: trie key -> filter, to drop a peer's routes.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, std::string>> by_peer_
      ABSL_GUARDED_BY(mu_);
  std::atomic<size_t> size_{0};
};

}  // namespace meshmq::cluster

#endif  // MESHMQ_CLUSTER_REMOTE_ROUTES_H_
