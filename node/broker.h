// A node: the listener, the workers, and the state they share (sessions, subscriptions,
// retained messages, auth). Routing a publish is Broker::Publish: match the trie under its
// reader lock, release it, then hand each message to the subscriber's session and wake the
// session's worker. No lock is held while writing to sockets, and no global lock serializes
// publishes from different workers.
//
// THREADING: the shared members are themselves thread-safe; auth files are swapped atomically on
// reload; Start/Stop/Wait are called from the main thread.
#ifndef MESHMQ_NODE_BROKER_H_
#define MESHMQ_NODE_BROKER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "node/auth/acl_file.h"
#include "node/auth/password_file.h"
#include "node/cluster_hooks.h"
#include "node/config.h"
#include "node/counters.h"
#include "node/hlc.h"
#include "node/message.h"
#include "node/retained_store.h"
#include "node/session.h"
#include "node/session_store.h"
#include "node/shared_subscriptions.h"
#include "node/subscription.h"
#include "node/topic_trie.h"
#include "storage/store.h"

namespace meshmq {

class Acceptor;
class Persistence;
class Worker;

// What the trie stores per (filter, client id).
struct SubscriberRef {
  std::shared_ptr<Session> session;
  SubscriptionOptions options;
};

// The authentication and authorization in force; replaced whole on SIGHUP.
struct AuthConfig {
  std::optional<auth::PasswordFile> passwords;
  std::optional<auth::AclFile> acl;
};

class Broker {
 public:
  explicit Broker(BrokerConfig config);
  ~Broker();

  // Opens the store in --data_dir and restores what it holds, loads auth files, binds the
  // listener and starts the threads. Errors name what failed.
  absl::Status Start();
  // Graceful stop: no new connections, every connection closed, threads joined.
  void Stop();
  // Makes the node part of a cluster (before Start): routes, retained changes and publishes go
  // through `cluster` too. Null (the default): a node on its own.
  void SetCluster(ClusterHooks* cluster) { cluster_ = cluster; }
  ClusterHooks* cluster() const { return cluster_; }
  // Versions retained messages (node/retained_store.h).
  HybridClock& clock() { return clock_; }
  // Re-reads --password_file and --acl_file; on error the old ones stay in force.
  absl::Status ReloadAuth();

  // The MQTT listener's actual port (after binding port 0).
  int mqtt_port() const { return mqtt_port_; }
  const BrokerConfig& config() const { return config_; }
  Session::Limits queue_limits() const {
    return Session::Limits{config_.max_queued_messages, config_.max_inflight};
  }
  Counters& counters() { return counters_; }
  SessionStore& sessions() { return sessions_; }
  TopicTrie<SubscriberRef>& subscriptions() { return subscriptions_; }
  SharedSubscriptions& shared_subscriptions() { return shared_; }
  RetainedStore& retained() { return retained_; }
  // Null until Start() opened the store.
  Persistence* persistence() { return persistence_.get(); }
  // False once a store write failed: nothing more becomes durable.
  bool store_ok() const;
  std::shared_ptr<const AuthConfig> auth() const { return std::atomic_load(&auth_); }
  // The ACL in force, or null. Cheap when there is none: std::atomic_load of a shared_ptr takes
  // a lock in libstdc++, which the publish path should not pay for nothing.
  std::shared_ptr<const AuthConfig> auth_if_acl() const {
    return acl_enabled_.load(std::memory_order_acquire) ? auth() : nullptr;
  }
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  absl::Time started_at() const { return started_at_; }

  // --- Read-only views for metrics and $SYS (node/metrics/), any thread ---
  // The store, or null before Start() and after Stop().
  const storage::Store* store() const { return store_.get(); }
  // Members of shared subscription groups ($share/...); subscriptions() holds the others.
  int64_t shared_subscription_count() const {
    return shared_memberships_.load(std::memory_order_relaxed);
  }
  // Client sockets open now (whether they sent CONNECT or not), and those held to be refused.
  int64_t open_connections() const { return connections_.load(std::memory_order_relaxed); }
  // Clients whose CONNECT was accepted and whose connection has not closed, over all workers.
  uint64_t connected_clients() const;
  // "meshmq X.Y.Z", as in $SYS/broker/version.
  static const char* version();
  // The counts $SYS/broker/ reports; summed over the nodes under $SYS/cluster/ (node/admin/).
  struct SysStats {
    uint64_t clients_connected = 0;
    uint64_t clients_total = 0;  // connected clients and persistent sessions kept offline
    uint64_t messages_received = 0;
    uint64_t messages_sent = 0;
    uint64_t bytes_received = 0;
    uint64_t bytes_sent = 0;
    uint64_t subscriptions = 0;  // shared memberships included
    uint64_t retained = 0;
  };
  SysStats sys_stats() const;

