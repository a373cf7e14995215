#include "node/worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "node/broker.h"
#include "node/connection.h"

namespace meshmq {
namespace {

// Connection ids are unique across the node, so a stale id posted to a worker can never
// address a newer connection that reused the same fd.
std::atomic<uint64_t> next_connection_id{1};

// How often a worker checks keepalive and CONNECT deadlines.
constexpr absl::Duration kTick = absl::Milliseconds(100);

}  // namespace

const char* DisconnectReasonName(DisconnectReason reason) {
  switch (reason) {
    case DisconnectReason::kClientDisconnect:
      return "client_disconnect";
    case DisconnectReason::kConnectionLost:
      return "connection_lost";
    case DisconnectReason::kKeepaliveTimeout:
      return "keepalive_timeout";
    case DisconnectReason::kSessionTakenOver:
      return "session_taken_over";
    case DisconnectReason::kProtocolError:
      return "protocol_error";
    case DisconnectReason::kPacketTooLarge:
      return "packet_too_large";
    case DisconnectReason::kServerShutdown:
      return "server_shutdown";
    case DisconnectReason::kNotServing:
      return "not_serving";
    case DisconnectReason::kClusterRefused:
      return "cluster_forward_refused";
    case DisconnectReason::kServerError:
      return "server_error";
    case DisconnectReason::kAdministrativeAction:
      return "administrative_action";
    case DisconnectReason::kCount:
      break;
  }
  return "unknown";
}

Worker::Worker(Broker* broker, int index) : broker_(broker), index_(index) {}

Worker::~Worker() {
  Stop();
  Join();
}

void Worker::Start() {
  thread_ = std::thread([this] {
    thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    loop_.Run(this, kTick);
    // Shut down: every connection goes. The clients sent no DISCONNECT, so their wills are
    // published, as Mosquitto does (retained wills outlive the node).
    for (auto& [id, connection] : connections_) {
      connection->Close("broker shutting down", true, codec::reason::kServerShuttingDown);
    }
    OnIterationEnd();
  });
}

void Worker::Stop() { loop_.Stop(); }

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::AdoptSockets(std::vector<int> fds, bool over_quota) {
  Post([this, fds = std::move(fds), over_quota] {
    const int64_t now_ms = MonotonicMillis();
    for (int fd : fds) {
      uint64_t id = next_connection_id.fetch_add(1);
      auto connection = std::make_unique<Connection>(broker_, this, fd, id, now_ms, over_quota);
      if (!loop_.Add(fd, id, EPOLLIN | EPOLLRDHUP)) {
        connection->Close("epoll registration failed", false);
      }
      stats_.connections.fetch_add(1, std::memory_order_relaxed);
      connections_.emplace(id, std::move(connection));
    }
  });
}

void Worker::RequestFlush(uint64_t connection_id) {
  if (InWorkerThread()) {
    flush_requests_.push_back(connection_id);
    return;
  }
  Post([this, connection_id] { flush_requests_.push_back(connection_id); });
}

void Worker::Kick(uint64_t connection_id) {
  Post([this, connection_id] {
    if (Connection* connection = Find(connection_id)) {
      connection->Close("client id taken over by a new connection", true,
                        codec::reason::kSessionTakenOver);
    }
  });
}

void Worker::CloseAll(std::string reason, uint8_t disconnect_reason, bool publish_wills) {
  Post([this, reason = std::move(reason), disconnect_reason, publish_wills] {
    for (auto& [id, connection] : connections_) {
      if (!connection->closing()) connection->Close(reason, publish_wills, disconnect_reason);
    }
  });
}

void Worker::ResumeInput(uint64_t connection_id) {
  Post([this, connection_id] {
    if (Connection* connection = Find(connection_id)) connection->ResumeInput();
  });
}

bool Worker::DescribeConnections(std::vector<uint64_t> connection_ids,
                                 std::function<void(std::vector<ConnectionInfo>)> done) {
  return Post([this, ids = std::move(connection_ids), done = std::move(done)] {
    std::vector<ConnectionInfo> infos;
    for (uint64_t id : ids) {
      Connection* connection = Find(id);
      if (connection == nullptr || connection->closing()) continue;
      sockaddr_storage address{};
      socklen_t length = sizeof(address);
      char host[INET6_ADDRSTRLEN] = {};
      std::string name = "?";
      if (getpeername(connection->fd(), reinterpret_cast<sockaddr*>(&address), &length) == 0) {
        if (address.ss_family == AF_INET) {
          const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
          inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
          name = std::string(host) + ":" + std::to_string(ntohs(v4->sin_port));
        } else if (address.ss_family == AF_INET6) {
          const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
          inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
          name = "[" + std::string(host) + "]:" + std::to_string(ntohs(v6->sin6_port));
        }
      }
      ConnectionInfo& info = infos.emplace_back();
      info.connection_id = id;
      info.peer_address = std::move(name);
      info.protocol_level = static_cast<uint8_t>(connection->version());
      info.keep_alive = connection->keep_alive();
    }
    done(std::move(infos));
  });
}

void Worker::CloseByAdmin(uint64_t connection_id, bool publish_will) {
  Post([this, connection_id, publish_will] {
    if (Connection* connection = Find(connection_id); connection && !connection->closing()) {
      connection->Close("closed by an administrator", publish_will,
                        codec::reason::kAdministrativeAction);
    }
  });
}

void Worker::CloseTakenOver(uint64_t connection_id, bool publish_will) {
  if (Connection* connection = Find(connection_id)) {
    connection->Close("client id taken over by a connection to another node", publish_will,
                      codec::reason::kSessionTakenOver);
  }
}

void Worker::OnSessionTaken(uint64_t connection_id, std::optional<storage::LoadedSession> moved) {
  if (Connection* connection = Find(connection_id)) {
    connection->ResumeConnect(std::move(moved));
  } else if (moved) {
    // The connection is gone, but its old node gave the session up: it lives here, offline.
    broker_->ImportSession(*moved);
  }
}

void Worker::SetReading(Connection* connection, bool reading) {
  loop_.Modify(connection->fd(), connection->id(), reading ? EPOLLIN | EPOLLRDHUP : 0);
}

void Worker::MarkForWrite(Connection* connection) { to_write_.push_back(connection->id()); }

void Worker::ScheduleClose(Connection* connection) { to_close_.push_back(connection->id()); }

void Worker::SetWritable(Connection* connection, bool want_write) {
  loop_.Modify(connection->fd(), connection->id(),
               EPOLLIN | EPOLLRDHUP | (want_write ? EPOLLOUT : 0));
}

void Worker::OnDurable(uint64_t durable) {
  if (durable_waiters_.empty()) return;
  const bool failed = !broker_->store_ok();
  std::vector<uint64_t> waiting;
  waiting.swap(durable_waiters_);
  for (uint64_t id : waiting) {
    Connection* connection = Find(id);
    if (connection == nullptr || connection->closing()) continue;
    if (failed) {
      // Its messages may not be on disk: no ack. The client sends them again to whichever
      // node it reaches next.
      connection->Close("the node's store failed; acknowledgements withheld", false,
                        codec::reason::kUnspecifiedError);
      continue;
    }
    if (connection->ReleaseDurableOutput(durable)) durable_waiters_.push_back(id);
  }
}

void Worker::OnClusterWaitDone(uint64_t connection_id, uint64_t seq, bool ok) {
  Connection* connection = Find(connection_id);
  if (connection != nullptr) connection->OnClusterWaitDone(seq, ok);
}

Connection* Worker::Find(uint64_t connection_id) {
  auto it = connections_.find(connection_id);
  return it == connections_.end() ? nullptr : it->second.get();
}

void Worker::OnIo(uint64_t token, uint32_t events) {
  Connection* connection = Find(token);
  if (connection == nullptr || connection->closing()) return;
  if (events & EPOLLOUT) connection->OnWritable();
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) connection->OnReadable();
}

