// Shared subscription syntax (MQTT 5 section 4.8.2):
// - A filter starting with "$share/" is a shared subscription, "$share/{ShareName}/{filter}".
// - The ShareName is at least one character and contains no '/', '+' or '#'
//   (MQTT-4.8.2-1, MQTT-4.8.2-2); it is followed by '/' and a non-empty, valid topic filter.
// - "$share" on its own, and anything that starts with "$share/" but breaks those rules, is a
//   malformed shared subscription rather than an ordinary filter: SUBSCRIBE rejects it instead of
//   silently subscribing to a '$' topic the client did not mean.
// - The prefix is case-sensitive (4.7.3 compares bytes): "$SHARE/g/a" and "$sharex/a" are
//   ordinary filters on '$' topics.
#include "node/subscription.h"

#include <string_view>

#include "node/topic.h"

namespace meshmq {
namespace {

constexpr std::string_view kSharePrefix = "$share";

}  // namespace

FilterKind ClassifyFilter(std::string_view filter, SharedFilter* shared) {
  if (!filter.starts_with(kSharePrefix)) return FilterKind::kOrdinary;
  std::string_view rest = filter.substr(kSharePrefix.size());
  if (rest.empty()) return FilterKind::kInvalidShared;    // "$share" alone: no group, no filter
  if (rest.front() != '/') return FilterKind::kOrdinary;  // "$sharex/...": another '$' topic
  rest.remove_prefix(1);

  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return FilterKind::kInvalidShared;  // "$share/g": no filter
  const std::string_view group = rest.substr(0, slash);
  if (group.empty() || group.find_first_of("+#") != std::string_view::npos) {
    return FilterKind::kInvalidShared;
  }
  const std::string_view topic_filter = rest.substr(slash + 1);
  if (!IsValidTopicFilter(topic_filter)) return FilterKind::kInvalidShared;

  if (shared != nullptr) *shared = SharedFilter{group, topic_filter};
  return FilterKind::kShared;
}

}  // namespace meshmq
