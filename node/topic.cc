// The rules implemented here are listed, with their spec sections, at the top of node/topic.h.
#include "node/topic.h"

#include <cstddef>
#include <string_view>

namespace meshmq {
namespace {

// Shared by both validators: length, and depth counted as separators + 1.
bool HasValidSize(std::string_view s) {
  if (s.empty() || s.size() > kMaxTopicLength) return false;
  size_t separators = 0;
  for (char c : s) {
    if (c == '/') ++separators;
  }
  return separators < kMaxTopicLevels;
}

}  // namespace

bool IsValidTopicName(std::string_view topic) {
  // One pass over every PUBLISH's topic: length, depth and no wildcard. (find_first_of("+#")
  // costs a memchr call per character, a few percent of a QoS 0 fan-in's broker time.)
  if (topic.empty() || topic.size() > kMaxTopicLength) return false;
  size_t separators = 0;
  for (char c : topic) {
    separators += c == '/';
    if (c == '+' || c == '#') return false;
  }
  return separators < kMaxTopicLevels;
}

bool IsValidTopicFilter(std::string_view filter) {
  if (!HasValidSize(filter)) return false;
  const size_t last = filter.size() - 1;
  for (size_t i = 0; i <= last; ++i) {
    const char c = filter[i];
    if (c != '+' && c != '#') continue;
    const bool starts_level = i == 0 || filter[i - 1] == '/';
    const bool ends_level = i == last || filter[i + 1] == '/';
    if (!starts_level || !ends_level) return false;  // MQTT-4.7.1-2, MQTT-4.7.1-3
    if (c == '#' && i != last) return false;         // MQTT-4.7.1-2
  }
  return true;
}

bool TopicMatches(std::string_view filter, std::string_view topic) {
  if (!IsValidTopicFilter(filter) || !IsValidTopicName(topic)) return false;
  if (IsDollarTopic(topic) && (filter[0] == '+' || filter[0] == '#')) return false;  // 4.7.2-1

  size_t f = 0;
  size_t t = 0;
  for (;;) {
    size_t f_next;
    size_t t_next;
    const std::string_view f_level = NextTopicLevel(filter, f, &f_next);
    if (f_level == "#") return true;  // the levels so far matched, and '#' takes the rest
    const std::string_view t_level = NextTopicLevel(topic, t, &t_next);
    if (f_level != "+" && f_level != t_level) return false;

    const bool filter_done = f_next == std::string_view::npos;
    const bool topic_done = t_next == std::string_view::npos;
    if (filter_done) return topic_done;
    if (topic_done) {
      // "sport/#" matches "sport": '#' also stands for zero levels. Nothing else may remain.
      return filter.substr(f_next) == "#";
    }
    f = f_next;
    t = t_next;
  }
}

}  // namespace meshmq
