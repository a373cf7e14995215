// The Prometheus text format writer (node/metrics/exposition.h), byte for byte: what Prometheus
// and promtool accept, and what a careless writer gets wrong (escaping, _total, +Inf, integers
// printed as floats, a family written twice).
#include "node/metrics/exposition.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "node/metrics/histogram.h"

namespace meshmq::metrics {
namespace {

TEST(ExpositionTest, CounterHasHelpTypeAndSample) {
  TextWriter w;
  w.Counter("meshmq_connects_total", "Clients that completed CONNECT.", 42);
  EXPECT_EQ(w.text(),
            "# HELP meshmq_connects_total Clients that completed CONNECT.\n"
            "# TYPE meshmq_connects_total counter\n"
            "meshmq_connects_total 42\n");
}

TEST(ExpositionTest, GaugeWithLabelsInTheGivenOrder) {
  TextWriter w;
  w.Begin("meshmq_cluster_peer_pending_bytes", MetricType::kGauge, "Bytes not acknowledged.");
  w.Sample(Labels{{"peer", "n1"}, {"state", "up"}}, uint64_t{1024});
  w.Sample(Labels{{"peer", "n2"}, {"state", "down"}}, int64_t{-3});
  EXPECT_EQ(w.text(),
            "# HELP meshmq_cluster_peer_pending_bytes Bytes not acknowledged.\n"
            "# TYPE meshmq_cluster_peer_pending_bytes gauge\n"
            "meshmq_cluster_peer_pending_bytes{peer=\"n1\",state=\"up\"} 1024\n"
            "meshmq_cluster_peer_pending_bytes{peer=\"n2\",state=\"down\"} -3\n");
}

TEST(ExpositionTest, LabelValuesEscapeBackslashQuoteAndNewline) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeLabelValue("plain ünïcode {}=,"), "plain ünïcode {}=,");
  TextWriter w;
  w.Begin("x_total", MetricType::kCounter, "h");
  w.Sample(Labels{{"peer", "we\"ird\\node\n"}}, uint64_t{1});
  EXPECT_EQ(w.text(),
            "# HELP x_total h\n# TYPE x_total counter\n"
            "x_total{peer=\"we\\\"ird\\\\node\\n\"} 1\n");
}

TEST(ExpositionTest, HelpEscapesBackslashAndNewlineButNotQuotes) {
  TextWriter w;
  w.Gauge("g", "say \"hi\"\\\nbye", 1);
  EXPECT_EQ(w.text(), "# HELP g say \"hi\"\\\\\\nbye\n# TYPE g gauge\ng 1\n");
}

TEST(ExpositionTest, ValuesAreExactIntegersOrShortestDecimals) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(12), "12");
  EXPECT_EQ(FormatValue(-7), "-7");
  EXPECT_EQ(FormatValue(9007199254740991.0), "9007199254740991");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.00025), "0.00025");
  EXPECT_EQ(FormatValue(0.0001), "0.0001");  // %g style, as Prometheus' Go clients write le
  EXPECT_EQ(FormatValue(1.5e-7), "1.5e-07");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  // uint64 samples beyond a double's exact range stay exact.
  TextWriter w;
  w.Begin("big_total", MetricType::kCounter, "h");
  w.Sample(uint64_t{18446744073709551615u});
  EXPECT_EQ(w.text(),
            "# HELP big_total h\n# TYPE big_total counter\nbig_total 18446744073709551615\n");
}

TEST(ExpositionTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Histogram h({0.001, 0.01, 0.1});
  h.Observe(0.0005);
  h.Observe(0.001);  // le is inclusive
  h.Observe(0.05);
  h.Observe(3);
  TextWriter w;
  w.Begin("meshmq_store_write_seconds", MetricType::kHistogram, "Group commit writes.");
  w.Histogram(Labels{}, h.Snapshot());
  EXPECT_EQ(w.text(),
            "# HELP meshmq_store_write_seconds Group commit writes.\n"
            "# TYPE meshmq_store_write_seconds histogram\n"
            "meshmq_store_write_seconds_bucket{le=\"0.001\"} 2\n"
            "meshmq_store_write_seconds_bucket{le=\"0.01\"} 2\n"
            "meshmq_store_write_seconds_bucket{le=\"0.1\"} 3\n"
            "meshmq_store_write_seconds_bucket{le=\"+Inf\"} 4\n"
            "meshmq_store_write_seconds_sum 3.0515\n"
            "meshmq_store_write_seconds_count 4\n");
}

TEST(ExpositionTest, HistogramLabelsComeBeforeLe) {
  Histogram h({1});
  h.Observe(0.5);
  TextWriter w;
  w.Begin("lat_seconds", MetricType::kHistogram, "h");
  w.Histogram(Labels{{"op", "write"}}, h.Snapshot());
  EXPECT_EQ(w.text(),
            "# HELP lat_seconds h\n# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{op=\"write\",le=\"1\"} 1\n"
            "lat_seconds_bucket{op=\"write\",le=\"+Inf\"} 1\n"
            "lat_seconds_sum{op=\"write\"} 0.5\n"
            "lat_seconds_count{op=\"write\"} 1\n");
}

TEST(ExpositionTest, NamesFollowThePrometheusGrammar) {
  EXPECT_TRUE(IsValidMetricName("meshmq_connections"));
  EXPECT_TRUE(IsValidMetricName("a:b_c1"));
  EXPECT_FALSE(IsValidMetricName("1abc"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_TRUE(IsValidLabelName("qos"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
}

TEST(ExpositionDeathTest, MisuseCrashesLoudly) {
  EXPECT_DEATH(
      {
        TextWriter w;
        w.Begin("meshmq_connects", MetricType::kCounter, "no _total");
      },
      "_total");
  EXPECT_DEATH(
      {
        TextWriter w;
        w.Gauge("g", "h", 1);
        w.Gauge("g", "h", 2);
      },
      "twice");
  EXPECT_DEATH(
      {
        TextWriter w;
        w.Begin("g", MetricType::kGauge, "h");
        w.Sample(Labels{{"bad-label", "x"}}, uint64_t{1});
      },
      "invalid label name");
}

TEST(HistogramTest, ConcurrentObservationsAreAllCounted) {
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; ++i) h.Observe(0.002);
    });
  }
  for (auto& thread : threads) thread.join();
  HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_NEAR(s.sum, 80.0, 1e-6);
  // 0.002 falls in le="0.0025" and every bucket above it.
  for (size_t i = 0; i < s.bounds.size(); ++i) {
    EXPECT_EQ(s.cumulative[i], s.bounds[i] >= 0.002 ? 40000u : 0u) << "le=" << s.bounds[i];
  }
}

}  // namespace
}  // namespace meshmq::metrics
