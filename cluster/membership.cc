#include "cluster/membership.h"

#include <cstdio>
#include <fstream>
#include <utility>

namespace meshmq::cluster {

Membership::Membership(std::string self, std::string path)
    : self_(std::move(self)), path_(std::move(path)) {
  absl::MutexLock lock(&mu_);
  members_.insert(self_);
  if (path_.empty()) return;
  std::ifstream in(path_);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) members_.insert(line);
  }
}

bool Membership::Add(const std::string& node) {
  absl::MutexLock lock(&mu_);
  if (!members_.insert(node).second) return false;
  SaveLocked();
  return true;
}

bool Membership::Remove(const std::string& node) {
  absl::MutexLock lock(&mu_);
  if (node == self_ || members_.erase(node) == 0) return false;
  SaveLocked();
  return true;
}

std::vector<std::string> Membership::members() const {
  absl::MutexLock lock(&mu_);
  return std::vector<std::string>(members_.begin(), members_.end());
}

bool Membership::HasQuorum(const std::vector<std::string>& up) const {
  absl::MutexLock lock(&mu_);
  std::set<std::string> reachable = {self_};
  for (const std::string& node : up) {
    if (members_.count(node) > 0) reachable.insert(node);
  }
  const size_t total = members_.size();
  if (2 * reachable.size() > total) return true;
  return 2 * reachable.size() == total && reachable.count(*members_.begin()) > 0;
}

void Membership::SaveLocked() {
  if (path_.empty()) return;
  const std::string temporary = path_ + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    for (const std::string& node : members_) out << node << '\n';
    if (!out) {
      std::fprintf(stderr, "meshmqd: cluster: cannot write %s\n", temporary.c_str());
      return;
    }
  }
  if (std::rename(temporary.c_str(), path_.c_str()) != 0) {
    std::fprintf(stderr, "meshmqd: cluster: cannot replace %s\n", path_.c_str());
  }
}

}  // namespace meshmq::cluster
