// An epoll loop for one thread, with a task queue other threads post to (Envoy's dispatcher
// model): the eventfd is written only when the queue goes from empty to non-empty, so a burst of
// posts costs one wake-up.
#ifndef MESHMQ_NODE_EVENT_LOOP_H_
#define MESHMQ_NODE_EVENT_LOOP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace meshmq {

// Milliseconds on a coarse monotonic clock: cheap enough to read on every socket read, and
// immune to wall-clock jumps, which is what keepalive and CONNECT deadlines need.
int64_t MonotonicMillis();

class EventLoop {
 public:
  using Task = std::function<void()>;

  // What the loop calls back on its own thread.
  class Handler {
   public:
    virtual ~Handler() = default;
    // Readiness `events` (EPOLLIN, ...) for the fd registered with `token`.
    virtual void OnIo(uint64_t token, uint32_t events) = 0;
    // After each round of I/O and posted tasks: the place to flush batched output.
    virtual void OnIterationEnd() = 0;
    // About every `tick` passed to Run.
    virtual void OnTick(absl::Time now) = 0;
  };

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  absl::Status status() const { return status_; }

  // --- Any thread ---
  // Queues `task` to run on the loop's thread. Returns false, dropping it, once the loop has
  // ended (after Stop(), when it ran the last tasks posted before).
  bool Post(Task task);
  void Stop();

  // --- Loop thread (or before Run) ---
  // Token 0 is reserved for the wake-up eventfd.
  bool Add(int fd, uint64_t token, uint32_t events);
  bool Modify(int fd, uint64_t token, uint32_t events);
  void Remove(int fd);
  // Runs until Stop(). Posted tasks run in order, between I/O rounds.
  void Run(Handler* handler, absl::Duration tick);

 private:
  void RunPostedTasks();

  absl::Status status_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::vector<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Task> running_;  // swapped with tasks_ so tasks run without the lock
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_EVENT_LOOP_H_
