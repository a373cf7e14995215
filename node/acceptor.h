// The listener: one thread accepts connections and hands each socket round-robin to a worker,
// which owns it for life. Over --max_connections a socket is closed at once and counted.
#ifndef MESHMQ_NODE_ACCEPTOR_H_
#define MESHMQ_NODE_ACCEPTOR_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "node/event_loop.h"

namespace meshmq {

class Broker;
class Worker;

class Acceptor : public EventLoop::Handler {
 public:
  // Binds `listen` ("HOST:PORT", "[V6]:PORT"; port 0 picks a free port).
  static absl::StatusOr<std::unique_ptr<Acceptor>> Bind(const std::string& listen, Broker* broker);
  ~Acceptor() override;

  int port() const { return port_; }
  void Start(const std::vector<Worker*>& workers);
  void Stop();

  void OnIo(uint64_t token, uint32_t events) override;
  void OnIterationEnd() override {}
  void OnTick(absl::Time now) override {}

 private:
  Acceptor(int listen_fd, int port, Broker* broker);

  const int listen_fd_;
  const int port_;
  Broker* const broker_;
  int reserve_fd_ = -1;  // released to shed a connection when the process runs out of fds
  std::vector<Worker*> workers_;
  size_t next_worker_ = 0;
  EventLoop loop_;
  std::thread thread_;
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_ACCEPTOR_H_
