// An application message as the broker routes it: immutable once published, shared by every
// subscriber it is delivered to and by the retained store, so fan-out copies a pointer, not bytes.
#ifndef MESHMQ_NODE_MESSAGE_H_
#define MESHMQ_NODE_MESSAGE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "node/codec/packet.h"

namespace meshmq {

struct Message {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;      // the QoS it was published with; delivery uses min(this, granted)
  bool retain = false;  // the publisher's retain flag
  bool resent = false;  // see qos2_key below (here, it fits in the padding)
  // When the message expires (MonotonicMillis() clock), 0 if it never does (MQTT 5 Message
  // Expiry Interval, section 3.3.2.3.3): copies not yet on their way to a subscriber are dropped
  // after it, and those sent carry the time left.
  int64_t expires_at_ms = 0;
  // The publisher's MQTT 5 properties that travel with the message to subscribers (Payload Format
  // Indicator, Content Type, Response Topic, Correlation Data, User Properties; never Topic Alias,
  // Subscription Identifiers or Message Expiry Interval, which are per hop). Null when there are
  // none, which is every 3.1.1 message: they cost one pointer.
  std::unique_ptr<const codec::Properties> properties;
  // In a cluster, an id unique across the nodes, given where the message was published; it lets
  // a session that just moved between nodes drop a copy that reached it by two paths. 0: none.
  uint64_t id = 0;
  // QoS 2 in a cluster: a key of what the publisher sent (client id, packet id, topic, payload),
  // the same for a resend of it. `resent`: a resend (DUP) routed again because its first try was
  // not known to have reached every node (a peer refused it, or the publisher's node died):
  // sessions that got the first try drop it (MQTT 4.3.3: QoS 2 is delivered exactly once).
  uint64_t qos2_key = 0;

  bool expired(int64_t now_ms) const { return expires_at_ms != 0 && now_ms >= expires_at_ms; }
  // The Message Expiry Interval to send at `now_ms`: what is left, rounded up to whole seconds.
  uint32_t remaining_expiry_seconds(int64_t now_ms) const {
    const int64_t left_ms = expires_at_ms - now_ms;
    return left_ms <= 0 ? 0 : static_cast<uint32_t>((left_ms + 999) / 1000);
  }
};

// Every publish allocates one (with make_shared's control block, in one chunk). One size class
// more in glibc's malloc cost 18% of the QoS 0 fan-in rate (tests/bench/RESULTS.md, 2026-11-26):
// think twice before growing it.
static_assert(sizeof(Message) <= 104, "Message grew into a larger malloc size class");

using MessagePtr = std::shared_ptr<const Message>;

}  // namespace meshmq

#endif  // MESHMQ_NODE_MESSAGE_H_