  // Routes `message` to every matching subscription and, if it is retained, stores it
  // (MQTT-3.3.1-5). `origin` is the publisher's session, for No Local (MQTT 5 3.8.3.1), or null.
  // In a cluster it is also forwarded to the peers with matching subscribers; then, if
  // `on_peers_accepted` is given and any peer got it, `*awaiting_peers` is set and the callback
  // is called (any thread) once they all took it (true) or one refused it (false).
  // Returns how many sessions and peers it was given to (0: MQTT 5's "No matching
  // subscribers"). Callable from any thread.
  size_t Publish(const MessagePtr& message, const Session* origin = nullptr,
                 std::function<void(bool)> on_peers_accepted = nullptr,
                 bool* awaiting_peers = nullptr);
  // Delivers a message a peer forwarded (published on that node) to this node's subscribers:
  // the ordinary subscriptions if `ordinary`, and one member of each shared group in `shared`
  // (group, filter). Not stored as retained (retained values replicate on their own) and not
  // forwarded again. Returns how many sessions it was given to.
  size_t DeliverForwarded(const MessagePtr& message, bool ordinary,
                          const std::vector<std::pair<std::string, std::string>>& shared);
  // Another node got a CONNECT for `client_id`: ends this node's session of it, closing its live
  // connection first (will published, MQTT 5 DISCONNECT 0x8E). `done` (any thread) gets what
  // the session held, unless `clean_start` or there was none.
  // Until the move's grace period ends, messages for the moved session that still reach this
  // node go on to `to_node`.
  void HandOverSession(const std::string& client_id, bool clean_start, const std::string& to_node,
                       std::function<void(std::optional<storage::LoadedSession>)> done);
  // Every session here becomes a stand-in for its new home, `target(client_id)` (a node id;
  // empty: the session just ends), as in HandOverSession: this node is leaving the cluster and
  // its replicas took the sessions over.
  void StandInForAll(const std::function<std::string(const std::string&)>& target);
  // Ends the stand-in of a session that moved away from here (its client came back).
  void DropMovedStandIn(const std::string& client_id);
  // Queues `queued` on the session of `client_id` (a message its old node forwarded after it
  // moved here: not held by the move hold). False if there is no such session.
  bool DeliverToSession(const std::string& client_id, QueuedMessage queued);
  // Ends the move hold of `client_id`'s session (Session::ReleaseMoveHold), if it has one.
  void ReleaseMoveHold(const std::string& client_id);
  // A fresh message id (Message::id) in a cluster, 0 on a node on its own.
  uint64_t NewMessageId();
  // Adds a session that moved here from another node (offline, replacing any left here) with
  // its subscriptions, and writes it to the store. What reaches it directly is held until the
  // cluster releases it (ClusterHooks::SessionImported).
  void ImportSession(const storage::LoadedSession& loaded);
  // Delivers `message` to those of `client_ids`' sessions whose ordinary subscriptions match it
  // (a message a dead peer took but never acknowledged, to the sessions taken over from it);
  // a session that moved on to another node since gets it through its stand-in. Returns how
  // many. Not held by a move hold: these come the long way.
  size_t DeliverToSessions(const MessagePtr& message, const std::vector<std::string>& client_ids);
  // Closes every client connection, on every worker (Worker::CloseAll).
  void CloseAllClients(const std::string& reason, uint8_t disconnect_reason, bool publish_wills);
  // Ends the session of `client_id` quietly (no will), closing its connection: another node
  // holds a newer one (cluster/README.md). False if there is none.
  bool DropStaleSession(const std::string& client_id);
  // Ends the session of `client_id` on an administrator's request (node/admin/): its connection,
  // if any, is closed (MQTT 5: DISCONNECT 0x98) without its will, and the session goes with its
  // subscriptions and queued messages. False if there is none.
  bool DropSession(const std::string& client_id);
  // A retained change from a peer: applied if newer than what this node holds.
  bool ApplyRemoteRetained(const std::string& topic, MessagePtr message,
                           const RetainedVersion& version);
  // Subscribes `session` to `filter` ("$share/..." included, which must be valid) with
  // `options`, in the session's record and in the routing index. See Session::AddSubscription.
  Session::AddResult Subscribe(const std::shared_ptr<Session>& session, const std::string& filter,
                               const SubscriptionOptions& options);
  // Returns true if the session had the subscription.
  bool Unsubscribe(const std::shared_ptr<Session>& session, const std::string& filter);
  // Gives messages a departed member of a shared subscription did not acknowledge to other
  // members of their groups (MQTT 5 4.8.2), or back to `from`'s session if it is the only one.
  void RedeliverShared(std::vector<QueuedMessage> messages, const std::shared_ptr<Session>& from);
  // Ends a session: removes its subscriptions and publishes its will if one is still pending.
  void DiscardSession(const std::shared_ptr<Session>& session);

