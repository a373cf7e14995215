#include "node/persistence.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "node/codec/codec.h"
#include "node/event_loop.h"
#include "node/session.h"

namespace meshmq {
namespace {

thread_local uint64_t t_ticket = 0;
thread_local uint64_t t_submits = 0;

}  // namespace

void Persistence::Submit(storage::Batch&& batch) {
  if (store_ == nullptr) return;
  ++t_submits;
  if (replication_ == nullptr || !batch.has_session_ops() || !replication_->active()) {
    const uint64_t ticket = store_->Submit(std::move(batch));
    if (ticket > t_ticket) t_ticket = ticket;
    return;
  }
  std::vector<std::pair<std::string, storage::RecordOp>> ops;
  batch.ForEachSessionOp([&ops](std::string_view client_id, storage::RecordOp&& op) {
    ops.emplace_back(std::string(client_id), std::move(op));
  });
  const uint64_t ticket = store_->Submit(std::move(batch), [this](uint64_t ticket) {
    absl::MutexLock lock(&replicating_mu_);
    ++replicating_[ticket];
    min_replicating_.store(replicating_.begin()->first, std::memory_order_seq_cst);
  });
  if (ticket > t_ticket) t_ticket = ticket;
  replication_->Replicate(std::move(ops), ticket);
}

uint64_t Persistence::durable_ticket() const {
  const uint64_t stored = store_ == nullptr ? 0 : store_->durable_ticket();
  const uint64_t replicating = min_replicating_.load(std::memory_order_seq_cst);
  return replicating == UINT64_MAX ? stored : std::min(stored, replicating - 1);
}

void Persistence::SetOnDurable(std::function<void(uint64_t, bool)> fn) {
  on_durable_ = std::move(fn);
  store_->SetOnDurable([this](uint64_t) { Notify(true); });
}

void Persistence::ReplicaDone(uint64_t ticket) {
  {
    absl::MutexLock lock(&replicating_mu_);
    auto it = replicating_.find(ticket);
    if (it == replicating_.end()) return;
    if (--it->second == 0) replicating_.erase(it);
    min_replicating_.store(replicating_.empty() ? UINT64_MAX : replicating_.begin()->first,
                           std::memory_order_seq_cst);
  }
  Notify(false);
}

void Persistence::Notify(bool store_wrote) {
  if (on_durable_) on_durable_(durable_ticket(), store_wrote);
}

uint64_t Persistence::ThreadTicket() { return t_ticket; }
uint64_t Persistence::ThreadSubmits() { return t_submits; }

int64_t Persistence::UnixMillis() { return absl::ToUnixMillis(absl::Now()); }

storage::StoredMessage Persistence::ToRecord(const Message& message) {
  storage::StoredMessage record;
  record.set_topic(message.topic);
  record.set_payload(message.payload);
  record.set_qos(message.qos);
  record.set_retain(message.retain);
  if (message.expires_at_ms != 0) {
    record.set_expires_at_unix_ms(UnixMillis() + (message.expires_at_ms - MonotonicMillis()));
  }
  if (message.properties && !message.properties->empty()) {
    codec::EncodePropertyBlock(*message.properties, record.mutable_properties());
  }
  record.set_id(message.id);
  record.set_qos2_key(message.qos2_key);
  record.set_resent(message.resent);
  return record;
}

MessagePtr Persistence::FromRecord(const storage::StoredMessage& record) {
  auto message = std::make_shared<Message>();
  message->topic = record.topic();
  message->payload = record.payload();
  message->qos = static_cast<uint8_t>(std::min<uint32_t>(record.qos(), 2));
  message->retain = record.retain();
  if (record.expires_at_unix_ms() != 0) {
    // Already past: keep it expired (a non-zero deadline in the past) rather than never-expiring.
    message->expires_at_ms =
        std::max<int64_t>(1, MonotonicMillis() + (record.expires_at_unix_ms() - UnixMillis()));
  }
  if (!record.properties().empty()) {
    codec::Properties properties;
    if (!codec::DecodePublishPropertyBlock(record.properties(), &properties)) return nullptr;
    if (!properties.empty()) {
      message->properties = std::make_unique<const codec::Properties>(std::move(properties));
    }
  }
  message->id = record.id();
  message->qos2_key = record.qos2_key();
  message->resent = record.resent();
  return message;
}

storage::QueuedRecord Persistence::ToRecord(const QueuedMessage& queued) {
  storage::QueuedRecord record;
  if (queued.message) *record.mutable_message() = ToRecord(*queued.message);
  record.set_qos(queued.qos);
  record.set_retain(queued.retain);
  if (queued.extras) {
    for (uint32_t id : queued.extras->subscription_ids) record.add_subscription_ids(id);
  }
  return record;
}

QueuedMessage Persistence::FromRecord(const storage::QueuedRecord& record) {
  QueuedMessage queued;
  if (record.has_message()) queued.message = FromRecord(record.message());
  queued.qos = static_cast<uint8_t>(std::min<uint32_t>(record.qos(), 2));
  queued.retain = record.retain();
  queued.may_expire = queued.message && queued.message->expires_at_ms != 0;
  if (record.subscription_ids_size() > 0) {
    auto extras = std::make_shared<DeliveryExtras>();
    extras->subscription_ids.assign(record.subscription_ids().begin(),
                                    record.subscription_ids().end());
    queued.extras = std::move(extras);
  }
  return queued;
}

storage::SessionRecord Persistence::ToRecord(
    uint32_t expiry_interval, int64_t disconnected_at_unix_ms,
    const std::map<std::string, SubscriptionOptions>& subscriptions) {
  storage::SessionRecord record;
  record.set_expiry_interval(expiry_interval);
  record.set_disconnected_at_unix_ms(disconnected_at_unix_ms);
  for (const auto& [filter, options] : subscriptions) {
    storage::SubscriptionRecord* s = record.add_subscriptions();
    s->set_filter(filter);
    s->set_qos(options.qos);
    s->set_no_local(options.no_local);
    s->set_retain_as_published(options.retain_as_published);
    s->set_retain_handling(options.retain_handling);
    s->set_subscription_id(options.subscription_id);
  }
  return record;
}

SubscriptionOptions Persistence::FromRecord(const storage::SubscriptionRecord& record) {
  SubscriptionOptions options;
  options.qos = static_cast<uint8_t>(std::min<uint32_t>(record.qos(), 2));
  options.no_local = record.no_local();
  options.retain_as_published = record.retain_as_published();
  options.retain_handling = static_cast<uint8_t>(std::min<uint32_t>(record.retain_handling(), 2));
  options.subscription_id = record.subscription_id();
  return options;
}

}  // namespace meshmq
