// The node's sessions by client id: client ids are identities (MQTT-3.1.3-2), so at most one
// connection owns a client id's session at a time, and a new CONNECT with a live client's id takes
// the session over (MQTT-3.1.4-2).
//
// Sessions end when their connection closes if their expiry interval is 0, after the interval
// otherwise (MQTT 5 3.1.2.11.2), or never (0xFFFFFFFF, and every 3.1.1 persistent session).
//
// THREADING: thread-safe; one mutex serializes attach, detach and expiry so that two CONNECTs with
// the same id on different workers, or a CONNECT racing a disconnect or an expiry, see a
// consistent owner. Publishing never takes this lock: routing goes through the topic tries.
#ifndef MESHMQ_NODE_SESSION_STORE_H_
#define MESHMQ_NODE_SESSION_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "node/session.h"

namespace meshmq {

class SessionStore {
 public:
  // Where persistent sessions write their state (node/persistence.h); null: nowhere. Set before
  // the first Attach.
  void SetPersistence(Persistence* persistence) { persistence_ = persistence; }
  // Adds a session read back from the store at start, offline, with what is left of its expiry
  // countdown (ends at once if it ran out while the node was down). The caller puts its
  // subscriptions into the routing index.
  std::shared_ptr<Session> Restore(const storage::LoadedSession& loaded, int64_t now_ms);

  struct AttachResult {
    std::shared_ptr<Session> session;
    bool session_present = false;
    // The connection that owned the client id until now; it must be closed.
    std::optional<SessionOwner> taken_over;
    // A session this CONNECT ended (Clean Start over an existing session, or one that had to
    // end with its connection): the caller removes its subscriptions.
    std::shared_ptr<Session> discarded;
  };

  // Finds or creates the session of `client_id` for a CONNECT and makes `owner` its connection.
  // Clean Start always starts a new session (MQTT-3.1.2-6, MQTT 5 3.1.2.4); otherwise an existing
  // one is resumed (MQTT-3.1.2-4) and session_present reported (MQTT-3.2.2-2). The session's
  // expiry interval becomes `expiry_interval`, and a pending expiry is cancelled.
  AttachResult Attach(const std::string& client_id, bool clean_start, uint32_t expiry_interval,
                      SessionOwner owner, std::optional<std::string> username);

  // Called when `owner`'s connection closes at `now_ms` (MonotonicMillis()). Returns the session
  // if it ended with the connection (expiry interval 0, still owned by `owner`): the caller
  // removes its subscriptions. A finite non-zero interval schedules the end for ExpireDue.
  std::shared_ptr<Session> Detach(const std::shared_ptr<Session>& session,
                                  const SessionOwner& owner, int64_t now_ms);

  // Ends and returns the offline sessions whose expiry is due at `now_ms`.
  std::vector<std::shared_ptr<Session>> ExpireDue(int64_t now_ms);

  size_t size() const;

  // Cluster session moves. The session of `client_id`, or null.
  std::shared_ptr<Session> Find(const std::string& client_id) const;
  // Every session's client id (the cluster replicates the persistent ones).
  std::vector<std::string> ClientIds() const;
  // Removes the session of `client_id` (deleting its records) and returns it, or null: it moves
  // to another node. The caller discards it (Session::DiscardAndExport).
  std::shared_ptr<Session> Extract(const std::string& client_id);

 private:
  // Stops `session` writing to the store and deletes its records. Under mu_, so that a new
  // session with the same client id, created under mu_ too, writes only after this delete.
  void EndRecords(Session& session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Persistence* persistence_ = nullptr;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  // Offline sessions with a finite expiry: deadline by client id, and the same ordered by time.
  // An entry of `by_deadline_` whose deadline no longer matches `deadlines_` is stale (the client
  // came back) and skipped.
  absl::flat_hash_map<std::string, int64_t> deadlines_ ABSL_GUARDED_BY(mu_);
  std::multimap<int64_t, std::string> by_deadline_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_SESSION_STORE_H_
