#include "cluster/replicator.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/str_join.h"
#include "cluster/debug_log.h"
#include "node/broker.h"
#include "storage/schema.h"

namespace meshmq::cluster {
namespace {

// Frames of a snapshot stay well below gRPC's 4 MiB message limit.
constexpr size_t kMaxOpsBytes = 256 << 10;

// FNV-1a: the same ranking on every build, whatever std::hash does.
uint64_t Rank(const std::string& client_id, const std::string& node) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  mix(client_id);
  h ^= 0xff;
  h *= 1099511628211ULL;
  mix(node);
  return h;
}

bool DeletesSession(const storage::RecordOp& op) {
  return op.family() == storage::kSessionsFamily && op.kind() == storage::RecordOp::DELETE;
}

bool PutsSession(const storage::RecordOp& op) {
  return op.family() == storage::kSessionsFamily && op.kind() == storage::RecordOp::PUT;
}

}  // namespace

// Counts the frames something waits for (a store ticket, or a replica set's switch-over) and
// calls `on_done` once all are answered.
class Replicator::TicketTally {
 public:
  explicit TicketTally(std::function<void()> on_done) : on_done_(std::move(on_done)) {}
  void Add() { pending_.fetch_add(1, std::memory_order_relaxed); }
  void Done() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) on_done_();
  }

 private:
  std::function<void()> on_done_;
  std::atomic<int64_t> pending_{1};  // the creator's share, released by its Done()
};

Replicator::Replicator(Broker* broker, Transport* transport, int replication_factor,
                       std::function<std::vector<std::string>()> eligible,
                       std::function<bool()> serving,
                       std::function<uint64_t(const std::string&)> claim_of)
    : broker_(broker),
      transport_(transport),
      replication_factor_(replication_factor),
      eligible_(std::move(eligible)),
      serving_(std::move(serving)),
      claim_of_(std::move(claim_of)) {}

bool Replicator::MustHoldLocked(const std::vector<std::string>& replicas) const {
  return replicas.empty() && replication_factor_ > 1 && !serving_();
}

void Replicator::RequeueLocked(const std::string& client_id, const Tallies& tallies) {
  ClientState& state = clients_[client_id];
  // Each tally keeps the share this frame took, now held by the snapshot.
  for (const auto& tally : tallies) state.waiting.push_back(tally);
  state.synced = false;
  Enqueue(client_id, state);
}

Replicator::~Replicator() { Stop(); }

void Replicator::Start() {
  thread_ = std::thread([this] { SnapshotLoop(); });
}

void Replicator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // Tickets still waiting for a snapshot are released: nothing will send it now.
  std::vector<std::shared_ptr<TicketTally>> waiting;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [client_id, state] : clients_) {
      for (auto& tally : state.waiting) waiting.push_back(std::move(tally));
      state.waiting.clear();
    }
  }
  for (auto& tally : waiting) tally->Done();
}

std::vector<std::string> Replicator::Choose(const std::string& client_id) const {
  std::vector<std::string> peers = eligible_();
  const size_t wanted = replication_factor_ > 1 ? static_cast<size_t>(replication_factor_ - 1) : 0;
  std::sort(peers.begin(), peers.end(), [&](const std::string& a, const std::string& b) {
    const uint64_t ra = Rank(client_id, a);
    const uint64_t rb = Rank(client_id, b);
    return ra != rb ? ra > rb : a < b;
  });
  if (peers.size() > wanted) peers.resize(wanted);
  return peers;
}

