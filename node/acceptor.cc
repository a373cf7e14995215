#include "node/acceptor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "node/broker.h"
#include "node/log.h"
#include "node/worker.h"

namespace meshmq {
namespace {

constexpr uint64_t kListenToken = 1;

struct ListenAddress {
  std::string host;
  int port = 0;
};

absl::StatusOr<ListenAddress> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", listen, "' is not HOST:PORT"));
  }
  ListenAddress a;
  a.host = listen.substr(0, colon);
  if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']') {
    a.host = a.host.substr(1, a.host.size() - 2);
  }
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &a.port) || a.port < 0 || a.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", listen, "' has no valid port"));
  }
  if (a.host.empty()) a.host = "0.0.0.0";
  return a;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Acceptor>> Acceptor::Bind(const std::string& listen,
                                                         Broker* broker) {
  absl::StatusOr<ListenAddress> address = ParseListen(listen);
  if (!address.ok()) return address.status();
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* in = reinterpret_cast<sockaddr_in*>(&storage);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, address->host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(address->port);
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address->host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address->port);
    length = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", listen, "': '", address->host, "' is not an IP address"));
  }
  int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || ::listen(fd, 4096) != 0) {
    std::string error = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ", error));
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  int port = bound.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                        : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return std::unique_ptr<Acceptor>(new Acceptor(fd, port, broker));
}

Acceptor::Acceptor(int listen_fd, int port, Broker* broker)
    : listen_fd_(listen_fd), port_(port), broker_(broker) {
  reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Acceptor::~Acceptor() {
  Stop();
  close(listen_fd_);
  if (reserve_fd_ >= 0) close(reserve_fd_);
}

void Acceptor::Start(const std::vector<Worker*>& workers) {
  workers_ = workers;
  loop_.Add(listen_fd_, kListenToken, EPOLLIN);
  thread_ = std::thread([this] { loop_.Run(this, absl::Seconds(1)); });
}

void Acceptor::Stop() {
  if (!thread_.joinable()) return;
  loop_.Stop();
  thread_.join();
}

void Acceptor::OnIo(uint64_t token, uint32_t events) {
  std::vector<std::vector<int>> batches(workers_.size());
  std::vector<std::vector<int>> refusals(workers_.size());
  for (int accepted = 0; accepted < 1024; ++accepted) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if ((errno == EMFILE || errno == ENFILE) && reserve_fd_ >= 0) {
        // Out of descriptors: the pending connection would make epoll spin. Free the reserve
        // fd, accept and close the connection, then take the reserve back.
        close(reserve_fd_);
        int shed = accept(listen_fd_, nullptr, nullptr);
        if (shed >= 0) close(shed);
        reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
        broker_->counters().connections_refused_max.Increment();
        Log(LogLevel::kWarning, "meshmqd: out of file descriptors, connection refused");
        continue;
      }
      break;  // EAGAIN: nothing more pending
    }
    bool over_quota = false;
    if (!broker_->TryAddConnection()) {
      // Beyond --max_connections: a few are kept just long enough to be told why at CONNECT
      // (CONNACK "quota exceeded"); past that they are closed at once.
      if (!broker_->TryAddRefusal()) {
        close(fd);
        broker_->counters().connections_refused_max.Increment();
        continue;
      }
      over_quota = true;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (over_quota ? refusals : batches)[next_worker_++ % workers_.size()].push_back(fd);
  }
  for (size_t i = 0; i < batches.size(); ++i) {
    if (!batches[i].empty()) workers_[i]->AdoptSockets(std::move(batches[i]), false);
    if (!refusals[i].empty()) workers_[i]->AdoptSockets(std::move(refusals[i]), true);
  }
}

}  // namespace meshmq