void Worker::OnIterationEnd() {
  // Flush requests may add output and closes; output may fail and add closes; so this order.
  for (size_t i = 0; i < flush_requests_.size(); ++i) {
    if (Connection* connection = Find(flush_requests_[i])) connection->DeliverPending();
  }
  flush_requests_.clear();
  for (size_t i = 0; i < to_write_.size(); ++i) {
    if (Connection* connection = Find(to_write_[i])) connection->FlushOutput();
  }
  to_write_.clear();
  for (size_t i = 0; i < to_close_.size(); ++i) {
    auto it = connections_.find(to_close_[i]);
    if (it == connections_.end()) continue;
    loop_.Remove(it->second->fd());
    const bool over_quota = it->second->over_quota();
    connections_.erase(it);
    stats_.connections.fetch_sub(1, std::memory_order_relaxed);
    if (over_quota) {
      broker_->RemoveRefusal();
    } else {
      broker_->RemoveConnection();
    }
  }
  to_close_.clear();
}

void Worker::OnTick(absl::Time now) {
  const int64_t now_ms = MonotonicMillis();
  for (auto& [id, connection] : connections_) connection->OnTick(now_ms);
  if (index_ == 0) broker_->Housekeeping(now_ms);
  if (index_ == 0 && broker_->config().sys_interval > absl::ZeroDuration() &&
      now >= next_sys_publish_) {
    broker_->PublishSysTopics();
    next_sys_publish_ = now + broker_->config().sys_interval;
  }
  OnIterationEnd();
}

}  // namespace meshmq
