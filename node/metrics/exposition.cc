#include "node/metrics/exposition.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "node/log.h"

namespace meshmq::metrics {
namespace {

bool IsNameChar(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

bool IsValidName(std::string_view name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], i == 0, colon)) return false;
  }
  return true;
}

[[noreturn]] void Misuse(std::string_view what, std::string_view name) {
  Log(LogLevel::kError, "meshmqd: metrics: %.*s: '%.*s'", static_cast<int>(what.size()),
      what.data(), static_cast<int>(name.size()), name.data());
  std::abort();
}

// HELP text: only backslash and newline are escaped (quotes are not, unlike label values).
std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

bool IsValidMetricName(std::string_view name) { return IsValidName(name, true); }

bool IsValidLabelName(std::string_view name) {
  return IsValidName(name, false) && name.substr(0, 2) != "__";  // reserved for Prometheus
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Whole numbers (every count) as integers, exactly, as far as a double holds them exactly.
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char buffer[64];
  // The shortest text that reads back the same, in %g style (0.0001, 1e-07) as Go writes it.
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::general);
  return std::string(buffer, result.ptr);
}

void TextWriter::Begin(std::string_view name, MetricType type, std::string_view help) {
  if (!IsValidMetricName(name)) Misuse("invalid metric name", name);
  constexpr std::string_view kTotal = "_total";
  if (type == MetricType::kCounter &&
      (name.size() < kTotal.size() || name.substr(name.size() - kTotal.size()) != kTotal)) {
    Misuse("counter name does not end in _total", name);
  }
  for (const std::string& seen : families_) {
    if (seen == name) Misuse("metric family written twice", name);
  }
  families_.emplace_back(name);
  family_ = std::string(name);
  type_ = type;
  out_.append("# HELP ").append(name).append(" ").append(EscapeHelp(help)).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(TypeName(type)).append("\n");
}

void TextWriter::Line(std::string_view suffix, const Labels& labels, std::string_view extra_label,
                      std::string_view extra_value, std::string_view value) {
  if (family_.empty()) Misuse("sample before Begin", "");
  out_.append(family_).append(suffix);
  if (!labels.empty() || !extra_label.empty()) {
    out_ += '{';
    bool first = true;
    auto add = [&](std::string_view name, std::string_view label_value) {
      if (!IsValidLabelName(name)) Misuse("invalid label name", name);
      if (!first) out_ += ',';
      first = false;
      out_.append(name).append("=\"").append(EscapeLabelValue(label_value)).append("\"");
    };
    for (const auto& [name, label_value] : labels) add(name, label_value);
    if (!extra_label.empty()) add(extra_label, extra_value);
    out_ += '}';
  }
  out_.append(" ").append(value).append("\n");
}

void TextWriter::Sample(const Labels& labels, uint64_t value) {
  if (type_ == MetricType::kHistogram) Misuse("plain sample of a histogram", family_);
  Line("", labels, "", "", std::to_string(value));
}

void TextWriter::Sample(const Labels& labels, int64_t value) {
  if (type_ == MetricType::kHistogram) Misuse("plain sample of a histogram", family_);
  Line("", labels, "", "", std::to_string(value));
}

void TextWriter::Sample(const Labels& labels, double value) {
  if (type_ == MetricType::kHistogram) Misuse("plain sample of a histogram", family_);
  Line("", labels, "", "", FormatValue(value));
}

void TextWriter::Histogram(const Labels& labels, const HistogramSnapshot& snapshot) {
  if (type_ != MetricType::kHistogram) Misuse("histogram samples in another family", family_);
  for (size_t i = 0; i < snapshot.bounds.size(); ++i) {
    Line("_bucket", labels, "le", FormatValue(snapshot.bounds[i]),
         std::to_string(snapshot.cumulative[i]));
  }
  Line("_bucket", labels, "le", "+Inf", std::to_string(snapshot.count));
  Line("_sum", labels, "", "", FormatValue(snapshot.sum));
  Line("_count", labels, "", "", std::to_string(snapshot.count));
}

void TextWriter::Counter(std::string_view name, std::string_view help, uint64_t value) {
  Begin(name, MetricType::kCounter, help);
  Sample(value);
}

void TextWriter::Gauge(std::string_view name, std::string_view help, double value) {
  Begin(name, MetricType::kGauge, help);
  Sample(Labels{}, value);
}

}  // namespace meshmq::metrics
