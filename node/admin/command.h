// meshmqctl's command line (README "Operations: meshmqctl"): the command words and their
// arguments, checked before anything is sent, and turned into one AdminService call.
//
//   status | cluster members | cluster join HOST:PORT | cluster leave [NODE] | node drain
//   clients list [--node N] [--limit N] | clients show ID | clients kick ID
//   sessions list [--limit N] | sessions show ID | sessions drop ID
//   subscriptions list [--client ID] [--topic FILTER] | routes
//   retained list [FILTER] [--limit N] | retained get TOPIC | retained delete TOPIC
//   publish TOPIC PAYLOAD [--qos N] [--retain] | metrics | log-level LEVEL
#ifndef MESHMQ_NODE_ADMIN_COMMAND_H_
#define MESHMQ_NODE_ADMIN_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace meshmq::admin {

enum class CommandKind {
  kStatus,
  kClusterMembers,
  kClusterJoin,
  kClusterLeave,
  kNodeDrain,
  kClientsList,
  kClientsShow,
  kClientsKick,
  kSessionsList,
  kSessionsShow,
  kSessionsDrop,
  kSubscriptionsList,
  kRoutes,
  kRetainedList,
  kRetainedGet,
  kRetainedDelete,
  kPublish,
  kMetrics,
  kLogLevel,
};

// The options some commands take (meshmqctl's flags of the same names).
struct CommandOptions {
  std::string node;    // --node: clients list
  uint32_t limit = 0;  // --limit: clients/sessions/retained list (0: all)
  std::string client;  // --client: subscriptions list
  std::string topic;   // --topic: subscriptions list
  uint32_t qos = 0;    // --qos: publish
  bool retain = false;  // --retain: publish
};

struct Command {
  CommandKind kind = CommandKind::kStatus;
  // The positional arguments after the command words: the ID, TOPIC, NODE, ... (at most two).
  std::string arg;
  std::string arg2;
  CommandOptions options;
};

// `words`: the positional arguments (the flags already taken out). Errors say what is wrong in
// one line (an unknown command, a missing or extra argument, a bad value).
absl::StatusOr<Command> ParseCommand(const std::vector<std::string>& words,
                                     const CommandOptions& options);

// The usage text (the commands, one per line).
const char* CommandUsage();

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_COMMAND_H_
