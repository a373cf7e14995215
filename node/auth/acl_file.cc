// Mosquitto 2.0 acl_file semantics (src/security_default.c: aclfile__parse, add__acl,
// add__acl_pattern, mosquitto_acl_check_default).
//
// Syntax, one directive per line, keywords case-sensitive:
//   user <username>                          later "topic" lines belong to this user; the username
//                                            is the rest of the line and may contain spaces
//   topic [read|write|readwrite|deny] <filter>
//   pattern [read|write|readwrite|deny] <filter>   %u -> username, %c -> client id
// The access word may be omitted (readwrite). If it is present the filter is the rest of the line,
// so a filter containing spaces needs an explicit access word ("topic a b" is an error, as in
// Mosquitto, because "a" is not an access word). Lines are trimmed; blank lines and lines whose
// first non-blank character is '#' are comments. Spaces or tabs separate words (Mosquitto: spaces
// only). "topic" lines before the first "user" line apply to anonymous clients only; "pattern"
// lines apply to every client wherever they appear. Several "user" sections for the same name add
// up. Unknown keywords, bad access words, a missing filter or username, and filters that are not
// valid MQTT topic filters are errors naming the line (Mosquitto refuses to start on these too).
//
// Publish and delivery (CheckTopic, Mosquitto's MOSQ_ACL_WRITE / MOSQ_ACL_READ):
//   1. The client's own list: the "topic" rules of its "user" section, or the anonymous rules if it
//      has no username. A client whose username has no section has no list. Deny rules are tried
//      first: one that matches the topic denies. Then a matching rule with the wanted access
//      allows.
//   2. If the file has patterns and the username or client id contains '+' or '#', deny: after
//      substitution such a client would widen its own pattern.
//   3. Patterns, deny patterns first, the same way. A pattern containing %u is skipped for a
//      client without a username (it can neither grant nor deny).
//   4. Nothing matched: deny. An empty file therefore denies everything, as in Mosquitto.
// "Matches" is MQTT filter matching (TopicMatches), including MQTT-4.7.2-1: a rule starting with a
// wildcard never matches a "$..." topic. An allow in step 1 wins over a deny pattern in step 3.
//
// Subscribe (CheckSubscribe). Mosquitto 2.0's acl_file does not check subscriptions at all: every
// SUBSCRIBE is granted and messages are filtered at delivery by the read check (verified against
// mosquitto 2.0.11: SUBACK 0 for a filter no rule mentions). We refuse subscriptions that could
// never deliver a readable message instead, so the client learns of the problem from its SUBACK.
// The order is the one above, with "the rule matches" replaced by "the rule covers the filter":
// every topic name the filter matches is also matched by the rule. Level by level, the rule's
// '#' covers whatever remains (including nothing: "a/#" covers "a"), the rule's '+' covers one
// filter level that is '+' or a literal, and a literal covers only the same literal; a filter '#'
// is covered only by a rule '#'; and a filter starting with '$' is covered only by a rule starting
// with '$'. So "sensors/#" covers "sensors/+/temp" and "sensors/#", "sensors/+" covers "sensors/a"
// but not "sensors/#", and "#" covers "#" but not "$SYS/#". Consequently:
//   - a deny rule refuses the subscription only if it covers the whole filter ("deny sensors/#"
//     refuses "sensors/+/temp"); a deny rule that covers part of it ("deny sensors/secret" under
//     "read sensors/#") leaves "sensors/#" grantable, and the broker's per-delivery CheckTopic
//     keeps sensors/secret out, just as Mosquitto does;
//   - a subscription is granted only if a single read rule covers it; two rules that together
//     cover a filter ("a/x" and "a/y" for "a/+") do not.
// A shared subscription "$share/<group>/<filter>" is checked as <filter>: that is the set of
// topics it delivers. A filter that is not a valid topic filter is refused.
#include "node/auth/acl_file.h"

