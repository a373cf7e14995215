#include "node/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace meshmq {
namespace {
constexpr int kMaxEventsPerWait = 256;
}  // namespace

int64_t MonotonicMillis() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1'000'000;
}

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    status_ = absl::InternalError(absl::StrCat("event loop: ", std::strerror(errno)));
    return;
  }
  if (!Add(wake_fd_, 0, EPOLLIN)) {
    status_ = absl::InternalError(absl::StrCat("event loop: ", std::strerror(errno)));
  }
}

EventLoop::~EventLoop() {
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

bool EventLoop::Post(Task task) {
  bool was_empty;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return false;
    was_empty = tasks_.empty();
    tasks_.push_back(std::move(task));
  }
  if (was_empty) {
    uint64_t one = 1;
    // A full counter (EAGAIN) still means a wake-up is pending, which is all we need.
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }
  return true;
}

void EventLoop::Stop() {
  stopping_.store(true);
  Post([] {});
}

bool EventLoop::Add(int fd, uint64_t token, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool EventLoop::Modify(int fd, uint64_t token, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::Remove(int fd) { epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::RunPostedTasks() {
  {
    absl::MutexLock lock(&mu_);
    running_.swap(tasks_);
  }
  for (Task& task : running_) task();
  running_.clear();
}

void EventLoop::Run(Handler* handler, absl::Duration tick) {
  epoll_event events[kMaxEventsPerWait];
  absl::Time next_tick = absl::Now() + tick;
  while (!stopping_.load(std::memory_order_relaxed)) {
    // Round up: a deadline 0.4 ms away must sleep 1 ms, not spin with timeout 0 until it passes.
    const absl::Duration until_tick = std::max(absl::ZeroDuration(), next_tick - absl::Now());
    int timeout_ms =
        static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(until_tick, absl::Milliseconds(1))));
    int n = epoll_wait(epoll_fd_, events, kMaxEventsPerWait, timeout_ms);
    if (n < 0 && errno != EINTR) break;
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == 0) {
        woken = true;
        continue;
      }
      handler->OnIo(events[i].data.u64, events[i].events);
    }
    if (woken) {
      uint64_t count;
      [[maybe_unused]] ssize_t r = read(wake_fd_, &count, sizeof(count));
    }
    RunPostedTasks();
    handler->OnIterationEnd();
    absl::Time now = absl::Now();
    if (now >= next_tick) {
      handler->OnTick(now);
      next_tick = now + tick;
    }
  }
  // Let shutdown tasks run, and those they post; from then on Post refuses, so nobody waits for
  // a task that would never run.
  for (;;) {
    RunPostedTasks();
    absl::MutexLock lock(&mu_);
    if (tasks_.empty()) {
      finished_ = true;
      break;
    }
  }
}

}  // namespace meshmq
