#include "cluster/cluster_node.h"

#include "cluster/debug_log.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "node/broker.h"
#include "node/event_loop.h"
#include "node/log.h"
#include "node/persistence.h"
#include "node/shared_subscriptions.h"
#include "node/topic.h"
#include "storage/store.h"

namespace meshmq::cluster {
namespace {

std::string RouteKey(const std::string& first, const std::string& second) {
  std::string key = first;
  key.push_back('\0');
  key.append(second);
  return key;
}

// Collects the answers of several peers into one: `done(ok)` once all `expected` are in.
class Tally {
 public:
  Tally(size_t expected, std::function<void(bool)> done)
      : pending_(expected), done_(std::move(done)) {}
  void Add(bool ok) {
    if (!ok) ok_.store(false, std::memory_order_relaxed);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      done_(ok_.load(std::memory_order_relaxed));
    }
  }

 private:
  std::atomic<size_t> pending_;
  std::atomic<bool> ok_{true};
  std::function<void(bool)> done_;
};

}  // namespace

ClusterNode::ClusterNode(Broker* broker, TransportConfig config, int replication_factor)
    : broker_(broker),
      node_id_(config.node_id),
      // A link that takes longer than the peer timeout to deliver is declared down anyway.
      move_grace_ms_(std::max<int64_t>(1000, absl::ToInt64Milliseconds(config.peer_timeout))),
      heartbeat_interval_(config.heartbeat_interval),
      peer_timeout_(config.peer_timeout),
      transport_(std::move(config), this),
      replicator_(
          broker, &transport_, replication_factor, [this] { return ReplicaCandidates(); },
          [this] {
            // Whether acks may go without a replica: in the majority (leaving or not).
            return membership_ == nullptr || membership_->HasQuorum(UpPeers());
          },
          [this](const std::string& client_id) {
            absl::MutexLock lock(&claims_mu_);
            auto it = claims_.find(client_id);
            return it == claims_.end() ? uint64_t{0} : it->second;
          }),
      started_ms_(MonotonicMillis()) {}

ClusterNode::~ClusterNode() { Stop(); }

absl::Status ClusterNode::Start() {
  const std::string& data_dir = broker_->config().data_dir;
  absl::StatusOr<std::unique_ptr<ReplicaStore>> replicas = ReplicaStore::Open(
      data_dir + "/replica", broker_->config().durability_fsync ? storage::Durability::kFsync
                                                                : storage::Durability::kProcess);
  if (!replicas.ok()) return replicas.status();
  replicas_ = std::move(*replicas);
  membership_ = std::make_unique<Membership>(node_id_, data_dir + "/cluster_members");
  // The claims on the sessions restored from the store: a copy a peer took over while this node
  // was away carries a later one, and wins; an older copy on a node that returns loses.
  {
    absl::MutexLock lock(&claims_mu_);
    for (const std::string& client_id : broker_->sessions().ClientIds()) {
      std::shared_ptr<Session> session = broker_->sessions().Find(client_id);
      if (session != nullptr && session->claim() != 0) claims_[client_id] = session->claim();
    }
  }
  // A node that remembers a cluster serves once it hears from most of it.
  CheckQuorum();
  replicator_.Start();
  replicator_.MembersChanged();  // what was held before the members were known
  if (absl::Status status = transport_.Start(); !status.ok()) return status;
  maintenance_ = std::thread([this] { MaintenanceLoop(); });
  return absl::OkStatus();
}

void ClusterNode::Stop() {
  {
    absl::MutexLock lock(&maintenance_mu_);
    stopping_ = true;
  }
  if (maintenance_.joinable()) maintenance_.join();
  transport_.Stop();
  replicator_.Stop();
  // Publishes still held or orphaned are answered: their connections are gone by now.
  std::vector<std::function<void()>> resumes;
  std::vector<Failovers::Orphan> unclaimed;
  for (Failovers::Completed& completed : failovers_.Poll(INT64_MAX, &resumes, &unclaimed)) {
    for (Failovers::Orphan& orphan : completed.orphans) orphan.answer(false);
  }
  for (Failovers::Orphan& orphan : unclaimed) orphan.answer(false);
  for (auto& resume : resumes) resume();
  RunDueTasks(INT64_MAX);  // CONNECTs asking again: the stopped transport answers them at once
  replicas_.reset();
}

// --- Routes -------------------------------------------------------------------------------------

void ClusterNode::LocalRouteAdded(const std::string& filter, const std::string& group) {
  ChangeLocalRoute(filter, group, +1);
}

void ClusterNode::LocalRouteRemoved(const std::string& filter, const std::string& group) {
  ChangeLocalRoute(filter, group, -1);
}

void ClusterNode::ChangeLocalRoute(const std::string& filter, const std::string& group, int delta) {
  absl::MutexLock lock(&routes_mu_);
  const std::string key = RouteKey(filter, group);
  uint32_t& count = local_routes_[key];
  const uint32_t before = count;
  count = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
  const uint32_t after = count;
  if (after == 0) local_routes_.erase(key);
  // Peers need ordinary routes only as present or absent; shared ones with their member count,
  // which weighs the node's share of the group's messages.
  if (group.empty() && (before == 0) == (after == 0)) return;
  Frame frame;
  Route* route = frame.mutable_route();
  route->set_filter(filter);
  route->set_group(group);
  route->set_count(after);
  for (const std::string& peer : transport_.UpPeers()) {
    transport_.Send(peer, frame, nullptr, /*droppable=*/false);
  }
}

void ClusterNode::Barrier(std::function<void()> done) {
  std::vector<std::string> peers = transport_.UpPeers();
  if (peers.empty()) {
    done();
    return;
  }
  // A peer that goes down before answering counts as answered: it is no longer up, and when it
  // comes back it gets the snapshot, which has the route.
  auto tally = std::make_shared<Tally>(peers.size(), [done = std::move(done)](bool) { done(); });
  for (const std::string& peer : peers) {
    Frame frame;
    frame.mutable_barrier();
    if (transport_.Send(
            peer, std::move(frame), [tally](bool) { tally->Add(true); },
            /*droppable=*/false) != Transport::SendResult::kQueued) {
      tally->Add(true);
    }
  }
}

// --- Publishes ----------------------------------------------------------------------------------

size_t ClusterNode::Forward(const MessagePtr& message,
                            const std::vector<std::shared_ptr<SharedGroup>>& local_groups,
                            std::vector<char>* deliver_here,
                            std::function<void(bool)> on_accepted) {
  if (remote_.empty()) return 0;
  // From the routes read to the last frame queued: a move fence waits for this (FenceForwards).
  absl::ReaderMutexLock forwarding(&forwarding_mu_);
  thread_local std::vector<RemoteRoutes::EntryPtr> matches;
  matches.clear();
  remote_.Match(message->topic, &matches);
  if (matches.empty()) return 0;

  // What each interested peer gets: the ordinary subscriptions, and the shared groups it was
  // chosen for.
  // The peer by value: a Route frame handled meanwhile may free the entries once `matches` is
  // cleared.
  struct Plan {
    std::string peer;
    cluster::Forward forward;
  };
  std::vector<Plan> plans;
  auto plan_for = [&plans](const std::string& peer) -> cluster::Forward& {
    for (Plan& plan : plans) {
      if (plan.peer == peer) return plan.forward;
    }
    plans.push_back(Plan{peer, {}});
    return plans.back().forward;
  };
  std::vector<const RemoteRoutes::Entry*> shared;
  for (const RemoteRoutes::EntryPtr& entry : matches) {
    if (entry->group.empty()) {
      plan_for(entry->peer).set_ordinary(true);
    } else {
      shared.push_back(entry.get());
    }
  }
  // Shared groups with members on peers: one member cluster-wide gets the message. The members
  // take turns, each node's share its member count.
  std::sort(shared.begin(), shared.end(), [](const auto* a, const auto* b) {
    return std::tie(a->group, a->filter, a->peer) < std::tie(b->group, b->filter, b->peer);
  });
  for (size_t i = 0; i < shared.size();) {
    size_t j = i;
    uint64_t total = 0;
    while (j < shared.size() && shared[j]->group == shared[i]->group &&
           shared[j]->filter == shared[i]->filter) {
      total += shared[j]->count;
      ++j;
    }
    int local_index = -1;
    uint64_t local_count = 0;
    for (size_t k = 0; k < local_groups.size(); ++k) {
      if (local_groups[k]->group() == shared[i]->group &&
          local_groups[k]->filter() == shared[i]->filter) {
        local_index = static_cast<int>(k);
        local_count = local_groups[k]->size();
      }
    }
    total += local_count;
    uint64_t turn;
    {
      absl::MutexLock lock(&shared_mu_);
      turn = shared_next_[RouteKey(shared[i]->group, shared[i]->filter)]++ % total;
    }
    if (turn >= local_count) {
      if (local_index >= 0) (*deliver_here)[local_index] = 0;
      turn -= local_count;
      size_t k = i;
      while (turn >= shared[k]->count) turn -= shared[k++]->count;
      SharedTarget* target = plan_for(shared[k]->peer).add_shared();
      target->set_group(shared[k]->group);
      target->set_filter(shared[k]->filter);
    }
    i = j;
  }
  matches.clear();
  if (plans.empty()) return 0;

  storage::StoredMessage record = Persistence::ToRecord(*message);
  std::shared_ptr<Tally> tally;
  if (on_accepted) tally = std::make_shared<Tally>(plans.size(), std::move(on_accepted));
  Counters& counters = broker_->counters();
  const uint64_t order = tally ? next_forward_order_.fetch_add(1, std::memory_order_relaxed) : 0;
  for (Plan& plan : plans) {
    Frame frame;
    std::function<void(bool)> on_ack;
    if (tally) {
      // A peer whose link drops before it answers may have died with the message: it waits
      // for the failover, then goes to the sessions taken over from that peer.
      on_ack = [this, tally, message, order, peer = plan.peer, plan = plan.forward](bool ok) {
        if (ok) {
          tally->Add(true);
          return;
        }
        failovers_.AddOrphan(
            peer, Failovers::Orphan{message, plan, [tally](bool ok) { tally->Add(ok); }, order},
            MonotonicMillis());
      };
    }
    *plan.forward.mutable_message() = record;
    *frame.mutable_forward() = std::move(plan.forward);
    switch (SendForward(plan.peer, std::move(frame), std::move(on_ack), /*droppable=*/true)) {
      case Transport::SendResult::kQueued:
        counters.cluster_forwarded.Increment();
        break;
      case Transport::SendResult::kNotUp:  // went down since the routes were read: answered
        break;
      case Transport::SendResult::kFull:
        if (message->qos == 0) {
          counters.cluster_forward_dropped.Increment();
        } else {
          counters.cluster_forward_refused.Increment();
          CLUSTER_DEBUG("forward to ", plan.peer, " refused: its link's queue is full");
        }
        if (tally) tally->Add(false);
        break;
    }
  }
  return plans.size();
}

