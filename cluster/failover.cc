#include "cluster/failover.h"

#include <algorithm>
#include <utility>

#include "node/topic.h"

namespace meshmq::cluster {
namespace {

void SortByForwardOrder(std::vector<Failovers::Orphan>* orphans) {
  std::stable_sort(orphans->begin(), orphans->end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
}

}  // namespace

void Failovers::Begin(const std::string& node, std::vector<std::string> filters,
                      const std::vector<std::string>& reporters, int64_t deadline_ms) {
  absl::MutexLock lock(&mu_);
  auto active = failovers_.find(node);
  if (active != failovers_.end() && !active->second.complete) {
    // Already under way (the node announced it was leaving, or a session of it was adopted
    // before it was seen down): it goes on, now also waiting for what `filters` adds.
    State& state = active->second;
    for (std::string& filter : filters) state.filters.push_back(std::move(filter));
    state.deadline_ms = std::max(state.deadline_ms, deadline_ms);
    auto early = early_orphans_.find(node);
    if (early != early_orphans_.end()) {
      for (Orphan& orphan : early->second.orphans) state.orphans.push_back(std::move(orphan));
      early_orphans_.erase(early);
    }
    UpdateActiveLocked();
    return;
  }
  State& state = failovers_[node];
  state.filters = std::move(filters);
  state.awaiting = std::set<std::string>(reporters.begin(), reporters.end());
  state.deadline_ms = deadline_ms;
  state.complete = false;
  for (const std::string& reporter : early_reports_[node]) state.awaiting.erase(reporter);
  early_reports_.erase(node);
  auto early = early_orphans_.find(node);
  if (early != early_orphans_.end()) {
    for (Orphan& orphan : early->second.orphans) state.orphans.push_back(std::move(orphan));
    early_orphans_.erase(early);
  }
  UpdateActiveLocked();
}

void Failovers::Report(const std::string& node, const std::string& reporter) {
  absl::MutexLock lock(&mu_);
  auto it = failovers_.find(node);
  if (it == failovers_.end()) {
    early_reports_[node].insert(reporter);
    return;
  }
  it->second.awaiting.erase(reporter);
}

void Failovers::PeerGone(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  for (auto& [node, state] : failovers_) state.awaiting.erase(peer);
}

void Failovers::NodeBack(const std::string& node) {
  absl::MutexLock lock(&mu_);
  early_reports_.erase(node);
  auto it = failovers_.find(node);
  if (it != failovers_.end()) it->second.complete = true;
}

void Failovers::AddOrphan(const std::string& node, Orphan orphan, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto it = failovers_.find(node);
  if (it != failovers_.end() && !it->second.complete) {
    it->second.orphans.push_back(std::move(orphan));
    return;
  }
  EarlyOrphans& early = early_orphans_[node];
  if (early.orphans.empty()) early.since_ms = now_ms;
  early.orphans.push_back(std::move(orphan));
}

std::vector<Failovers::Orphan> Failovers::TakeOrphans(const std::string& node) {
  absl::MutexLock lock(&mu_);
  std::vector<Orphan> orphans;
  auto it = early_orphans_.find(node);
  if (it != early_orphans_.end()) {
    orphans = std::move(it->second.orphans);
    early_orphans_.erase(it);
  }
  SortByForwardOrder(&orphans);
  return orphans;
}

bool Failovers::Hold(std::string_view topic, std::function<void()> resume) {
  absl::MutexLock lock(&mu_);
  for (const auto& [node, state] : failovers_) {
    if (state.complete) continue;
    // An empty topic is an MQTT 5 alias: which topic it stands for is not known here.
    bool matches = topic.empty();
    for (const std::string& filter : state.filters) {
      if (matches) break;
      matches = TopicMatches(filter, topic);
    }
    if (matches) {
      held_.push_back(std::move(resume));
      return true;
    }
  }
  return false;
}

bool Failovers::HoldAny(std::function<void()> resume) {
  absl::MutexLock lock(&mu_);
  for (const auto& [node, state] : failovers_) {
    if (state.complete) continue;
    held_.push_back(std::move(resume));
    return true;
  }
  return false;
}

std::vector<Failovers::Completed> Failovers::Poll(int64_t now_ms,
                                                  std::vector<std::function<void()>>* resumes,
                                                  std::vector<Orphan>* unclaimed) {
  absl::MutexLock lock(&mu_);
  absl::erase_if(early_orphans_, [&](auto& entry) {
    if (now_ms - entry.second.since_ms < kOrphanWaitMs) return false;
    for (Orphan& orphan : entry.second.orphans) unclaimed->push_back(std::move(orphan));
    return true;
  });
  SortByForwardOrder(unclaimed);
  std::vector<Completed> completed;
  for (auto it = failovers_.begin(); it != failovers_.end();) {
    State& state = it->second;
    if (state.complete || state.awaiting.empty() || now_ms >= state.deadline_ms) {
      SortByForwardOrder(&state.orphans);
      completed.push_back(Completed{it->first, std::move(state.orphans)});
      failovers_.erase(it++);
    } else {
      ++it;
    }
  }
  if (failovers_.empty() || !completed.empty()) {
    // Held publishes all go on together; one still matching a failover in progress is simply
    // held again when it is read.
    for (auto& resume : held_) resumes->push_back(std::move(resume));
    held_.clear();
  }
  UpdateActiveLocked();
  return completed;
}

void Failovers::UpdateActiveLocked() {
  active_.store(!failovers_.empty(), std::memory_order_release);
}

}  // namespace meshmq::cluster
