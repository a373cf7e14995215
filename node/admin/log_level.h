// The node's log level, set at run time by `meshmqctl log-level` (node/admin/).
//
// Levels, most to least severe: error, warning, info (the default), debug. meshmqd's own lines
// are written with fprintf to stderr; what consults the level today is the admin service, which
// logs every request it serves at debug and every change it makes (kick, drop, drain, ...) at
// info.
//
// THREADING: a relaxed atomic; any thread.
#ifndef MESHMQ_NODE_ADMIN_LOG_LEVEL_H_
#define MESHMQ_NODE_ADMIN_LOG_LEVEL_H_

#include <optional>
#include <string_view>

namespace meshmq::admin {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

// "error", "warning" (or "warn"), "info", "debug"; nullopt for anything else.
std::optional<LogLevel> ParseLogLevel(std::string_view name);
const char* LogLevelName(LogLevel level);

void SetLogLevel(LogLevel level);
LogLevel CurrentLogLevel();
// True if lines of `level` are written now.
inline bool LogEnabled(LogLevel level) { return level <= CurrentLogLevel(); }

// Writes "meshmqd: admin: <line>" to stderr if `level` is enabled.
void AdminLog(LogLevel level, std::string_view line);

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_LOG_LEVEL_H_