Transport::SendResult ClusterNode::SendForward(const std::string& peer, Frame frame,
                                               std::function<void(bool)> answer,
                                               bool droppable) {
  if (!answer) return transport_.Send(peer, std::move(frame), nullptr, droppable);
  const uint64_t id = AwaitConfirm(peer, std::move(answer));
  frame.mutable_forward()->set_confirm(id);
  const Transport::SendResult result = transport_.Send(
      peer, std::move(frame),
      [this, peer, id](bool ok) {
        if (!ok) Confirmed(peer, id, false);  // never arrived (or may have): not confirmed
      },
      droppable);
  if (result == Transport::SendResult::kNotUp) {
    Confirmed(peer, id, false);
  } else if (result == Transport::SendResult::kFull) {
    absl::MutexLock lock(&confirms_mu_);
    confirms_[peer].erase(id);  // the caller answers
  }
  return result;
}

uint64_t ClusterNode::AwaitConfirm(const std::string& peer, std::function<void(bool)> answer) {
  absl::MutexLock lock(&confirms_mu_);
  const uint64_t id = ++last_confirm_;
  confirms_[peer][id] = std::move(answer);
  return id;
}

void ClusterNode::Confirmed(const std::string& peer, uint64_t id, bool ok) {
  std::function<void(bool)> answer;
  {
    absl::MutexLock lock(&confirms_mu_);
    auto it = confirms_.find(peer);
    if (it == confirms_.end()) return;
    auto entry = it->second.find(id);
    if (entry == it->second.end()) return;
    answer = std::move(entry->second);
    it->second.erase(entry);
  }
  answer(ok);
}

