#include "node/session_store.h"

#include <utility>

#include "node/codec/packet.h"
#include "node/persistence.h"
#include "storage/store.h"

namespace meshmq {

void SessionStore::EndRecords(Session& session) {
  if (!session.StopPersistence()) return;
  storage::Batch batch;
  batch.DeleteSession(session.client_id());
  persistence_->Submit(std::move(batch));
}

std::shared_ptr<Session> SessionStore::Restore(const storage::LoadedSession& loaded,
                                               int64_t now_ms) {
  auto session = std::make_shared<Session>(loaded.client_id, 0, persistence_);
  session->Restore(loaded);
  const uint32_t interval = loaded.record.expiry_interval();
  absl::MutexLock lock(&mu_);
  sessions_[loaded.client_id] = session;
  if (interval != codec::kSessionNeverExpires) {
    // What is left of the countdown that started when the client went (or at this restart).
    const int64_t offline_since = loaded.record.disconnected_at_unix_ms() != 0
                                      ? loaded.record.disconnected_at_unix_ms()
                                      : Persistence::UnixMillis();
    const int64_t left = int64_t{1000} * interval - (Persistence::UnixMillis() - offline_since);
    const int64_t deadline = now_ms + std::max<int64_t>(0, left);
    deadlines_[loaded.client_id] = deadline;
    by_deadline_.emplace(deadline, loaded.client_id);
  }
  return session;
}

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
      EndRecords(*existing);  // before the new session writes its own
      result.discarded = std::move(existing);
      existing = std::make_shared<Session>(client_id, expiry_interval, persistence_);
    } else {
      result.session_present = true;
      existing->set_expiry_interval(expiry_interval);
    }
    result.session = existing;
  } else {
    result.session = std::make_shared<Session>(client_id, expiry_interval, persistence_);
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
    EndRecords(*session);
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
    EndRecords(*it->second);
    ended.push_back(std::move(it->second));
    sessions_.erase(it);
  }
  return ended;
}

size_t SessionStore::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

std::shared_ptr<Session> SessionStore::Find(const std::string& client_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(client_id);
  return it == sessions_.end() ? nullptr : it->second;
}

std::vector<std::string> SessionStore::ClientIds() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  ids.reserve(sessions_.size());
  for (const auto& [client_id, session] : sessions_) ids.push_back(client_id);
  return ids;
}

std::shared_ptr<Session> SessionStore::Extract(const std::string& client_id) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) return nullptr;
  std::shared_ptr<Session> session = std::move(it->second);
  sessions_.erase(it);
  deadlines_.erase(client_id);  // by_deadline_'s entry is now stale and skipped
  EndRecords(*session);
  return session;
}

}  // namespace meshmq
