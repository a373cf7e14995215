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
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "node/auth/acl_file.h"
#include "node/auth/password_file.h"
#include "node/config.h"
#include "node/counters.h"
#include "node/message.h"
#include "node/retained_store.h"
#include "node/session.h"
#include "node/session_store.h"
#include "node/topic_trie.h"

namespace meshmq {

class Acceptor;
class Worker;

// What the trie stores per (filter, client id).
struct SubscriberRef {
  std::shared_ptr<Session> session;
  uint8_t qos = 0;
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

  // Loads auth files, binds the listener and starts the threads. Errors name what failed.
  absl::Status Start();
  // Graceful stop: no new connections, every connection closed, threads joined.
  void Stop();
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
  RetainedStore& retained() { return retained_; }
  std::shared_ptr<const AuthConfig> auth() const { return std::atomic_load(&auth_); }
  // The ACL in force, or null. Cheap when there is none: std::atomic_load of a shared_ptr takes
  // a lock in libstdc++, which the publish path should not pay for nothing.
  std::shared_ptr<const AuthConfig> auth_if_acl() const {
    return acl_enabled_.load(std::memory_order_acquire) ? auth() : nullptr;
  }
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  absl::Time started_at() const { return started_at_; }

  // Routes `message` to every matching subscription and, if it is retained, stores it
  // (MQTT-3.3.1-5). Callable from any thread.
  void Publish(const MessagePtr& message);
  // Removes an ended session's subscriptions from the trie.
  void DiscardSession(const std::shared_ptr<Session>& session);
  // Publishes the $SYS topics (called by worker 0 every --sys_interval).
  void PublishSysTopics();
  // A fresh client id for a CONNECT with an empty one (MQTT-3.1.3-6).
  std::string GenerateClientId();

  // Connection accounting for --max_connections.
  bool TryAddConnection();
  void RemoveConnection();

 private:
  absl::StatusOr<std::shared_ptr<const AuthConfig>> LoadAuth() const;

  const BrokerConfig config_;
  Counters counters_;
  SessionStore sessions_;
  TopicTrie<SubscriberRef> subscriptions_;
  RetainedStore retained_;
  std::shared_ptr<const AuthConfig> auth_;  // accessed with std::atomic_load/store
  std::atomic<bool> acl_enabled_{false};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Acceptor> acceptor_;
  int mqtt_port_ = 0;
  absl::Time started_at_;
  std::atomic<int64_t> connections_{0};
  std::atomic<uint64_t> next_client_number_{0};
  bool running_ = false;
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_BROKER_H_
