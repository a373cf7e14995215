#include "node/session.h"

#include <algorithm>
#include <utility>

namespace meshmq {

Session::Session(std::string client_id, bool clean_session)
    : client_id_(std::move(client_id)), clean_session_(clean_session) {}

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
  username_ = std::move(username);
  flush_scheduled_ = false;
  return previous;
}

std::optional<SessionOwner> Session::ReleaseOwner() {
  absl::MutexLock lock(&mu_);
  std::optional<SessionOwner> previous = std::move(owner_);
  owner_.reset();
  flush_scheduled_ = false;
  return previous;
}

bool Session::Detach(const SessionOwner& owner) {
  absl::MutexLock lock(&mu_);
  if (!owner_ || !(*owner_ == owner)) return false;
  owner_.reset();
  flush_scheduled_ = false;
  // QoS 0 messages are not kept for an offline session (see Enqueue).
  DropPendingQos0();
  return true;
}

bool Session::IsOwner(const SessionOwner& owner) const {
  absl::MutexLock lock(&mu_);
  return owner_ && *owner_ == owner;
}

bool Session::online() const {
  absl::MutexLock lock(&mu_);
  return owner_.has_value();
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

void Session::TakeSendable(const SessionOwner& owner, size_t max_inflight,
                           std::vector<Outgoing>* out) {
  absl::MutexLock lock(&mu_);
  if (!owner_ || !(*owner_ == owner)) return;
  flush_scheduled_ = false;
  if (!pending_) return;
  std::deque<QueuedMessage>& queue = *pending_;
  while (!queue.empty()) {
    QueuedMessage& front = queue.front();
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

bool Session::OnPubrec(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  auto it = FindInflight(packet_id);
  if (it == inflight_.end() || it->queued.qos != 2) return false;
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

void Session::ForgetInboundQos2(uint16_t packet_id) {
  absl::MutexLock lock(&mu_);
  if (inbound_qos2_) inbound_qos2_->erase(packet_id);
}

std::map<std::string, uint8_t> Session::subscriptions() const {
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
