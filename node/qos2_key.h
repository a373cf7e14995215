// The key of an inbound QoS 2 PUBLISH that its resends share (Message::qos2_key): FNV-1a over
// the publisher's client id, packet id, topic and payload. Stable across processes and builds
// (every node computes the same key for the same PUBLISH), never 0.
#ifndef MESHMQ_NODE_QOS2_KEY_H_
#define MESHMQ_NODE_QOS2_KEY_H_

#include <cstdint>
#include <string_view>

namespace meshmq {

inline uint64_t Qos2Key(std::string_view client_id, uint16_t packet_id, std::string_view topic,
                        std::string_view payload) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    // A separator, so ("ab", "c") and ("a", "bc") differ.
    h ^= 0xff;
    h *= 1099511628211ULL;
  };
  mix(client_id);
  const char id[2] = {static_cast<char>(packet_id >> 8), static_cast<char>(packet_id & 0xff)};
  mix(std::string_view(id, 2));
  mix(topic);
  mix(payload);
  return h == 0 ? 1 : h;
}

}  // namespace meshmq

#endif  // MESHMQ_NODE_QOS2_KEY_H_
