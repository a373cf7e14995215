#include "node/session.h"

#include <algorithm>
#include <utility>

namespace meshmq {

Session::Session(std::string client_id, uint32_t expiry_interval)
    : client_id_(std::move(client_id)), expiry_interval_(expiry_interval) {}

uint32_t Session::expiry_interval() const {
  absl::MutexLock lock(&mu_);
  return expiry_interval_;
}

void Session::set_expiry_interval(uint32_t seconds) {
  absl::MutexLock lock(&mu_);
  expiry_interval_ = seconds;
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
                                             Counters* counters) {
  queued.may_expire = queued.message->expires_at_ms != 0;
  absl::MutexLock lock(&mu_);
  if (discarded_) return std::nullopt;
  if (!owner_ && queued.qos == 0) return std::nullopt;
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
      queue.erase(victim);
      counters->messages_dropped_queue_full.Increment();
    }
  }
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
  while (!queue.empty()) {
    QueuedMessage& front = queue.front();
    if (front.may_expire && front.message->expired(now_ms)) {
      if (front.qos == 0) --pending_qos0_;
      queue.pop_front();
      ++expired;
      continue;
    }
    Outgoing o;
    if (front.qos > 0) {
      if (inflight_.size() >= max_inflight) break;  // window full: wait for an ack
      o.packet_id = NextPacketId();
      inflight_.push_back(Inflight{o.packet_id, front, false});
    } else {
      --pending_qos0_;
    }
    o.queued = std::move(front);
    queue.pop_front();
    out->push_back(std::move(o));
  }
  if (queue.empty()) pending_.reset();
  return expired;
}

void Session::DropInflight(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  auto it = FindInflight(packet_id);
  if (it != inflight_.end()) inflight_.erase(it);
}

std::vector<QueuedMessage> Session::TakeSharedUnacknowledged() {
  absl::MutexLock lock(&mu_);
  std::vector<QueuedMessage> taken;
  // In flight and not yet acknowledged: a QoS 2 message after PUBREC has been received by the
  // client and is not redelivered (its `message` is gone, see OnPubrec).
  std::erase_if(inflight_, [&](Inflight& f) {
    if (f.queued.shared_group() == nullptr || f.queued.message == nullptr) return false;
    taken.push_back(std::move(f.queued));
    return true;
  });
  if (pending_) {
    std::erase_if(*pending_, [&](QueuedMessage& m) {
      if (m.shared_group() == nullptr || m.qos == 0) return false;
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
  inflight_.erase(it);
  return true;
}

bool Session::OnPubrec(uint16_t packet_id, bool failed) {
  absl::MutexLock lock(&mu_);
  auto it = FindInflight(packet_id);
  if (it == inflight_.end() || it->queued.qos != 2) return false;
  if (it->awaiting_pubcomp) return true;  // a repeated PUBREC: PUBREL is sent again
  if (failed) {
    inflight_.erase(it);
    return true;
  }
  it->awaiting_pubcomp = true;
  // The message itself is no longer needed: only PUBREL is ever resent from here on.
  it->queued.message.reset();
  return true;
}

bool Session::OnPubcomp(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  auto it = FindInflight(packet_id);
  if (it == inflight_.end() || !it->awaiting_pubcomp) return false;
  inflight_.erase(it);
  return true;
}

bool Session::RememberInboundQos2(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  if (!inbound_qos2_) inbound_qos2_ = std::make_unique<absl::flat_hash_set<uint16_t>>();
  return inbound_qos2_->insert(packet_id).second;
}

bool Session::ForgetInboundQos2(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  return inbound_qos2_ && inbound_qos2_->erase(packet_id) > 0;
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

}  // namespace meshmq