#include <cerrno>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace meshmq::auth {
namespace {

// Debian's Abseil has its own absl::string_view, which absl::StrCat accepts and std::string_view
// does not convert to.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsBlank(char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// Splits a trimmed, non-empty string into its first word and the trimmed rest.
std::pair<std::string_view, std::string_view> FirstWord(std::string_view s) {
  size_t end = 0;
  while (end < s.size() && s[end] != ' ' && s[end] != '\t') ++end;
  return {s.substr(0, end), Trim(s.substr(end))};
}

// The levels of a topic or filter, one at a time.
class Levels {
 public:
  explicit Levels(std::string_view s) : rest_(s) {}
  bool done() const { return done_; }
  std::string_view Next() {
    const size_t slash = rest_.find('/');
    std::string_view level = rest_.substr(0, slash);
    if (slash == std::string_view::npos) {
      done_ = true;
      rest_ = {};
    } else {
      rest_.remove_prefix(slash + 1);
    }
    return level;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

// Does the rule filter match every topic name that `filter` matches? Both must be valid filters.
// The rules are spelled out at the top of this file.
bool Covers(std::string_view rule, std::string_view filter) {
  if (filter.front() == '$' && rule.front() != '$') return false;  // MQTT-4.7.2-1
  Levels r(rule);
  Levels f(filter);
  for (;;) {
    if (r.done()) return f.done();
    const std::string_view r_level = r.Next();
    if (r_level == "#") return true;  // also covers "nothing left": "a/#" matches "a"
    if (f.done()) return false;
    const std::string_view f_level = f.Next();
    if (f_level == "#") return false;  // only a '#' rule covers any depth
    if (r_level == "+") continue;
    if (f_level == "+" || f_level != r_level) return false;
  }
}

// Mosquitto's substitution: every "%c" becomes the client id and every "%u" the username (callers
// skip %u patterns for anonymous clients); any other '%' is literal.
std::string Substitute(std::string_view pattern, std::optional<std::string_view> username,
                       std::string_view client_id) {
  std::string out;
  out.reserve(pattern.size() + client_id.size());
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size()) {
      if (pattern[i + 1] == 'c') {
        out.append(client_id);
        ++i;
        continue;
      }
      if (pattern[i + 1] == 'u' && username.has_value()) {
        out.append(*username);
        ++i;
        continue;
      }
    }
    out.push_back(pattern[i]);
  }
  return out;
}

bool HasWildcard(std::string_view s) { return s.find_first_of("+#") != std::string_view::npos; }

}  // namespace

void AclFile::AddRule(RuleList& list, Rule rule) {
  // Deny rules go first so that the first decisive match is a deny whenever one exists.
  if (rule.access == kDeny) {
    list.insert(list.begin(), std::move(rule));
  } else {
    list.push_back(std::move(rule));
  }
}

