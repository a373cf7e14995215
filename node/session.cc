#include "node/session.h"

#include <algorithm>
#include <utility>

#include "node/event_loop.h"
#include "node/persistence.h"
#include "storage/store.h"

namespace meshmq {

Session::Session(std::string client_id, uint32_t expiry_interval, Persistence* persistence)
    : client_id_(std::move(client_id)),
      expiry_interval_(expiry_interval),
      persistence_(persistence) {}

void Session::JournalSessionLocked() {
  if (!journaling()) return;
  storage::Batch batch;
  batch.PutSession(client_id_, RecordLocked());
  persistence_->Submit(std::move(batch));
}

storage::SessionRecord Session::RecordLocked() const {
  storage::SessionRecord record =
      Persistence::ToRecord(expiry_interval_, disconnected_at_unix_ms_, subscriptions_);
  record.set_claim(claim_);
  return record;
}

uint64_t Session::claim() const {
  absl::MutexLock lock(&mu_);
  return claim_;
}

void Session::set_claim(uint64_t claim) {
  absl::MutexLock lock(&mu_);
  if (claim_ == claim) return;
  claim_ = claim;
  JournalSessionLocked();
}

void Session::JournalForgetLocked(const QueuedMessage& queued) {
  if (queued.seq == 0 || !journaling()) return;
  storage::Batch batch;
  batch.DeleteMessage(client_id_, queued.seq);
  persistence_->Submit(std::move(batch));
}

bool Session::StopPersistence() {
  absl::MutexLock lock(&mu_);
  const bool was = journaling();
  persistence_ = nullptr;
  return was;
}

uint32_t Session::expiry_interval() const {
  absl::MutexLock lock(&mu_);
  return expiry_interval_;
}

void Session::set_expiry_interval(uint32_t seconds) {
  absl::MutexLock lock(&mu_);
  if (seconds == expiry_interval_) return;
  const bool was_journaling = journaling();
  expiry_interval_ = seconds;
  if (journaling()) {
    JournalSessionLocked();
  } else if (was_journaling) {
    // Now a session that ends with its connection: a crash must not bring it back.
    storage::Batch batch;
    batch.DeleteSession(client_id_);
    persistence_->Submit(std::move(batch));
  }
}

size_t Session::DropPendingQos0() {
  const size_t dropped = pending_qos0_;
  if (dropped > 0) {
    std::erase_if(*pending_, [](const QueuedMessage& m) { return m.qos == 0; });
    pending_qos0_ = 0;
    if (pending_->empty()) pending_.reset();
  }
  return dropped;
}

std::deque<QueuedMessage>& Session::pending() {
  if (!pending_) pending_ = std::make_unique<std::deque<QueuedMessage>>();
  return *pending_;
}

std::optional<SessionOwner> Session::Enqueue(QueuedMessage queued, const Limits& limits,
                                             Counters* counters, bool detour) {
  queued.may_expire = queued.message->expires_at_ms != 0;
  absl::MutexLock lock(&mu_);
  if (discarded_) return std::nullopt;
  // A held copy this detour copy replaces: stored under this seq (0: not stored).
  std::optional<uint64_t> replaced_seq;
  if (move_ && TakenByMoveLocked(queued, counters, detour, &replaced_seq)) return std::nullopt;
  if (!replaced_seq && queued.qos == 2 && queued.message->qos2_key != 0 &&
      Qos2ResendSeenLocked(*queued.message, counters)) {
    return std::nullopt;
  }
  if (!owner_ && queued.qos == 0) return std::nullopt;
  // A persistent session's QoS 1/2 messages go to the store, in queue order (the seq), before
  // anyone can take them out of the queue: the owner's delete can never overtake this put.
  std::optional<storage::Batch> batch;
  if (replaced_seq.value_or(0) != 0 && journaling()) {
    batch.emplace();
    batch->DeleteMessage(client_id_, *replaced_seq);  // in the batch that puts its replacement
  }
  queued.seq = 0;
  bool hold = move_ && move_->holding && !detour;
  if (hold && limits.max_queued > 0 && move_->held.size() >= limits.max_queued) {
    // The hold is bounded as the queue is: past that, order yields to memory.
    ReleaseMoveHoldLocked();
    counters->cluster_move_holds_overflowed.Increment();
    hold = false;
  }
  if (queued.qos > 0 && journaling()) {
    queued.seq = hold ? ++move_->held_last_seq : ++last_seq_;
    if (!batch) batch.emplace();
    batch->PutQueued(client_id_, queued.seq, Persistence::ToRecord(queued));
  }
  if (hold) {
    // Stored now, so its publisher's acknowledgement stands; sent once the hold ends.
    if (batch) persistence_->Submit(std::move(*batch));
    move_->held.push_back(std::move(queued));
    return std::nullopt;
  }
  if (queued.qos > 0 && limits.max_queued > 0) {
    size_t waiting = pending_size() - pending_qos0_;
    if (owner_) {
      const size_t window_room =
          limits.max_inflight > inflight_.size() ? limits.max_inflight - inflight_.size() : 0;
      waiting = waiting > window_room ? waiting - window_room : 0;
    }
    if (waiting >= limits.max_queued) {
      // Make room: QoS 0 is the cheapest loss, so the oldest QoS 0 message goes first.
      std::deque<QueuedMessage>& queue = pending();
      auto victim = queue.begin();
      if (pending_qos0_ > 0) {
        victim = std::find_if(queue.begin(), queue.end(),
                              [](const QueuedMessage& m) { return m.qos == 0; });
      }
      if (victim->qos == 0) --pending_qos0_;
      if (victim->seq != 0 && batch) batch->DeleteMessage(client_id_, victim->seq);
      queue.erase(victim);
      counters->messages_dropped_queue_full.Increment();
    }
  }
  if (batch) persistence_->Submit(std::move(*batch));
  if (queued.qos == 0) ++pending_qos0_;
  pending().push_back(std::move(queued));
  if (!owner_ || flush_scheduled_) return std::nullopt;
  flush_scheduled_ = true;
  return owner_;
}

std::optional<std::string> Session::username() const {
  absl::MutexLock lock(&mu_);
  return username_;
}

std::optional<SessionOwner> Session::Attach(SessionOwner owner,
                                            std::optional<std::string> username) {
  absl::MutexLock lock(&mu_);
  std::optional<SessionOwner> previous = owner_;
  owner_ = owner;
  online_.store(true, std::memory_order_release);
  username_ = std::move(username);
  flush_scheduled_ = false;
  disconnected_at_unix_ms_ = 0;
  JournalSessionLocked();
  return previous;
}

std::optional<SessionOwner> Session::ReleaseOwner() {
  absl::MutexLock lock(&mu_);
  std::optional<SessionOwner> previous = std::move(owner_);
  owner_.reset();
  online_.store(false, std::memory_order_release);
  flush_scheduled_ = false;
  return previous;
}

bool Session::Detach(const SessionOwner& owner) {
  absl::MutexLock lock(&mu_);
  if (!owner_ || !(*owner_ == owner)) return false;
  owner_.reset();
  online_.store(false, std::memory_order_release);
  flush_scheduled_ = false;
  // QoS 0 messages are not kept for an offline session (see Enqueue).
  DropPendingQos0();
  // The expiry countdown starts now, also for a node that restarts before it ends.
  disconnected_at_unix_ms_ = Persistence::UnixMillis();
  JournalSessionLocked();
  return true;
}

bool Session::IsOwner(const SessionOwner& owner) const {
  absl::MutexLock lock(&mu_);
  return owner_ && *owner_ == owner;
}

bool Session::discarded() const {
  absl::MutexLock lock(&mu_);
  return discarded_;
}

std::vector<Outgoing> Session::InflightForResend() const {
  absl::MutexLock lock(&mu_);
  std::vector<Outgoing> out;
  out.reserve(inflight_.size());
  for (const Inflight& f : inflight_) {
    Outgoing o;
    o.kind = f.awaiting_pubcomp ? Outgoing::Kind::kPubrel : Outgoing::Kind::kPublish;
    o.queued = f.queued;
    o.packet_id = f.packet_id;
    o.dup = true;
    out.push_back(std::move(o));
  }
  return out;
}

size_t Session::TakeSendable(const SessionOwner& owner, size_t max_inflight, int64_t now_ms,
                             std::vector<Outgoing>* out) {
  absl::MutexLock lock(&mu_);
  if (!owner_ || !(*owner_ == owner)) return 0;
  flush_scheduled_ = false;
  if (!pending_) return 0;
  std::deque<QueuedMessage>& queue = *pending_;
  size_t expired = 0;
  std::optional<storage::Batch> batch;
  auto journal = [&]() -> std::optional<storage::Batch>& {
    if (!batch && journaling()) batch.emplace();
    return batch;
  };
  while (!queue.empty()) {
    QueuedMessage& front = queue.front();
    if (front.may_expire && front.message->expired(now_ms)) {
      if (front.qos == 0) --pending_qos0_;
      if (front.seq != 0 && journal()) batch->DeleteMessage(client_id_, front.seq);
      queue.pop_front();
      ++expired;
      continue;
    }
    Outgoing o;
    if (front.qos > 0) {
      if (inflight_.size() >= max_inflight) break;  // window full: wait for an ack
      o.packet_id = NextPacketId();
      inflight_.push_back(Inflight{o.packet_id, front, false});
      // The packet id is stored so that a restart resends with the same one and DUP=1
      // (MQTT-4.4.0-1), which is what lets the client recognise a QoS 2 duplicate.
      if (front.seq != 0 && journal()) {
        storage::InflightRecord record;
        record.set_packet_id(o.packet_id);
        batch->PutInflight(client_id_, front.seq, record);
      }
    } else {
      --pending_qos0_;
    }
    o.queued = std::move(front);
    queue.pop_front();
    out->push_back(std::move(o));
  }
  if (queue.empty()) pending_.reset();
  if (batch && !batch->empty()) persistence_->Submit(std::move(*batch));
  return expired;
}

void Session::DropInflight(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  auto it = FindInflight(packet_id);
  if (it == inflight_.end()) return;
  JournalForgetLocked(it->queued);
  inflight_.erase(it);
}

std::vector<QueuedMessage> Session::TakeSharedUnacknowledged() {
  absl::MutexLock lock(&mu_);
  std::vector<QueuedMessage> taken;
  // In flight and not yet acknowledged: a QoS 2 message after PUBREC has been received by the
  // client and is not redelivered (its `message` is gone, see OnPubrec).
  std::erase_if(inflight_, [&](Inflight& f) {
    if (f.queued.shared_group() == nullptr || f.queued.message == nullptr) return false;
    JournalForgetLocked(f.queued);
    taken.push_back(std::move(f.queued));
    return true;
  });
  if (pending_) {
    std::erase_if(*pending_, [&](QueuedMessage& m) {
      if (m.shared_group() == nullptr || m.qos == 0) return false;
      JournalForgetLocked(m);
      taken.push_back(std::move(m));
      return true;
    });
    if (pending_->empty()) pending_.reset();
  }
  return taken;
}

size_t Session::DropQueuedQos0(const SessionOwner& owner) {
  absl::MutexLock lock(&mu_);
  if (!owner_ || !(*owner_ == owner)) return 0;
  flush_scheduled_ = false;
  return DropPendingQos0();
}

uint16_t Session::NextPacketId() {
  // Packet ids in use must not be reused until acknowledged (MQTT-2.3.1-2); 0 is not valid.
  // The caller guarantees fewer than 65535 are in flight (--max_inflight is at most 65535). Ids
  // are handed out in rising order, so a collision is rare and only ever with an old message.
  do {
    last_packet_id_ = last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1;
  } while (FindInflight(last_packet_id_) != inflight_.end());
  return last_packet_id_;
}

std::vector<Session::Inflight>::iterator Session::FindInflight(uint16_t packet_id) {
  return std::find_if(inflight_.begin(), inflight_.end(),
                      [packet_id](const Inflight& f) { return f.packet_id == packet_id; });
}

bool Session::OnPuback(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  auto it = FindInflight(packet_id);
  if (it == inflight_.end() || it->queued.qos != 1) return false;
  JournalForgetLocked(it->queued);
  inflight_.erase(it);
  return true;
}

bool Session::OnPubrec(uint16_t packet_id, bool failed) {
  absl::MutexLock lock(&mu_);
  auto it = FindInflight(packet_id);
  if (it == inflight_.end() || it->queued.qos != 2) return false;
  if (it->awaiting_pubcomp) return true;  // a repeated PUBREC: PUBREL is sent again
  if (failed) {
    JournalForgetLocked(it->queued);
    inflight_.erase(it);
    return true;
  }
  it->awaiting_pubcomp = true;
  if (it->queued.seq != 0 && journaling()) {
    storage::InflightRecord record;
    record.set_packet_id(packet_id);
    record.set_awaiting_pubcomp(true);
    storage::Batch batch;
    batch.PutInflight(client_id_, it->queued.seq, record);
    persistence_->Submit(std::move(batch));
  }
  // The message itself is no longer needed: only PUBREL is ever resent from here on.
  it->queued.message.reset();
  return true;
}

bool Session::OnPubcomp(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  auto it = FindInflight(packet_id);
  if (it == inflight_.end() || !it->awaiting_pubcomp) return false;
  JournalForgetLocked(it->queued);
  inflight_.erase(it);
  return true;
}

bool Session::RememberInboundQos2(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  if (!inbound_qos2_) inbound_qos2_ = std::make_unique<absl::flat_hash_set<uint16_t>>();
  return inbound_qos2_->insert(packet_id).second;
}

void Session::JournalInboundQos2(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  // Not if PUBREL came meanwhile (or a move took the session's state along).
  if (!journaling() || !inbound_qos2_ || !inbound_qos2_->contains(packet_id)) return;
  storage::Batch batch;
  batch.PutInboundQos2(client_id_, packet_id);
  persistence_->Submit(std::move(batch));
}

bool Session::ForgetInboundQos2(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  if (!inbound_qos2_ || inbound_qos2_->erase(packet_id) == 0) return false;
  if (journaling()) {
    storage::Batch batch;
    batch.DeleteInboundQos2(client_id_, packet_id);
    persistence_->Submit(std::move(batch));
  }
  return true;
}

size_t Session::inbound_qos2_count() const {
  absl::MutexLock lock(&mu_);
  return inbound_qos2_ ? inbound_qos2_->size() : 0;
}

std::map<std::string, SubscriptionOptions> Session::subscriptions() const {
  absl::MutexLock lock(&mu_);
  return subscriptions_;
}

size_t Session::queued_count() const {
  absl::MutexLock lock(&mu_);
  return pending_size();
}

size_t Session::inflight_count() const {
  absl::MutexLock lock(&mu_);
  return inflight_.size();
}

void Session::Restore(const storage::LoadedSession& loaded) {
  absl::MutexLock lock(&mu_);
  expiry_interval_ = loaded.record.expiry_interval();
  claim_ = loaded.record.claim();
  // A session whose node died while it was connected went offline at the restart.
  disconnected_at_unix_ms_ = loaded.record.disconnected_at_unix_ms() != 0
                                 ? loaded.record.disconnected_at_unix_ms()
                                 : Persistence::UnixMillis();
  for (const storage::SubscriptionRecord& s : loaded.record.subscriptions()) {
    subscriptions_.emplace(s.filter(), Persistence::FromRecord(s));
  }
  std::optional<storage::Batch> unreadable;
  for (const storage::LoadedSession::Message& m : loaded.messages) {
    last_seq_ = std::max(last_seq_, m.seq);
    QueuedMessage queued = Persistence::FromRecord(m.queued);
    queued.seq = m.seq;
    const bool awaiting_pubcomp = m.inflight && m.inflight->awaiting_pubcomp();
    if ((queued.message == nullptr && !awaiting_pubcomp) || queued.qos == 0) {
      if (!unreadable) unreadable.emplace();
      unreadable->DeleteMessage(client_id_, m.seq);
      continue;
    }
    if (m.inflight) {
      const auto packet_id = static_cast<uint16_t>(m.inflight->packet_id());
      if (awaiting_pubcomp) queued.message.reset();
      inflight_.push_back(Inflight{packet_id, std::move(queued), awaiting_pubcomp});
      last_packet_id_ = std::max(last_packet_id_, packet_id);
    } else {
      pending().push_back(std::move(queued));
    }
  }
  for (uint16_t packet_id : loaded.inbound_qos2) {
    if (!inbound_qos2_) inbound_qos2_ = std::make_unique<absl::flat_hash_set<uint16_t>>();
    inbound_qos2_->insert(packet_id);
  }
  // What it had lately and what it brings, for dropping resends of those (Qos2ResendSeenLocked).
  auto note_key = [this](uint64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (key == 0) return;
    if (!recent_qos2_) recent_qos2_ = std::make_unique<RecentQos2Keys>();
    recent_qos2_->keys[recent_qos2_->next] = key;
    recent_qos2_->next = (recent_qos2_->next + 1) % kRecentQos2Keys;
  };
  for (uint64_t key : loaded.recent_qos2_keys) note_key(key);
  for (const storage::LoadedSession::Message& m : loaded.messages) {
    if (m.queued.has_message()) note_key(m.queued.message().qos2_key());
  }
  if (unreadable && persistence_ != nullptr) persistence_->Submit(std::move(*unreadable));
}

std::optional<SessionOwner> Session::current_owner() const {
  absl::MutexLock lock(&mu_);
  return owner_;
}

storage::LoadedSession Session::ExportLocked() const {
  storage::LoadedSession exported;
  exported.client_id = client_id_;
  exported.record = Persistence::ToRecord(
      expiry_interval_,
      disconnected_at_unix_ms_ != 0 ? disconnected_at_unix_ms_ : Persistence::UnixMillis(),
      subscriptions_);
  uint64_t seq = 0;
  for (const Inflight& f : inflight_) {
    storage::LoadedSession::Message m;
    m.seq = ++seq;
    if (f.awaiting_pubcomp) {
      m.queued.set_qos(f.queued.qos);  // only PUBREL is resent: no message
    } else {
      m.queued = Persistence::ToRecord(f.queued);
    }
    m.inflight.emplace();
    m.inflight->set_packet_id(f.packet_id);
    m.inflight->set_awaiting_pubcomp(f.awaiting_pubcomp);
    exported.messages.push_back(std::move(m));
  }
  auto export_queued = [&](const QueuedMessage& queued) {
    if (queued.qos == 0) return;  // not kept for an offline session (MQTT-3.1.2-5)
    storage::LoadedSession::Message m;
    m.seq = ++seq;
    m.queued = Persistence::ToRecord(queued);
    exported.messages.push_back(std::move(m));
  };
  if (pending_) {
    for (const QueuedMessage& queued : *pending_) export_queued(queued);
  }
  if (move_) {
    for (const QueuedMessage& queued : move_->held) export_queued(queued);
  }
  if (inbound_qos2_) {
    exported.inbound_qos2.assign(inbound_qos2_->begin(), inbound_qos2_->end());
    std::sort(exported.inbound_qos2.begin(), exported.inbound_qos2.end());
  }
  // It moves again while still tracking its last move: copies of what it got here may still be
  // on their way to the next node too.
  if (move_ && MonotonicMillis() < move_->dedup_until_ms) {
    exported.recent_ids.assign(move_->seen.begin(), move_->seen.end());
  }
  exported.recent_qos2_keys = RecentQos2KeysLocked();
  return exported;
}

void Session::JournalEverything() {
  absl::MutexLock lock(&mu_);
  if (!journaling()) return;
  storage::Batch batch;
  AddEverythingLocked(&batch);
  persistence_->Submit(std::move(batch));
}

void Session::WithSnapshot(const std::function<void(storage::Batch&&, bool persistent)>& fn) {
  absl::MutexLock lock(&mu_);
  storage::Batch batch;
  const bool persistent = journaling();
  if (persistent) AddEverythingLocked(&batch);
  fn(std::move(batch), persistent);
}

void Session::AddEverythingLocked(storage::Batch* batch) const {
  batch->PutSession(client_id_, RecordLocked());
  for (const Inflight& f : inflight_) {
    if (f.queued.seq == 0) continue;
    storage::QueuedRecord queued;
    if (f.awaiting_pubcomp) {
      queued.set_qos(f.queued.qos);
    } else {
      queued = Persistence::ToRecord(f.queued);
    }
    batch->PutQueued(client_id_, f.queued.seq, queued);
    storage::InflightRecord record;
    record.set_packet_id(f.packet_id);
    record.set_awaiting_pubcomp(f.awaiting_pubcomp);
    batch->PutInflight(client_id_, f.queued.seq, record);
  }
  auto put_queued = [&](const QueuedMessage& queued) {
    if (queued.seq != 0) batch->PutQueued(client_id_, queued.seq, Persistence::ToRecord(queued));
  };
  if (pending_) {
    for (const QueuedMessage& queued : *pending_) put_queued(queued);
  }
  if (move_) {
    for (const QueuedMessage& queued : move_->held) put_queued(queued);
  }
  if (inbound_qos2_) {
    for (uint16_t packet_id : *inbound_qos2_) batch->PutInboundQos2(client_id_, packet_id);
  }
}

storage::LoadedSession Session::ExportAndForwardTo(Forwarder forward) {
  absl::MutexLock lock(&mu_);
  storage::LoadedSession exported = ExportLocked();
  // What was exported now lives on the other node.
  pending_.reset();
  pending_qos0_ = 0;
  inflight_.clear();
  inbound_qos2_.reset();
  owner_.reset();
  online_.store(false, std::memory_order_release);
  if (!move_) move_ = std::make_unique<MoveState>();
  move_->forward = std::move(forward);
  move_->held.clear();  // exported with the rest
  move_->holding = false;
  return exported;
}

void Session::StartMoveDedup(const std::vector<uint64_t>& ids, int64_t until_ms, bool hold) {
  absl::MutexLock lock(&mu_);
  if (!move_) move_ = std::make_unique<MoveState>();
  move_->seen.insert(ids.begin(), ids.end());
  move_->seen.erase(0);
  move_->dedup_until_ms = until_ms;
  if (hold && !move_->holding) {
    move_->holding = true;
    move_->held_last_seq = last_seq_ + (uint64_t{1} << 32);
  }
}

std::optional<SessionOwner> Session::ReleaseMoveHold() {
  absl::MutexLock lock(&mu_);
  if (!move_ || !move_->holding) return std::nullopt;
  const bool any = !move_->held.empty();
  ReleaseMoveHoldLocked();
  if (!any || !owner_ || flush_scheduled_) return std::nullopt;
  flush_scheduled_ = true;
  return owner_;
}

bool Session::move_hold_on() const {
  absl::MutexLock lock(&mu_);
  return move_ && move_->holding;
}

void Session::ReleaseMoveHoldLocked() {
  move_->holding = false;
  last_seq_ = std::max(last_seq_, move_->held_last_seq);
  for (QueuedMessage& queued : move_->held) {
    if (queued.qos == 0) {
      if (!owner_) continue;  // offline now: not kept (MQTT-3.1.2-5)
      ++pending_qos0_;
    }
    pending().push_back(std::move(queued));
  }
  move_->held.clear();
}

std::vector<uint64_t> Session::recent_qos2_keys() const {
  absl::MutexLock lock(&mu_);
  return RecentQos2KeysLocked();
}

std::vector<uint64_t> Session::RecentQos2KeysLocked() const {
  std::vector<uint64_t> keys;
  if (!recent_qos2_) return keys;
  // Oldest first, so a ring filled from them keeps the same order.
  const RecentQos2Keys& recent = *recent_qos2_;
  for (size_t i = 0; i < kRecentQos2Keys; ++i) {
    const uint64_t key = recent.keys[(recent.next + i) % kRecentQos2Keys];
    if (key != 0) keys.push_back(key);
  }
  return keys;
}

bool Session::Qos2ResendSeenLocked(const Message& message, Counters* counters) {
  if (!recent_qos2_) recent_qos2_ = std::make_unique<RecentQos2Keys>();
  RecentQos2Keys& recent = *recent_qos2_;
  // Only resends are looked up (rarely): the common case is one store into the ring.
  if (message.resent &&
      std::find(recent.keys.begin(), recent.keys.end(), message.qos2_key) != recent.keys.end()) {
    counters->qos2_resends_dropped.Increment();
    return true;
  }
  recent.keys[recent.next] = message.qos2_key;
  recent.next = (recent.next + 1) % kRecentQos2Keys;
  return false;
}

bool Session::TakenByMoveLocked(const QueuedMessage& queued, Counters* counters, bool detour,
                                std::optional<uint64_t>* replaced_seq) {
  if (move_->forward) {
    move_->forward(queued);
    counters->cluster_move_forwarded.Increment();
    return true;
  }
  if (MonotonicMillis() >= move_->dedup_until_ms && !move_->holding) {
    move_.reset();  // the move is over: back to the plain path
    return false;
  }
  const uint64_t id = queued.message->id;
  if (id != 0 && !move_->seen.insert(id).second) {
    if (detour && move_->holding) {
      // The copy that came directly is held: this one, on the detour, is where the message
      // belongs in its publisher's order (what the detour brought before it is in already).
      auto held = std::find_if(move_->held.begin(), move_->held.end(),
                               [id](const QueuedMessage& m) { return m.message->id == id; });
      if (held != move_->held.end()) {
        *replaced_seq = held->seq;
        move_->held.erase(held);
        counters->cluster_move_duplicates.Increment();
        return false;
      }
    }
    counters->cluster_move_duplicates.Increment();
    return true;
  }
  return false;
}

}  // namespace meshmq