  // Wills with a Will Delay Interval (MQTT 5 3.1.3.2.2): published at `publish_at_ms`
  // (MonotonicMillis()) unless the client id connects again before; Cancel returns the pending
  // will, if any, so a caller whose new connection ends the old session can publish it now.
  void ScheduleWill(const std::string& client_id, MessagePtr will, int64_t publish_at_ms);
  MessagePtr CancelWill(const std::string& client_id);
  // Publishes a will (counted), now.
  void PublishWill(const MessagePtr& will);
  // Worker 0 calls this every tick: ends expired sessions and publishes due wills.
  void Housekeeping(int64_t now_ms);
  // Publishes the $SYS topics (called by worker 0 every --sys_interval).
  void PublishSysTopics();
  // A fresh client id for a CONNECT with an empty one (MQTT-3.1.3-6).
  std::string GenerateClientId();

  // Connection accounting for --max_connections.
  bool TryAddConnection();
  void RemoveConnection();
  // Connections beyond --max_connections held only to be refused at CONNECT; at most
  // kMaxPendingRefusals at once.
  static constexpr int64_t kMaxPendingRefusals = 256;
  bool TryAddRefusal();
  void RemoveRefusal();

 private:
  absl::StatusOr<std::shared_ptr<const AuthConfig>> LoadAuth() const;
  // True if the ACL (if any) lets `session`'s user read `topic`.
  bool ReadAllowed(const AuthConfig* auth, const Session& session, const std::string& topic) const;
  // Delivers to the ordinary (non-shared) subscriptions; returns how many sessions.
  size_t DeliverOrdinary(const MessagePtr& message, const Session* origin, const AuthConfig* auth);
  // Delivers to one member of `group`.
  bool DeliverShared(const MessagePtr& message, std::shared_ptr<SharedGroup> group,
                     const AuthConfig* auth);
  // Queues `queued` on `session` and wakes its connection's worker if needed. `detour`: see
  // Session::Enqueue.
  void Deliver(Session& session, QueuedMessage queued, bool detour = false);
  // Removes `session`'s subscription to `filter` from whichever index holds it, if that entry
  // is still this session object's.
  void EraseFromIndex(const std::string& filter, const Session& session);
  // Adds `session`'s subscription to whichever index takes it (under the session's lock when
  // called from Subscribe).
  void InsertIntoIndex(const std::shared_ptr<Session>& session, const std::string& filter,
                       const SubscriptionOptions& options);
  // Makes `moving` (extracted from the store) a stand-in that forwards to `to_node` for the
  // move's grace period; returns what it held.
  storage::LoadedSession StandIn(std::shared_ptr<Session> moving, const std::string& client_id,
                                 const std::string& to_node);
  // Loads retained messages and persistent sessions from the store.
  absl::Status Restore();

  const BrokerConfig config_;
  Counters counters_;
  HybridClock clock_;
  ClusterHooks* cluster_ = nullptr;
  // Declared before everything that writes to it, so it is destroyed last (writing what is left).
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Persistence> persistence_;
  SessionStore sessions_;
  TopicTrie<SubscriberRef> subscriptions_;
  SharedSubscriptions shared_;
  // Shared memberships, so publishes skip the shared index while nobody uses it.
  std::atomic<int64_t> shared_memberships_{0};
  // Sessions that moved to another node, standing in for them for a while (HandOverSession).
  struct MovedStandIn {
    std::shared_ptr<Session> stand_in;
    int64_t until_ms = 0;
  };
  absl::Mutex moved_mu_;
  absl::flat_hash_map<std::string, MovedStandIn> moved_out_ ABSL_GUARDED_BY(moved_mu_);
  struct PendingWill {
    MessagePtr message;
    int64_t publish_at_ms = 0;
  };
  absl::Mutex wills_mu_;
  absl::flat_hash_map<std::string, PendingWill> pending_wills_ ABSL_GUARDED_BY(wills_mu_);
  RetainedStore retained_;
  std::shared_ptr<const AuthConfig> auth_;  // accessed with std::atomic_load/store
  std::atomic<bool> acl_enabled_{false};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Acceptor> acceptor_;
  int mqtt_port_ = 0;
  absl::Time started_at_;
  std::atomic<int64_t> connections_{0};
  std::atomic<int64_t> refusals_{0};
  std::atomic<uint64_t> next_client_number_{0};
  bool running_ = false;
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_BROKER_H_