void Replicator::Replicate(std::vector<std::pair<std::string, storage::RecordOp>> ops,
                           uint64_t ticket) {
  auto tally = std::make_shared<TicketTally>([broker = broker_, ticket] {
    if (Persistence* persistence = broker->persistence()) persistence->ReplicaDone(ticket);
  });
  // Released after mu_: a tally's last Done runs what waited for it, which may take mu_.
  Tallies released;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < ops.size();) {
      // One client id's run of changes.
      const std::string& client_id = ops[i].first;
      size_t j = i;
      std::vector<storage::RecordOp> run;
      bool ends_deleted = false;
      for (; j < ops.size() && ops[j].first == client_id; ++j) {
        if (DeletesSession(ops[j].second)) ends_deleted = true;
        if (PutsSession(ops[j].second)) ends_deleted = false;
        run.push_back(std::move(ops[j].second));
      }
      auto it = clients_.find(client_id);
      if (it != clients_.end() && it->second.synced && MustHoldLocked(it->second.replicas)) {
        it->second.synced = false;  // cut off: wait for a replica (or for serving again)
      }
      if (it != clients_.end() && it->second.synced) {
        for (const std::string& peer : it->second.replicas) {
          SendOps(peer, client_id, false, {}, run, {tally});
        }
        if (ends_deleted && !it->second.queued) clients_.erase(it);
      } else if (ends_deleted) {
        // A session whose replicas have nothing yet ended: nothing to send, except that an old
        // replica set may still hold a copy.
        if (it != clients_.end()) {
          for (const std::string& peer : it->second.replicas) SendDrop(peer, client_id);
          for (auto& waiting : it->second.waiting) released.push_back(std::move(waiting));
          it->second.waiting.clear();
          it->second.replicas.clear();
          // A queued snapshot finds no persistent session and forgets it.
          if (!it->second.queued) clients_.erase(it);
        }
      } else {
        // The replicas get the whole session first; this change is part of that snapshot.
        ClientState& state = clients_[client_id];
        tally->Add();
        state.waiting.push_back(tally);
        Enqueue(client_id, state);
      }
      i = j;
    }
  }
  for (auto& waiting : released) waiting->Done();
  tally->Done();
}

void Replicator::Enqueue(const std::string& client_id, ClientState& state) {
  if (state.queued) return;
  state.queued = true;
  snapshot_queue_.push_back(client_id);
}

void Replicator::SendOps(const std::string& peer, const std::string& client_id, bool reset,
                         const std::vector<std::string>& replicas,
                         const std::vector<storage::RecordOp>& ops, const Tallies& tallies,
                         const std::vector<uint64_t>& recent_qos2_keys) {
  size_t i = 0;
  bool first = true;
  while (first || i < ops.size()) {
    Frame frame;
    ReplicaOps* out = frame.mutable_replica_ops();
    out->set_client_id(client_id);
    if (first && reset) {
      out->set_reset(true);
      for (const std::string& replica : replicas) out->add_replicas(replica);
      if (claim_of_) out->set_claim(claim_of_(client_id));
      for (uint64_t key : recent_qos2_keys) out->add_recent_qos2_keys(key);
    }
    size_t bytes = 0;
    for (; i < ops.size() && (bytes < kMaxOpsBytes || out->ops_size() == 0); ++i) {
      bytes += ops[i].key().size() + ops[i].value().size() + 16;
      *out->add_ops() = ops[i];
    }
    first = false;
    for (const auto& tally : tallies) tally->Add();
    unanswered_.fetch_add(1, std::memory_order_relaxed);
    auto answered = [this, tallies, client_id](bool ok) {
      if (!ok) {
        absl::MutexLock lock(&mu_);
        RequeueLocked(client_id, tallies);
      } else {
        for (const auto& tally : tallies) tally->Done();
      }
      unanswered_.fetch_sub(1, std::memory_order_relaxed);
    };
    // Not droppable: a gap would leave the copy wrong, not just late.
    if (transport_->Send(peer, std::move(frame), answered, /*droppable=*/false) !=
        Transport::SendResult::kQueued) {
      // The peer is down: no replica any more. Under mu_ already.
      RequeueLocked(client_id, tallies);
      unanswered_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
}

void Replicator::SendDrop(const std::string& peer, const std::string& client_id) {
  Frame frame;
  frame.mutable_replica_drop()->set_client_id(client_id);
  transport_->Send(peer, std::move(frame), nullptr, /*droppable=*/false);
}

void Replicator::SnapshotLoop() {
  for (;;) {
    std::string client_id;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Replicator* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->snapshot_queue_.empty();
          },
          this));
      if (stopping_) return;
      client_id = std::move(snapshot_queue_.front());
      snapshot_queue_.pop_front();
    }
    Snapshot(client_id);
  }
}

