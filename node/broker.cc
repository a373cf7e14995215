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
#include "node/worker.h"

namespace meshmq {
namespace {

constexpr char kVersion[] = "meshmq 0.1.0";

}  // namespace

Broker::Broker(BrokerConfig config)
    : config_(std::move(config)), auth_(std::make_shared<const AuthConfig>()) {}

Broker::~Broker() { Stop(); }

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
}

bool Broker::TryAddConnection() {
  if (connections_.fetch_add(1) >= static_cast<int64_t>(config_.max_connections)) {
    connections_.fetch_sub(1);
    return false;
  }
  return true;
}

void Broker::RemoveConnection() { connections_.fetch_sub(1); }

std::string Broker::GenerateClientId() {
  thread_local std::mt19937_64 random(std::random_device{}());
  return absl::StrFormat("meshmq-%016x-%d", random(), next_client_number_.fetch_add(1));
}

void Broker::Publish(const MessagePtr& message) {
  if (message->retain) retained_.Set(message);

  // Collect under the trie's reader lock, deliver after releasing it.
  thread_local std::vector<SubscriberRef> matches;
  matches.clear();
  subscriptions_.Match(
      message->topic, [](const std::string&, const SubscriberRef& ref) { matches.push_back(ref); });
  if (matches.empty()) return;
  // Overlapping subscriptions of one client deliver once, at the highest granted QoS
  // (MQTT-3.3.5-1).
  if (matches.size() > 1) {
    std::sort(matches.begin(), matches.end(), [](const SubscriberRef& a, const SubscriberRef& b) {
      return a.session.get() < b.session.get() ||
             (a.session.get() == b.session.get() && a.qos > b.qos);
    });
    matches.erase(std::unique(matches.begin(), matches.end(),
                              [](const SubscriberRef& a, const SubscriberRef& b) {
                                return a.session.get() == b.session.get();
                              }),
                  matches.end());
  }

  std::shared_ptr<const AuthConfig> auth = auth_if_acl();
  for (const SubscriberRef& ref : matches) {
    if (auth && auth->acl &&
        !auth->acl->CheckTopic(ref.session->username(), ref.session->client_id(), message->topic,
                               auth::AclFile::Access::kRead)) {
      continue;
    }
    // Forwarded copies carry RETAIN=0 (MQTT-3.3.1-9) and QoS min(published, granted).
    std::optional<SessionOwner> wake = ref.session->Enqueue(
        QueuedMessage{message, std::min(message->qos, ref.qos), false}, queue_limits(), &counters_);
    if (wake) wake->worker->RequestFlush(wake->connection_id);
  }
  matches.clear();
}

void Broker::DiscardSession(const std::shared_ptr<Session>& session) {
  session->Discard(
      [&](const std::string& filter) { subscriptions_.Erase(filter, session->client_id()); });
}

void Broker::PublishSysTopics() {
  uint64_t received = 0;
  uint64_t sent = 0;
  uint64_t connected = 0;
  for (const auto& worker : workers_) {
    received += worker->stats().messages_received.load(std::memory_order_relaxed);
    sent += worker->stats().messages_sent.load(std::memory_order_relaxed);
    connected += worker->stats().connections.load(std::memory_order_relaxed);
  }
  auto publish = [this](std::string topic, std::string payload) {
    auto message = std::make_shared<Message>();
    message->topic = std::move(topic);
    message->payload = std::move(payload);
    message->retain = true;
    Publish(message);
  };
  publish("$SYS/broker/version", kVersion);
  publish("$SYS/broker/uptime",
          absl::StrCat(absl::ToInt64Seconds(absl::Now() - started_at_), " seconds"));
  publish("$SYS/broker/clients/connected", absl::StrCat(connected));
  publish("$SYS/broker/messages/received", absl::StrCat(received));
  publish("$SYS/broker/messages/sent", absl::StrCat(sent));
  publish("$SYS/broker/retained messages/count", absl::StrCat(retained_.size()));
  publish("$SYS/broker/subscriptions/count", absl::StrCat(subscriptions_.size()));
  counters_.ForEach([&](const char* name, uint64_t value) {
    publish(absl::StrCat("$SYS/broker/counters/", name), absl::StrCat(value));
  });
}

}  // namespace meshmq
