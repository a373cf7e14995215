// The node's sessions by client id: client ids are identities (MQTT-3.1.3-2), so at most one
// connection owns a client id's session at a time, and a new CONNECT with a live client's id takes
// the session over (MQTT-3.1.4-2).
//
// THREADING: thread-safe; one mutex serializes attach and detach so that two CONNECTs with the
// same id on different workers, or a CONNECT racing a disconnect, see a consistent owner.
// Publishing never takes this lock: routing goes through the topic trie.
#ifndef MESHMQ_NODE_SESSION_STORE_H_
#define MESHMQ_NODE_SESSION_STORE_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "node/session.h"

namespace meshmq {

class SessionStore {
 public:
  struct AttachResult {
    std::shared_ptr<Session> session;
    bool session_present = false;
    // The connection that owned the client id until now; it must be closed.
    std::optional<SessionOwner> taken_over;
    // A session this CONNECT ended (Clean Session 1 over an existing session): the caller
    // removes its subscriptions.
    std::shared_ptr<Session> discarded;
  };

  // Finds or creates the session of `client_id` for a CONNECT and makes `owner` its connection.
  // Clean Session 1 always starts a new session (MQTT-3.1.2-6); 0 resumes one if present
  // (MQTT-3.1.2-4) and reports session_present (MQTT-3.2.2-2).
  AttachResult Attach(const std::string& client_id, bool clean_session, SessionOwner owner,
                      std::optional<std::string> username);

  // Called when `owner`'s connection closes. Returns the session if it ended with the connection
  // (a clean session, still owned by `owner`): the caller removes its subscriptions.
  std::shared_ptr<Session> Detach(const std::shared_ptr<Session>& session,
                                  const SessionOwner& owner);

  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_SESSION_STORE_H_
