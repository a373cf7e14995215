#include "cluster/remote_routes.h"

#include "node/topic.h"

namespace meshmq::cluster {
namespace {

// One key per (peer, group) under a filter. A group name has no '\0' (it is UTF-8 from MQTT, and
// MQTT strings may not hold U+0000), so the key is unambiguous.
std::string TrieKey(const std::string& peer, const std::string& filter, const std::string& group) {
  std::string key = peer;
  key.push_back('\0');
  key.append(group);
  key.push_back('\0');
  key.append(filter);
  return key;
}

}  // namespace

void RemoteRoutes::Apply(const std::string& peer, const Route& route) {
  absl::MutexLock lock(&mu_);
  ApplyLocked(peer, route);
}

void RemoteRoutes::ApplyLocked(const std::string& peer, const Route& route) {
  if (!IsValidTopicFilter(route.filter())) return;
  std::string key = TrieKey(peer, route.filter(), route.group());
  auto& mine = by_peer_[peer];
  if (route.count() == 0) {
    if (trie_.Erase(route.filter(), key)) size_.fetch_sub(1, std::memory_order_relaxed);
    mine.erase(key);
    if (mine.empty()) by_peer_.erase(peer);
    return;
  }
  auto entry = std::make_shared<Entry>(Entry{peer, route.filter(), route.group(), route.count()});
  if (trie_.Insert(route.filter(), key, std::move(entry))) {
    size_.fetch_add(1, std::memory_order_relaxed);
  }
  mine.emplace(std::move(key), route.filter());
}

void RemoteRoutes::Replace(const std::string& peer, const RouteSnapshot& snapshot) {
  absl::MutexLock lock(&mu_);
  DropPeerLocked(peer);
  for (const Route& route : snapshot.routes()) ApplyLocked(peer, route);
}

std::vector<std::string> RemoteRoutes::Filters(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  return FiltersLocked(peer);
}

std::vector<std::string> RemoteRoutes::FiltersLocked(const std::string& peer) const {
  std::vector<std::string> filters;
  auto it = by_peer_.find(peer);
  if (it != by_peer_.end()) {
    for (const auto& [key, filter] : it->second) filters.push_back(filter);
  }
  return filters;
}

std::vector<std::string> RemoteRoutes::DropPeer(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> filters = FiltersLocked(peer);
  DropPeerLocked(peer);
  return filters;
}

void RemoteRoutes::DropPeerLocked(const std::string& peer) {
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return;
  for (const auto& [key, filter] : it->second) {
    if (trie_.Erase(filter, key)) size_.fetch_sub(1, std::memory_order_relaxed);
  }
  by_peer_.erase(it);
}

void RemoteRoutes::Match(std::string_view topic, std::vector<EntryPtr>* out) const {
  trie_.Match(topic, [out](const std::string&, const EntryPtr& entry) { out->push_back(entry); });
}

}  // namespace meshmq::cluster
