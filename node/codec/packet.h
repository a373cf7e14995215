// MQTT control packets as plain values: what the decoder produces and the encoder consumes.
//
// One set of structs serves every protocol level. Fields that only MQTT 5 carries (reason codes on
// acks, properties) are present for all levels and ignored by the 3.1/3.1.1 encoder, so the v5
// work adds behaviour without changing these shapes.
#ifndef MESHMQ_NODE_CODEC_PACKET_H_
#define MESHMQ_NODE_CODEC_PACKET_H_

#include <cstdint>
#include <memory>
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

// MQTT 5 reason codes (section 2.4). For 3.1.1 they only say why a connection was closed, in logs
// and counters.
namespace reason {
inline constexpr uint8_t kSuccess = 0x00;  // also Normal disconnection, Granted QoS 0
inline constexpr uint8_t kGrantedQos1 = 0x01;
inline constexpr uint8_t kGrantedQos2 = 0x02;
inline constexpr uint8_t kDisconnectWithWill = 0x04;
inline constexpr uint8_t kNoMatchingSubscribers = 0x10;
inline constexpr uint8_t kNoSubscriptionExisted = 0x11;
inline constexpr uint8_t kContinueAuthentication = 0x18;
inline constexpr uint8_t kReAuthenticate = 0x19;
inline constexpr uint8_t kUnspecifiedError = 0x80;
inline constexpr uint8_t kMalformedPacket = 0x81;
inline constexpr uint8_t kProtocolError = 0x82;
inline constexpr uint8_t kImplementationSpecificError = 0x83;
inline constexpr uint8_t kUnsupportedProtocolVersion = 0x84;
inline constexpr uint8_t kClientIdentifierNotValid = 0x85;
inline constexpr uint8_t kBadUserNameOrPassword = 0x86;
inline constexpr uint8_t kNotAuthorized = 0x87;
inline constexpr uint8_t kServerUnavailable = 0x88;
inline constexpr uint8_t kServerBusy = 0x89;
inline constexpr uint8_t kBanned = 0x8A;
inline constexpr uint8_t kServerShuttingDown = 0x8B;
inline constexpr uint8_t kBadAuthenticationMethod = 0x8C;
inline constexpr uint8_t kKeepAliveTimeout = 0x8D;
inline constexpr uint8_t kSessionTakenOver = 0x8E;
inline constexpr uint8_t kTopicFilterInvalid = 0x8F;
inline constexpr uint8_t kTopicNameInvalid = 0x90;
inline constexpr uint8_t kPacketIdentifierInUse = 0x91;
inline constexpr uint8_t kPacketIdentifierNotFound = 0x92;
inline constexpr uint8_t kReceiveMaximumExceeded = 0x93;
inline constexpr uint8_t kTopicAliasInvalid = 0x94;
inline constexpr uint8_t kPacketTooLarge = 0x95;
inline constexpr uint8_t kMessageRateTooHigh = 0x96;
inline constexpr uint8_t kQuotaExceeded = 0x97;
inline constexpr uint8_t kAdministrativeAction = 0x98;
inline constexpr uint8_t kPayloadFormatInvalid = 0x99;
inline constexpr uint8_t kRetainNotSupported = 0x9A;
inline constexpr uint8_t kQosNotSupported = 0x9B;
inline constexpr uint8_t kUseAnotherServer = 0x9C;
inline constexpr uint8_t kServerMoved = 0x9D;
inline constexpr uint8_t kSharedSubscriptionsNotSupported = 0x9E;
inline constexpr uint8_t kConnectionRateExceeded = 0x9F;
inline constexpr uint8_t kMaximumConnectTime = 0xA0;
inline constexpr uint8_t kSubscriptionIdentifiersNotSupported = 0xA1;
inline constexpr uint8_t kWildcardSubscriptionsNotSupported = 0xA2;
}  // namespace reason

// Session Expiry Interval 0xFFFFFFFF: the session never expires (MQTT 5 section 3.1.2.11.2).
inline constexpr uint32_t kSessionNeverExpires = 0xFFFFFFFF;

// MQTT 5 properties (section 2.2.2). One struct for every packet: a field is set only if the
// property was on the wire (or is to be sent). Which properties a packet may carry is checked
// by the decoder (a property on the wrong packet, or twice where once is the limit, is a
// Protocol Error) and assumed by the encoder. Decoded and encoded only for protocol level 5;
// the 3.1/3.1.1 encoder ignores them.
struct Properties {
  std::optional<uint8_t> payload_format_indicator;        // 0x01 PUBLISH, will
  std::optional<uint32_t> message_expiry_interval;        // 0x02 PUBLISH, will
  std::optional<std::string> content_type;                // 0x03 PUBLISH, will
  std::optional<std::string> response_topic;              // 0x08 PUBLISH, will
  std::optional<std::string> correlation_data;            // 0x09 PUBLISH, will (binary)
  std::vector<uint32_t> subscription_identifiers;         // 0x0B PUBLISH (many), SUBSCRIBE (1)
  std::optional<uint32_t> session_expiry_interval;        // 0x11 CONNECT, CONNACK, DISCONNECT
  std::optional<std::string> assigned_client_identifier;  // 0x12 CONNACK
  std::optional<uint16_t> server_keep_alive;              // 0x13 CONNACK
  std::optional<std::string> authentication_method;       // 0x15 CONNECT, CONNACK, AUTH
  std::optional<std::string> authentication_data;         // 0x16 CONNECT, CONNACK, AUTH
  std::optional<uint8_t> request_problem_information;     // 0x17 CONNECT
  std::optional<uint32_t> will_delay_interval;            // 0x18 will
  std::optional<uint8_t> request_response_information;    // 0x19 CONNECT
  std::optional<std::string> response_information;        // 0x1A CONNACK
  std::optional<std::string> server_reference;            // 0x1C CONNACK, DISCONNECT
  std::optional<std::string> reason_string;               // 0x1F acks, DISCONNECT, AUTH
  std::optional<uint16_t> receive_maximum;                // 0x21 CONNECT, CONNACK
  std::optional<uint16_t> topic_alias_maximum;            // 0x22 CONNECT, CONNACK
  std::optional<uint16_t> topic_alias;                    // 0x23 PUBLISH
  std::optional<uint8_t> maximum_qos;                     // 0x24 CONNACK
  std::optional<uint8_t> retain_available;                // 0x25 CONNACK
  std::vector<std::pair<std::string, std::string>> user_properties;  // 0x26 any, in order
  std::optional<uint32_t> maximum_packet_size;                       // 0x27 CONNECT, CONNACK
  std::optional<uint8_t> wildcard_subscription_available;            // 0x28 CONNACK
  std::optional<uint8_t> subscription_identifier_available;          // 0x29 CONNACK
  std::optional<uint8_t> shared_subscription_available;              // 0x2A CONNACK

