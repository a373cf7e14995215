// The admin's view of the node's log level (node/log.h), which `meshmqctl log-level` sets at run
// time on every node: the level governs every line meshmqd writes, the admin service's among
// them. The admin logs every request it serves at debug and every change it makes (kick, drop,
// drain, ...) at info, as "meshmqd: admin: <line>".
//
// THREADING: any thread.
#ifndef MESHMQ_NODE_ADMIN_LOG_LEVEL_H_
#define MESHMQ_NODE_ADMIN_LOG_LEVEL_H_

#include <string_view>

#include "node/log.h"

namespace meshmq::admin {

using ::meshmq::CurrentLogLevel;
using ::meshmq::LogEnabled;
using ::meshmq::LogLevel;
using ::meshmq::LogLevelName;
using ::meshmq::ParseLogLevel;
using ::meshmq::SetLogLevel;

// Writes "meshmqd: admin: <line>" to stderr if `level` is enabled.
void AdminLog(LogLevel level, std::string_view line);

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_LOG_LEVEL_H_