void Replicator::Snapshot(const std::string& client_id) {
  // Tickets that waited for this snapshot; each is released once (after the snapshot's frames
  // took their own share of it).
  Tallies waited;
  auto forget = [&](ClientState& state) {
    for (const std::string& peer : state.replicas) SendDrop(peer, client_id);
    waited = std::move(state.waiting);
    clients_.erase(client_id);
  };
  std::shared_ptr<Session> session = broker_->sessions().Find(client_id);
  if (session == nullptr) {
    absl::MutexLock lock(&mu_);
    auto it = clients_.find(client_id);
    if (it != clients_.end()) forget(it->second);
  } else {
    // Before the snapshot (it holds the session's lock): keys only ever get added.
    const std::vector<uint64_t> recent_qos2_keys = session->recent_qos2_keys();
    session->WithSnapshot([&](storage::Batch&& everything, bool persistent) {
      absl::MutexLock lock(&mu_);
      ClientState& state = clients_[client_id];
      if (!persistent) {
        forget(state);
        return;
      }
      std::vector<storage::RecordOp> ops;
      everything.ForEachSessionOp(
          [&ops](std::string_view, storage::RecordOp&& op) { ops.push_back(std::move(op)); });
      std::vector<std::string> desired = Choose(client_id);
      if (MustHoldLocked(desired)) {
        // Nowhere to put a copy while cut off: the changes wait (MembersChanged retries).
        state.queued = false;
        state.synced = false;
        return;
      }
      waited = std::move(state.waiting);
      state.waiting.clear();
      // Replicas no longer chosen keep their copies, and get every change, until the new ones
      // have theirs: should this node die meanwhile, a complete copy is on one or the other.
      std::vector<std::string> retiring;
      for (const std::string& peer : state.replicas) {
        if (std::find(desired.begin(), desired.end(), peer) == desired.end()) {
          retiring.push_back(peer);
        }
      }
      Tallies tallies = waited;
      std::shared_ptr<TicketTally> switched;
      if (!retiring.empty()) {
        switched = std::make_shared<TicketTally>(
            [this, client_id, retiring] { RetireReplicas(client_id, retiring); });
        tallies.push_back(switched);
      }
      CLUSTER_DEBUG("snapshot of ", client_id, " (", ops.size(), " records) to ",
                    absl::StrJoin(desired, ","), retiring.empty() ? "" : ", retiring ",
                    absl::StrJoin(retiring, ","));
      for (const std::string& peer : desired) {
        SendOps(peer, client_id, true, desired, ops, tallies, recent_qos2_keys);
      }
      state.replicas = std::move(desired);
      state.replicas.insert(state.replicas.end(), retiring.begin(), retiring.end());
      state.synced = true;
      state.queued = false;
      if (switched) {
        // Answered from here on; the creator's share is released outside mu_ below.
        waited.push_back(std::move(switched));
      }
    });
  }
  for (auto& tally : waited) tally->Done();
}

void Replicator::RetireReplicas(const std::string& client_id,
                                const std::vector<std::string>& retiring) {
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(client_id);
  if (it == clients_.end()) return;
  const std::vector<std::string> desired = Choose(client_id);
  for (const std::string& peer : retiring) {
    if (std::find(desired.begin(), desired.end(), peer) != desired.end()) continue;  // back
    auto at = std::find(it->second.replicas.begin(), it->second.replicas.end(), peer);
    if (at == it->second.replicas.end()) continue;
    it->second.replicas.erase(at);
    CLUSTER_DEBUG("retired replica ", peer, " of ", client_id);
    SendDrop(peer, client_id);
  }
}

void Replicator::MembersChanged() {
  active_.store(replication_factor_ > 1 && (!eligible_().empty() || !serving_()),
                std::memory_order_release);
  std::vector<std::string> sessions = broker_->sessions().ClientIds();
  absl::MutexLock lock(&mu_);
  for (const std::string& client_id : sessions) {
    auto it = clients_.find(client_id);
    if (it == clients_.end()) {
      Enqueue(client_id, clients_[client_id]);
      continue;
    }
    if (it->second.replicas != Choose(client_id) || !it->second.waiting.empty()) {
      Enqueue(client_id, it->second);
    }
  }
}

void Replicator::LinkUp(const std::string& peer, std::vector<Frame>* snapshot) {
  Frame purge;
  purge.mutable_replica_purge();
  snapshot->push_back(std::move(purge));
  absl::MutexLock lock(&mu_);
  for (auto& [client_id, state] : clients_) {
    auto it = std::find(state.replicas.begin(), state.replicas.end(), peer);
    if (it == state.replicas.end()) continue;
    // Purged there: no changes go to it until its snapshot, and none may count as replicated
    // meanwhile. Still marked synced, a change made now would find no replica left to wait for
    // and be acknowledged at once (a PUBREL sent with no replica knowing of it: after a failover
    // the subscriber got that QoS 2 message again).
    state.replicas.erase(it);
    state.synced = false;
    Enqueue(client_id, state);
  }
}

bool Replicator::Idle() const {
  absl::MutexLock lock(&mu_);
  return unanswered_.load(std::memory_order_relaxed) == 0 && snapshot_queue_.empty();
}

}  // namespace meshmq::cluster