  bool empty() const { return *this == Properties{}; }
  bool operator==(const Properties&) const = default;
};

// The properties of one packet, kept out of line. Properties is some 500 bytes of optionals, and
// every 3.1.1 packet and most MQTT 5 PUBLISH packets carry none; embedding it would make each
// decoded PUBLISH construct and destroy all of it. The box allocates on the first write, so an
// absent block costs one null pointer. Reads of an absent block see an empty Properties.
class PropertiesBox {
 public:
  PropertiesBox() = default;
  PropertiesBox(const Properties& properties)  // NOLINT: a Properties value is a box's value
      : value_(properties.empty() ? nullptr : std::make_unique<Properties>(properties)) {}
  PropertiesBox(Properties&& properties)  // NOLINT
      : value_(properties.empty() ? nullptr : std::make_unique<Properties>(std::move(properties))) {
  }
  PropertiesBox(const PropertiesBox& other)
      : value_(other.value_ ? std::make_unique<Properties>(*other.value_) : nullptr) {}
  PropertiesBox(PropertiesBox&&) noexcept = default;
  PropertiesBox& operator=(const PropertiesBox& other) {
    if (this != &other)
      value_ = other.value_ ? std::make_unique<Properties>(*other.value_) : nullptr;
    return *this;
  }
  PropertiesBox& operator=(PropertiesBox&&) noexcept = default;

  const Properties& operator*() const { return value_ ? *value_ : Empty(); }
  const Properties* operator->() const { return &**this; }
  // The value to write into, allocated now if the box was empty.
  Properties& Mutable() {
    if (!value_) value_ = std::make_unique<Properties>();
    return *value_;
  }
  // Null when no property is set: what EncodePublish takes for "none".
  const Properties* get() const { return empty() ? nullptr : value_.get(); }
  bool empty() const { return !value_ || value_->empty(); }
  // Hands the value over (null if none was ever written) and leaves the box empty.
  std::unique_ptr<Properties> Release() { return std::move(value_); }

  bool operator==(const PropertiesBox& other) const { return **this == *other; }
  bool operator==(const Properties& other) const { return **this == other; }

 private:
  static const Properties& Empty() {
    static const Properties empty;
    return empty;
  }
  std::unique_ptr<Properties> value_;
};

struct Will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  PropertiesBox properties;
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
  PropertiesBox properties;
  bool operator==(const Connect&) const = default;
};

struct Connack {
  bool session_present = false;
  uint8_t return_code = connack::kAccepted;  // 3.1.1 return code, or v5 reason code
  PropertiesBox properties;
  bool operator==(const Connack&) const = default;
};

struct Publish {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  // present on the wire only when qos > 0
  PropertiesBox properties;
  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
struct Ack {
  PacketType type = PacketType::kPuback;
  uint16_t packet_id = 0;
  uint8_t reason_code = reason::kSuccess;  // MQTT 5 only
  PropertiesBox properties;
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
  PropertiesBox properties;
  bool operator==(const Subscribe&) const = default;
};

struct Suback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> return_codes;  // granted QoS or kSubackFailure (v5: reason codes)
  PropertiesBox properties;
  bool operator==(const Suback&) const = default;
};

struct Unsubscribe {
  uint16_t packet_id = 0;
  std::vector<std::string> filters;
  PropertiesBox properties;
  bool operator==(const Unsubscribe&) const = default;
};

struct Unsuback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> reason_codes;  // MQTT 5 only; 3.1.1 UNSUBACK has none
  PropertiesBox properties;
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
  PropertiesBox properties;
  bool operator==(const Disconnect&) const = default;
};

// AUTH (MQTT 5 section 3.15): enhanced authentication. Remaining Length 0 means Success.
struct Auth {
  uint8_t reason_code = reason::kSuccess;
  PropertiesBox properties;
  bool operator==(const Auth&) const = default;
};

using Packet = std::variant<Connect, Connack, Publish, Ack, Subscribe, Suback, Unsubscribe,
                            Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

}  // namespace meshmq::codec

#endif  // MESHMQ_NODE_CODEC_PACKET_H_