void ClusterNode::FailConfirms(const std::string& peer) {
  absl::flat_hash_map<uint64_t, std::function<void(bool)>> pending;
  {
    absl::MutexLock lock(&confirms_mu_);
    auto it = confirms_.find(peer);
    if (it == confirms_.end()) return;
    pending = std::move(it->second);
    confirms_.erase(it);
  }
  // In id order: orphans keep their publishers' order.
  std::vector<std::pair<uint64_t, std::function<void(bool)>>> ordered(pending.begin(),
                                                                       pending.end());
  std::sort(ordered.begin(), ordered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  if (!ordered.empty()) {
    CLUSTER_DEBUG(ordered.size(), " forwards to ", peer, " unconfirmed at its link's end");
  }
  for (auto& [id, answer] : ordered) answer(false);
}

void ClusterNode::ConfirmWhenDurable(const std::string& peer, uint64_t id) {
  if (id == 0) return;
  AfterDurable([this, peer, id] {
    Frame frame;
    frame.mutable_forward_confirm()->add_ids(id);
    transport_.Send(peer, std::move(frame), nullptr, /*droppable=*/false);
  });
}

void ClusterNode::AfterDurable(std::function<void()> done) {
  Persistence* persistence = broker_->persistence();
  const uint64_t ticket = Persistence::ThreadTicket();
  if (persistence == nullptr || ticket <= persistence->durable_ticket()) {
    done();
    return;
  }
  {
    absl::MutexLock lock(&durable_mu_);
    durable_waiters_.emplace(ticket, std::move(done));
  }
  // The group may have been written between the check and the insert.
  OnDurable(persistence->durable_ticket());
}

void ClusterNode::OnDurable(uint64_t durable) {
  std::vector<std::function<void()>> ready;
  {
    absl::MutexLock lock(&durable_mu_);
    auto end = durable_waiters_.upper_bound(durable);
    for (auto it = durable_waiters_.begin(); it != end; ++it)
      ready.push_back(std::move(it->second));
    durable_waiters_.erase(durable_waiters_.begin(), end);
  }
  for (auto& done : ready) done();
}

// --- Retained -----------------------------------------------------------------------------------

void ClusterNode::RetainedChanged(const std::string& topic, const Message* message,
                                  const RetainedVersion& version) {
  Frame frame;
  RetainedChange* change = frame.mutable_retained();
  change->set_topic(topic);
  if (message != nullptr) *change->mutable_message() = Persistence::ToRecord(*message);
  change->set_hlc(version.hlc);
  change->set_origin(version.origin);
  for (const std::string& peer : transport_.UpPeers()) {
    transport_.Send(peer, frame, nullptr, /*droppable=*/false);
  }
}

void ClusterNode::ApplyRetained(const RetainedChange& change) {
  MessagePtr message;
  if (change.has_message()) {
    message = Persistence::FromRecord(change.message());
    if (message == nullptr || message->expired(MonotonicMillis())) return;
  }
  if (broker_->ApplyRemoteRetained(change.topic(), std::move(message),
                                   RetainedVersion{change.hlc(), change.origin()})) {
    broker_->counters().cluster_retained_received.Increment();
  }
}

// --- Links --------------------------------------------------------------------------------------

void ClusterNode::OnOutboundUp(const std::string& peer, std::vector<Frame>* snapshot) {
  {
    absl::MutexLock lock(&routes_mu_);
    Frame frame;
    RouteSnapshot* routes = frame.mutable_route_snapshot();
    for (const auto& [key, count] : local_routes_) {
      const size_t split = key.find('\0');
      if (routes->routes_size() >= static_cast<int>(kSnapshotChunk)) {
        // The first frame replaces the peer's view of our routes; later ones add to it.
        Frame more;
        Route* route = more.mutable_route();
        route->set_filter(key.substr(0, split));
        route->set_group(key.substr(split + 1));
        route->set_count(count);
        snapshot->push_back(std::move(more));
        continue;
      }
      Route* route = routes->add_routes();
      route->set_filter(key.substr(0, split));
      route->set_group(key.substr(split + 1));
      route->set_count(count);
    }
    snapshot->insert(snapshot->begin(), std::move(frame));
  }
  // Retained values, tombstones included, so a peer that was away or is new catches up.
  // Values from before this node was in a cluster carry no version: they go out as the oldest
  // possible one from here.
  Frame frame;
  broker_->retained().ForEachVersioned(
      [&](const std::string& topic, const MessagePtr& message, const RetainedVersion& version) {
        if (IsSysTopic(topic)) return;  // each node's own
        RetainedChange* change = frame.mutable_retained_snapshot()->add_changes();
        change->set_topic(topic);
        if (message != nullptr) *change->mutable_message() = Persistence::ToRecord(*message);
        change->set_hlc(version.hlc != 0 ? version.hlc : 1);
        change->set_origin(version.hlc != 0 ? version.origin : node_id_);
        if (frame.retained_snapshot().changes_size() >= static_cast<int>(kSnapshotChunk)) {
          snapshot->push_back(std::move(frame));
          frame.Clear();
        }
      });
  if (frame.has_retained_snapshot()) snapshot->push_back(std::move(frame));
  // The sessions this node owns, first of all, so that the peer drops stale copies before it
  // counts this link as synced (and serves clients with them).
  {
    std::vector<Frame> claims(1);
    absl::MutexLock lock(&claims_mu_);
    for (const std::string& client_id : broker_->sessions().ClientIds()) {
      if (claims.back().session_claims().client_ids_size() >= static_cast<int>(kSnapshotChunk)) {
        claims.emplace_back();
      }
      SessionClaims* out = claims.back().mutable_session_claims();
      out->add_client_ids(client_id);
      auto it = claims_.find(client_id);
      out->add_hlcs(it == claims_.end() ? 0 : it->second);
    }
    snapshot->insert(snapshot->begin(), std::make_move_iterator(claims.begin()),
                     std::make_move_iterator(claims.end()));
  }
  // A leave under way: the peer must not place copies here (nor expect this node to keep them).
  if (leaving_.load() && !leave_announced_.load()) {
    Frame starting;
    starting.mutable_leaving()->set_starting(true);
    snapshot->push_back(std::move(starting));
  }
  // Then what it replicates there, afresh.
  replicator_.LinkUp(peer, snapshot);
  ResendEarlyOrphans(peer, snapshot);
  UpdatePeer(peer, 1, -1);
}

void ClusterNode::ResendEarlyOrphans(const std::string& peer, std::vector<Frame>* snapshot) {
  // They go in the snapshot, ahead of every forward queued on this link since it came up, so
  // each publisher's messages still reach the peer in order. Refusing them instead (after
  // kOrphanWaitMs) would disconnect their publishers each time a restarted peer's routes came
  // in before our link to it was up.
  std::vector<Failovers::Orphan> orphans = failovers_.TakeOrphans(peer);
  if (orphans.empty()) return;
  CLUSTER_DEBUG("resending ", orphans.size(), " orphans to ", peer, " on its new link, first ",
                orphans.front().message->payload.substr(0, 24));
  for (Failovers::Orphan& orphan : orphans) {
    Frame frame;
    *frame.mutable_forward() = orphan.plan;
    storage::StoredMessage* record = frame.mutable_forward()->mutable_message();
    *record = Persistence::ToRecord(*orphan.message);
    // It may have reached the peer before our last link to it dropped: a QoS 2 session that
    // had it drops this copy.
    record->set_resent(true);
    // Not confirmed (this link drops too): an orphan again, as at first.
    const uint64_t id = AwaitConfirm(peer, [this, peer, orphan](bool ok) mutable {
      if (ok) {
        orphan.answer(true);
        return;
      }
      failovers_.AddOrphan(peer, std::move(orphan), MonotonicMillis());
    });
    frame.mutable_forward()->set_confirm(id);
    snapshot->push_back(std::move(frame));
  }
}

void ClusterNode::OnOutboundDown(const std::string& peer) { UpdatePeer(peer, 0, -1); }

void ClusterNode::OnInboundUp(const std::string& peer) {}

void ClusterNode::OnInboundDown(const std::string& peer) {
  std::vector<std::string> filters = remote_.DropPeer(peer);
  {
    // What the peer subscribed to, for the failover should it be gone for good.
    absl::MutexLock lock(&peers_mu_);
    peers_[peer].filters = std::move(filters);
  }
  UpdatePeer(peer, -1, 0);
  // Confirmations come over this link: those not in yet will not come.
  FailConfirms(peer);
}

void ClusterNode::UpdatePeer(const std::string& peer, int outbound, int synced) {
  bool changed = false;
  bool up = false;
  bool outbound_up = false;
  std::vector<std::string> filters;
  {
    absl::MutexLock lock(&peers_mu_);
    PeerState& state = peers_[peer];
    filters = state.filters;
    if (outbound >= 0) state.outbound = outbound == 1;
    if (synced >= 0) state.synced = synced == 1;
    up = state.outbound && state.synced;
    outbound_up = state.outbound;
    if (up) state.filters.clear();
    if (up != state.logged_up) {
      state.logged_up = up;
      if (up) state.ever_up = true;
      if (!up) state.leaving = false;  // gone (or back later as a new start)
      changed = true;
      Log(LogLevel::kInfo, "meshmqd: cluster: peer %s %s", peer.c_str(), up ? "up" : "down");
    }
  }
  // Forwards it never acknowledged become orphans when our link to it drops: its failover
  // waits for that (the link from it may go first).
  if (outbound == 0) {
    // Forwards it took but never confirmed may have died with it: orphans, before the
    // failover can complete.
    FailConfirms(peer);
    failovers_.PeerGone(peer);
  }
  if (!changed) return;
  const int64_t now_ms = MonotonicMillis();
  if (up) {
    if (membership_) membership_->Add(peer);
    {
      // What was taken from it stays noted: its orphans may still be redelivered.
      absl::MutexLock lock(&loss_mu_);
      LossState& loss = losses_[peer];
      loss.down = false;
      loss.left = false;
      loss.reported = false;
    }
    failovers_.NodeBack(peer);
  } else {
    {
      absl::MutexLock lock(&loss_mu_);
      LossState& loss = losses_[peer];
      loss.down = true;
      loss.down_since_ms = now_ms;
      // A leaving node's reports and takeovers came before its links dropped: they stand.
      if (!loss.left) loss.reported = false;
    }
    std::vector<std::string> reporters = UpPeers();
    const bool quorum = membership_ != nullptr && membership_->HasQuorum(reporters);
    {
      absl::MutexLock lock(&loss_mu_);
      losses_[peer].trusted = quorum && !leaving_.load();
    }
    if (quorum && !leaving_.load()) {
      reporters.push_back(node_id_);
      if (outbound_up) reporters.push_back(peer);  // done once our link to it is down too
      // Its routes, whether its inbound link (which drops them) went first or not.
      for (std::string& filter : remote_.Filters(peer)) filters.push_back(std::move(filter));
      failovers_.Begin(peer, std::move(filters), reporters,
                       now_ms + 3 * absl::ToInt64Milliseconds(peer_timeout_));
    } else {
      // Nobody here takes its sessions over: what it never acknowledged is refused, so the
      // publishers send it again (to a node that can take it).
      std::vector<Failovers::Orphan> orphans = failovers_.TakeOrphans(peer);
      if (!orphans.empty()) {
        CLUSTER_DEBUG("refusing ", orphans.size(), " orphans of ", peer, ": no takeover here");
      }
      for (Failovers::Orphan& orphan : orphans) orphan.answer(false);
    }
  }
  replicator_.MembersChanged();
  absl::MutexLock lock(&maintenance_mu_);
  wake_ = true;
}

std::vector<std::string> ClusterNode::ReplicaCandidates() {
  absl::MutexLock lock(&peers_mu_);
  std::vector<std::string> candidates;
  for (const auto& [peer, state] : peers_) {
    if (state.logged_up && !state.leaving) candidates.push_back(peer);
  }
  return candidates;
}

void ClusterNode::OnLeaveStarting(const std::string& peer) {
  {
    absl::MutexLock lock(&peers_mu_);
    auto it = peers_.find(peer);
    if (it == peers_.end() || it->second.leaving) return;
    it->second.leaving = true;
  }
  Log(LogLevel::kInfo, "meshmqd: cluster: peer %s is about to leave", peer.c_str());
  replicator_.MembersChanged();
}

bool ClusterNode::LowerPeerLeaving() {
  absl::MutexLock lock(&peers_mu_);
  for (const auto& [peer, state] : peers_) {
    if (state.logged_up && state.leaving && peer < node_id_) return true;
  }
  return false;
}

std::vector<std::string> ClusterNode::UpPeers() {
  absl::MutexLock lock(&peers_mu_);
  std::vector<std::string> up;
  for (const auto& [peer, state] : peers_) {
    if (state.logged_up) up.push_back(peer);
  }
  return up;
}

bool ClusterNode::IsUp(const std::string& peer) {
  absl::MutexLock lock(&peers_mu_);
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.logged_up;
}

void ClusterNode::OnFrame(const std::string& peer, Frame& frame, std::function<void()> done) {
  switch (frame.body_case()) {
    case Frame::kRouteSnapshot:
      remote_.Replace(peer, frame.route_snapshot());
      UpdatePeer(peer, -1, 1);
      break;
    case Frame::kRoute:
      remote_.Apply(peer, frame.route());
      break;
    case Frame::kForward: {
      const cluster::Forward& forward = frame.forward();
      MessagePtr message = Persistence::FromRecord(forward.message());
      if (message == nullptr) break;
      if (!forward.taken_from().empty()) {
        broker_->counters().cluster_orphans_redelivered.Increment();
        DeliverToTaken(forward.taken_from(), message);
        ConfirmWhenDurable(peer, forward.confirm());
        break;
      }
      std::vector<std::pair<std::string, std::string>> shared;
      for (const SharedTarget& target : forward.shared()) {
        shared.emplace_back(target.group(), target.filter());
      }
      broker_->counters().cluster_received.Increment();
      broker_->DeliverForwarded(message, forward.ordinary(), shared);
      // Confirmed once the persistent sessions that got it have it on disk (and replicas).
      ConfirmWhenDurable(peer, forward.confirm());
      break;
    }
    case Frame::kForwardConfirm:
      for (uint64_t id : frame.forward_confirm().ids()) Confirmed(peer, id, true);
      break;
    case Frame::kRetained:
      ApplyRetained(frame.retained());
      break;
    case Frame::kRetainedSnapshot:
      for (const RetainedChange& change : frame.retained_snapshot().changes()) {
        ApplyRetained(change);
      }
      break;
    case Frame::kDeliver:
      OnDeliver(frame.deliver());
      break;
    case Frame::kMoveFence:
      OnMoveFence(peer, std::move(*frame.mutable_move_fence()));
      break;
    case Frame::kMoveFenceDone:
      OnMoveFenceDone(frame.move_fence_done());
      break;
    case Frame::kReplicaOps:
      if (replicas_ != nullptr) {
        replicas_->Apply(peer, frame.replica_ops(), std::move(done));
        return;
      }
      break;
    case Frame::kReplicaDrop:
      if (replicas_ != nullptr) {
        replicas_->Drop(peer, frame.replica_drop().client_id(), std::move(done));
        return;
      }
      break;
    case Frame::kReplicaPurge:
      if (replicas_ != nullptr) {
        replicas_->Purge(peer, std::move(done));
        return;
      }
      break;
    case Frame::kSessionClaims:
      OnSessionClaims(peer, frame.session_claims());
      break;
    case Frame::kFailoverDone:
      failovers_.Report(frame.failover_done().node(), peer);
      break;
    case Frame::kLeaving:
      if (frame.leaving().starting()) {
        OnLeaveStarting(peer);
      } else {
        OnLeaving(peer);
      }
      break;
    case Frame::kWillCopy:
      OnWillCopy(peer, frame.will_copy());
      break;
    default:  // Barrier, and kinds a newer node may send
      break;
  }
  done();
}

// --- Session moves ------------------------------------------------------------------------------

bool ClusterNode::TakeSession(const std::string& client_id, bool clean_start,
                              std::function<void(std::optional<storage::LoadedSession>)> done) {
  Claim(client_id);
  ForgetWillCopy(client_id);
  if (transport_.UpPeers().empty()) {
    // Alone: a copy kept here of a session whose owner is gone is the client's session.
    std::optional<storage::LoadedSession> copy = TakeReplicaCopy(client_id, std::string());
    if (!copy || clean_start) return false;
    NoteTaken(&*copy);
    done(std::move(copy));
    return true;
  }
  auto request = std::make_shared<SessionRequest>();
  request->client_id = client_id;
  request->clean_start = clean_start;
  // Long enough for a peer to be seen down (peer timeout), its failover to end (at most three
  // more) and one more round of asking.
  request->give_up_ms = MonotonicMillis() + 6 * absl::ToInt64Milliseconds(peer_timeout_);
  request->done = std::move(done);
  AskForSession(std::move(request));
  return true;
}

void ClusterNode::AskForSession(std::shared_ptr<SessionRequest> request) {
  // While a failover is under way, the session may be on a replica that has not taken it over
  // yet (its holder still sees the dead owner up, and so does not answer for it): asked now,
  // nobody would give it, and a new one made here would be dropped by the takeover's claim.
  if (MonotonicMillis() < request->give_up_ms &&
      failovers_.HoldAny([this, request] { AskForSession(request); })) {
    CLUSTER_DEBUG("CONNECT of ", request->client_id, " waits for a failover");
    return;
  }
  const std::string& client_id = request->client_id;
  Claim(client_id);  // later than any takeover's claim that the wait let finish
  if (!request->clean_start) {
    const int64_t now_ms = MonotonicMillis();
    absl::MutexLock lock(&moves_mu_);
    absl::erase_if(moves_in_,
                   [now_ms](const auto& entry) { return entry.second.until_ms < now_ms; });
    IncomingMove& move = moves_in_[client_id];
    move = IncomingMove{};
    move.until_ms = now_ms + 2 * move_grace_ms_;
  }
  TakeSessionRequest ask;
  ask.set_client_id(client_id);
  ask.set_clean_start(request->clean_start);
  ask.set_node_id(node_id_);
  transport_.TakeSessionFromPeers(
      ask, [this, request](std::vector<TakeSessionReply> replies) {
        OnSessionReplies(request, std::move(replies));
      });
}

void ClusterNode::OnSessionReplies(const std::shared_ptr<SessionRequest>& request,
                                   std::vector<TakeSessionReply> replies) {
  const std::string& client_id = request->client_id;
  const bool unanswered = std::any_of(replies.begin(), replies.end(),
                                      [](const TakeSessionReply& r) { return r.unanswered(); });
  const bool had_session = std::any_of(replies.begin(), replies.end(),
                                       [](const TakeSessionReply& r) { return r.had_session(); });
  CLUSTER_DEBUG("CONNECT of ", client_id, ": ", replies.size(), " replies, had_session ",
                had_session, ", unanswered ", unanswered);
  if (unanswered && !had_session && MonotonicMillis() < request->give_up_ms) {
    // A peer that did not answer may hold the session: ask again once it answers, or is seen
    // down and its failover (which holds the next ask) took the session over.
    RunLater(MonotonicMillis() + absl::ToInt64Milliseconds(heartbeat_interval_),
             [this, request] { AskForSession(request); });
    return;
  }
  // A client id lives on one node at a time, so at most one reply has a session; should two
  // (after a partition), the one whose client left last is the one it knows. A replica's copy
  // counts only if no owner answered.
  std::optional<storage::LoadedSession> moved;
  bool from_owner = false;
  std::string from_node;
  for (TakeSessionReply& reply : replies) {
    if (!reply.had_session()) continue;
    if (moved && (from_owner && reply.from_replica())) continue;
    if (moved && from_owner == !reply.from_replica() &&
        moved->record.disconnected_at_unix_ms() >= reply.session().disconnected_at_unix_ms()) {
      continue;
    }
    from_owner = !reply.from_replica();
    from_node = reply.node_id();
    moved.emplace();
    moved->client_id = client_id;
    moved->record = std::move(*reply.mutable_session());
    if (!reply.from_replica()) moved->record.clear_replica_owner();
    for (StoredQueuedMessage& m : *reply.mutable_messages()) {
      storage::LoadedSession::Message& message = moved->messages.emplace_back();
      message.seq = moved->messages.size();
      message.queued = std::move(*m.mutable_record());
      if (m.inflight()) message.inflight = std::move(*m.mutable_inflight_state());
    }
    for (uint32_t packet_id : reply.inbound_qos2()) {
      moved->inbound_qos2.push_back(static_cast<uint16_t>(packet_id));
    }
    moved->recent_ids.assign(reply.recent_ids().begin(), reply.recent_ids().end());
    moved->recent_qos2_keys.assign(reply.recent_qos2_keys().begin(),
                                   reply.recent_qos2_keys().end());
  }
  if (!moved) {
    // Nothing moves here: nothing to wait for. What waited for a move goes to the session here,
    // if there is one; dropped with the entry, acknowledged messages were lost. This node may
    // also keep a copy.
    std::vector<QueuedMessage> early;
    std::vector<MessagePtr> redelivered;
    {
      absl::MutexLock lock(&moves_mu_);
      auto it = moves_in_.find(client_id);
      if (it != moves_in_.end()) {
        early = std::move(it->second.early);
        redelivered = std::move(it->second.early_redelivered);
        moves_in_.erase(it);
      }
    }
    for (QueuedMessage& queued : early) broker_->DeliverToSession(client_id, std::move(queued));
    for (const MessagePtr& message : redelivered) broker_->DeliverToSessions(message, {client_id});
    moved = TakeReplicaCopy(client_id, std::string());
  } else {
    if (from_owner) {
      // Its old owner stands in for it for a while: SessionImported fences that detour.
      absl::MutexLock lock(&moves_mu_);
      auto it = moves_in_.find(client_id);
      if (it != moves_in_.end()) it->second.from_node = from_node;
    }
    if (std::optional<ReplicaStore::Copy> copy = replicas_->Find(client_id)) {
      // The session came from elsewhere: a copy here is stale.
      replicas_->Drop(copy->owner, client_id, [] {});
    }
  }
  CLUSTER_DEBUG("CONNECT of ", client_id, ": ",
                moved ? absl::StrCat("session from ", from_owner ? "its owner" : "a replica copy",
                                     " (", moved->messages.size(), " messages)")
                      : std::string("no session elsewhere"));
  if (moved) NoteTaken(&*moved);
  request->done(std::move(moved));
}

void ClusterNode::RunLater(int64_t at_ms, std::function<void()> task) {
  {
    absl::MutexLock lock(&later_mu_);
    later_.emplace(at_ms, std::move(task));
  }
  absl::MutexLock lock(&maintenance_mu_);
  wake_ = true;
}

void ClusterNode::RunDueTasks(int64_t now_ms) {
  std::vector<std::function<void()>> due;
  {
    absl::MutexLock lock(&later_mu_);
    auto end = later_.upper_bound(now_ms);
    for (auto it = later_.begin(); it != end; ++it) due.push_back(std::move(it->second));
    later_.erase(later_.begin(), end);
  }
  for (auto& task : due) task();
}

void ClusterNode::OnTakeSession(const TakeSessionRequest& request, TakeSessionReply* reply,
                                std::function<void()> done) {
  if (leave_announced_.load()) {
    // Its sessions are its replicas' now (Leaving): answering with them would make two.
    done();
    return;
  }
  broker_->HandOverSession(
      request.client_id(), request.clean_start(), request.node_id(),
      [this, request, reply, done = std::move(done)](
          std::optional<storage::LoadedSession> exported) {
        {
          absl::MutexLock lock(&claims_mu_);
          claims_.erase(request.client_id());
        }
        ForgetWillCopy(request.client_id());
        if (!exported && replicas_ != nullptr) {
          // No session here, but maybe a copy whose owner is gone: the client resumes it there.
          exported = TakeReplicaCopy(request.client_id(), request.node_id());
          if (exported && request.clean_start()) exported.reset();
          if (exported) reply->set_from_replica(true);
        }
        reply->set_node_id(node_id_);
        if (exported) {
          reply->set_had_session(true);
          *reply->mutable_session() = std::move(exported->record);
          for (storage::LoadedSession::Message& m : exported->messages) {
            StoredQueuedMessage* out = reply->add_messages();
            *out->mutable_record() = std::move(m.queued);
            if (m.inflight) {
              out->set_inflight(true);
              *out->mutable_inflight_state() = std::move(*m.inflight);
            }
          }
          for (uint16_t packet_id : exported->inbound_qos2) reply->add_inbound_qos2(packet_id);
          for (uint64_t id : exported->recent_ids) reply->add_recent_ids(id);
          for (uint64_t key : exported->recent_qos2_keys) reply->add_recent_qos2_keys(key);
        }
        done();
      });
}

void ClusterNode::DeliverTo(const std::string& node, const std::string& client_id,
                            const QueuedMessage& queued) {
  Frame frame;
  Deliver* deliver = frame.mutable_deliver();
  deliver->set_client_id(client_id);
  *deliver->mutable_queued() = Persistence::ToRecord(queued);
  // Not droppable: the message was acknowledged to its publisher when it reached this node.
  const bool sent = transport_.Send(node, std::move(frame), nullptr, /*droppable=*/false) ==
                    Transport::SendResult::kQueued;
  if (!sent) broker_->counters().cluster_forward_dropped.Increment();
  CLUSTER_DEBUG("stand-in of ", client_id, " passes ", queued.message->payload.substr(0, 24),
                " on to ", node, sent ? "" : ": no link, dropped");
}

void ClusterNode::OnDeliver(const Deliver& deliver) {
  QueuedMessage queued = Persistence::FromRecord(deliver.queued());
  if (queued.message == nullptr) return;
  absl::MutexLock lock(&moves_mu_);
  auto it = moves_in_.find(deliver.client_id());
  if (it != moves_in_.end() && !it->second.imported) {
    // The session is still on its way (the hand-over reply and this frame took different
    // paths): it gets this once it is in place.
    CLUSTER_DEBUG("Deliver of ", queued.message->payload.substr(0, 24), " for ",
                  deliver.client_id(), " waits for its import");
    if (it->second.early.size() < kMaxEarlyDeliveries) {
      it->second.early.push_back(std::move(queued));
    } else {
      broker_->counters().cluster_forward_dropped.Increment();
    }
    return;
  }
  const std::string payload =
      ClusterDebugEnabled() ? queued.message->payload.substr(0, 24) : std::string();
  const uint64_t duplicates = broker_->counters().cluster_move_duplicates.value();
  const bool delivered = broker_->DeliverToSession(deliver.client_id(), std::move(queued));
  if (!delivered) broker_->counters().cluster_forward_dropped.Increment();
  CLUSTER_DEBUG("Deliver of ", payload, " for ", deliver.client_id(),
                !delivered ? ": no such session, dropped"
                : broker_->counters().cluster_move_duplicates.value() != duplicates
                    ? " (a second copy, probably)"
                    : " queued");
}

void ClusterNode::SessionImported(const std::string& client_id) {
  const std::vector<std::string> peers = transport_.UpPeers();
  // Under the lock, so a Deliver frame arriving meanwhile queues behind these.
  absl::MutexLock lock(&moves_mu_);
  auto it = moves_in_.find(client_id);
  if (it == moves_in_.end()) {
    broker_->ReleaseMoveHold(client_id);  // taken over, or kept by a stopping node: no detour
    return;
  }
  it->second.imported = true;
  CLUSTER_DEBUG(client_id, " imported: ", it->second.early.size(), " early Delivers, ",
                it->second.early_redelivered.size(), " early orphans");
  // Duplicates of what the session brought along are dropped by its move dedup.
  for (QueuedMessage& queued : it->second.early) {
    broker_->DeliverToSession(client_id, std::move(queued));
  }
  it->second.early.clear();
  for (const MessagePtr& message : it->second.early_redelivered) {
    broker_->DeliverToSessions(message, {client_id});
  }
  it->second.early_redelivered.clear();
  if (!StartMoveFences(client_id, &it->second, peers)) broker_->ReleaseMoveHold(client_id);
}

bool ClusterNode::StartMoveFences(const std::string& client_id, IncomingMove* move,
                                  const std::vector<std::string>& peers) {
  // A message one node sent to the old owner before it knew of the move comes here through the
  // old owner's stand-in, and can be overtaken by one the same node sends here directly after
  // it. So what comes directly waits (the session's move hold) until every node's fence, sent
  // to the old owner behind its forwards there, has come back behind their Deliver frames.
  // Our own fence goes straight to the old owner; the others' go through their nodes, after
  // the routes this import announced (so those nodes already send here directly too). The old
  // owner's own messages need none: they come on one link with its stand-in's.
  if (move->from_node.empty() || move->from_node == node_id_) return false;
  FenceForwards();
  move->move_id = ++last_move_id_;
  move->fences.clear();
  Frame frame;
  MoveFence* fence = frame.mutable_move_fence();
  fence->set_client_id(client_id);
  fence->set_old_owner(move->from_node);
  fence->set_new_owner(node_id_);
  fence->set_move_id(move->move_id);
  fence->set_origin(node_id_);
  if (transport_.Send(move->from_node, frame, nullptr, /*droppable=*/false) !=
      Transport::SendResult::kQueued) {
    return false;  // no link to the old owner: nothing comes from it either
  }
  move->fences.insert(node_id_);
  fence->clear_origin();
  for (const std::string& peer : peers) {
    if (peer == move->from_node || peer == node_id_) continue;
    if (transport_.Send(peer, frame, nullptr, /*droppable=*/false) ==
        Transport::SendResult::kQueued) {
      move->fences.insert(peer);
    }
  }
  CLUSTER_DEBUG("holding ", client_id, " for ", move->fences.size(), " fences through ",
                move->from_node);
  // The stand-in forwards for move_grace_ms at most: past that, nothing can come that way.
  // Ends any hold of the session's still on then (a later CONNECT may have replaced the move).
  RunLater(MonotonicMillis() + move_grace_ms_, [this, client_id, move_id = move->move_id] {
    {
      absl::MutexLock lock(&moves_mu_);
      auto it = moves_in_.find(client_id);
      if (it != moves_in_.end() && it->second.move_id == move_id && !it->second.fences.empty()) {
        CLUSTER_DEBUG("releasing ", client_id, " with ", it->second.fences.size(),
                      " fences unanswered");
        it->second.fences.clear();
      }
    }
    broker_->ReleaseMoveHold(client_id);
  });
  return true;
}

void ClusterNode::OnMoveFence(const std::string& peer, MoveFence fence) {
  if (fence.old_owner() == node_id_) {
    // Every forward before it on the link it came on is handled, so the stand-in's Deliver
    // frames for them are queued on our link to the new owner: this goes behind them.
    Frame frame;
    MoveFenceDone* done = frame.mutable_move_fence_done();
    done->set_client_id(fence.client_id());
    done->set_origin(fence.origin().empty() ? peer : fence.origin());
    done->set_move_id(fence.move_id());
    transport_.Send(fence.new_owner(), std::move(frame), nullptr, /*droppable=*/false);
    return;
  }
  // From the new owner: on to the old one, behind our forwards there, those being made now
  // too (they read the routes before the new owner's arrived, just before this).
  FenceForwards();
  fence.set_origin(node_id_);
  Frame relay;
  *relay.mutable_move_fence() = fence;
  if (transport_.Send(fence.old_owner(), std::move(relay), nullptr, /*droppable=*/false) ==
      Transport::SendResult::kQueued) {
    return;
  }
  // No link to the old owner: nothing of ours is on the way there.
  Frame frame;
  MoveFenceDone* done = frame.mutable_move_fence_done();
  done->set_client_id(fence.client_id());
  done->set_origin(node_id_);
  done->set_move_id(fence.move_id());
  transport_.Send(fence.new_owner(), std::move(frame), nullptr, /*droppable=*/false);
}

void ClusterNode::FenceForwards() {
  // Every Forward in progress holds the reader side from reading the routes to queuing its
  // frames: once this gets the writer side, those that read the routes before are queued.
  absl::MutexLock wait_for_forwards(&forwarding_mu_);
}

void ClusterNode::OnMoveFenceDone(const MoveFenceDone& done) {
  absl::MutexLock lock(&moves_mu_);
  auto it = moves_in_.find(done.client_id());
  if (it == moves_in_.end() || it->second.move_id != done.move_id() ||
      it->second.fences.empty()) {
    return;
  }
  it->second.fences.erase(done.origin());
  if (it->second.fences.empty()) {
    CLUSTER_DEBUG("fences of ", done.client_id(), " through, releasing its hold");
    broker_->ReleaseMoveHold(done.client_id());
  }
}

// --- Node loss ----------------------------------------------------------------------------------

void ClusterNode::Claim(const std::string& client_id) {
  const uint64_t hlc = broker_->clock().Now();
  {
    absl::MutexLock lock(&claims_mu_);
    claims_[client_id] = hlc;
  }
  // A session here already (a takeover adopted into it, or a CONNECT asking for its own): its
  // record keeps the claim. One made after this gets it as it is attached or imported.
  if (std::shared_ptr<Session> session = broker_->sessions().Find(client_id)) {
    session->set_claim(hlc);
  }
}

uint64_t ClusterNode::ClaimOf(const std::string& client_id) {
  absl::MutexLock lock(&claims_mu_);
  auto it = claims_.find(client_id);
  return it == claims_.end() ? 0 : it->second;
}

std::optional<storage::LoadedSession> ClusterNode::TakeReplicaCopy(
    const std::string& client_id, const std::string& except_owner) {
  if (replicas_ == nullptr) return std::nullopt;
  std::optional<ReplicaStore::Copy> copy = replicas_->Find(client_id);
  // An owner that is up answers for its session itself (and its hand-over drops this copy).
  if (!copy || copy->owner == except_owner || IsUp(copy->owner)) return std::nullopt;
  std::optional<storage::LoadedSession> session = replicas_->Take(client_id);
  if (session) broker_->counters().cluster_sessions_taken_over.Increment();
  return session;
}

void ClusterNode::SendToUpPeers(const Frame& frame) {
  for (const std::string& peer : transport_.UpPeers()) {
    transport_.Send(peer, frame, nullptr, /*droppable=*/false);
  }
}

void ClusterNode::OnSessionClaims(const std::string& peer, const SessionClaims& claims) {
  for (int i = 0; i < claims.client_ids_size() && i < claims.hlcs_size(); ++i) {
    const std::string& client_id = claims.client_ids(i);
    uint64_t mine = 0;
    {
      absl::MutexLock lock(&claims_mu_);
      auto it = claims_.find(client_id);
      if (it != claims_.end()) mine = it->second;
    }
    // The later claim wins (ties: the higher node id), everywhere the same way.
    const uint64_t theirs = claims.hlcs(i);
    if (std::tie(mine, node_id_) > std::tie(theirs, peer)) continue;
    if (broker_->DropStaleSession(client_id)) {
      CLUSTER_DEBUG("dropped stale session ", client_id, ": ", peer, " claimed it later");
      broker_->counters().cluster_stale_sessions_dropped.Increment();
      absl::MutexLock lock(&claims_mu_);
      claims_.erase(client_id);
    }
    // A copy from an owner whose claim is older is stale too. (Not one whose owner claimed
    // later: the sender's session is the stale one then, and this copy is the live session's.)
    if (replicas_ != nullptr) {
      if (std::optional<ReplicaStore::Copy> copy = replicas_->Find(client_id);
          copy && copy->owner != peer &&
          std::tie(copy->claim, copy->owner) < std::tie(theirs, peer)) {
        CLUSTER_DEBUG("dropped copy of ", client_id, " from ", copy->owner, ": ", peer,
                      " claimed it later");
        replicas_->Drop(copy->owner, client_id, [] {});
      }
    }
  }
}

void ClusterNode::OnLeaving(const std::string& peer) {
  // Publishes to its subscribers wait until it is gone and its sessions are taken over here
  // and elsewhere: what it did not take goes to those sessions first.
  std::vector<std::string> reporters = UpPeers();
  reporters.push_back(node_id_);
  failovers_.Begin(peer, remote_.Filters(peer), reporters,
                   MonotonicMillis() + 3 * absl::ToInt64Milliseconds(peer_timeout_));
  {
    absl::MutexLock lock(&loss_mu_);
    LossState& loss = losses_[peer];
    loss.left = true;
    loss.reported = false;
    loss.taken.clear();  // a new loss: what was taken before was redelivered long ago
  }
  if (membership_) membership_->Remove(peer);
  Log(LogLevel::kInfo, "meshmqd: cluster: peer %s is leaving", peer.c_str());
  TakeOverOrphanedSessions();
}

// --- Wills --------------------------------------------------------------------------------------

void ClusterNode::WillChanged(const std::string& client_id, const MessagePtr& will,
                              uint32_t delay_seconds, std::function<void()> copied) {
  Frame frame;
  WillCopy* copy = frame.mutable_will_copy();
  copy->set_client_id(client_id);
  std::vector<std::string> targets;
  {
    absl::MutexLock lock(&wills_mu_);
    if (will != nullptr) {
      targets = replicator_.Choose(client_id);
      *copy->mutable_message() = Persistence::ToRecord(*will);
      copy->set_delay_seconds(delay_seconds);
      for (const std::string& target : targets) copy->add_replicas(target);
      will_targets_[client_id] = targets;
    } else {
      auto it = will_targets_.find(client_id);
      if (it == will_targets_.end()) return;
      targets = std::move(it->second);
      will_targets_.erase(it);
    }
    // Under the lock: a clear never overtakes the copy it clears. A target whose link drops
    // before it answers counts as done: gone, it keeps nothing (a new one gets no copy).
    std::shared_ptr<Tally> tally;
    if (copied) {
      tally = std::make_shared<Tally>(targets.size() + 1,
                                      [copied = std::move(copied)](bool) { copied(); });
    }
    for (const std::string& target : targets) {
      std::function<void(bool)> answer;
      if (tally) answer = [tally](bool) { tally->Add(true); };
      if (transport_.Send(target, frame, answer, /*droppable=*/false) !=
              Transport::SendResult::kQueued &&
          tally) {
        tally->Add(true);
      }
    }
    if (tally) tally->Add(true);  // the creator's share, once every send is made
  }
}

void ClusterNode::OnWillCopy(const std::string& peer, const WillCopy& copy) {
  absl::MutexLock lock(&wills_mu_);
  if (copy.has_message()) {
    will_copies_[copy.client_id()] = HeldWill{peer, copy};
    return;
  }
  auto it = will_copies_.find(copy.client_id());
  if (it != will_copies_.end() && it->second.owner == peer) will_copies_.erase(it);
}

void ClusterNode::ForgetWillCopy(const std::string& client_id) {
  {
    absl::MutexLock lock(&wills_mu_);
    will_copies_.erase(client_id);
  }
  // A will of a dead node's client waiting out its delay here: the client is back.
  broker_->CancelWill(client_id);
}

void ClusterNode::PublishOrphanedWills(const std::function<bool(const std::string&)>& is_gone) {
  std::vector<HeldWill> due;
  {
    absl::MutexLock lock(&wills_mu_);
    absl::erase_if(will_copies_, [&](const auto& entry) {
      const HeldWill& held = entry.second;
      if (!is_gone(held.owner)) return false;
      // The first holder still here publishes it; the others forget it.
      for (const std::string& replica : held.copy.replicas()) {
        if (replica == held.owner) continue;
        if (replica == node_id_) break;
        if (IsUp(replica) && !is_gone(replica)) return true;
      }
      due.push_back(held);
      return true;
    });
  }
  const int64_t now_ms = MonotonicMillis();
  for (HeldWill& held : due) {
    MessagePtr will = Persistence::FromRecord(held.copy.message());
    if (will == nullptr) continue;
    broker_->counters().cluster_wills_published.Increment();
    if (held.copy.delay_seconds() == 0) {
      broker_->PublishWill(will);
    } else {
      broker_->ScheduleWill(held.copy.client_id(), std::move(will),
                            now_ms + int64_t{1000} * held.copy.delay_seconds());
    }
  }
}

void ClusterNode::NoteTaken(storage::LoadedSession* session) {
  const std::string owner = session->record.replica_owner();
  session->record.clear_replica_owner();
  session->record.clear_replica_set();
  session->record.clear_replica_claim();
  if (owner.empty()) return;
  if (IsUp(owner)) {
    // Adopted before this node saw its owner go: publishes for it wait as for a failover, so
    // what is still on its way to the owner reaches the session first.
    std::vector<std::string> reporters = UpPeers();
    reporters.push_back(node_id_);
    failovers_.Begin(owner, remote_.Filters(owner), reporters,
                     MonotonicMillis() + 3 * absl::ToInt64Milliseconds(peer_timeout_));
  }
  // Messages its owner took but never acknowledged are redelivered to it here (Redeliver).
  absl::MutexLock lock(&loss_mu_);
  losses_[owner].taken.push_back(session->client_id);
}

bool ClusterNode::TakeOver(const std::string& client_id, const std::string& owner) {
  std::optional<storage::LoadedSession> session = replicas_->Take(client_id);
  if (!session) return false;
  if (ClusterDebugEnabled()) {
    std::string payloads;
    for (const auto& m : session->messages) {
      absl::StrAppend(&payloads, " ", m.queued.message().payload().substr(0, 24),
                      !m.inflight                    ? ""
                      : m.inflight->awaiting_pubcomp() ? "(awaiting PUBCOMP)"
                                                       : "(in flight)");
    }
    CLUSTER_DEBUG("taking over ", client_id, " of ", owner, " (", session->messages.size(),
                  " messages:", payloads, ")");
  }
  Claim(client_id);
  if (session->record.replica_owner().empty()) session->record.set_replica_owner(owner);
  NoteTaken(&*session);
  broker_->ImportSession(*session);
  broker_->counters().cluster_sessions_taken_over.Increment();
  Frame frame;
  SessionClaims* claims = frame.mutable_session_claims();
  claims->add_client_ids(client_id);
  {
    absl::MutexLock lock(&claims_mu_);
    claims->add_hlcs(claims_[client_id]);
  }
  SendToUpPeers(frame);
  return true;
}

void ClusterNode::TakeOverOrphanedSessions() {
  if (replicas_ == nullptr) return;
  // A node leaving takes over too until it announces its own leave (a peer that left before it
  // may have had copies here, placed before it heard of this leave); its leave then hands them on.
  const bool leaving_in_quorum = leaving_.load() && !leave_announced_.load() &&
                                 membership_ != nullptr && membership_->HasQuorum(UpPeers());
  if (!serving_.load() && !leaving_in_quorum) return;
  const int64_t now_ms = MonotonicMillis();
  const int64_t timeout_ms = absl::ToInt64Milliseconds(peer_timeout_);
  // Which owners are gone: left, or down (or never seen since this node started) for the timeout.
  absl::flat_hash_map<std::string, bool> gone;
  auto is_gone = [&](const std::string& node) {
    auto it = gone.find(node);
    if (it != gone.end()) return it->second;
    const bool up = IsUp(node);
    bool result = false;
    {
      absl::MutexLock lock(&loss_mu_);
      auto loss = losses_.find(node);
      if (loss != losses_.end() && loss->second.left) {
        result = true;
      } else if (!up && loss != losses_.end() && loss->second.down && loss->second.trusted) {
        result = now_ms - loss->second.down_since_ms >= timeout_ms;
      } else if (!up && loss == losses_.end()) {
        // Never seen since this node started (a restart of several nodes, this one among them,
        // without that one): gone if it stays away well past the time a live node needs to
        // link up.
        result = now_ms - started_ms_ >= kNeverSeenTimeouts * timeout_ms;
      }
      // Seen down only while this node was cut off: maybe alive and serving on the other side;
      // the nodes that saw it go take its sessions over.
    }
    gone[node] = result;
    return result;
  };
  absl::flat_hash_map<std::string, int> taken;
  for (const auto& [client_id, copy] : replicas_->All()) {
    if (!is_gone(copy.owner)) continue;
    // The first replica in the owner's order that is still here takes it.
    std::string successor;
    for (const std::string& replica : copy.replicas) {
      if (replica == copy.owner) continue;
      if (replica == node_id_ || (IsUp(replica) && !is_gone(replica))) {
        successor = replica;
        break;
      }
    }
    if (successor.empty()) successor = node_id_;  // no other replica is left
    if (successor != node_id_) continue;
    if (TakeOver(client_id, copy.owner)) ++taken[copy.owner];
  }
  PublishOrphanedWills(is_gone);
  for (const auto& [owner, count] : taken) {
    Log(LogLevel::kInfo, "meshmqd: cluster: took over %d sessions of %s", count, owner.c_str());
  }
  // Report, once per loss, that this node is done with each gone node: after the routes of
  // what it took, on the same links.
  std::vector<std::string> done;
  {
    absl::MutexLock lock(&loss_mu_);
    for (auto& [node, loss] : losses_) {
      if (loss.reported || !(loss.down || loss.left)) continue;
      if (!loss.left && now_ms - loss.down_since_ms < timeout_ms) continue;
      loss.reported = true;
      done.push_back(node);
    }
  }
  for (const std::string& node : done) {
    if (!is_gone(node)) continue;
    Frame frame;
    frame.mutable_failover_done()->set_node(node);
    SendToUpPeers(frame);
    failovers_.Report(node, node_id_);
  }
}

std::function<void()> ClusterNode::Redeliver(const std::string& node,
                                             Failovers::Orphan orphan) {
  broker_->counters().cluster_orphans_redelivered.Increment();
  storage::StoredMessage record = Persistence::ToRecord(*orphan.message);
  // The node it went to may have delivered it before the link dropped: a QoS 2 session that had
  // it drops this copy (Message::resent).
  record.set_resent(true);
  // To every session taken over from the node (wherever one was; copies they have are
  // dropped), and, if it came back, to the node as first planned: sessions it still has.
  Frame frame;
  *frame.mutable_forward()->mutable_message() = record;
  frame.mutable_forward()->set_taken_from(node);
  std::vector<std::pair<std::string, Frame>> sends;
  for (const std::string& peer : transport_.UpPeers()) {
    if (peer == node) {
      Frame back;
      *back.mutable_forward() = orphan.plan;
      *back.mutable_forward()->mutable_message() = record;
      sends.emplace_back(peer, std::move(back));
    } else {
      sends.emplace_back(peer, frame);
    }
  }
  auto tally = std::make_shared<Tally>(sends.size() + 1, std::move(orphan.answer));
  for (auto& [peer, send] : sends) {
    SendForward(peer, std::move(send), [tally](bool ok) { tally->Add(ok); },
                /*droppable=*/false);
  }
  DeliverToTaken(node, orphan.message);
  // The local part of the tally is added by the caller once every orphan is delivered: an ack
  // now would let the publisher send its next message, which could reach a session here
  // before the orphans still to come.
  return [tally] { tally->Add(true); };
}

void ClusterNode::DeliverToTaken(const std::string& node, const MessagePtr& message) {
  std::vector<std::string> taken;
  {
    absl::MutexLock lock(&loss_mu_);
    auto it = losses_.find(node);
    if (it != losses_.end()) taken = it->second.taken;
  }
  // Sessions taken over here are here: a CONNECT asking the peers for one of them (which makes
  // an incoming move) gets it delivered now, in order with what arrives directly. Only one
  // adopted from a copy elsewhere, not imported yet, waits.
  absl::flat_hash_set<std::string> here;
  for (const std::string& client_id : taken) {
    if (broker_->sessions().Find(client_id) != nullptr) here.insert(client_id);
  }
  {
    absl::MutexLock lock(&moves_mu_);
    taken.erase(std::remove_if(taken.begin(), taken.end(),
                               [&](const std::string& client_id) {
                                 if (here.contains(client_id)) return false;
                                 auto it = moves_in_.find(client_id);
                                 if (it == moves_in_.end() || it->second.imported) return false;
                                 it->second.early_redelivered.push_back(message);
                                 return true;
                               }),
                taken.end());
  }
  // A session that moved on from here meanwhile gets it through its stand-in.
  const size_t delivered = broker_->DeliverToSessions(message, taken);
  CLUSTER_DEBUG("orphan ", message->payload.substr(0, 24), " of ", node, ": to ", delivered, " of ",
                taken.size(), " sessions (", here.size(), " here)");
}

void ClusterNode::CompleteFailovers() {
  std::vector<std::function<void()>> resumes;
  std::vector<Failovers::Orphan> unclaimed;
  for (Failovers::Completed& completed :
       failovers_.Poll(MonotonicMillis(), &resumes, &unclaimed)) {
    if (ClusterDebugEnabled() && !completed.orphans.empty()) {
      CLUSTER_DEBUG("failover of ", completed.node, " complete: redelivering ",
                    completed.orphans.size(), " orphans, first ",
                    completed.orphans.front().message->payload.substr(0, 24), " last ",
                    completed.orphans.back().message->payload.substr(0, 24));
    }
    std::vector<std::function<void()>> delivered;
    for (Failovers::Orphan& orphan : completed.orphans) {
      delivered.push_back(Redeliver(completed.node, std::move(orphan)));
    }
    // Acknowledged only once all of them are delivered here (and durable, as any delivery).
    AfterDurable([delivered = std::move(delivered)] {
      for (const auto& add : delivered) add();
    });
  }
  // No failover took them (none began in time): refused, so their publishers send them again.
  if (ClusterDebugEnabled() && !unclaimed.empty()) {
    CLUSTER_DEBUG("refusing ", unclaimed.size(), " orphans no failover took, first ",
                  unclaimed.front().message->payload.substr(0, 24));
  }
  for (Failovers::Orphan& orphan : unclaimed) orphan.answer(false);
  // After the orphans: a publisher's held messages follow the ones it sent before.
  for (auto& resume : resumes) resume();
}

bool ClusterNode::HoldPublish(std::string_view topic, std::function<void()> resume) {
  if (!failovers_.active()) return false;
  if (!failovers_.Hold(topic, std::move(resume))) return false;
  broker_->counters().cluster_publishes_held.Increment();
  return true;
}

bool ClusterNode::HasQuorumNow() {
  // Not Serving(): that flag follows the maintenance thread, a little behind the links.
  // Before Start() the node knows no cluster: it is alone.
  if (membership_ == nullptr) return true;
  return membership_->HasQuorum(UpPeers()) && !leaving_.load();
}

void ClusterNode::CheckQuorum() {
  if (membership_ == nullptr) return;
  bool quorum = HasQuorumNow();
  if (!quorum) {
    quorum_since_ms_ = 0;
  } else if (!serving_.load()) {
    // About to serve (started, or back from the minority): the publishes it takes must find
    // every member's routes, so it waits until it is linked with every member, or for as long
    // as a live one would take to link (its dial backoff and a timeout, several times over).
    const int64_t now_ms = MonotonicMillis();
    if (quorum_since_ms_ == 0) quorum_since_ms_ = now_ms;
    std::vector<std::string> up = UpPeers();
    bool all_up = true;
    for (const std::string& member : membership_->members()) {
      if (member != node_id_ && std::find(up.begin(), up.end(), member) == up.end()) {
        all_up = false;
      }
    }
    const int64_t settle_ms = 3 * absl::ToInt64Milliseconds(peer_timeout_) + 2000;
    if (!all_up && now_ms - quorum_since_ms_ < settle_ms) quorum = false;
  }
  if (serving_.exchange(quorum) == quorum) return;
  if (quorum) {
    Log(LogLevel::kInfo, "meshmqd: cluster: serving (in touch with most of the cluster)");
    return;
  }
  {
    // Whatever was seen down until now may have been this node's own cut.
    absl::MutexLock lock(&loss_mu_);
    for (auto& [node, loss] : losses_) loss.trusted = false;
  }
  if (leaving_.load()) return;
  Log(LogLevel::kWarning,
      "meshmqd: cluster: not serving: cut off from most of the cluster (members: %zu)",
      membership_->members().size());
  // Its clients' sessions are taken over on the other side: they are to go there, without
  // wills (the other side publishes those).
  broker_->CloseAllClients("this node is cut off from most of the cluster",
                           codec::reason::kUseAnotherServer, false);
}

void ClusterNode::MaintenanceLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&maintenance_mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(maintenance_mu_) {
        return stopping_ || wake_;
      };
      maintenance_mu_.AwaitWithTimeout(absl::Condition(&woken), heartbeat_interval_);
      if (stopping_) return;
      wake_ = false;
    }
    CheckQuorum();
    TakeOverOrphanedSessions();
    CompleteFailovers();
    RunDueTasks(MonotonicMillis());
  }
}

