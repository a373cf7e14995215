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
  codec::Properties properties;
};

using MessagePtr = std::shared_ptr<const Message>;

}  // namespace meshmq

#endif  // MESHMQ_NODE_MESSAGE_H_
