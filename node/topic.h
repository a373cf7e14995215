// Topic names, topic filters and how they match (MQTT 3.1.1 section 4.7).
//
// Rules enforced here:
// - A topic name or filter has at least one character and at most 65535 bytes (MQTT-4.7.3-1,
//   section 1.5.3). UTF-8 well-formedness and the ban on U+0000 (MQTT-4.7.3-2) are checked by the
//   codec when it decodes the string, not here.
// - Topic names in PUBLISH must not contain '+' or '#' (MQTT-3.3.2-2, MQTT-4.7.1-1).
// - '#' must stand alone as the last level of a filter (MQTT-4.7.1-2); '+' must occupy a whole
//   level (MQTT-4.7.1-3). Empty levels are ordinary levels: "a//b", "/" and "/finance" are valid.
// - '#' matches its parent level and any number of child levels, so "sport/#" matches "sport";
//   '+' matches exactly one level, which may be empty, so "sport/+" matches "sport/" but not
//   "sport" (4.7.1.2, 4.7.1.3).
// - A filter whose first character is a wildcard never matches a topic name starting with '$'
//   (MQTT-4.7.2-1), so "#" does not deliver $SYS traffic.
// - Matching compares bytes: it is case-sensitive and does no normalisation (MQTT-4.7.3-4).
//
// Beyond the standard, which sets no limit on the number of levels, names and filters deeper than
// kMaxTopicLevels are refused: every level is a trie node, and a SUBSCRIBE of 65535 '/' would
// otherwise cost megabytes and a deep recursion (Mosquitto's CVE-2019-11779 fix does the same).
#ifndef MESHMQ_NODE_TOPIC_H_
#define MESHMQ_NODE_TOPIC_H_

#include <cstddef>
#include <string_view>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace meshmq {

// Longest topic name or filter, in bytes: the length prefix of an MQTT string is 16 bits.
inline constexpr size_t kMaxTopicLength = 65535;

// Deepest topic name or filter, in levels. Mosquitto (TOPIC_HIERARCHY_LIMIT) refuses more than 200
// separators, i.e. accepts 201 levels; accepting exactly what it accepts keeps clients portable.
inline constexpr size_t kMaxTopicLevels = 201;

// PUBLISH topic names (MQTT-4.7.1, 4.7.3): non-empty, no '+' or '#'. (UTF-8/NUL is checked by the
// codec.)
bool IsValidTopicName(std::string_view topic);

// Topic filters: non-empty; '#' only alone as the last level (MQTT-4.7.1-2); '+' only alone in its
// level (MQTT-4.7.1-3). Empty levels are allowed ("a//b", "/", "/finance").
bool IsValidTopicFilter(std::string_view filter);

// Matching semantics of 4.7 incl. "sport/#" matches "sport", "+" matches an empty level, "/finance"
// vs "+/+", and filters starting with '+' or '#' never match topics starting with '$'
// (MQTT-4.7.2-1). Case-sensitive. Returns false when `filter` is not a valid filter or `topic` is
// not a valid topic name, so a malformed pattern can never grant a match.
bool TopicMatches(std::string_view filter, std::string_view topic);

// True for topics starting with '$' (e.g. $SYS/...).
inline bool IsDollarTopic(std::string_view topic) { return !topic.empty() && topic[0] == '$'; }
// The broker's own $SYS tree: clients may not publish there, and in a cluster each node keeps its
// own (neither forwarded nor replicated).
inline bool IsSysTopic(std::string_view topic) {
  return topic.substr(0, 5) == "$SYS/" || topic == "$SYS";
}

// Returns the level of `s` starting at `begin` and sets *next to the start of the following level,
// or to npos after the last one. No allocation: levels are views into `s`. Inline because the trie
// and the retained store call it once per level on every match.
inline std::string_view NextTopicLevel(std::string_view s, size_t begin, size_t* next) {
  const size_t slash = s.find('/', begin);
  if (slash == std::string_view::npos) {
    *next = std::string_view::npos;
    return s.substr(begin);
  }
  *next = slash + 1;
  return s.substr(begin, slash - begin);
}

// Transparent hash and equality for containers keyed by std::string, so a topic level held as a
// std::string_view is looked up without building a std::string. Debian's Abseil (20220623) has
// its own absl::string_view, which its default string hash accepts but std::string_view does not.
struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
  }
};

struct TransparentStringEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_TOPIC_H_