void ClusterNode::Leave(absl::Duration timeout) {
  leaving_.store(true);
  serving_.store(false);
  Log(LogLevel::kInfo, "meshmqd: cluster: leaving");
  // First of all: peers stop placing copies here, and move those they have here to nodes that
  // stay.
  {
    Frame starting;
    starting.mutable_leaving()->set_starting(true);
    SendToUpPeers(starting);
  }
  broker_->CloseAllClients("this node is leaving the cluster", codec::reason::kServerShuttingDown,
                           false);
  // The closes update the sessions (offline since now), and every change reaches the replicas.
  const absl::Time deadline = absl::Now() + timeout;
  if (transport_.UpPeers().empty()) return;  // alone: nobody to hand anything to
  // Nodes told to leave together (a scale-down) hear of each other within a heartbeat; then they
  // leave one at a time, lowest node id first. A later one's copies of an earlier one's
  // sessions are taken over here before this node hands on what it has.
  absl::SleepFor(2 * heartbeat_interval_);
  while (absl::Now() < deadline && LowerPeerLeaving()) absl::SleepFor(absl::Milliseconds(20));
  if (ReplicaCandidates().empty()) {
    // Every peer is leaving too (the whole cluster stops): the sessions stay in this node's
    // store for its next start.
    Log(LogLevel::kInfo, "meshmqd: cluster: every peer is leaving too: sessions stay here");
    return;
  }
  int quiet = 0;
  while (absl::Now() < deadline && quiet < 3) {
    absl::SleepFor(absl::Milliseconds(20));
    Persistence* persistence = broker_->persistence();
    const bool idle = replicator_.Idle() &&
                      (persistence == nullptr ||
                       persistence->durable_ticket() >= persistence->store().last_ticket());
    quiet = idle ? quiet + 1 : 0;
  }
  // Then the replicas take over, and this node waits until all have.
  std::vector<std::string> peers = transport_.UpPeers();
  if (peers.empty()) return;
  leave_announced_.store(true);
  // Shared with the callbacks, which may outlive this call if a peer is slower than `timeout`.
  struct Answers {
    absl::Mutex mu;
    size_t count ABSL_GUARDED_BY(mu) = 0;
  };
  auto answers = std::make_shared<Answers>();
  for (const std::string& peer : peers) {
    Frame frame;
    frame.mutable_leaving();
    auto on_ack = [answers](bool) {
      absl::MutexLock lock(&answers->mu);
      ++answers->count;
    };
    if (transport_.Send(peer, std::move(frame), on_ack, /*droppable=*/false) !=
        Transport::SendResult::kQueued) {
      on_ack(false);
    }
  }
  absl::MutexLock lock(&answers->mu);
  auto all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(answers->mu) {
    return answers->count == peers.size();
  };
  answers->mu.AwaitWithDeadline(absl::Condition(&all), deadline + timeout);
  // The replicas own the sessions now; what still reaches this node for them (sent before its
  // senders heard of the leave) follows them there, until this node is gone.
  broker_->StandInForAll([this](const std::string& client_id) {
    std::vector<std::string> replicas = replicator_.Choose(client_id);
    return replicas.empty() ? std::string() : replicas.front();
  });
  Log(LogLevel::kInfo, "meshmqd: cluster: left (%zu of %zu peers answered)", answers->count,
      peers.size());
}

