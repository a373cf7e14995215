#include "cluster/replica_store.h"

#include <filesystem>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cluster/debug_log.h"
#include "storage/schema.h"

namespace meshmq::cluster {

absl::StatusOr<std::unique_ptr<ReplicaStore>> ReplicaStore::Open(const std::string& dir,
                                                                 storage::Durability durability) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create replica dir ", dir, ": ", error.message()));
  }
  absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(dir, durability);
  if (!store.ok()) return store.status();
  std::unique_ptr<ReplicaStore> replicas(new ReplicaStore(std::move(*store)));
  absl::MutexLock lock(&replicas->mu_);
  absl::Status status = replicas->store_->ForEachSession(
      [&](std::string_view client_id, const storage::SessionRecord& record) {
        Copy& copy = replicas->copies_[std::string(client_id)];
        copy.owner = record.replica_owner();
        copy.replicas.assign(record.replica_set().begin(), record.replica_set().end());
        copy.claim = record.replica_claim();
      });
  if (!status.ok()) return status;
  return replicas;
}

ReplicaStore::ReplicaStore(std::unique_ptr<storage::Store> store) : store_(std::move(store)) {
  // The raw pointer: unique_ptr::reset() clears store_ before the destructor's last group calls
  // back here.
  store_->SetOnDurable([this, store = store_.get()](uint64_t durable) {
    OnDurable(durable, !store->status().ok());
  });
}

ReplicaStore::~ReplicaStore() {
  store_.reset();  // writes what is left; its callbacks still find waiters_
}

void ReplicaStore::Apply(const std::string& owner, const ReplicaOps& ops,
                         std::function<void()> done) {
  storage::Batch batch;
  {
    absl::MutexLock lock(&mu_);
    auto it = copies_.find(ops.client_id());
    if (ops.reset()) {
      if (it != copies_.end() && it->second.owner != owner && it->second.claim != 0 &&
          ops.claim() != 0 &&
          std::tie(it->second.claim, it->second.owner) >
              std::make_tuple(ops.claim(), std::cref(owner))) {
        // The sender's session is older than the one this copy is of (a node back from a
        // partition, before the claims reached it): it does not replace the live one's copy.
        CLUSTER_DEBUG("copy of ", ops.client_id(), " from ", owner, " refused: ",
                      it->second.owner, " claimed it later");
        done();
        return;
      }
      CLUSTER_DEBUG("copy of ", ops.client_id(), " from ", owner, " (", ops.ops_size(),
                    " records)");
      batch.DeleteSession(ops.client_id());
      Copy& copy = copies_[ops.client_id()];
      const uint64_t known_claim = copy.owner == owner ? copy.claim : 0;
      copy.owner = owner;
      copy.replicas.assign(ops.replicas().begin(), ops.replicas().end());
      // An owner that restarted has forgotten its claims (0): the copy keeps the one it had.
      copy.claim = ops.claim() != 0 ? ops.claim() : known_claim;
      copy.ids_by_seq.clear();  // the snapshot brings them again; what was done stays done
      copy.qos2_keys_by_seq.clear();
      copy.done_qos2_keys.assign(ops.recent_qos2_keys().begin(), ops.recent_qos2_keys().end());
      it = copies_.find(ops.client_id());
    } else if (it == copies_.end() || it->second.owner != owner) {
      done();  // not (or no longer) the sender's to change
      return;
    }
    bool deleted = false;
    for (const storage::RecordOp& op : ops.ops()) {
      if (op.family() == storage::kSessionsFamily && op.kind() == storage::RecordOp::PUT) {
        // The copy carries its owner and takeover order, for a restart of this node.
        storage::SessionRecord record;
        if (!record.ParseFromString(op.value())) continue;
        record.set_replica_owner(it->second.owner);
        for (const std::string& replica : it->second.replicas) record.add_replica_set(replica);
        record.set_replica_claim(it->second.claim);
        storage::RecordOp marked = op;
        marked.set_value(record.SerializeAsString());
        batch.AddRecordOp(marked);
        deleted = false;
        continue;
      }
      if (op.family() == storage::kSessionsFamily && op.kind() == storage::RecordOp::DELETE) {
        deleted = true;
      }
      TrackIds(op, &it->second);
      batch.AddRecordOp(op);
    }
    if (deleted) {
      CLUSTER_DEBUG("copy of ", ops.client_id(), " deleted by ", owner);
      copies_.erase(it);
    }
    Write(std::move(batch), std::move(done));
  }
}