absl::StatusOr<AclFile> AclFile::Parse(std::string_view contents) {
  AclFile acl;
  // The section "topic" lines go to; nullopt before the first "user" line (anonymous). A name,
  // not a pointer into users_, which moves its values when it grows.
  std::optional<std::string> current_user;
  int line_number = 0;
  while (!contents.empty()) {
    const size_t nl = contents.find('\n');
    const std::string_view raw = contents.substr(0, nl);
    contents.remove_prefix(nl == std::string_view::npos ? contents.size() : nl + 1);
    ++line_number;
    const std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#') continue;
    auto error = [line_number](const std::string& what) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", what));
    };

    const auto [keyword, rest] = FirstWord(line);
    if (keyword == "user") {
      if (rest.empty()) return error("\"user\" without a username");
      current_user.emplace(rest);
      acl.users_.try_emplace(*current_user);  // a section with no rules still exists
      continue;
    }
    if (keyword != "topic" && keyword != "pattern") {
      return error(
          absl::StrCat("unknown keyword \"", Sv(keyword), "\" (expected user, topic or pattern)"));
    }
    if (rest.empty()) return error(absl::StrCat("\"", Sv(keyword), "\" without a topic"));
    auto [access_word, topic] = FirstWord(rest);
    uint8_t access = static_cast<uint8_t>(Access::kRead) | static_cast<uint8_t>(Access::kWrite);
    if (topic.empty()) {
      topic = access_word;  // "topic a/b": access omitted
    } else if (access_word == "read") {
      access = static_cast<uint8_t>(Access::kRead);
    } else if (access_word == "write") {
      access = static_cast<uint8_t>(Access::kWrite);
    } else if (access_word == "deny") {
      access = kDeny;
    } else if (access_word != "readwrite") {
      return error(absl::StrCat("invalid access \"", Sv(access_word),
                                "\" (expected read, write, readwrite or deny; a topic containing "
                                "spaces needs one)"));
    }
    if (!IsValidTopicFilter(topic)) {
      return error(absl::StrCat("invalid topic filter \"", Sv(topic), "\""));
    }
    Rule rule{access, std::string(topic)};
    if (keyword == "pattern") {
      rule.has_username_placeholder = topic.find("%u") != std::string_view::npos;
      rule.has_client_id_placeholder = topic.find("%c") != std::string_view::npos;
      AddRule(acl.patterns_, std::move(rule));
    } else {
      AddRule(current_user.has_value() ? acl.users_.find(*current_user)->second : acl.anonymous_,
              std::move(rule));
    }
  }
  return acl;
}

absl::StatusOr<AclFile> AclFile::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open acl file ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::ErrnoToStatus(errno, absl::StrCat("cannot read acl file ", path));
  absl::StatusOr<AclFile> acl = Parse(contents.str());
  if (!acl.ok()) {
    return absl::Status(acl.status().code(),
                        absl::StrCat("acl file ", path, ": ", acl.status().message()));
  }
  return acl;
}

template <typename Matches>
bool AclFile::Decide(std::optional<std::string_view> username, std::string_view client_id,
                     uint8_t wanted, const Matches& matches) const {
  const RuleList* own = &anonymous_;
  if (username.has_value()) {
    const auto it = users_.find(*username);
    own = it == users_.end() ? nullptr : &it->second;
  }
  if (own != nullptr) {
    for (const Rule& rule : *own) {
      if (!matches(rule.topic)) continue;
      if (rule.access == kDeny) return false;
      if (rule.access & wanted) return true;
    }
  }

  if (patterns_.empty()) return false;
  if ((username.has_value() && HasWildcard(*username)) || HasWildcard(client_id)) return false;
  for (const Rule& rule : patterns_) {
    if (rule.has_username_placeholder && !username.has_value()) continue;
    const bool matched = rule.has_username_placeholder || rule.has_client_id_placeholder
                             ? matches(Substitute(rule.topic, username, client_id))
                             : matches(rule.topic);
    if (!matched) continue;
    if (rule.access == kDeny) return false;
    if (rule.access & wanted) return true;
  }
  return false;
}

bool AclFile::CheckTopic(std::optional<std::string_view> username, std::string_view client_id,
                         std::string_view topic, Access access) const {
  if (!IsValidTopicName(topic)) return false;
  return Decide(username, client_id, static_cast<uint8_t>(access),
                [topic](std::string_view rule) { return TopicMatches(rule, topic); });
}

bool AclFile::CheckSubscribe(std::optional<std::string_view> username, std::string_view client_id,
                             std::string_view filter) const {
  constexpr std::string_view kSharePrefix = "$share/";
  if (filter.substr(0, kSharePrefix.size()) == kSharePrefix) {
    const size_t group_end = filter.find('/', kSharePrefix.size());
    if (group_end == std::string_view::npos || group_end == kSharePrefix.size()) return false;
    filter.remove_prefix(group_end + 1);
  }
  if (!IsValidTopicFilter(filter)) return false;
  return Decide(username, client_id, static_cast<uint8_t>(Access::kRead),
                [filter](std::string_view rule) { return Covers(rule, filter); });
}

}  // namespace meshmq::auth
