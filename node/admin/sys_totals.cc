#include "node/admin/sys_totals.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "node/broker.h"

namespace meshmq::admin {
namespace {

// A peer slower than this is left out of a round even with a very short --sys_interval.
constexpr absl::Duration kMinDeadline = absl::Milliseconds(200);

}  // namespace

SysTotals::SysTotals(Broker* broker, LocalAdmin* local, absl::Duration interval,
                     absl::Duration deadline)
    : broker_(broker),
      local_(local),
      interval_(interval),
      peers_(local->cluster(), std::max(kMinDeadline, std::min(deadline, interval))) {}

SysTotals::~SysTotals() { Stop(); }

void SysTotals::Start() {
  if (interval_ <= absl::ZeroDuration() || thread_.joinable()) return;
  Publish({local_->SysStats()});
  thread_ = std::thread([this] { Run(); });
}

void SysTotals::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void SysTotals::Run() {
  absl::Time next = absl::Now() + interval_;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithDeadline(absl::Condition(&stopping), next)) return;
    }
    // Rounds keep their pace; one that took longer than the interval is followed at once.
    next = std::max(next + interval_, absl::Now());
    Round();
  }
}

void SysTotals::Round() {
  std::vector<NodeSysStats> nodes = {local_->SysStats()};
  const SysStatsRequest request;
  auto answers = peers_.Ask<NodeSysStats>(
      [&request](AdminPeer::Stub* stub, grpc::ClientContext* context, NodeSysStats* reply,
                 std::function<void(grpc::Status)> done) {
        stub->async()->LocalSysStats(context, &request, reply, std::move(done));
      });
  for (auto& answer : answers) {
    if (answer.status.ok()) nodes.push_back(std::move(answer.reply));
  }
  Publish(nodes);
}

std::vector<std::pair<std::string, std::string>> SysTotals::Totals(
    const std::vector<NodeSysStats>& nodes) {
  NodeSysStats sum;
  uint64_t retained = 0;
  for (const NodeSysStats& node : nodes) {
    sum.set_clients_connected(sum.clients_connected() + node.clients_connected());
    sum.set_clients_total(sum.clients_total() + node.clients_total());
    sum.set_messages_received(sum.messages_received() + node.messages_received());
    sum.set_messages_sent(sum.messages_sent() + node.messages_sent());
    sum.set_bytes_received(sum.bytes_received() + node.bytes_received());
    sum.set_bytes_sent(sum.bytes_sent() + node.bytes_sent());
    sum.set_subscriptions(sum.subscriptions() + node.subscriptions());
    retained = std::max<uint64_t>(retained, node.retained());
  }
  const uint64_t disconnected = sum.clients_total() > sum.clients_connected()
                                    ? sum.clients_total() - sum.clients_connected()
                                    : 0;
  return {
      {"clients/connected", absl::StrCat(sum.clients_connected())},
      {"clients/disconnected", absl::StrCat(disconnected)},
      {"clients/total", absl::StrCat(sum.clients_total())},
      {"messages/received", absl::StrCat(sum.messages_received())},
      {"messages/sent", absl::StrCat(sum.messages_sent())},
      {"bytes/received", absl::StrCat(sum.bytes_received())},
      {"bytes/sent", absl::StrCat(sum.bytes_sent())},
      {"retained messages/count", absl::StrCat(retained)},
      {"subscriptions/count", absl::StrCat(sum.subscriptions())},
      {"nodes", absl::StrCat(nodes.size())},
  };
}

void SysTotals::Publish(const std::vector<NodeSysStats>& nodes) {
  for (auto& [name, value] : Totals(nodes)) {
    auto message = std::make_shared<Message>();
    message->topic = absl::StrCat("$SYS/cluster/", name);
    message->payload = std::move(value);
    message->retain = true;
    broker_->Publish(message);
  }
}

}  // namespace meshmq::admin
