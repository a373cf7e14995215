#include "node/admin/log_level.h"

#include <atomic>
#include <cstdio>

namespace meshmq::admin {
namespace {

std::atomic<int> current_level{static_cast<int>(LogLevel::kInfo)};

}  // namespace

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "error") return LogLevel::kError;
  if (name == "warning" || name == "warn") return LogLevel::kWarning;
  if (name == "info") return LogLevel::kInfo;
  if (name == "debug") return LogLevel::kDebug;
  return std::nullopt;
}

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "info";
}

void SetLogLevel(LogLevel level) {
  current_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel CurrentLogLevel() {
  return static_cast<LogLevel>(current_level.load(std::memory_order_relaxed));
}

void AdminLog(LogLevel level, std::string_view line) {
  if (!LogEnabled(level)) return;
  std::fprintf(stderr, "meshmqd: admin: %.*s\n", static_cast<int>(line.size()), line.data());
}

}  // namespace meshmq::admin
