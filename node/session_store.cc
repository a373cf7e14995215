#include "node/session_store.h"

#include <utility>

#include "node/codec/packet.h"

namespace meshmq {

SessionStore::AttachResult SessionStore::Attach(const std::string& client_id, bool clean_start,
                                                uint32_t expiry_interval, SessionOwner owner,
                                                std::optional<std::string> username) {
  absl::MutexLock lock(&mu_);
  AttachResult result;
  deadlines_.erase(client_id);
  auto it = sessions_.find(client_id);
  if (it != sessions_.end()) {
    std::shared_ptr<Session>& existing = it->second;
    // A session whose interval is 0 may still be here if its connection is being taken over:
    // it ends with that connection, so it is never resumed.
    if (clean_start || existing->expiry_interval() == 0) {
      // The old session ends here, whether its connection is still up or not.
      result.taken_over = existing->ReleaseOwner();
      result.discarded = std::move(existing);
      existing = std::make_shared<Session>(client_id, expiry_interval);
    } else {
      result.session_present = true;
      existing->set_expiry_interval(expiry_interval);
    }
    result.session = existing;
  } else {
    result.session = std::make_shared<Session>(client_id, expiry_interval);
    sessions_.emplace(client_id, result.session);
  }
  std::optional<SessionOwner> previous = result.session->Attach(owner, std::move(username));
  if (previous && previous->worker != nullptr) result.taken_over = previous;
  return result;
}

std::shared_ptr<Session> SessionStore::Detach(const std::shared_ptr<Session>& session,
                                              const SessionOwner& owner, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  if (!session->Detach(owner)) return nullptr;
  auto it = sessions_.find(session->client_id());
  if (it == sessions_.end() || it->second != session) return nullptr;
  const uint32_t interval = session->expiry_interval();
  if (interval == 0) {
    sessions_.erase(it);
    return session;
  }
  if (interval != codec::kSessionNeverExpires) {
    const int64_t deadline = now_ms + int64_t{1000} * interval;
    deadlines_[session->client_id()] = deadline;
    by_deadline_.emplace(deadline, session->client_id());
  }
  return nullptr;
}

std::vector<std::shared_ptr<Session>> SessionStore::ExpireDue(int64_t now_ms) {
  std::vector<std::shared_ptr<Session>> ended;
  absl::MutexLock lock(&mu_);
  while (!by_deadline_.empty() && by_deadline_.begin()->first <= now_ms) {
    auto [deadline, client_id] = *by_deadline_.begin();
    by_deadline_.erase(by_deadline_.begin());
    auto due = deadlines_.find(client_id);
    if (due == deadlines_.end() || due->second != deadline) continue;  // stale
    deadlines_.erase(due);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end() || it->second->online()) continue;
    ended.push_back(std::move(it->second));
    sessions_.erase(it);
  }
  return ended;
}

size_t SessionStore::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace meshmq
