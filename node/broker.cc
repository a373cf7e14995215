#include "node/broker.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node/acceptor.h"
#include "node/event_loop.h"
#include "node/log.h"
#include "node/persistence.h"
#include "node/worker.h"
#include "storage/store.h"

namespace meshmq {
namespace {

constexpr char kVersion[] = "meshmq 0.1.0";

}  // namespace

const char* Broker::version() { return kVersion; }

Broker::Broker(BrokerConfig config)
    : config_(std::move(config)), auth_(std::make_shared<const AuthConfig>()) {}

Broker::~Broker() {
  Stop();
  // Before the workers go: the store's writer thread tells them about every group it writes.
  store_.reset();
}

absl::StatusOr<std::shared_ptr<const AuthConfig>> Broker::LoadAuth() const {
  auto auth = std::make_shared<AuthConfig>();
  if (!config_.password_file.empty()) {
    absl::StatusOr<auth::PasswordFile> passwords = auth::PasswordFile::Load(config_.password_file);
    if (!passwords.ok()) return passwords.status();
    auth->passwords = std::move(*passwords);
  }
  if (!config_.acl_file.empty()) {
    absl::StatusOr<auth::AclFile> acl = auth::AclFile::Load(config_.acl_file);
    if (!acl.ok()) return acl.status();
    auth->acl = std::move(*acl);
  }
  return std::shared_ptr<const AuthConfig>(std::move(auth));
}

absl::Status Broker::ReloadAuth() {
  absl::StatusOr<std::shared_ptr<const AuthConfig>> auth = LoadAuth();
  if (!auth.ok()) return auth.status();
  const bool acl_enabled = (*auth)->acl.has_value();
  std::atomic_store(&auth_, *std::move(auth));
  acl_enabled_.store(acl_enabled, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status Broker::Start() {
  std::error_code error;
  std::filesystem::create_directories(config_.data_dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create --data_dir ", config_.data_dir, ": ", error.message()));
  }
  absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(
      config_.data_dir,
      config_.durability_fsync ? storage::Durability::kFsync : storage::Durability::kProcess);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  store_->SetMinFreeBytes(config_.store_min_free_bytes);
  persistence_ = std::make_unique<Persistence>(store_.get());
  if (cluster_ != nullptr) persistence_->SetReplication(cluster_->replication());
  if (absl::Status status = ReloadAuth(); !status.ok()) return status;

  absl::StatusOr<std::unique_ptr<Acceptor>> acceptor = Acceptor::Bind(config_.mqtt_listen, this);
  if (!acceptor.ok()) return acceptor.status();
  acceptor_ = std::move(*acceptor);
  mqtt_port_ = acceptor_->port();

  int count =
      config_.workers > 0 ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
  std::vector<Worker*> workers;
  for (int i = 0; i < count; ++i) {
    workers_.push_back(std::make_unique<Worker>(this, i));
    workers.push_back(workers_.back().get());
  }
  // Each written group releases the acks waiting for it, on the workers that hold them.
  // The raw pointer, not store_: unique_ptr::reset() clears store_ before the destructor's last
  // group calls back here.
  persistence_->SetOnDurable([this, store = store_.get()](uint64_t durable, bool store_wrote) {
    if (absl::Status status = store->status(); !status.ok()) {
      // Every group after a failed write is refused too: nothing more becomes durable, and
      // connections waiting on the store are closed without their acks (Worker::OnDurable).
      if (counters_.store_errors.value() == 0) {
        Log(LogLevel::kError, "meshmqd: store failed, acknowledgements withheld: %s",
            std::string(status.message()).c_str());
      }
      counters_.store_errors.Increment();
    } else if (store_wrote) {
      counters_.store_write_groups.Increment();
    }
    if (cluster_ != nullptr) cluster_->OnDurable(durable);
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      w->Post([w, durable] { w->OnDurable(durable); });
    }
  });
  if (absl::Status status = Restore(); !status.ok()) return status;
  started_at_ = absl::Now();
  for (auto& worker : workers_) worker->Start();
  acceptor_->Start(workers);
  running_ = true;
  return absl::OkStatus();
}

void Broker::Stop() {
  if (!running_) return;
  running_ = false;
  acceptor_->Stop();
  for (auto& worker : workers_) worker->Stop();
  for (auto& worker : workers_) worker->Join();
  if (cluster_ != nullptr) cluster_->Shutdown();
  // Writes what the workers handed over while closing (offline times, wills' effects), while
  // the workers its callback posts to still exist. Nothing submits after this.
  if (persistence_) persistence_->Close();
  store_.reset();
}

bool Broker::store_ok() const { return store_ == nullptr || store_->status().ok(); }

absl::Status Broker::Restore() {
  retained_.SetChangeHook(nullptr);
  const int64_t now_ms = MonotonicMillis();
  storage::Batch expired;
  absl::Status status = store_->LoadRetained([&](storage::StoredMessage&& record) {
    const RetainedVersion version{record.hlc(), record.origin()};
    if (record.deleted()) {  // a cluster's tombstone (node/retained_store.h)
      retained_.Apply(record.topic(), nullptr, version);
      return;
    }
    MessagePtr message = Persistence::FromRecord(record);
    if (message == nullptr || message->expired(now_ms)) {
      expired.DeleteRetained(record.topic());
      return;
    }
    clock_.Observe(version.hlc);
    retained_.Apply(record.topic(), std::move(message), version);
    counters_.retained_restored.Increment();
  });
  if (!status.ok()) return status;
  if (!expired.empty()) persistence_->Submit(std::move(expired));
  sessions_.SetPersistence(persistence_.get());
  status = store_->LoadSessions([&](storage::LoadedSession&& loaded) {
    std::shared_ptr<Session> session = sessions_.Restore(loaded, now_ms);
    for (const auto& [filter, options] : session->subscriptions()) {
      InsertIntoIndex(session, filter, options);
    }
    counters_.sessions_restored.Increment();
  });
  if (!status.ok()) return status;
  // From here on every change to a retained topic is written, in the order it happened.
  retained_.SetChangeHook(
      [this](const std::string& topic, const Message* message, const RetainedVersion& version) {
        storage::Batch batch;
        if (message != nullptr || version.hlc != 0) {
          storage::StoredMessage record;
          if (message != nullptr) {
            record = Persistence::ToRecord(*message);
          } else {
            record.set_topic(topic);
            record.set_deleted(true);
          }
          record.set_hlc(version.hlc);
          record.set_origin(version.origin);
          batch.PutRetained(topic, record);
        } else {
          batch.DeleteRetained(topic);
        }
        persistence_->Submit(std::move(batch));
        // Peers learn this node's own writes; what it applied from a peer came from there.
        if (cluster_ != nullptr && version.hlc != 0 && version.origin == config_.node_id) {
          cluster_->RetainedChanged(topic, message, version);
        }
      });
  return absl::OkStatus();
}

bool Broker::TryAddConnection() {
  if (connections_.fetch_add(1) >= static_cast<int64_t>(config_.max_connections)) {
    connections_.fetch_sub(1);
    return false;
  }
  return true;
}

void Broker::RemoveConnection() { connections_.fetch_sub(1); }

bool Broker::TryAddRefusal() {
  if (refusals_.fetch_add(1) >= kMaxPendingRefusals) {
    refusals_.fetch_sub(1);
    return false;
  }
  return true;
}

void Broker::RemoveRefusal() { refusals_.fetch_sub(1); }

std::string Broker::GenerateClientId() {
  thread_local std::mt19937_64 random(std::random_device{}());
  return absl::StrFormat("meshmq-%016x-%d", random(), next_client_number_.fetch_add(1));
}

namespace {

// Overlapping subscriptions of one session deliver one copy (MQTT-3.3.5-1, MQTT 5 3.3.4): at
// the highest QoS any of them grants, with every Subscription Identifier among them. Returns false
// if none of them takes the message (all No Local, and the session published it).
// `Ref` is SubscriberRef or SharedGroup::Member: anything with `session` and `options`.
// `shared_group`: the group the message came through, or null.
template <typename Ref>
bool MergeMatches(const MessagePtr& message, const Session* origin, const Ref* begin,
                  const Ref* end, std::shared_ptr<SharedGroup> shared_group,
                  QueuedMessage* queued) {
  thread_local std::vector<uint32_t> subscription_ids;
  subscription_ids.clear();
  bool any = false;
  for (const Ref* ref = begin; ref != end; ++ref) {
    const SubscriptionOptions& options = ref->options;
    if (options.no_local && ref->session.get() == origin) continue;
    const uint8_t qos = std::min(message->qos, options.qos);
    // Forwarded copies carry RETAIN=0 (MQTT-3.3.1-9) unless Retain As Published asks otherwise.
    const bool retain = options.retain_as_published && message->retain;
    if (!any || qos > queued->qos) queued->qos = qos;
    queued->retain = (any && queued->retain) || retain;
    if (options.subscription_id != 0) subscription_ids.push_back(options.subscription_id);
    any = true;
  }
  if (any && (!subscription_ids.empty() || shared_group != nullptr)) {
    queued->extras = std::make_shared<const DeliveryExtras>(
        DeliveryExtras{subscription_ids, std::move(shared_group)});
  }
  return any;
}

}  // namespace

bool Broker::ReadAllowed(const AuthConfig* auth, const Session& session,
                         const std::string& topic) const {
  return auth == nullptr || !auth->acl ||
         auth->acl->CheckTopic(session.username(), session.client_id(), topic,
                               auth::AclFile::Access::kRead);
}

void Broker::Deliver(Session& session, QueuedMessage queued, bool detour) {
  std::optional<SessionOwner> wake =
      session.Enqueue(std::move(queued), queue_limits(), &counters_, detour);
  if (wake) wake->worker->RequestFlush(wake->connection_id);
}

size_t Broker::DeliverOrdinary(const MessagePtr& message, const Session* origin,
                               const AuthConfig* auth) {
  size_t delivered = 0;
  // Collect under the trie's reader lock, deliver after releasing it.
  thread_local std::vector<SubscriberRef> matches;
  matches.clear();
  subscriptions_.Match(
      message->topic, [](const std::string&, const SubscriberRef& ref) { matches.push_back(ref); });
  if (matches.size() > 1) {
    std::sort(matches.begin(), matches.end(), [](const SubscriberRef& a, const SubscriberRef& b) {
      return a.session.get() < b.session.get();
    });
  }
  for (size_t i = 0; i < matches.size();) {
    size_t j = i + 1;
    while (j < matches.size() && matches[j].session == matches[i].session) ++j;
    Session& session = *matches[i].session;
    QueuedMessage queued;
    const bool wanted =
        MergeMatches(message, origin, &matches[i], matches.data() + j, nullptr, &queued);
    i = j;
    if (!wanted || !ReadAllowed(auth, session, message->topic)) continue;
    queued.message = message;
    Deliver(session, std::move(queued));
    ++delivered;
  }
  matches.clear();
  return delivered;
}

bool Broker::DeliverShared(const MessagePtr& message, std::shared_ptr<SharedGroup> group,
                           const AuthConfig* auth) {
  std::optional<SharedGroup::Member> member = group->Pick();
  if (!member || !ReadAllowed(auth, *member->session, message->topic)) return false;
  QueuedMessage queued;
  MergeMatches(message, nullptr, &*member, &*member + 1, std::move(group), &queued);
  queued.message = message;
  Deliver(*member->session, std::move(queued));
  return true;
}

size_t Broker::Publish(const MessagePtr& message, const Session* origin,
                       std::function<void(bool)> on_peers_accepted, bool* awaiting_peers) {
  // $SYS topics describe this node: they stay here, neither replicated nor forwarded.
  ClusterHooks* cluster = IsSysTopic(message->topic) ? nullptr : cluster_;
  if (message->retain) {
    retained_.Apply(
        message->topic, message,
        cluster != nullptr ? RetainedVersion{clock_.Now(), config_.node_id} : RetainedVersion{});
  }
  std::shared_ptr<const AuthConfig> auth = auth_if_acl();
  size_t delivered = DeliverOrdinary(message, origin, auth.get());

  thread_local std::vector<std::shared_ptr<SharedGroup>> groups;
  thread_local std::vector<char> deliver_here;
  groups.clear();
  if (shared_memberships_.load(std::memory_order_relaxed) > 0) {
    shared_.Match(message->topic,
                  [](const std::shared_ptr<SharedGroup>& group) { groups.push_back(group); });
  }
  deliver_here.assign(groups.size(), 1);
  if (cluster != nullptr) {
    // Only a publisher that gave a callback waits. One that saw no remote route a moment ago
    // gave none: a route that arrived since gets the message, unconfirmed (the subscription is
    // as new as the message), and the publisher has nothing to wait for; told to wait, it
    // held its acknowledgement for a callback that never comes.
    const bool confirmed = on_peers_accepted != nullptr;
    const size_t peers =
        cluster->Forward(message, groups, &deliver_here, std::move(on_peers_accepted));
    if (peers > 0 && confirmed && awaiting_peers != nullptr) *awaiting_peers = true;
    delivered += peers;
  }
  for (size_t i = 0; i < groups.size(); ++i) {
    if (deliver_here[i] && DeliverShared(message, std::move(groups[i]), auth.get())) ++delivered;
  }
  groups.clear();
  return delivered;
}

size_t Broker::DeliverForwarded(const MessagePtr& message, bool ordinary,
                                const std::vector<std::pair<std::string, std::string>>& shared) {
  std::shared_ptr<const AuthConfig> auth = auth_if_acl();
  size_t delivered = ordinary ? DeliverOrdinary(message, nullptr, auth.get()) : 0;
  for (const auto& [group_name, filter] : shared) {
    std::shared_ptr<SharedGroup> group = shared_.Find(group_name, filter);
    // Its members here left since the peer chose this node: nobody here to take it.
    if (group == nullptr || !DeliverShared(message, std::move(group), auth.get())) {
      counters_.cluster_shared_undeliverable.Increment();
      continue;
    }
    ++delivered;
  }
  return delivered;
}

void Broker::HandOverSession(const std::string& client_id, bool clean_start,
                             const std::string& to_node,
                             std::function<void(std::optional<storage::LoadedSession>)> done) {
  std::shared_ptr<Session> session = sessions_.Find(client_id);
  if (session == nullptr) {
    done(std::nullopt);
    return;
  }
  auto finish = std::make_shared<std::function<void()>>(
      [this, client_id, clean_start, to_node, done = std::move(done)] {
        // A will waiting out its delay: the session goes on elsewhere, unless this is its end.
        MessagePtr will = CancelWill(client_id);
        if (clean_start || cluster_ == nullptr) {
          if (std::shared_ptr<Session> ended = sessions_.Extract(client_id)) {
            DiscardSession(ended);
          }
          if (will != nullptr) PublishWill(will);
          done(std::nullopt);
          return;
        }
        std::shared_ptr<Session> moving = sessions_.Find(client_id);
        if (moving == nullptr) {
          if (will != nullptr) PublishWill(will);
          done(std::nullopt);
          return;
        }
        done(StandIn(std::move(moving), client_id, to_node));
      });
  if (std::optional<SessionOwner> owner = session->current_owner(); owner && owner->worker) {
    // On the connection's own worker: closed first, so nothing changes the session after it
    // is exported. A worker that has stopped (this node is shutting down) closed it already.
    counters_.takeovers.Increment();
    Worker* worker = owner->worker;
    const uint64_t connection_id = owner->connection_id;
    if (worker->Post([worker, connection_id, finish] {
          worker->CloseTakenOver(connection_id);
          (*finish)();
        })) {
      return;
    }
  }
  (*finish)();
}

void Broker::StandInForAll(const std::function<std::string(const std::string&)>& target) {
  for (const std::string& client_id : sessions_.ClientIds()) {
    const std::string to_node = target(client_id);
    if (to_node.empty() || cluster_ == nullptr) {
      if (std::shared_ptr<Session> ended = sessions_.Extract(client_id)) {
        ended->Discard([&](const std::string& filter) { EraseFromIndex(filter, *ended); });
      }
      continue;
    }
    std::shared_ptr<Session> moving = sessions_.Find(client_id);
    if (moving == nullptr) continue;
    StandIn(std::move(moving), client_id, to_node);
  }
}

storage::LoadedSession Broker::StandIn(std::shared_ptr<Session> moving,
                                       const std::string& client_id, const std::string& to_node) {
  // The session object stays in the routing index for a while as a stand-in: messages that
  // reach this node for it meanwhile (their publishers' nodes did not know of the move yet)
  // follow it to its new node. It is the stand-in before it leaves the session store, so a
  // lookup by client id (DeliverToSessions: orphans of a dead node) finds it in one or the
  // other all along; found in neither for a moment, an orphan was dropped, though confirmed.
  // Whatever reaches it before the export below is in the export, whatever after follows it.
  {
    absl::MutexLock lock(&moved_mu_);
    MovedStandIn& moved = moved_out_[client_id];
    if (moved.stand_in != nullptr && moved.stand_in != moving) {
      moved.stand_in->Discard(
          [&](const std::string& filter) { EraseFromIndex(filter, *moved.stand_in); });
    }
    moved = MovedStandIn{moving, MonotonicMillis() + cluster_->move_grace_ms()};
  }
  if (sessions_.Find(client_id) == moving) sessions_.Extract(client_id);
  return moving->ExportAndForwardTo(
      [cluster = cluster_, to_node, client_id](const QueuedMessage& queued) {
        cluster->DeliverTo(to_node, client_id, queued);
      });
}

void Broker::DropMovedStandIn(const std::string& client_id) {
  absl::MutexLock lock(&moved_mu_);
  auto it = moved_out_.find(client_id);
  if (it == moved_out_.end()) return;
  it->second.stand_in->Discard(
      [&](const std::string& filter) { EraseFromIndex(filter, *it->second.stand_in); });
  moved_out_.erase(it);
}

bool Broker::DeliverToSession(const std::string& client_id, QueuedMessage queued) {
  std::shared_ptr<Session> session = sessions_.Find(client_id);
  if (session == nullptr || session->discarded()) return false;
  Deliver(*session, std::move(queued), /*detour=*/true);
  return true;
}

void Broker::ReleaseMoveHold(const std::string& client_id) {
  std::shared_ptr<Session> session = sessions_.Find(client_id);
  if (session == nullptr) return;
  std::optional<SessionOwner> wake = session->ReleaseMoveHold();
  if (wake) wake->worker->RequestFlush(wake->connection_id);
}

uint64_t Broker::NewMessageId() {
  if (cluster_ == nullptr) return 0;
  // Unique per node without a shared counter: each thread numbers its own messages under a
  // per-thread prefix; SplitMix64's finaliser (a bijection) then spreads them, seeded by the
  // node id and a random number drawn at start-up, so ids of different nodes, and of one node
  // before and after a restart, collide only by chance (2^-64 per pair). Without the random
  // part a restarted node numbered its messages as in its last life, and a session that still
  // remembered one of those ids (it dedupes by id) dropped the new message as a copy.
  static std::atomic<uint64_t> next_thread{0};
  thread_local const uint64_t thread_prefix = (next_thread.fetch_add(1) + 1) << 40;
  thread_local uint64_t counter = 0;
  static const uint64_t node_seed = [&] {
    std::random_device random;
    const uint64_t boot = (uint64_t{random()} << 32) ^ random();
    return std::hash<std::string>{}(config_.node_id) ^ boot;
  }();
  uint64_t z = node_seed + (thread_prefix | (++counter & ((uint64_t{1} << 40) - 1)));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z == 0 ? 1 : z;
}

void Broker::ImportSession(const storage::LoadedSession& loaded) {
  if (std::shared_ptr<Session> stale = sessions_.Extract(loaded.client_id)) {
    stale->Discard([&](const std::string& filter) { EraseFromIndex(filter, *stale); });
  }
  std::shared_ptr<Session> session = sessions_.Restore(loaded, MonotonicMillis());
  if (cluster_ != nullptr) {
    // The claim of this node (the copy brought its old owner's), stored with the record below.
    session->set_claim(cluster_->ClaimOf(loaded.client_id));
    // Copies of what it brought along may still arrive through its old node's stand-in, and
    // copies of what arrives directly from now on may follow that way too: tracked before the
    // session is in the routing index.
    std::vector<uint64_t> ids = loaded.recent_ids;
    for (const storage::LoadedSession::Message& m : loaded.messages) {
      ids.push_back(m.queued.message().id());
    }
    // Long enough for a failover's redelivered orphans too (cluster/failover.h: they come at
    // most three peer timeouts after the node was seen down).
    session->StartMoveDedup(ids, MonotonicMillis() + 5 * cluster_->move_grace_ms(),
                            /*hold=*/true);
  }
  for (const auto& [filter, options] : session->subscriptions()) {
    InsertIntoIndex(session, filter, options);
  }
  session->JournalEverything();
  if (cluster_ != nullptr) cluster_->SessionImported(loaded.client_id);
  counters_.cluster_sessions_moved.Increment();
}

size_t Broker::DeliverToSessions(const MessagePtr& message,
                                 const std::vector<std::string>& client_ids) {
  std::shared_ptr<const AuthConfig> auth = auth_if_acl();
  size_t delivered = 0;
  std::vector<SubscriberRef> matches;
  for (const std::string& client_id : client_ids) {
    std::shared_ptr<Session> session = sessions_.Find(client_id);
    if (session == nullptr) {
      // Moved on to another node since: its stand-in sends the message after it.
      absl::MutexLock lock(&moved_mu_);
      auto it = moved_out_.find(client_id);
      if (it != moved_out_.end()) session = it->second.stand_in;
    }
    if (session == nullptr || session->discarded()) continue;
    matches.clear();
    for (const auto& [filter, options] : session->subscriptions()) {
      SharedFilter shared;
      if (ClassifyFilter(filter, &shared) == FilterKind::kShared) continue;
      if (TopicMatches(filter, message->topic)) matches.push_back(SubscriberRef{session, options});
    }
    QueuedMessage queued;
    if (matches.empty() ||
        !MergeMatches(message, nullptr, matches.data(), matches.data() + matches.size(), nullptr,
                      &queued) ||
        !ReadAllowed(auth.get(), *session, message->topic)) {
      continue;
    }
    queued.message = message;
    Deliver(*session, std::move(queued), /*detour=*/true);
    ++delivered;
  }
  return delivered;
}

void Broker::CloseAllClients(const std::string& reason, uint8_t disconnect_reason,
                             bool publish_wills) {
  for (auto& worker : workers_) worker->CloseAll(reason, disconnect_reason, publish_wills);
}

bool Broker::DropStaleSession(const std::string& client_id) {
  std::shared_ptr<Session> session = sessions_.Extract(client_id);
  if (session == nullptr) return false;
  CancelWill(client_id);
  if (std::optional<SessionOwner> owner = session->current_owner(); owner && owner->worker) {
    Worker* worker = owner->worker;
    const uint64_t connection_id = owner->connection_id;
    worker->Post([worker, connection_id] { worker->CloseTakenOver(connection_id, false); });
  }
  session->Discard([&](const std::string& filter) { EraseFromIndex(filter, *session); });
  return true;
}

bool Broker::DropSession(const std::string& client_id) {
  std::shared_ptr<Session> session = sessions_.Extract(client_id);
  if (session == nullptr) return false;
  CancelWill(client_id);
  if (std::optional<SessionOwner> owner = session->current_owner(); owner && owner->worker) {
    owner->worker->CloseByAdmin(owner->connection_id, /*publish_will=*/false);
  }
  session->Discard([&](const std::string& filter) { EraseFromIndex(filter, *session); });
  return true;
}

bool Broker::ApplyRemoteRetained(const std::string& topic, MessagePtr message,
                                 const RetainedVersion& version) {
  clock_.Observe(version.hlc);
  return retained_.Apply(topic, std::move(message), version);
}

Session::AddResult Broker::Subscribe(const std::shared_ptr<Session>& session,
                                     const std::string& filter,
                                     const SubscriptionOptions& options) {
  return session->AddSubscription(filter, options, config_.max_subscriptions,
                                  [&] { InsertIntoIndex(session, filter, options); });
}

void Broker::InsertIntoIndex(const std::shared_ptr<Session>& session, const std::string& filter,
                             const SubscriptionOptions& options) {
  SharedFilter shared;
  if (ClassifyFilter(filter, &shared) != FilterKind::kShared) {
    if (subscriptions_.Insert(filter, session->client_id(), SubscriberRef{session, options}) &&
        cluster_ != nullptr) {
      cluster_->LocalRouteAdded(filter, std::string());
    }
  } else if (shared_.Subscribe(shared.group, shared.filter, session, options)) {
    shared_memberships_.fetch_add(1, std::memory_order_relaxed);
    if (cluster_ != nullptr) {
      cluster_->LocalRouteAdded(std::string(shared.filter), std::string(shared.group));
    }
  }
}

bool Broker::Unsubscribe(const std::shared_ptr<Session>& session, const std::string& filter) {
  return session->RemoveSubscription(filter, [&] { EraseFromIndex(filter, *session); });
}

void Broker::EraseFromIndex(const std::string& filter, const Session& session) {
  // Only this session object's entry: the client id's entry may be a newer session's by now (a
  // stand-in expiring, or replaced, after its session came back here).
  const std::string& client_id = session.client_id();
  SharedFilter shared;
  if (ClassifyFilter(filter, &shared) != FilterKind::kShared) {
    if (subscriptions_.EraseIf(
            filter, client_id,
            [&](const SubscriberRef& ref) { return ref.session.get() == &session; }) &&
        cluster_ != nullptr) {
      cluster_->LocalRouteRemoved(filter, std::string());
    }
  } else if (shared_.Unsubscribe(shared.group, shared.filter, client_id, &session)) {
    shared_memberships_.fetch_sub(1, std::memory_order_relaxed);
    if (cluster_ != nullptr) {
      cluster_->LocalRouteRemoved(std::string(shared.filter), std::string(shared.group));
    }
  }
}

void Broker::RedeliverShared(std::vector<QueuedMessage> messages,
                             const std::shared_ptr<Session>& from) {
  std::shared_ptr<const AuthConfig> auth = auth_if_acl();
  for (QueuedMessage& queued : messages) {
    std::shared_ptr<SharedGroup> group = queued.extras->shared_group;
    std::optional<SharedGroup::Member> member = group->Pick(from.get());
    if (!member || !ReadAllowed(auth.get(), *member->session, queued.message->topic)) {
      Deliver(*from, std::move(queued));  // nobody else: it waits for its first receiver
      continue;
    }
    counters_.shared_redeliveries.Increment();
    // As if first routed to the new member: its QoS, its Subscription Identifier.
    QueuedMessage moved;
    MergeMatches(queued.message, nullptr, &*member, &*member + 1, std::move(group), &moved);
    moved.message = std::move(queued.message);
    Deliver(*member->session, std::move(moved));
  }
}

void Broker::DiscardSession(const std::shared_ptr<Session>& session) {
  session->Discard([&](const std::string& filter) { EraseFromIndex(filter, *session); });
  if (MessagePtr will = CancelWill(session->client_id())) PublishWill(will);
}

void Broker::ScheduleWill(const std::string& client_id, MessagePtr will, int64_t publish_at_ms) {
  counters_.wills_delayed.Increment();
  absl::MutexLock lock(&wills_mu_);
  pending_wills_[client_id] = PendingWill{std::move(will), publish_at_ms};
}

MessagePtr Broker::CancelWill(const std::string& client_id) {
  absl::MutexLock lock(&wills_mu_);
  auto it = pending_wills_.find(client_id);
  if (it == pending_wills_.end()) return nullptr;
  MessagePtr will = std::move(it->second.message);
  pending_wills_.erase(it);
  return will;
}

void Broker::PublishWill(const MessagePtr& will) {
  counters_.wills_published.Increment();
  Publish(will);
}

void Broker::Housekeeping(int64_t now_ms) {
  {
    absl::MutexLock lock(&moved_mu_);
    absl::erase_if(moved_out_, [&](auto& entry) {
      if (entry.second.until_ms > now_ms) return false;
      entry.second.stand_in->Discard(
          [&](const std::string& filter) { EraseFromIndex(filter, *entry.second.stand_in); });
      return true;
    });
  }
  for (const std::shared_ptr<Session>& session : sessions_.ExpireDue(now_ms)) {
    counters_.sessions_expired.Increment();
    DiscardSession(session);
  }
  std::vector<MessagePtr> due;
  {
    absl::MutexLock lock(&wills_mu_);
    // Few clients have a delayed will pending at any moment, so a scan per tick is cheap.
    absl::erase_if(pending_wills_, [&](const auto& entry) {
      if (entry.second.publish_at_ms > now_ms) return false;
      due.push_back(entry.second.message);
      return true;
    });
  }
  for (const MessagePtr& will : due) PublishWill(will);
}

uint64_t Broker::connected_clients() const {
  // Disconnects first: a client counted as gone was counted as come before, so the difference
  // never goes negative while clients come and go during the sum.
  uint64_t connects = 0;
  uint64_t disconnects = 0;
  for (const auto& worker : workers_) {
    for (const auto& count : worker->stats().disconnects) {
      disconnects += count.load(std::memory_order_relaxed);
    }
  }
  for (const auto& worker : workers_) {
    connects += worker->stats().connects.load(std::memory_order_relaxed);
  }
  return connects > disconnects ? connects - disconnects : 0;
}

Broker::SysStats Broker::sys_stats() const {
  SysStats stats;
  for (const auto& worker : workers_) {
    const Worker::Stats& counts = worker->stats();
    stats.messages_received += counts.messages_received.load(std::memory_order_relaxed);
    stats.messages_sent += counts.messages_sent.load(std::memory_order_relaxed);
    stats.bytes_received += counts.bytes_read.load(std::memory_order_relaxed);
    stats.bytes_sent += counts.bytes_written.load(std::memory_order_relaxed);
  }
  stats.clients_connected = connected_clients();
  // Every connected client has a session; the others are persistent sessions kept offline.
  stats.clients_total = std::max<uint64_t>(sessions_.size(), stats.clients_connected);
  stats.subscriptions = subscriptions_.size() +
                        static_cast<uint64_t>(std::max<int64_t>(shared_subscription_count(), 0));
  stats.retained = retained_.size();
  return stats;
}

// $SYS topics, retained, every --sys_interval: Mosquitto's names under $SYS/broker/ (this node),
// and the same under $SYS/brokers/<node id>/ (EMQX's layout), which stays unambiguous when
// several nodes' values are collected in one place. $SYS topics are not forwarded to peers
// (Broker::Publish): each node's copies are seen by that node's subscribers. The cluster-wide
// totals under $SYS/cluster/ need the peers' values: node/admin/sys_totals.h asks for them on
// its own thread and publishes those.
void Broker::PublishSysTopics() {
  const SysStats stats = sys_stats();
  std::vector<std::pair<std::string, std::string>> values = {
      {"version", kVersion},
      {"uptime", absl::StrCat(absl::ToInt64Seconds(absl::Now() - started_at_), " seconds")},
      {"clients/connected", absl::StrCat(stats.clients_connected)},
      {"clients/disconnected", absl::StrCat(stats.clients_total - stats.clients_connected)},
      {"clients/total", absl::StrCat(stats.clients_total)},
      {"messages/received", absl::StrCat(stats.messages_received)},
      {"messages/sent", absl::StrCat(stats.messages_sent)},
      {"bytes/received", absl::StrCat(stats.bytes_received)},
      {"bytes/sent", absl::StrCat(stats.bytes_sent)},
      {"retained messages/count", absl::StrCat(stats.retained)},
      {"subscriptions/count", absl::StrCat(stats.subscriptions)},
  };
  counters_.ForEach([&](const char* name, uint64_t value) {
    values.emplace_back(absl::StrCat("counters/", name), absl::StrCat(value));
  });
  // A node id with topic separators or wildcards would make topics nobody can subscribe to.
  std::string node = config_.node_id;
  std::replace_if(
      node.begin(), node.end(), [](char c) { return c == '/' || c == '+' || c == '#'; }, '_');
  const std::string per_node = absl::StrCat("$SYS/brokers/", node, "/");
  auto publish = [this](std::string topic, const std::string& payload) {
    auto message = std::make_shared<Message>();
    message->topic = std::move(topic);
    message->payload = payload;
    message->retain = true;
    Publish(message);
  };
  for (const auto& [name, value] : values) {
    publish(absl::StrCat("$SYS/broker/", name), value);
    publish(absl::StrCat(per_node, name), value);
  }
}

}  // namespace meshmq
