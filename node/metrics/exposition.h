// The Prometheus text exposition format, version 0.0.4 (what /metrics serves, Content-Type
// kContentType). There is no prometheus-cpp in Debian 12, and the format is small:
//
//   # HELP meshmq_messages_received_total PUBLISH packets received from clients.
//   # TYPE meshmq_messages_received_total counter
//   meshmq_messages_received_total{qos="0"} 12
//
// - Each family is written once: a HELP line (help text with `\` and newline escaped), a TYPE
//   line, then its samples, all with the family's name (histograms: name_bucket{le=...},
//   name_sum, name_count).
// - Label values escape `\`, `"` and newline; names match [a-zA-Z_:][a-zA-Z0-9_:]* (metrics) and
//   [a-zA-Z_][a-zA-Z0-9_]* (labels). Counter names end in _total (a naming rule of ours that
//   Prometheus recommends; the writer checks it).
// - Integer values are written exactly; other values as the shortest decimal that reads back
//   the same, and +Inf, -Inf, NaN as Prometheus spells them.
//
// A name or label that breaks these rules is a bug in the caller, not input: it crashes loudly.
//
// THREADING: a writer is used by one thread at a time.
#ifndef MESHMQ_NODE_METRICS_EXPOSITION_H_
#define MESHMQ_NODE_METRICS_EXPOSITION_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "node/metrics/histogram.h"

namespace meshmq::metrics {

inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

// Label name -> value, in the order they are written.
using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);
// A label value as it appears between the quotes.
std::string EscapeLabelValue(std::string_view value);
// A value as the format writes it ("12", "0.25", "+Inf", "NaN").
std::string FormatValue(double value);

class TextWriter {
 public:
  // Starts a family: its HELP and TYPE lines. Every sample until the next Begin belongs to it.
  void Begin(std::string_view name, MetricType type, std::string_view help);
  // A sample of the current (counter or gauge) family.
  void Sample(const Labels& labels, uint64_t value);
  void Sample(const Labels& labels, int64_t value);
  void Sample(const Labels& labels, double value);
  void Sample(uint64_t value) { Sample(Labels{}, value); }
  // The samples of one histogram of the current (histogram) family: a _bucket per bound
  // (cumulative) and +Inf, then _sum and _count, each with `labels` (and le).
  void Histogram(const Labels& labels, const HistogramSnapshot& snapshot);

  // Shorthands for a family with one unlabelled sample.
  void Counter(std::string_view name, std::string_view help, uint64_t value);
  void Gauge(std::string_view name, std::string_view help, double value);

  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Line(std::string_view suffix, const Labels& labels, std::string_view extra_label,
            std::string_view extra_value, std::string_view value);

  std::string out_;
  std::string family_;
  MetricType type_ = MetricType::kGauge;
  std::vector<std::string> families_;  // written so far: each only once
};

}  // namespace meshmq::metrics

#endif  // MESHMQ_NODE_METRICS_EXPOSITION_H_
