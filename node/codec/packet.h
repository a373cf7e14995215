// MQTT control packets as plain values: what the decoder produces and the encoder consumes.
//
// One set of structs serves every protocol level. Fields that only MQTT 5 carries (reason codes on
// acks, properties) are present for all levels and ignored by the 3.1/3.1.1 encoder, so the v5
// work adds behaviour without changing these shapes.
#ifndef MESHMQ_NODE_CODEC_PACKET_H_
#define MESHMQ_NODE_CODEC_PACKET_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace meshmq::codec {

// Fixed-header packet type, the high nibble of the first byte (MQTT-2.2.1).
enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

// The protocol level byte of CONNECT (MQTT-3.1.2.2).
enum class ProtocolVersion : uint8_t {
  kV31 = 3,   // "MQIsdp"
  kV311 = 4,  // "MQTT"
  kV5 = 5,    // "MQTT"
};

// CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3).
namespace connack {
inline constexpr uint8_t kAccepted = 0;
inline constexpr uint8_t kUnacceptableProtocolVersion = 1;
inline constexpr uint8_t kIdentifierRejected = 2;
inline constexpr uint8_t kServerUnavailable = 3;
inline constexpr uint8_t kBadUsernameOrPassword = 4;
inline constexpr uint8_t kNotAuthorized = 5;
}  // namespace connack

// SUBACK return code for a refused filter (MQTT-3.9.3); 0, 1, 2 are the granted QoS.
inline constexpr uint8_t kSubackFailure = 0x80;

// MQTT 5 reason codes the codec reports for bad input (section 2.4). For 3.1.1 they only say
// why a connection was closed, in logs and counters.
namespace reason {
inline constexpr uint8_t kSuccess = 0x00;
inline constexpr uint8_t kUnspecifiedError = 0x80;
inline constexpr uint8_t kMalformedPacket = 0x81;
inline constexpr uint8_t kProtocolError = 0x82;
inline constexpr uint8_t kUnsupportedProtocolVersion = 0x84;
inline constexpr uint8_t kTopicNameInvalid = 0x90;
inline constexpr uint8_t kPacketTooLarge = 0x95;
}  // namespace reason

// MQTT 5 properties (section 2.2.2). Decoded and encoded only for protocol level 5; the MQTT 5
// issue fills this in. Kept as a member of every packet that can carry properties.
struct Properties {
  std::vector<std::pair<std::string, std::string>> user_properties;
  bool operator==(const Properties& other) const { return user_properties == other.user_properties; }
};

struct Will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  Properties properties;
  bool operator==(const Will&) const = default;
};

struct Connect {
  ProtocolVersion version = ProtocolVersion::kV311;
  std::string protocol_name = "MQTT";
  bool clean_session = true;  // "Clean Start" in MQTT 5
  uint16_t keep_alive = 0;    // seconds; 0 disables keepalive
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary data
  Properties properties;
  bool operator==(const Connect&) const = default;
};

struct Connack {
  bool session_present = false;
  uint8_t return_code = connack::kAccepted;  // 3.1.1 return code, or v5 reason code
  Properties properties;
  bool operator==(const Connack&) const = default;
};

struct Publish {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  // present on the wire only when qos > 0
  Properties properties;
  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
struct Ack {
  PacketType type = PacketType::kPuback;
  uint16_t packet_id = 0;
  uint8_t reason_code = reason::kSuccess;  // MQTT 5 only
  Properties properties;
  bool operator==(const Ack&) const = default;
};

// One topic filter of a SUBSCRIBE with its options. In 3.1.1 only `qos` is on the wire.
struct SubscribeTopic {
  std::string filter;
  uint8_t qos = 0;
  bool no_local = false;             // MQTT 5
  bool retain_as_published = false;  // MQTT 5
  uint8_t retain_handling = 0;       // MQTT 5
  bool operator==(const SubscribeTopic&) const = default;
};

struct Subscribe {
  uint16_t packet_id = 0;
  std::vector<SubscribeTopic> topics;
  Properties properties;
  bool operator==(const Subscribe&) const = default;
};

struct Suback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> return_codes;  // granted QoS or kSubackFailure (v5: reason codes)
  Properties properties;
  bool operator==(const Suback&) const = default;
};

struct Unsubscribe {
  uint16_t packet_id = 0;
  std::vector<std::string> filters;
  Properties properties;
  bool operator==(const Unsubscribe&) const = default;
};

struct Unsuback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> reason_codes;  // MQTT 5 only; 3.1.1 UNSUBACK has none
  Properties properties;
  bool operator==(const Unsuback&) const = default;
};

struct Pingreq {
  bool operator==(const Pingreq&) const = default;
};
struct Pingresp {
  bool operator==(const Pingresp&) const = default;
};

struct Disconnect {
  uint8_t reason_code = reason::kSuccess;  // MQTT 5 only
  Properties properties;
  bool operator==(const Disconnect&) const = default;
};

using Packet = std::variant<Connect, Connack, Publish, Ack, Subscribe, Suback, Unsubscribe,
                            Unsuback, Pingreq, Pingresp, Disconnect>;

}  // namespace meshmq::codec

#endif  // MESHMQ_NODE_CODEC_PACKET_H_