// --- Admin -------------------------------------------------------------------------------------

std::vector<ClusterNode::PeerView> ClusterNode::Peers() {
  std::vector<PeerView> peers;
  for (Transport::PeerInfo& info : transport_.Peers()) {
    const bool up = !info.node_id.empty() && IsUp(info.node_id);
    peers.push_back(PeerView{std::move(info.node_id), std::move(info.address), up});
  }
  return peers;
}

std::vector<std::string> ClusterNode::Members() const {
  if (membership_ == nullptr) return {node_id_};
  return membership_->members();
}

absl::Status ClusterNode::ForgetMember(const std::string& node, bool* was_member) {
  *was_member = false;
  if (node == node_id_) {
    return absl::FailedPreconditionError(absl::StrCat(node, " is the node asked: drain it"));
  }
  if (membership_ == nullptr) return absl::FailedPreconditionError("the cluster is not started");
  auto up_here = [&] {
    return absl::FailedPreconditionError(absl::StrCat("node ", node, " is up on ", node_id_));
  };
  if (IsUp(node)) return up_here();
  *was_member = membership_->Remove(node);
  // Gone for good, as after Leaving (a node never heard of gets no state).
  bool marked = false;
  {
    absl::MutexLock lock(&loss_mu_);
    auto it = losses_.find(node);
    if (*was_member || it != losses_.end()) {
      LossState& loss = it != losses_.end() ? it->second : losses_[node];
      marked = !loss.left;
      loss.left = true;
    }
  }
  if (IsUp(node)) {
    // It came back meanwhile: it stays a member (its link coming up added it, or will).
    if (*was_member) membership_->Add(node);
    if (marked) {
      absl::MutexLock lock(&loss_mu_);
      losses_[node].left = false;
    }
    *was_member = false;
    return up_here();
  }
  if (*was_member) {
    Log(LogLevel::kInfo, "meshmqd: cluster: forgot member %s (removed by an operator)",
        node.c_str());
  }
  replicator_.MembersChanged();
  absl::MutexLock lock(&maintenance_mu_);
  wake_ = true;
  return absl::OkStatus();
}

