#include "cluster/membership.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "node/log.h"

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
  // Written aside, synced, then renamed over the old list and the directory synced: after a
  // power loss the file holds the old list or the new one, never nothing (a node that forgot
  // its cluster would serve alone).
  const std::string temporary = path_ + ".tmp";
  std::string text;
  for (const std::string& node : members_) text += node + "\n";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const bool written = fd >= 0 && ::write(fd, text.data(), text.size()) ==
                                      static_cast<ssize_t>(text.size()) &&
                       ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!written || std::rename(temporary.c_str(), path_.c_str()) != 0) {
    Log(LogLevel::kError, "meshmqd: cluster: cannot write %s: %s", path_.c_str(),
        std::strerror(errno));
    return;
  }
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace meshmq::cluster
