#include "node/session_store.h"

#include <utility>

namespace meshmq {

SessionStore::AttachResult SessionStore::Attach(const std::string& client_id, bool clean_session,
                                                SessionOwner owner,
                                                std::optional<std::string> username) {
  absl::MutexLock lock(&mu_);
  AttachResult result;
  auto it = sessions_.find(client_id);
  if (it != sessions_.end()) {
    std::shared_ptr<Session>& existing = it->second;
    if (clean_session || existing->clean_session()) {
      // The old session ends here, whether its connection is still up or not.
      result.taken_over = existing->ReleaseOwner();
      result.discarded = std::move(existing);
      existing = std::make_shared<Session>(client_id, clean_session);
    } else {
      result.session_present = true;
    }
    result.session = existing;
  } else {
    result.session = std::make_shared<Session>(client_id, clean_session);
    sessions_.emplace(client_id, result.session);
  }
  std::optional<SessionOwner> previous = result.session->Attach(owner, std::move(username));
  if (previous && previous->worker != nullptr) result.taken_over = previous;
  return result;
}

std::shared_ptr<Session> SessionStore::Detach(const std::shared_ptr<Session>& session,
                                              const SessionOwner& owner) {
  absl::MutexLock lock(&mu_);
  if (!session->Detach(owner) || !session->clean_session()) return nullptr;
  auto it = sessions_.find(session->client_id());
  if (it != sessions_.end() && it->second == session) sessions_.erase(it);
  return session;
}

size_t SessionStore::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace meshmq
