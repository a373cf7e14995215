// What a subscription asks for: its options (MQTT 5 section 3.8.3.1; in 3.1.1 only the QoS is on
// the wire and the others keep their 3.1.1 meaning) and its Subscription Identifier (3.8.2.1.2).
// Also the syntax of shared subscriptions, "$share/{ShareName}/{filter}" (MQTT 5 section 4.8.2).
#ifndef MESHMQ_NODE_SUBSCRIPTION_H_
#define MESHMQ_NODE_SUBSCRIPTION_H_

#include <cstdint>
#include <string_view>

namespace meshmq {

struct SubscriptionOptions {
  uint8_t qos = 0;                   // granted QoS: delivery uses min(message QoS, this)
  bool no_local = false;             // not delivered to the session that published it
  bool retain_as_published = false;  // forwarded copies keep the publisher's RETAIN flag
  uint8_t retain_handling = 0;       // 0: send retained at subscribe, 1: only if new, 2: never
  uint32_t subscription_id = 0;      // 0: none
  bool operator==(const SubscriptionOptions&) const = default;
};

// A filter of the form "$share/{group}/{filter}", split into its parts (views into the original).
struct SharedFilter {
  std::string_view group;
  std::string_view filter;
};

enum class FilterKind {
  kOrdinary,       // not a shared subscription
  kShared,         // a valid shared subscription; *shared is set
  kInvalidShared,  // starts with "$share/" but is not a valid one
};

// Classifies `filter`. A shared subscription needs a non-empty group name without '/', '+' or
// '#' (MQTT 5 4.8.2) followed by '/' and a valid topic filter. "$share" alone or "$share/g" (no
// filter) are invalid. The topic filter part is checked with IsValidTopicFilter.
FilterKind ClassifyFilter(std::string_view filter, SharedFilter* shared);

}  // namespace meshmq

#endif  // MESHMQ_NODE_SUBSCRIPTION_H_
