#include "cluster/cluster_node.h"

#include <atomic>
#include <cstdio>
#include <utility>

#include "node/broker.h"
#include "node/event_loop.h"
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

ClusterNode::ClusterNode(Broker* broker, TransportConfig config)
    : broker_(broker),
      node_id_(config.node_id),
      // A link that takes longer than the peer timeout to deliver is declared down anyway.
      move_grace_ms_(std::max<int64_t>(1000, absl::ToInt64Milliseconds(config.peer_timeout))),
      transport_(std::move(config), this) {}

ClusterNode::~ClusterNode() { Stop(); }

absl::Status ClusterNode::Start() { return transport_.Start(); }

void ClusterNode::Stop() { transport_.Stop(); }

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
  if (on_accepted) {
    // A peer whose link drops before it answers counts as having taken the message: it is no
    // longer a node with subscribers for it (issue 6 is about what its sessions lose).
    tally = std::make_shared<Tally>(plans.size(), std::move(on_accepted));
  }
  Counters& counters = broker_->counters();
  for (Plan& plan : plans) {
    Frame frame;
    *plan.forward.mutable_message() = record;
    *frame.mutable_forward() = std::move(plan.forward);
    std::function<void(bool)> on_ack;
    if (tally) on_ack = [tally](bool) { tally->Add(true); };
    switch (transport_.Send(plan.peer, std::move(frame), std::move(on_ack),
                            /*droppable=*/true)) {
      case Transport::SendResult::kQueued:
        counters.cluster_forwarded.Increment();
        break;
      case Transport::SendResult::kNotUp:  // went down since the routes were read
        if (tally) tally->Add(true);
        break;
      case Transport::SendResult::kFull:
        if (message->qos == 0) {
          counters.cluster_forward_dropped.Increment();
        } else {
          counters.cluster_forward_refused.Increment();
        }
        if (tally) tally->Add(false);
        break;
    }
  }
  return plans.size();
}

void ClusterNode::AfterDurable(std::function<void()> done) {
  Persistence* persistence = broker_->persistence();
  const uint64_t ticket = Persistence::ThreadTicket();
  if (persistence == nullptr || ticket <= persistence->store().durable_ticket()) {
    done();
    return;
  }
  {
    absl::MutexLock lock(&durable_mu_);
    durable_waiters_.emplace(ticket, std::move(done));
  }
  // The group may have been written between the check and the insert.
  OnDurable(persistence->store().durable_ticket());
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
  UpdatePeer(peer, 1, -1);
}

void ClusterNode::OnOutboundDown(const std::string& peer) { UpdatePeer(peer, 0, -1); }

void ClusterNode::OnInboundUp(const std::string& peer) {}

void ClusterNode::OnInboundDown(const std::string& peer) {
  remote_.DropPeer(peer);
  UpdatePeer(peer, -1, 0);
}

void ClusterNode::UpdatePeer(const std::string& peer, int outbound, int synced) {
  absl::MutexLock lock(&peers_mu_);
  PeerState& state = peers_[peer];
  if (outbound >= 0) state.outbound = outbound == 1;
  if (synced >= 0) state.synced = synced == 1;
  const bool up = state.outbound && state.synced;
  if (up != state.logged_up) {
    state.logged_up = up;
    std::fprintf(stderr, "meshmqd: cluster: peer %s %s\n", peer.c_str(), up ? "up" : "down");
  }
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
      std::vector<std::pair<std::string, std::string>> shared;
      for (const SharedTarget& target : forward.shared()) {
        shared.emplace_back(target.group(), target.filter());
      }
      broker_->counters().cluster_received.Increment();
      broker_->DeliverForwarded(message, forward.ordinary(), shared);
      // Taken once the persistent sessions that got it have it on disk.
      AfterDurable(std::move(done));
      return;
    }
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
    default:  // Barrier, and kinds a newer node may send
      break;
  }
  done();
}

// --- Session moves ------------------------------------------------------------------------------

bool ClusterNode::TakeSession(const std::string& client_id, bool clean_start,
                              std::function<void(std::optional<storage::LoadedSession>)> done) {
  if (transport_.UpPeers().empty()) return false;
  if (!clean_start) {
    const int64_t now_ms = MonotonicMillis();
    absl::MutexLock lock(&moves_mu_);
    absl::erase_if(moves_in_,
                   [now_ms](const auto& entry) { return entry.second.until_ms < now_ms; });
    moves_in_[client_id] = IncomingMove{{}, false, now_ms + 2 * move_grace_ms_};
  }
  TakeSessionRequest request;
  request.set_client_id(client_id);
  request.set_clean_start(clean_start);
  request.set_node_id(node_id_);
  transport_.TakeSessionFromPeers(
      request, [this, client_id, done = std::move(done)](std::vector<TakeSessionReply> replies) {
        // A client id lives on one node at a time, so at most one reply has a session; should
        // two (after a partition), the one whose client left last is the one it knows.
        std::optional<storage::LoadedSession> moved;
        for (TakeSessionReply& reply : replies) {
          if (!reply.had_session()) continue;
          if (moved && moved->record.disconnected_at_unix_ms() >=
                           reply.session().disconnected_at_unix_ms()) {
            continue;
          }
          moved.emplace();
          moved->client_id = client_id;
          moved->record = std::move(*reply.mutable_session());
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
        }
        if (!moved) {  // nothing moves here: nothing to wait for
          absl::MutexLock lock(&moves_mu_);
          moves_in_.erase(client_id);
        }
        done(std::move(moved));
      });
  return true;
}

void ClusterNode::OnTakeSession(const TakeSessionRequest& request, TakeSessionReply* reply,
                                std::function<void()> done) {
  broker_->HandOverSession(
      request.client_id(), request.clean_start(), request.node_id(),
      [reply, done = std::move(done)](std::optional<storage::LoadedSession> exported) {
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
  if (transport_.Send(node, std::move(frame), nullptr, /*droppable=*/false) !=
      Transport::SendResult::kQueued) {
    broker_->counters().cluster_forward_dropped.Increment();
  }
}

void ClusterNode::OnDeliver(const Deliver& deliver) {
  QueuedMessage queued = Persistence::FromRecord(deliver.queued());
  if (queued.message == nullptr) return;
  absl::MutexLock lock(&moves_mu_);
  auto it = moves_in_.find(deliver.client_id());
  if (it != moves_in_.end() && !it->second.imported) {
    // The session is still on its way (the hand-over reply and this frame took different
    // paths): it gets this once it is in place.
    if (it->second.early.size() < kMaxEarlyDeliveries) {
      it->second.early.push_back(std::move(queued));
    } else {
      broker_->counters().cluster_forward_dropped.Increment();
    }
    return;
  }
  if (!broker_->DeliverToSession(deliver.client_id(), std::move(queued))) {
    broker_->counters().cluster_forward_dropped.Increment();
  }
}

void ClusterNode::SessionImported(const std::string& client_id) {
  // Under the lock, so a Deliver frame arriving meanwhile queues behind these.
  absl::MutexLock lock(&moves_mu_);
  auto it = moves_in_.find(client_id);
  if (it == moves_in_.end()) return;
  it->second.imported = true;
  // Duplicates of what the session brought along are dropped by its move dedup.
  for (QueuedMessage& queued : it->second.early) {
    broker_->DeliverToSession(client_id, std::move(queued));
  }
  it->second.early.clear();
}

}  // namespace meshmq::cluster
