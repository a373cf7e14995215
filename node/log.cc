#include "node/log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <string>

namespace meshmq {
namespace log_internal {

std::atomic<int> current_level{static_cast<int>(LogLevel::kInfo)};

}  // namespace log_internal
namespace {

// One write(2) for the whole line (stderr is unbuffered: fprintf may split it in several).
void WriteLine(const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(STDERR_FILENO, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere to report it
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
}

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
  log_internal::current_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

void Log(LogLevel level, const char* format, ...) {
  if (!LogEnabled(level)) return;
  char buffer[1024];
  va_list args;
  va_start(args, format);
  const int length = std::vsnprintf(buffer, sizeof(buffer) - 1, format, args);
  va_end(args);
  if (length < 0) return;
  if (static_cast<size_t>(length) < sizeof(buffer) - 1) {
    buffer[length] = '\n';
    WriteLine(buffer, static_cast<size_t>(length) + 1);
    return;
  }
  // Longer than the buffer: formatted again, whole.
  std::string line(static_cast<size_t>(length) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(line.data(), line.size(), format, args);
  va_end(args);
  line.back() = '\n';
  WriteLine(line.data(), line.size());
}

void LogLine(LogLevel level, std::string_view line) {
  if (LogEnabled(level)) LogAlways(line);
}

void LogAlways(std::string_view line) {
  std::string out;
  out.reserve(line.size() + 1);
  out.append(line);
  out.push_back('\n');
  WriteLine(out.data(), out.size());
}

}  // namespace meshmq
