#include "node/event_loop.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace meshmq {
namespace {

class RecordingHandler : public EventLoop::Handler {
 public:
  void OnIo(uint64_t token, uint32_t events) override {
    tokens.push_back(token);
    char buffer[16];
    [[maybe_unused]] ssize_t n = read(read_fd, buffer, sizeof(buffer));
    if (on_io) on_io();
  }
  void OnIterationEnd() override { ++iterations; }
  void OnTick(absl::Time now) override { ++ticks; }

  int read_fd = -1;
  std::function<void()> on_io;
  std::vector<uint64_t> tokens;
  std::atomic<int> iterations{0};
  std::atomic<int> ticks{0};
};

TEST(EventLoopTest, TasksPostedFromOtherThreadsRunInOrderOnTheLoopThread) {
  EventLoop loop;
  ASSERT_TRUE(loop.status().ok());
  RecordingHandler handler;
  std::vector<int> seen;
  std::thread::id loop_thread;
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    loop.Run(&handler, absl::Seconds(10));
  });
  std::thread poster([&] {
    for (int i = 0; i < 1000; ++i) {
      loop.Post([&seen, i, &loop_thread] {
        EXPECT_EQ(std::this_thread::get_id(), loop_thread);
        seen.push_back(i);
      });
    }
  });
  poster.join();
  absl::Notification done;
  loop.Post([&] { done.Notify(); });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  loop.Stop();
  runner.join();
  ASSERT_EQ(seen.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(seen[i], i);
}

TEST(EventLoopTest, ReadyFileDescriptorsReachTheHandlerWithTheirToken) {
  EventLoop loop;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  RecordingHandler handler;
  handler.read_fd = fds[0];
  absl::Notification got_io;
  handler.on_io = [&] { got_io.Notify(); };
  ASSERT_TRUE(loop.Add(fds[0], 42, EPOLLIN));
  std::thread runner([&] { loop.Run(&handler, absl::Seconds(10)); });
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  ASSERT_TRUE(got_io.WaitForNotificationWithTimeout(absl::Seconds(10)));
  loop.Stop();
  runner.join();
  ASSERT_FALSE(handler.tokens.empty());
  EXPECT_EQ(handler.tokens[0], 42u);
  EXPECT_GT(handler.iterations.load(), 0);
  close(fds[0]);
  close(fds[1]);
}

TEST(EventLoopTest, TicksArriveWithoutAnyTraffic) {
  EventLoop loop;
  RecordingHandler handler;
  std::thread runner([&] { loop.Run(&handler, absl::Milliseconds(5)); });
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (handler.ticks.load() < 3 && absl::Now() < deadline) std::this_thread::yield();
  loop.Stop();
  runner.join();
  EXPECT_GE(handler.ticks.load(), 3);
}

TEST(EventLoopTest, TasksPostedBeforeStopStillRun) {
  EventLoop loop;
  RecordingHandler handler;
  std::atomic<int> ran{0};
  for (int i = 0; i < 10; ++i) loop.Post([&] { ++ran; });
  loop.Stop();
  loop.Run(&handler, absl::Seconds(10));  // returns at once: already stopping
  EXPECT_EQ(ran.load(), 10);
}

}  // namespace
}  // namespace meshmq
