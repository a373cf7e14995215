// A histogram with fixed bucket bounds, for latencies (Prometheus' histogram type, written by
// node/metrics/exposition.h). Observe is a few relaxed atomic adds on the histogram's own
// counters: no lock, so the thread it measures (the store's writer) never waits for a scrape.
//
// THREADING: Observe and Snapshot may run on any threads at once. A snapshot taken during an
// Observe may count the observation in its buckets and not yet in its sum, or the other way
// round; the counts themselves (buckets, +Inf, count) always agree with each other.
#ifndef MESHMQ_NODE_METRICS_HISTOGRAM_H_
#define MESHMQ_NODE_METRICS_HISTOGRAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace meshmq::metrics {

struct HistogramSnapshot {
  std::vector<double> bounds;       // ascending upper bounds (le); +Inf is implied
  std::vector<uint64_t> cumulative;  // observations <= bounds[i]
  uint64_t count = 0;                // every observation (the +Inf bucket)
  double sum = 0;
};

class Histogram {
 public:
  // Upper bounds in seconds, from 100 us to 2.5 s: disk writes and fsyncs.
  static std::vector<double> LatencyBounds();

  // `bounds`: ascending, finite upper bounds.
  explicit Histogram(std::vector<double> bounds = LatencyBounds());
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double value);
  HistogramSnapshot Snapshot() const;

 private:
  const std::vector<double> bounds_;
  // Per bucket, not cumulative: [i] counts values in (bounds_[i-1], bounds_[i]]; the last one
  // those above every bound.
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

}  // namespace meshmq::metrics

#endif  // MESHMQ_NODE_METRICS_HISTOGRAM_H_