void ReplicaStore::TrackIds(const storage::RecordOp& op, Copy* copy) {
  if (op.family() != storage::kQueuedFamily) return;
  std::string client_id;
  uint64_t seq = 0;
  if (!storage::ParseMessageKey(op.key(), &client_id, &seq)) return;
  if (op.kind() == storage::RecordOp::PUT) {
    storage::QueuedRecord record;
    // A record without its message (QoS 2 past PUBREC) keeps the id it had.
    if (record.ParseFromString(op.value()) && record.has_message() && record.message().id() != 0) {
      copy->ids_by_seq[seq] = record.message().id();
      if (record.message().qos2_key() != 0) {
        copy->qos2_keys_by_seq[seq] = record.message().qos2_key();
      }
    }
  } else if (op.kind() == storage::RecordOp::DELETE) {
    if (auto key = copy->qos2_keys_by_seq.find(seq); key != copy->qos2_keys_by_seq.end()) {
      copy->done_qos2_keys.push_back(key->second);
      if (copy->done_qos2_keys.size() > kMaxDoneIds) copy->done_qos2_keys.pop_front();
      copy->qos2_keys_by_seq.erase(key);
    }
    auto it = copy->ids_by_seq.find(seq);
    if (it == copy->ids_by_seq.end()) return;
    copy->done_ids.push_back(it->second);
    if (copy->done_ids.size() > kMaxDoneIds) copy->done_ids.pop_front();
    copy->ids_by_seq.erase(it);
  }
}

void ReplicaStore::Drop(const std::string& owner, const std::string& client_id,
                        std::function<void()> done) {
  absl::MutexLock lock(&mu_);
  auto it = copies_.find(client_id);
  if (it == copies_.end() || it->second.owner != owner) {
    done();
    return;
  }
  CLUSTER_DEBUG("copy of ", client_id, " dropped (owner ", owner, ")");
  copies_.erase(it);
  storage::Batch batch;
  batch.DeleteSession(client_id);
  Write(std::move(batch), std::move(done));
}

void ReplicaStore::Purge(const std::string& owner, std::function<void()> done) {
  absl::MutexLock lock(&mu_);
  storage::Batch batch;
  absl::erase_if(copies_, [&](const auto& entry) {
    if (entry.second.owner != owner) return false;
    CLUSTER_DEBUG("copy of ", entry.first, " purged (owner ", owner, ")");
    batch.DeleteSession(entry.first);
    return true;
  });
  Write(std::move(batch), std::move(done));
}

std::optional<ReplicaStore::Copy> ReplicaStore::Find(const std::string& client_id) const {
  absl::MutexLock lock(&mu_);
  auto it = copies_.find(client_id);
  if (it == copies_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, ReplicaStore::Copy>> ReplicaStore::All() const {
  absl::MutexLock lock(&mu_);
  return std::vector<std::pair<std::string, Copy>>(copies_.begin(), copies_.end());
}

size_t ReplicaStore::size() const {
  absl::MutexLock lock(&mu_);
  return copies_.size();
}

std::optional<storage::LoadedSession> ReplicaStore::Take(const std::string& client_id) {
  absl::MutexLock lock(&mu_);
  auto it = copies_.find(client_id);
  if (it == copies_.end()) return std::nullopt;
  std::vector<uint64_t> done_ids(it->second.done_ids.begin(), it->second.done_ids.end());
  std::vector<uint64_t> done_qos2_keys(it->second.done_qos2_keys.begin(),
                                       it->second.done_qos2_keys.end());
  // Those still in flight too: past PUBREC their records no longer hold the message.
  for (const auto& [seq, key] : it->second.qos2_keys_by_seq) done_qos2_keys.push_back(key);
  copies_.erase(it);
  // LoadSession reads what is written: everything applied so far first.
  if (!store_->WaitDurable(store_->last_ticket()).ok()) return std::nullopt;
  absl::StatusOr<std::optional<storage::LoadedSession>> loaded = store_->LoadSession(client_id);
  storage::Batch batch;
  batch.DeleteSession(client_id);
  store_->Submit(std::move(batch));
  if (!loaded.ok() || !loaded->has_value()) return std::nullopt;
  storage::LoadedSession session = std::move(**loaded);
  // replica_owner stays: whoever adopts the session notes where it came from, then clears it.
  session.record.clear_replica_set();
  session.record.clear_replica_claim();
  session.recent_ids = std::move(done_ids);
  session.recent_qos2_keys = std::move(done_qos2_keys);
  return session;
}

void ReplicaStore::Write(storage::Batch&& batch, std::function<void()> done) {
  if (batch.empty()) {
    done();
    return;
  }
  const uint64_t ticket = store_->Submit(std::move(batch));
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters_.emplace(ticket, std::move(done));
  }
  OnDurable(store_->durable_ticket(), !store_->status().ok());  // written meanwhile?
}

void ReplicaStore::OnDurable(uint64_t durable, bool failed) {
  std::vector<std::function<void()>> ready;
  {
    absl::MutexLock lock(&waiters_mu_);
    // A failed store never makes anything durable: its waiters are answered anyway (the owner
    // then counts the copy as made; the failure is in this node's log).
    auto end = failed ? waiters_.end() : waiters_.upper_bound(durable);
    for (auto it = waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiters_.erase(waiters_.begin(), end);
  }
  for (auto& done : ready) done();
}

}  // namespace meshmq::cluster
