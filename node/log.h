// meshmqd's log: one line per event on stderr, each with a severity, and a level below which
// lines are not written. The level starts at info and is changed at run time by
// `meshmqctl log-level` (node/admin/), on every node.
//
// Levels, most to least severe:
//   error    something failed (a store write, a listener, a file the node needs);
//   warning  something an operator should look at, the node carries on (a refused admin call,
//            descriptors running out);
//   info     what happens in the node's life (listeners, peers up and down, connects and
//            disconnects with --log_connections, clients thrown out for bad input);
//   debug    chatty detail (every admin call).
// A line below the level costs one relaxed load: its arguments are not formatted.
//
// Every line is written with one write(2), so lines from several threads never interleave.
//
// THREADING: any thread; the level is a relaxed atomic.
#ifndef MESHMQ_NODE_LOG_H_
#define MESHMQ_NODE_LOG_H_

#include <atomic>
#include <optional>
#include <string_view>

namespace meshmq {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

// "error", "warning" (or "warn"), "info", "debug"; nullopt for anything else.
std::optional<LogLevel> ParseLogLevel(std::string_view name);
const char* LogLevelName(LogLevel level);

namespace log_internal {
extern std::atomic<int> current_level;
}  // namespace log_internal

void SetLogLevel(LogLevel level);
inline LogLevel CurrentLogLevel() {
  return static_cast<LogLevel>(log_internal::current_level.load(std::memory_order_relaxed));
}
// True if lines of `level` are written now.
inline bool LogEnabled(LogLevel level) { return level <= CurrentLogLevel(); }

// Writes one line, printf-formatted from `format` (which carries no trailing newline: the line
// gets one), to stderr if `level` is enabled. Lines start with "meshmqd: " by convention; the
// caller writes it, so existing texts stay as operators and scripts know them.
void Log(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));
// The same for a line already put together.
void LogLine(LogLevel level, std::string_view line);
// Writes `line` whatever the level: only for the line that says the level changed, so that a
// log that goes quiet says why.
void LogAlways(std::string_view line);

}  // namespace meshmq

#endif  // MESHMQ_NODE_LOG_H_
