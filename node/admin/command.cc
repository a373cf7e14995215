#include "node/admin/command.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace meshmq::admin {
namespace {

struct Syntax {
  std::vector<std::string> words;  // "clients", "list"
  CommandKind kind;
  int required;  // positional arguments after the words
  int optional;
  const char* arguments;  // for error messages: "ID", "[FILTER]"
};

const std::vector<Syntax>& Syntaxes() {
  static const auto* syntaxes = new std::vector<Syntax>{
      {{"status"}, CommandKind::kStatus, 0, 0, ""},
      {{"cluster", "members"}, CommandKind::kClusterMembers, 0, 0, ""},
      {{"cluster", "join"}, CommandKind::kClusterJoin, 1, 0, "HOST:PORT"},
      {{"cluster", "leave"}, CommandKind::kClusterLeave, 0, 1, "[NODE]"},
      {{"node", "drain"}, CommandKind::kNodeDrain, 0, 0, ""},
      {{"clients", "list"}, CommandKind::kClientsList, 0, 0, ""},
      {{"clients", "show"}, CommandKind::kClientsShow, 1, 0, "ID"},
      {{"clients", "kick"}, CommandKind::kClientsKick, 1, 0, "ID"},
      {{"sessions", "list"}, CommandKind::kSessionsList, 0, 0, ""},
      {{"sessions", "show"}, CommandKind::kSessionsShow, 1, 0, "ID"},
      {{"sessions", "drop"}, CommandKind::kSessionsDrop, 1, 0, "ID"},
      {{"subscriptions", "list"}, CommandKind::kSubscriptionsList, 0, 0, ""},
      {{"routes"}, CommandKind::kRoutes, 0, 0, ""},
      {{"retained", "list"}, CommandKind::kRetainedList, 0, 1, "[FILTER]"},
      {{"retained", "get"}, CommandKind::kRetainedGet, 1, 0, "TOPIC"},
      {{"retained", "delete"}, CommandKind::kRetainedDelete, 1, 0, "TOPIC"},
      {{"publish"}, CommandKind::kPublish, 2, 0, "TOPIC PAYLOAD"},
      {{"metrics"}, CommandKind::kMetrics, 0, 0, ""},
      {{"log-level"}, CommandKind::kLogLevel, 1, 0, "LEVEL"},
  };
  return *syntaxes;
}

}  // namespace

const char* CommandUsage() {
  return "meshmqctl [--server HOST:PORT] [--token_file FILE] [--json] COMMAND\n"
         "  status\n"
         "  cluster members | cluster join HOST:PORT | cluster leave [NODE]\n"
         "  node drain\n"
         "  clients list [--node N] [--limit N] | clients show ID | clients kick ID\n"
         "  sessions list [--limit N] | sessions show ID | sessions drop ID\n"
         "  subscriptions list [--client ID] [--topic FILTER]\n"
         "  routes\n"
         "  retained list [FILTER] [--limit N] | retained get TOPIC | retained delete TOPIC\n"
         "  publish TOPIC PAYLOAD [--qos N] [--retain]\n"
         "  metrics\n"
         "  log-level error|warning|info|debug";
}

absl::StatusOr<Command> ParseCommand(const std::vector<std::string>& words,
                                     const CommandOptions& options) {
  if (words.empty()) return absl::InvalidArgumentError("no command given (see --help)");
  const Syntax* match = nullptr;
  bool group_known = false;
  for (const Syntax& syntax : Syntaxes()) {
    if (syntax.words.front() == words.front()) group_known = true;
    if (words.size() < syntax.words.size()) continue;
    bool same = true;
    for (size_t i = 0; i < syntax.words.size(); ++i) same = same && words[i] == syntax.words[i];
    if (same) {
      match = &syntax;
      break;
    }
  }
  if (match == nullptr) {
    if (group_known) {
      std::vector<std::string> choices;
      for (const Syntax& syntax : Syntaxes()) {
        if (syntax.words.front() == words.front() && syntax.words.size() > 1) {
          choices.push_back(syntax.words[1]);
        }
      }
      return absl::InvalidArgumentError(
          absl::StrCat("'", words.front(), "' needs one of: ", absl::StrJoin(choices, ", ")));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", words.front(), "' (see --help)"));
  }
  const std::string name = absl::StrJoin(match->words, " ");
  const int given = static_cast<int>(words.size() - match->words.size());
  if (given < match->required || given > match->required + match->optional) {
    return absl::InvalidArgumentError(absl::StrCat(
        "usage: meshmqctl ", name, *match->arguments ? " " : "", match->arguments,
        given < match->required ? " (missing argument)" : " (too many arguments)"));
  }
  Command command;
  command.kind = match->kind;
  command.options = options;
  if (given >= 1) command.arg = words[match->words.size()];
  if (given >= 2) command.arg2 = words[match->words.size() + 1];
  if ((command.kind == CommandKind::kClientsShow || command.kind == CommandKind::kClientsKick ||
       command.kind == CommandKind::kSessionsShow ||
       command.kind == CommandKind::kSessionsDrop) &&
      command.arg.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("usage: meshmqctl ", name, " ID (not empty)"));
  }
  if (command.kind == CommandKind::kPublish && options.qos > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("--qos must be 0, 1 or 2, not ", options.qos));
  }
  if (command.kind == CommandKind::kClusterJoin && command.arg.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster join needs HOST:PORT, not '", command.arg, "'"));
  }
  if (command.kind == CommandKind::kLogLevel && command.arg != "error" &&
      command.arg != "warning" && command.arg != "warn" && command.arg != "info" &&
      command.arg != "debug") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown log level '", command.arg, "' (error, warning, info, debug)"));
  }
  return command;
}

}  // namespace meshmq::admin
