#include "node/admin/log_level.h"

#include "absl/strings/str_cat.h"

namespace meshmq::admin {

void AdminLog(LogLevel level, std::string_view line) {
  if (!LogEnabled(level)) return;
  LogLine(level, absl::StrCat("meshmqd: admin: ", absl::string_view(line.data(), line.size())));
}

}  // namespace meshmq::admin
