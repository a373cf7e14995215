// A hybrid logical clock (Kulkarni et al., 2014): readings are 48 bits of Unix milliseconds and a
// 16-bit counter, never go backwards on one node, and move past every reading the node has seen
// from others. Retained messages are versioned with it (node/retained_store.h), so the last
// write wins by real time where clocks agree and by causality where they do not.
//
// THREADING: thread-safe, lock-free.
#ifndef MESHMQ_NODE_HLC_H_
#define MESHMQ_NODE_HLC_H_

#include <atomic>
#include <cstdint>
#include <functional>

namespace meshmq {

class HybridClock {
 public:
  // `wall_ms`: the physical clock, Unix milliseconds (injectable for tests).
  explicit HybridClock(std::function<int64_t()> wall_ms = nullptr);

  // A reading greater than every earlier Now() and every Observe()d one.
  uint64_t Now();
  // Moves the clock past `remote`, a reading from another node.
  void Observe(uint64_t remote);

  static uint64_t Physical(uint64_t reading) { return reading >> 16; }

 private:
  uint64_t Wall() const;

  std::function<int64_t()> wall_ms_;
  std::atomic<uint64_t> last_{0};
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_HLC_H_
