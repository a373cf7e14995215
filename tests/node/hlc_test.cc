// The hybrid logical clock (node/hlc.h): readings never go backwards on one node, whatever the
// wall clock does, and move past every reading observed from another node. The wall clock is
// injected, so nothing here depends on the machine's time.
#include "node/hlc.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace meshmq {
namespace {

// A wall clock the test moves by hand.
class FakeWall {
 public:
  explicit FakeWall(int64_t ms) : ms_(ms) {}
  void Set(int64_t ms) { ms_.store(ms); }
  std::function<int64_t()> Fn() {
    return [this] { return ms_.load(); };
  }

 private:
  std::atomic<int64_t> ms_;
};

constexpr int64_t kStart = 1'700'000'000'000;  // Unix ms, 2023

uint64_t Reading(int64_t ms, uint16_t counter = 0) {
  return (static_cast<uint64_t>(ms) << 16) | counter;
}

TEST(HybridClockTest, FollowsTheWallClockWhileItMovesOn) {
  FakeWall wall(kStart);
  HybridClock clock(wall.Fn());
  const uint64_t first = clock.Now();
  EXPECT_EQ(first, Reading(kStart));
  EXPECT_EQ(HybridClock::Physical(first), static_cast<uint64_t>(kStart));
  wall.Set(kStart + 5);
  const uint64_t second = clock.Now();
  EXPECT_EQ(second, Reading(kStart + 5));
  EXPECT_EQ(HybridClock::Physical(second), static_cast<uint64_t>(kStart + 5));
}

TEST(HybridClockTest, StandingStillWallClockStillGivesRisingReadings) {
  FakeWall wall(kStart);
  HybridClock clock(wall.Fn());
  uint64_t last = clock.Now();
  for (int i = 0; i < 1000; ++i) {
    const uint64_t next = clock.Now();
    ASSERT_GT(next, last);
    last = next;
  }
  // The counter took the ticks: the physical part is still the wall's.
  EXPECT_EQ(HybridClock::Physical(last), static_cast<uint64_t>(kStart));
  EXPECT_EQ(last, Reading(kStart, 1000));
}

TEST(HybridClockTest, WallClockGoingBackwardsDoesNotTakeTheClockBack) {
  FakeWall wall(kStart + 10'000);
  HybridClock clock(wall.Fn());
  const uint64_t before = clock.Now();
  wall.Set(kStart);  // NTP stepped the clock back 10 s
  uint64_t last = before;
  for (int i = 0; i < 100; ++i) {
    const uint64_t next = clock.Now();
    ASSERT_GT(next, last);
    last = next;
  }
  EXPECT_EQ(HybridClock::Physical(last), static_cast<uint64_t>(kStart + 10'000));
  // Once the wall passes the old time again, readings follow it.
  wall.Set(kStart + 10'001);
  const uint64_t caught_up = clock.Now();
  EXPECT_GT(caught_up, last);
  EXPECT_EQ(caught_up, Reading(kStart + 10'001));
}

TEST(HybridClockTest, NegativeWallClockCountsAsZero) {
  FakeWall wall(-5);
  HybridClock clock(wall.Fn());
  const uint64_t first = clock.Now();
  EXPECT_EQ(HybridClock::Physical(first), 0u);
  EXPECT_GT(clock.Now(), first);
}

TEST(HybridClockTest, CounterCarriesIntoMillisecondsAndStaysMonotonic) {
  FakeWall wall(kStart);
  HybridClock clock(wall.Fn());
  uint64_t last = clock.Now();
  for (int i = 0; i < 70'000; ++i) {  // more than a 16-bit counter holds in one millisecond
    const uint64_t next = clock.Now();
    ASSERT_GT(next, last);
    last = next;
  }
  EXPECT_EQ(HybridClock::Physical(last), static_cast<uint64_t>(kStart + 1));
}

TEST(HybridClockTest, ObserveMovesPastARemoteReadingAhead) {
  FakeWall wall(kStart);
  HybridClock clock(wall.Fn());
  const uint64_t local = clock.Now();
  const uint64_t remote = Reading(kStart + 60'000, 7);  // a peer whose clock is a minute ahead
  clock.Observe(remote);
  const uint64_t next = clock.Now();
  EXPECT_GT(next, remote);
  EXPECT_GT(next, local);
  EXPECT_EQ(next, remote + 1);
  EXPECT_EQ(HybridClock::Physical(next), static_cast<uint64_t>(kStart + 60'000));
  // And keeps rising from there while the wall is still behind.
  EXPECT_GT(clock.Now(), next);
}

TEST(HybridClockTest, ObservingAnOlderReadingChangesNothing) {
  FakeWall wall(kStart);
  HybridClock clock(wall.Fn());
  const uint64_t first = clock.Now();
  clock.Observe(Reading(kStart - 1'000));
  clock.Observe(first);  // equal: nothing to move past
  EXPECT_EQ(clock.Now(), first + 1);
}

TEST(HybridClockTest, NowAfterObserveIsAboveTheRemoteForAnyRemote) {
  FakeWall wall(kStart);
  HybridClock clock(wall.Fn());
  const uint64_t remotes[] = {Reading(kStart - 5, 3), Reading(kStart, 0), Reading(kStart, 65535),
                              Reading(kStart + 1, 0), Reading(kStart + 1'000'000, 12)};
  for (const uint64_t remote : remotes) {
    clock.Observe(remote);
    EXPECT_GT(clock.Now(), remote) << "remote " << remote;
  }
}

TEST(HybridClockTest, DefaultClockUsesTheSystemTime) {
  HybridClock clock;
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const uint64_t reading = clock.Now();
  const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  EXPECT_GE(HybridClock::Physical(reading), static_cast<uint64_t>(before));
  EXPECT_LE(HybridClock::Physical(reading), static_cast<uint64_t>(after));
  EXPECT_GT(clock.Now(), reading);
}

TEST(HybridClockTest, ConcurrentReadingsAreAllDistinct) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10'000;
  FakeWall wall(kStart);  // standing still: every reading comes from the counter race
  HybridClock clock(wall.Fn());
  std::vector<std::vector<uint64_t>> readings(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&clock, &readings, t] {
      readings[t].reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) readings[t].push_back(clock.Now());
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<uint64_t> all;
  for (const std::vector<uint64_t>& mine : readings) {
    // Each thread sees its own readings rise.
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
    EXPECT_EQ(std::adjacent_find(mine.begin(), mine.end()), mine.end());
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  // No reading skipped: the clock handed out exactly the next 40000 values.
  EXPECT_EQ(all.back() - all.front(), static_cast<uint64_t>(kThreads * kPerThread - 1));
}

TEST(HybridClockTest, ConcurrentNowAndObserveStayAbovePublishedRemotes) {
  FakeWall wall(kStart);
  HybridClock clock(wall.Fn());
  std::atomic<uint64_t> observed{0};
  std::atomic<bool> failed{false};
  std::thread observer([&] {
    for (uint16_t i = 1; i <= 5'000; ++i) {
      const uint64_t remote = Reading(kStart + i, 0);
      clock.Observe(remote);
      observed.store(remote, std::memory_order_release);
    }
  });
  std::thread reader([&] {
    for (int i = 0; i < 20'000; ++i) {
      const uint64_t seen = observed.load(std::memory_order_acquire);
      if (clock.Now() <= seen) failed = true;
    }
  });
  observer.join();
  reader.join();
  EXPECT_FALSE(failed.load());
  EXPECT_GT(clock.Now(), Reading(kStart + 5'000));
}

}  // namespace
}  // namespace meshmq
