// Debug lines about session ownership (takeovers, replica copies, claims), for tracing a fault
// run: written to stderr only when the environment has MESHMQ_CLUSTER_DEBUG=1 (the fault suite
// under tests/fault sets it). These events are rare, so a line each costs nothing worth
// counting; nothing is formatted unless it is enabled.
#ifndef MESHMQ_CLUSTER_DEBUG_LOG_H_
#define MESHMQ_CLUSTER_DEBUG_LOG_H_

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace meshmq::cluster {

inline bool ClusterDebugEnabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("MESHMQ_CLUSTER_DEBUG");
    return value != nullptr && std::strcmp(value, "1") == 0;
  }();
  return enabled;
}

// CLUSTER_DEBUG(a, b, ...) writes "meshmqd: cluster debug: " + absl::StrCat(a, b, ...).
#define CLUSTER_DEBUG(...)                                                                   \
  do {                                                                                       \
    if (::meshmq::cluster::ClusterDebugEnabled()) {                                          \
      std::string line = absl::StrCat("meshmqd: cluster debug: ", __VA_ARGS__, "\n");        \
      std::fputs(line.c_str(), stderr);                                                      \
    }                                                                                        \
  } while (false)

}  // namespace meshmq::cluster

#endif  // MESHMQ_CLUSTER_DEBUG_LOG_H_
