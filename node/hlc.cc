#include "node/hlc.h"

#include <algorithm>
#include <chrono>

namespace meshmq {

HybridClock::HybridClock(std::function<int64_t()> wall_ms) : wall_ms_(std::move(wall_ms)) {}

uint64_t HybridClock::Wall() const {
  const int64_t ms = wall_ms_ ? wall_ms_()
                              : std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
  return static_cast<uint64_t>(std::max<int64_t>(ms, 0)) << 16;
}

uint64_t HybridClock::Now() {
  const uint64_t wall = Wall();
  uint64_t last = last_.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    // Physical time if it moved on, else one tick past the last reading (the counter carries
    // into the millisecond bits if a millisecond sees over 65535 readings: still monotonic).
    next = std::max(wall, last + 1);
  } while (!last_.compare_exchange_weak(last, next, std::memory_order_relaxed));
  return next;
}

void HybridClock::Observe(uint64_t remote) {
  uint64_t last = last_.load(std::memory_order_relaxed);
  while (remote > last &&
         !last_.compare_exchange_weak(last, remote, std::memory_order_relaxed)) {
  }
}

}  // namespace meshmq