// --- Metrics (read-only) ---------------------------------------------------------------------

std::vector<ClusterNode::PeerMetric> ClusterNode::PeerMetrics() const {
  std::map<std::string, PeerMetric> by_node;
  if (membership_ != nullptr) {
    for (const std::string& member : membership_->members()) {
      if (member == node_id_) continue;
      by_node[member].member = true;
    }
  }
  {
    absl::MutexLock lock(&peers_mu_);
    for (const auto& [peer, state] : peers_) {
      PeerMetric& metric = by_node[peer];
      metric.outbound = state.outbound;
      metric.synced = state.synced;
      metric.up = state.logged_up;
    }
  }
  for (Transport::LinkStats& link : transport_.OutboundLinkStats()) {
    by_node[link.peer].link = std::move(link);
  }
  std::vector<PeerMetric> peers;
  peers.reserve(by_node.size());
  for (auto& [node, metric] : by_node) {
    metric.node_id = node;
    metric.link.peer = node;
    peers.push_back(std::move(metric));
  }
  return peers;
}

bool ClusterNode::Ready(std::string* why) const {
  if (leaving_.load()) {
    *why = "leaving the cluster";
    return false;
  }
  if (!serving_.load(std::memory_order_acquire)) {
    *why = "not serving: cut off from most of the cluster";
    return false;
  }
  // serving_ follows the maintenance thread: right after a start it may not have looked yet.
  if (membership_ != nullptr) {
    std::vector<std::string> up;
    {
      absl::MutexLock lock(&peers_mu_);
      for (const auto& [peer, state] : peers_) {
        if (state.logged_up) up.push_back(peer);
      }
    }
    if (!membership_->HasQuorum(up)) {
      *why = absl::StrCat("waiting for most of the cluster: in touch with ", up.size(),
                          " of the other ",
                          std::max<size_t>(membership_->members().size(), 1) - 1, " members");
      return false;
    }
  }
  // Just started: a node that takes clients before it is linked with a peer it knows of (a seed,
  // a DNS answer, a node gossiped about) acknowledges subscriptions that peer does not know yet,
  // and its publishes miss that peer's subscribers. So it is not ready until it is linked with
  // every one, or for as long as a live one would take to link, as when it starts to serve.
  const int64_t settle_ms = 3 * absl::ToInt64Milliseconds(peer_timeout_) + 2000;
  // (Peers that were linked and went down since are the quorum's business, above.)
  if (MonotonicMillis() - started_ms_ < settle_ms) {
    for (const Transport::PeerInfo& peer : transport_.Peers()) {
      if (peer.node_id == node_id_) continue;
      bool ever_up = false;
      if (!peer.node_id.empty()) {
        absl::MutexLock lock(&peers_mu_);
        auto it = peers_.find(peer.node_id);
        ever_up = it != peers_.end() && it->second.ever_up;
      }
      if (!ever_up) {
        *why = absl::StrCat("linking with ",
                            peer.node_id.empty() ? peer.address : peer.node_id);
        return false;
      }
    }
  }
  return true;
}

}  // namespace meshmq::cluster
