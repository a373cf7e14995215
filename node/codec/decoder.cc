// Decode: one packet body to a Packet, or a DecodeError saying which rule it broke.
//
// Receiver rules of MQTT 3.1.1 enforced here (section numbers of the OASIS standard), with the
// reason code each maps to (MQTT 5 section 4.13: Malformed Packet when the bytes cannot be
// parsed as the standard lays them out, Protocol Error when they parse but break a rule):
// - MQTT-2.2.2-1, -2: fixed-header flags are 0010 for PUBREL, SUBSCRIBE and UNSUBSCRIBE and 0000
//   for every other type but PUBLISH. Malformed.
// - MQTT-2.3.1-1: QoS>0 PUBLISH, PUBACK/PUBREC/PUBREL/PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE and
//   UNSUBACK carry a non-zero Packet Identifier. Protocol Error.
// - MQTT-3.1.2-2: an unknown protocol level is answered with CONNACK return code 1, so it is its
//   own error (kUnsupportedProtocolVersion), checked as soon as name and level are read. An
//   unknown protocol name (MQTT-3.1.2-1) is a protocol error: the server just disconnects.
// - MQTT-3.1.2-3: the CONNECT reserved flag is 0. Malformed.
// - MQTT-3.1.2-11, -13, -15: without the Will Flag, Will QoS and Will Retain are 0. Protocol Error.
// - MQTT-3.1.2-14: Will QoS 3. Malformed.
// - MQTT-3.1.2-22: a Password Flag without the User Name Flag. Protocol Error in 3.1.1. MQTT 5
//   (3.1.2.9) allows it; MQTT 3.1 says the password is then disregarded, so it is dropped.
// - MQTT-3.1.3-4, -10, -11, MQTT-3.3.2-1, MQTT-3.8.3-1, MQTT-3.10.3-1 with MQTT-1.5.3-1, -2:
//   client id, will topic, user name, topic names and filters are well-formed UTF-8 without
//   U+0000 (see IsValidMqttUtf8). Malformed. The password and payloads are binary.
// - MQTT-3.3.1-2: DUP is 0 on QoS 0 PUBLISH. Malformed.
// - MQTT-3.3.1-4: PUBLISH QoS 3. Malformed.
// - MQTT-4.7.3-1: topic names are at least one character long; an empty will topic, and an empty
//   PUBLISH topic before MQTT 5, is kTopicNameInvalid. (MQTT 5: see Topic Alias below.)
// - MQTT-3.8.3-3, MQTT-3.10.3-2: SUBSCRIBE and UNSUBSCRIBE carry at least one filter. Protocol
//   Error.
// - MQTT-3.8.3-4: reserved bits of the requested-QoS byte are 0 and QoS is not 3. Malformed.
//   MQTT 5 (3.8.3.1) keeps bits 6-7 reserved (Malformed) and makes QoS 3 and Retain Handling 3
//   Protocol Errors.
// - A length that runs past the end of the body, or bytes left over after the last field
//   (including any body on PINGREQ, PINGRESP and 3.1.1 DISCONNECT), is Malformed.
// - MQTT-3.2.2-4 (client side): a CONNACK with a non-zero return code has Session Present 0.
// - Reserved 3.1.1 CONNACK and SUBACK return codes are Malformed.
//
// MQTT 5 adds (section numbers of the MQTT 5.0 standard):
// - 2.2.2.2: an unknown property identifier is Malformed, and so is one on a packet that may not
//   carry it (table 2-4, kPropertyRules below): "A Control Packet which contains an Identifier
//   which is not valid for its packet type ... is a Malformed Packet". Will properties are their
//   own block: only 0x01, 0x02, 0x03, 0x08, 0x09, 0x18 and 0x26 may be there.
// - A property appears at most once (Protocol Error), except User Property (any number, order
//   kept) and Subscription Identifier on PUBLISH (one per matching subscription, 3.3.2.3.8); on
//   SUBSCRIBE it is once only (3.8.2.1.2).
// - Property values: Payload Format Indicator, Request Problem Information, Request Response
//   Information, Maximum QoS, Retain Available and the Wildcard, Subscription Identifier and
//   Shared Subscription Available flags are 0 or 1; Receive Maximum, Maximum Packet Size and
//   Subscription Identifier are not 0. Protocol Error. String properties are well-formed UTF-8
//   without U+0000 (Malformed); Correlation Data and Authentication Data are binary.
// - 3.3.2.1: a PUBLISH may have an empty topic name only with a Topic Alias; without one it is a
//   Protocol Error. Resolving the alias and checking its value (0, Topic Alias Maximum) is the
//   broker's job.
// - Reason codes: each packet carries only the codes its section lists (CONNACK 3.2.2.2, PUBACK
//   3.4.2.1, PUBREC 3.5.2.1, PUBREL 3.6.2.1, PUBCOMP 3.7.2.1, SUBACK 3.9.3, UNSUBACK 3.11.3,
//   DISCONNECT 3.14.2.1, AUTH 3.15.2.1). Any other code is a Protocol Error, by the rule above:
//   the byte parses, its value breaks a rule.
// - Acks, DISCONNECT and AUTH have short forms: the body may end before the reason code (then
//   Success) or right after it (then no properties).
// - 3.15: AUTH exists only in MQTT 5 (type 15 is reserved before: Malformed); its flags are 0000.
// - SUBACK and UNSUBACK carry at least one reason code. Protocol Error.
//
// Left to the broker, which knows the direction and the session: which side may send a given
// reason code or property (a client's PUBLISH carries no Subscription Identifier, 3.3.4; a
// server's DISCONNECT no Session Expiry Interval, 3.14.2.2.2), Authentication Data without an
// Authentication Method (3.1.2.11.10), and topic name and filter syntax (wildcards, '$').
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "node/codec/codec.h"
#include "node/codec/wire.h"

namespace meshmq::codec {
namespace {

using wire::Reader;
using Error = std::optional<DecodeError>;

Error Malformed(const char* what) { return DecodeError{reason::kMalformedPacket, what}; }
Error ProtocolError(const char* what) { return DecodeError{reason::kProtocolError, what}; }

// A UTF-8 Encoded String field (MQTT-1.5.3).
Error ReadUtf8(Reader& r, std::string_view* value, const char* truncated, const char* invalid) {
  if (!r.ReadLengthPrefixed(value)) return Malformed(truncated);
  if (!IsValidMqttUtf8(*value)) return Malformed(invalid);
  return std::nullopt;
}

Error ReadPacketId(Reader& r, uint16_t* packet_id) {
  if (!r.ReadUint16(packet_id)) return Malformed("packet identifier missing");
  if (*packet_id == 0) return ProtocolError("packet identifier 0");  // MQTT-2.3.1-1
  return std::nullopt;
}

// Where a property block sits, as one bit: bit n for the packet of type n, bit 0 (no packet
// type is 0) for the will properties inside a CONNECT payload.
using Context = uint16_t;
constexpr Context On(PacketType type) {
  return static_cast<Context>(1u << static_cast<uint8_t>(type));
}
constexpr Context kOnWill = 1;
constexpr Context kOnConnect = On(PacketType::kConnect);
constexpr Context kOnConnack = On(PacketType::kConnack);
constexpr Context kOnPublish = On(PacketType::kPublish);
constexpr Context kOnAcks = On(PacketType::kPuback) | On(PacketType::kPubrec) |
                            On(PacketType::kPubrel) | On(PacketType::kPubcomp);
constexpr Context kOnSubscribe = On(PacketType::kSubscribe);
constexpr Context kOnSuback = On(PacketType::kSuback);
constexpr Context kOnUnsubscribe = On(PacketType::kUnsubscribe);
constexpr Context kOnUnsuback = On(PacketType::kUnsuback);
constexpr Context kOnDisconnect = On(PacketType::kDisconnect);
constexpr Context kOnAuth = On(PacketType::kAuth);
constexpr Context kOnAny = 0xFFFF;

// What a property's value may be beyond its layout.
enum class ValueRule : uint8_t { kAny, kZeroOrOne, kNonZero };

struct PropertyRule {
  const char* name = nullptr;  // null: no property has this identifier (Malformed)
  Context on = 0;              // the property blocks that may carry it
  Context repeatable_on = 0;   // where it may appear more than once
  ValueRule value = ValueRule::kAny;
  bool binary = false;  // Binary Data rather than a UTF-8 Encoded String
};

// MQTT 5 section 2.2.2.2 (table 2-4) with the value rules of sections 3.1.2.11, 3.2.2.3 and
// 3.3.2.3. Indexed by property identifier; the highest is 0x2A.
constexpr std::array<PropertyRule, 0x2B> kPropertyRules = [] {
  std::array<PropertyRule, 0x2B> rules{};
  rules[0x01] = {.name = "Payload Format Indicator",
                 .on = kOnPublish | kOnWill,
                 .value = ValueRule::kZeroOrOne};
  rules[0x02] = {.name = "Message Expiry Interval", .on = kOnPublish | kOnWill};
  rules[0x03] = {.name = "Content Type", .on = kOnPublish | kOnWill};
  rules[0x08] = {.name = "Response Topic", .on = kOnPublish | kOnWill};
  rules[0x09] = {.name = "Correlation Data", .on = kOnPublish | kOnWill, .binary = true};
  rules[0x0B] = {.name = "Subscription Identifier",
                 .on = kOnPublish | kOnSubscribe,
                 .repeatable_on = kOnPublish,  // one per matching subscription (3.3.2.3.8)
                 .value = ValueRule::kNonZero};
  rules[0x11] = {.name = "Session Expiry Interval", .on = kOnConnect | kOnConnack | kOnDisconnect};
  rules[0x12] = {.name = "Assigned Client Identifier", .on = kOnConnack};
  rules[0x13] = {.name = "Server Keep Alive", .on = kOnConnack};
  rules[0x15] = {.name = "Authentication Method", .on = kOnConnect | kOnConnack | kOnAuth};
  rules[0x16] = {
      .name = "Authentication Data", .on = kOnConnect | kOnConnack | kOnAuth, .binary = true};
  rules[0x17] = {
      .name = "Request Problem Information", .on = kOnConnect, .value = ValueRule::kZeroOrOne};
  rules[0x18] = {.name = "Will Delay Interval", .on = kOnWill};
  rules[0x19] = {
      .name = "Request Response Information", .on = kOnConnect, .value = ValueRule::kZeroOrOne};
  rules[0x1A] = {.name = "Response Information", .on = kOnConnack};
  rules[0x1C] = {.name = "Server Reference", .on = kOnConnack | kOnDisconnect};
  rules[0x1F] = {.name = "Reason String",
                 .on = kOnConnack | kOnAcks | kOnSuback | kOnUnsuback | kOnDisconnect | kOnAuth};
  rules[0x21] = {
      .name = "Receive Maximum", .on = kOnConnect | kOnConnack, .value = ValueRule::kNonZero};
  rules[0x22] = {.name = "Topic Alias Maximum", .on = kOnConnect | kOnConnack};
  rules[0x23] = {.name = "Topic Alias", .on = kOnPublish};
  rules[0x24] = {.name = "Maximum QoS", .on = kOnConnack, .value = ValueRule::kZeroOrOne};
  rules[0x25] = {.name = "Retain Available", .on = kOnConnack, .value = ValueRule::kZeroOrOne};
  rules[0x26] = {.name = "User Property", .on = kOnAny, .repeatable_on = kOnAny};
  rules[0x27] = {
      .name = "Maximum Packet Size", .on = kOnConnect | kOnConnack, .value = ValueRule::kNonZero};
  rules[0x28] = {
      .name = "Wildcard Subscription Available", .on = kOnConnack, .value = ValueRule::kZeroOrOne};
  rules[0x29] = {.name = "Subscription Identifier Available",
                 .on = kOnConnack,
                 .value = ValueRule::kZeroOrOne};
  rules[0x2A] = {
      .name = "Shared Subscription Available", .on = kOnConnack, .value = ValueRule::kZeroOrOne};
  return rules;
}();

const PropertyRule* RuleOf(uint32_t id) {
  if (id >= kPropertyRules.size() || kPropertyRules[id].name == nullptr) return nullptr;
  return &kPropertyRules[id];
}

Error PropertyError(uint8_t reason_code, const PropertyRule& rule, const char* problem) {
  return DecodeError{reason_code, std::string(rule.name) + problem};
}

Error CheckValue(const PropertyRule& rule, uint32_t value) {
  switch (rule.value) {
    case ValueRule::kAny:
      break;
    case ValueRule::kZeroOrOne:
      if (value > 1) return PropertyError(reason::kProtocolError, rule, " is neither 0 nor 1");
      break;
    case ValueRule::kNonZero:
      if (value == 0) return PropertyError(reason::kProtocolError, rule, " is 0");
      break;
  }
  return std::nullopt;
}

bool ReadNumber(Reader& r, uint8_t* value) { return r.ReadByte(value); }
bool ReadNumber(Reader& r, uint16_t* value) { return r.ReadUint16(value); }
bool ReadNumber(Reader& r, uint32_t* value) { return r.ReadUint32(value); }

// ReadValue reads one property value into its field (see wire::ForEachProperty for how the
// field's type gives the layout). `repeatable`: the property may appear more than once here.

template <typename Number>
Error ReadValue(Reader& r, const PropertyRule& rule, bool /*repeatable*/,
                std::optional<Number>& field) {
  Number value = 0;
  if (!ReadNumber(r, &value)) return PropertyError(reason::kMalformedPacket, rule, " truncated");
  if (field) return PropertyError(reason::kProtocolError, rule, " appears twice");
  if (Error e = CheckValue(rule, value)) return e;
  field = value;
  return std::nullopt;
}

Error ReadValue(Reader& r, const PropertyRule& rule, bool /*repeatable*/,
                std::optional<std::string>& field) {
  std::string_view value;
  if (!r.ReadLengthPrefixed(&value)) {
    return PropertyError(reason::kMalformedPacket, rule, " truncated");
  }
  if (!rule.binary && !IsValidMqttUtf8(value)) {
    return PropertyError(reason::kMalformedPacket, rule, " is not valid UTF-8");
  }
  if (field) return PropertyError(reason::kProtocolError, rule, " appears twice");
  field.emplace(value);
  return std::nullopt;
}

// Subscription Identifiers: Variable Byte Integers.
Error ReadValue(Reader& r, const PropertyRule& rule, bool repeatable,
                std::vector<uint32_t>& field) {
  uint32_t value = 0;
  if (!r.ReadVarInt(&value)) return PropertyError(reason::kMalformedPacket, rule, " truncated");
  if (!field.empty() && !repeatable) {
    return PropertyError(reason::kProtocolError, rule, " appears twice");
  }
  if (Error e = CheckValue(rule, value)) return e;
  field.push_back(value);
  return std::nullopt;
}

// User Properties: UTF-8 String Pairs, kept in order.
Error ReadValue(Reader& r, const PropertyRule& rule, bool /*repeatable*/,
                std::vector<std::pair<std::string, std::string>>& field) {
  std::string_view key;
  std::string_view value;
  if (!r.ReadLengthPrefixed(&key) || !r.ReadLengthPrefixed(&value)) {
    return PropertyError(reason::kMalformedPacket, rule, " truncated");
  }
  if (!IsValidMqttUtf8(key) || !IsValidMqttUtf8(value)) {
    return PropertyError(reason::kMalformedPacket, rule, " is not valid UTF-8");
  }
  field.emplace_back(key, value);
  return std::nullopt;
}

// An MQTT 5 property block: a Variable Byte Integer length, then that many bytes of properties,
// each decoded into its field of `properties`. `context` says which block this is, so a property
// that may not be there is refused.
Error ReadProperties(Reader& r, Context context, PropertiesBox* box) {
  uint32_t length = 0;
  std::string_view block;
  if (!r.ReadVarInt(&length)) return Malformed("property length truncated or too long");
  if (!r.ReadBytes(length, &block)) return Malformed("property length exceeds the packet");
  if (length == 0) return std::nullopt;  // the usual case: nothing to allocate
  Properties* properties = &box->Mutable();
  Reader p(block);
  while (!p.empty()) {
    uint32_t id = 0;
    if (!p.ReadVarInt(&id)) return Malformed("property identifier truncated");
    const PropertyRule* rule = RuleOf(id);
    if (rule == nullptr) return Malformed("unknown property identifier");
    if ((rule->on & context) == 0) {
      return PropertyError(reason::kMalformedPacket, *rule, " is not allowed on this packet");
    }
    const bool repeatable = (rule->repeatable_on & context) != 0;
    Error error;
    wire::ForEachProperty(*properties, [&](uint32_t field_id, auto& field) {
      if (field_id == id) error = ReadValue(p, *rule, repeatable, field);
    });
    if (error) return error;
  }
  return std::nullopt;
}

// The reason codes each MQTT 5 packet may carry. Which side may send which code (0x04 only from
// a client, say) is left to the broker, which knows the direction.
constexpr uint8_t kConnackReasons[] = {
    // 3.2.2.2
    reason::kSuccess,
    reason::kUnspecifiedError,
    reason::kMalformedPacket,
    reason::kProtocolError,
    reason::kImplementationSpecificError,
    reason::kUnsupportedProtocolVersion,
    reason::kClientIdentifierNotValid,
    reason::kBadUserNameOrPassword,
    reason::kNotAuthorized,
    reason::kServerUnavailable,
    reason::kServerBusy,
    reason::kBanned,
    reason::kBadAuthenticationMethod,
    reason::kTopicNameInvalid,
    reason::kPacketTooLarge,
    reason::kQuotaExceeded,
    reason::kPayloadFormatInvalid,
    reason::kRetainNotSupported,
    reason::kQosNotSupported,
    reason::kUseAnotherServer,
    reason::kServerMoved,
    reason::kConnectionRateExceeded,
};
constexpr uint8_t kPubackReasons[] = {
    // PUBACK 3.4.2.1, PUBREC 3.5.2.1
    reason::kSuccess,
    reason::kNoMatchingSubscribers,
    reason::kUnspecifiedError,
    reason::kImplementationSpecificError,
    reason::kNotAuthorized,
    reason::kTopicNameInvalid,
    reason::kPacketIdentifierInUse,
    reason::kQuotaExceeded,
    reason::kPayloadFormatInvalid,
};
constexpr uint8_t kPubrelReasons[] = {
    // PUBREL 3.6.2.1, PUBCOMP 3.7.2.1
    reason::kSuccess,
    reason::kPacketIdentifierNotFound,
};
constexpr uint8_t kSubackReasons[] = {
    // 3.9.3
    reason::kSuccess,  // Granted QoS 0
    reason::kGrantedQos1,
    reason::kGrantedQos2,
    reason::kUnspecifiedError,
    reason::kImplementationSpecificError,
    reason::kNotAuthorized,
    reason::kTopicFilterInvalid,
    reason::kPacketIdentifierInUse,
    reason::kQuotaExceeded,
    reason::kSharedSubscriptionsNotSupported,
    reason::kSubscriptionIdentifiersNotSupported,
    reason::kWildcardSubscriptionsNotSupported,
};
constexpr uint8_t kUnsubackReasons[] = {
    // 3.11.3
    reason::kSuccess,
    reason::kNoSubscriptionExisted,
    reason::kUnspecifiedError,
    reason::kImplementationSpecificError,
    reason::kNotAuthorized,
    reason::kTopicFilterInvalid,
    reason::kPacketIdentifierInUse,
};
constexpr uint8_t kDisconnectReasons[] = {
    // 3.14.2.1
    reason::kSuccess,  // Normal disconnection
    reason::kDisconnectWithWill,
    reason::kUnspecifiedError,
    reason::kMalformedPacket,
    reason::kProtocolError,
    reason::kImplementationSpecificError,
    reason::kNotAuthorized,
    reason::kServerBusy,
    reason::kServerShuttingDown,
    reason::kKeepAliveTimeout,
    reason::kSessionTakenOver,
    reason::kTopicFilterInvalid,
    reason::kTopicNameInvalid,
    reason::kReceiveMaximumExceeded,
    reason::kTopicAliasInvalid,
    reason::kPacketTooLarge,
    reason::kMessageRateTooHigh,
    reason::kQuotaExceeded,
    reason::kAdministrativeAction,
    reason::kPayloadFormatInvalid,
    reason::kRetainNotSupported,
    reason::kQosNotSupported,
    reason::kUseAnotherServer,
    reason::kServerMoved,
    reason::kSharedSubscriptionsNotSupported,
    reason::kConnectionRateExceeded,
    reason::kMaximumConnectTime,
    reason::kSubscriptionIdentifiersNotSupported,
    reason::kWildcardSubscriptionsNotSupported,
};
constexpr uint8_t kAuthReasons[] = {
    // 3.15.2.1
    reason::kSuccess,
    reason::kContinueAuthentication,
    reason::kReAuthenticate,
};

std::span<const uint8_t> ReasonCodesOf(PacketType type) {
  switch (type) {
    case PacketType::kConnack:
      return kConnackReasons;
    case PacketType::kPuback:
    case PacketType::kPubrec:
      return kPubackReasons;
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return kPubrelReasons;
    case PacketType::kSuback:
      return kSubackReasons;
    case PacketType::kUnsuback:
      return kUnsubackReasons;
    case PacketType::kDisconnect:
      return kDisconnectReasons;
    case PacketType::kAuth:
      return kAuthReasons;
    default:
      return {};
  }
}

// An MQTT 5 reason code the standard does not list for this packet type is a Protocol Error.
Error CheckReasonCode(PacketType type, uint8_t code) {
  const std::span<const uint8_t> allowed = ReasonCodesOf(type);
  if (std::find(allowed.begin(), allowed.end(), code) == allowed.end()) {
    return ProtocolError("reason code not allowed on this packet");
  }
  return std::nullopt;
}

// The short forms of acks, DISCONNECT and AUTH (3.4.2.1, 3.14.2.1, 3.15.2.1): a body that ends
// before the reason code means Success, one that ends after it means no properties.
Error ReadReasonAndProperties(Reader& r, PacketType type, uint8_t* reason_code,
                              PropertiesBox* properties) {
  if (r.empty()) return std::nullopt;
  r.ReadByte(reason_code);
  if (Error e = CheckReasonCode(type, *reason_code)) return e;
  if (r.empty()) return std::nullopt;
  return ReadProperties(r, On(type), properties);
}

Error DecodeConnect(Reader& r, Connect& connect) {
  std::string_view name;
  uint8_t level = 0;
  if (!r.ReadLengthPrefixed(&name)) return Malformed("CONNECT protocol name truncated");
  if (!r.ReadByte(&level)) return Malformed("CONNECT protocol level missing");
  if (name == "MQIsdp" && level == 3) {
    connect.version = ProtocolVersion::kV31;
  } else if (name == "MQTT" && level == 4) {
    connect.version = ProtocolVersion::kV311;
  } else if (name == "MQTT" && level == 5) {
    connect.version = ProtocolVersion::kV5;
  } else if (name == "MQTT" || name == "MQIsdp") {
    return DecodeError{reason::kUnsupportedProtocolVersion, "unsupported protocol level"};
  } else {
    // Not MQTT at all: MQTT-3.1.2-1 lets the server just disconnect, as Mosquitto does.
    return DecodeError{reason::kProtocolError, "unknown protocol name"};
  }
  connect.protocol_name.assign(name.data(), name.size());
  const bool v5 = connect.version == ProtocolVersion::kV5;

  uint8_t flags = 0;
  if (!r.ReadByte(&flags)) return Malformed("CONNECT flags missing");
  if (flags & 0x01) return Malformed("CONNECT reserved flag set");  // MQTT-3.1.2-3
  const bool will_flag = flags & 0x04;
  const uint8_t will_qos = (flags >> 3) & 0x03;
  const bool will_retain = flags & 0x20;
  const bool password_flag = flags & 0x40;
  const bool username_flag = flags & 0x80;
  if (will_qos == 3) return Malformed("will QoS 3");  // MQTT-3.1.2-14
  if (!will_flag && (will_qos != 0 || will_retain)) {
    return ProtocolError("will QoS or retain set without will flag");  // MQTT-3.1.2-11/13/15
  }
  if (password_flag && !username_flag && connect.version == ProtocolVersion::kV311) {
    return ProtocolError("password flag without user name flag");  // MQTT-3.1.2-22
  }
  connect.clean_session = flags & 0x02;
  if (!r.ReadUint16(&connect.keep_alive)) return Malformed("CONNECT keep alive missing");
  if (v5) {
    if (Error e = ReadProperties(r, kOnConnect, &connect.properties)) return e;
  }

  std::string_view client_id;
  if (Error e = ReadUtf8(r, &client_id, "client identifier truncated",
                         "client identifier is not valid UTF-8")) {
    return e;
  }
  connect.client_id.assign(client_id.data(), client_id.size());

  if (will_flag) {
    Will& will = connect.will.emplace();
    will.qos = will_qos;
    will.retain = will_retain;
    if (v5) {
      if (Error e = ReadProperties(r, kOnWill, &will.properties)) return e;
    }
    std::string_view topic;
    std::string_view payload;
    if (Error e = ReadUtf8(r, &topic, "will topic truncated", "will topic is not valid UTF-8")) {
      return e;
    }
    if (topic.empty()) return DecodeError{reason::kTopicNameInvalid, "empty will topic"};
    if (!r.ReadLengthPrefixed(&payload)) return Malformed("will message truncated");
    will.topic.assign(topic.data(), topic.size());
    will.payload.assign(payload.data(), payload.size());
  }
  if (username_flag) {
    std::string_view username;
    if (Error e = ReadUtf8(r, &username, "user name truncated", "user name is not valid UTF-8")) {
      return e;
    }
    connect.username.emplace(username);
  }
  if (password_flag) {
    std::string_view password;
    if (!r.ReadLengthPrefixed(&password)) return Malformed("password truncated");
    if (username_flag || connect.version != ProtocolVersion::kV31) {
      connect.password.emplace(password);
    }
  }
  return std::nullopt;
}

Error DecodeConnack(Reader& r, ProtocolVersion version, Connack& connack) {
  uint8_t flags = 0;
  if (!r.ReadByte(&flags) || !r.ReadByte(&connack.return_code)) {
    return Malformed("CONNACK truncated");
  }
  // MQTT 3.1 had no Session Present: the whole byte was unused.
  if (version != ProtocolVersion::kV31) {
    if (flags & 0xFE) return Malformed("CONNACK reserved flags set");
    connack.session_present = flags & 0x01;
  }
  if (version == ProtocolVersion::kV5) {
    if (Error e = CheckReasonCode(PacketType::kConnack, connack.return_code)) return e;
    if (Error e = ReadProperties(r, kOnConnack, &connack.properties)) return e;
  } else if (connack.return_code > connack::kNotAuthorized) {
    return Malformed("reserved CONNACK return code");
  }
  if (connack.session_present && connack.return_code != 0) {
    return ProtocolError("session present on a refused connection");  // MQTT-3.2.2-4
  }
  return std::nullopt;
}

Error DecodePublish(uint8_t flags, Reader& r, ProtocolVersion version, Publish& publish) {
  publish.qos = (flags >> 1) & 0x03;
  publish.dup = flags & 0x08;
  publish.retain = flags & 0x01;
  if (publish.qos == 3) return Malformed("PUBLISH QoS 3");                // MQTT-3.3.1-4
  if (publish.dup && publish.qos == 0) return Malformed("DUP on QoS 0");  // MQTT-3.3.1-2
  std::string_view topic;
  if (Error e = ReadUtf8(r, &topic, "topic name truncated", "topic name is not valid UTF-8")) {
    return e;
  }
  const bool v5 = version == ProtocolVersion::kV5;
  if (topic.empty() && !v5) return DecodeError{reason::kTopicNameInvalid, "empty topic name"};
  if (publish.qos > 0) {
    if (Error e = ReadPacketId(r, &publish.packet_id)) return e;
  }
  if (v5) {
    if (Error e = ReadProperties(r, kOnPublish, &publish.properties)) return e;
    if (topic.empty() && !publish.properties->topic_alias) {
      return ProtocolError("empty topic name without a topic alias");  // 3.3.2.1
    }
  }
  const std::string_view payload = r.ReadRest();
  publish.topic.assign(topic.data(), topic.size());
  publish.payload.assign(payload.data(), payload.size());
  return std::nullopt;
}

// PUBACK, PUBREC, PUBREL, PUBCOMP.
Error DecodeAck(Reader& r, ProtocolVersion version, Ack& ack) {
  if (Error e = ReadPacketId(r, &ack.packet_id)) return e;
  if (version != ProtocolVersion::kV5) return std::nullopt;
  return ReadReasonAndProperties(r, ack.type, &ack.reason_code, &ack.properties);
}

Error DecodeSubscribe(Reader& r, ProtocolVersion version, Subscribe& subscribe) {
  const bool v5 = version == ProtocolVersion::kV5;
  if (Error e = ReadPacketId(r, &subscribe.packet_id)) return e;
  if (v5) {
    if (Error e = ReadProperties(r, kOnSubscribe, &subscribe.properties)) return e;
  }
  while (!r.empty()) {
    std::string_view filter;
    uint8_t options = 0;
    if (Error e =
            ReadUtf8(r, &filter, "topic filter truncated", "topic filter is not valid UTF-8")) {
      return e;
    }
    if (!r.ReadByte(&options)) return Malformed("subscription options missing");
    SubscribeTopic& topic = subscribe.topics.emplace_back();
    topic.filter.assign(filter.data(), filter.size());
    topic.qos = options & 0x03;
    if (v5) {
      if (options & 0xC0) return Malformed("subscription options reserved bits set");
      if (topic.qos == 3) return ProtocolError("subscription QoS 3");
      topic.no_local = options & 0x04;
      topic.retain_as_published = options & 0x08;
      topic.retain_handling = (options >> 4) & 0x03;
      if (topic.retain_handling == 3) return ProtocolError("retain handling 3");
    } else {
      if (options & 0xFC) return Malformed("requested QoS reserved bits set");  // MQTT-3.8.3-4
      if (topic.qos == 3) return Malformed("requested QoS 3");                  // MQTT-3.8.3-4
    }
  }
  if (subscribe.topics.empty()) return ProtocolError("SUBSCRIBE without topic filters");
  return std::nullopt;
}

Error DecodeSuback(Reader& r, ProtocolVersion version, Suback& suback) {
  if (Error e = ReadPacketId(r, &suback.packet_id)) return e;
  const bool v5 = version == ProtocolVersion::kV5;
  if (v5) {
    if (Error e = ReadProperties(r, kOnSuback, &suback.properties)) return e;
  }
  const std::string_view codes = r.ReadRest();
  if (codes.empty()) return ProtocolError("SUBACK without return codes");
  suback.return_codes.assign(codes.begin(), codes.end());
  for (uint8_t code : suback.return_codes) {
    if (v5) {
      if (Error e = CheckReasonCode(PacketType::kSuback, code)) return e;
    } else if (code > 2 && code != kSubackFailure) {
      return Malformed("reserved SUBACK return code");
    }
  }
  return std::nullopt;
}

Error DecodeUnsubscribe(Reader& r, ProtocolVersion version, Unsubscribe& unsubscribe) {
  if (Error e = ReadPacketId(r, &unsubscribe.packet_id)) return e;
  if (version == ProtocolVersion::kV5) {
    if (Error e = ReadProperties(r, kOnUnsubscribe, &unsubscribe.properties)) return e;
  }
  while (!r.empty()) {
    std::string_view filter;
    if (Error e =
            ReadUtf8(r, &filter, "topic filter truncated", "topic filter is not valid UTF-8")) {
      return e;
    }
    unsubscribe.filters.emplace_back(filter);
  }
  if (unsubscribe.filters.empty()) return ProtocolError("UNSUBSCRIBE without topic filters");
  return std::nullopt;
}

Error DecodeUnsuback(Reader& r, ProtocolVersion version, Unsuback& unsuback) {
  if (Error e = ReadPacketId(r, &unsuback.packet_id)) return e;
  if (version == ProtocolVersion::kV5) {
    if (Error e = ReadProperties(r, kOnUnsuback, &unsuback.properties)) return e;
    const std::string_view codes = r.ReadRest();
    if (codes.empty()) return ProtocolError("UNSUBACK without reason codes");
    unsuback.reason_codes.assign(codes.begin(), codes.end());
    for (uint8_t code : unsuback.reason_codes) {
      if (Error e = CheckReasonCode(PacketType::kUnsuback, code)) return e;
    }
  }
  return std::nullopt;
}

Error DecodeDisconnect(Reader& r, ProtocolVersion version, Disconnect& disconnect) {
  if (version != ProtocolVersion::kV5) return std::nullopt;
  return ReadReasonAndProperties(r, PacketType::kDisconnect, &disconnect.reason_code,
                                 &disconnect.properties);
}

// Only reached for MQTT 5: AUTH does not exist before.
Error DecodeAuth(Reader& r, Auth& auth) {
  return ReadReasonAndProperties(r, PacketType::kAuth, &auth.reason_code, &auth.properties);
}

// Builds the packet in place inside the result, so a decoded PUBLISH is never moved or copied.
template <typename T, typename DecodeFn>
DecodeResult DecodeAs(const Reader& r, DecodeFn decode) {
  DecodeResult result(std::in_place_type<Packet>, std::in_place_type<T>);
  Error error = decode(std::get<T>(std::get<Packet>(result)));
  if (!error && !r.empty()) error = Malformed("bytes after the last field of the packet");
  if (error) return *std::move(error);
  return result;
}

}  // namespace

DecodeResult Decode(uint8_t first_byte, std::string_view body, ProtocolVersion version) {
  const uint8_t type = first_byte >> 4;
  const uint8_t flags = first_byte & 0x0F;
  const bool v5 = version == ProtocolVersion::kV5;

  if (type == 0) return DecodeError{reason::kMalformedPacket, "reserved packet type 0"};
  if (type == static_cast<uint8_t>(PacketType::kAuth) && !v5) {
    return DecodeError{reason::kMalformedPacket, "AUTH before MQTT 5"};
  }
  const PacketType packet_type = static_cast<PacketType>(type);
  if (packet_type != PacketType::kPublish) {
    const bool flags_0010 = packet_type == PacketType::kPubrel ||
                            packet_type == PacketType::kSubscribe ||
                            packet_type == PacketType::kUnsubscribe;
    if (flags != (flags_0010 ? 0x02 : 0x00)) {  // MQTT-2.2.2-1, -2
      return DecodeError{reason::kMalformedPacket, "reserved fixed header flags"};
    }
  }

  Reader r(body);
  switch (packet_type) {
    case PacketType::kConnect:
      return DecodeAs<Connect>(r, [&](Connect& p) { return DecodeConnect(r, p); });
    case PacketType::kConnack:
      return DecodeAs<Connack>(r, [&](Connack& p) { return DecodeConnack(r, version, p); });
    case PacketType::kPublish:
      return DecodeAs<Publish>(r, [&](Publish& p) { return DecodePublish(flags, r, version, p); });
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return DecodeAs<Ack>(r, [&](Ack& p) {
        p.type = packet_type;
        return DecodeAck(r, version, p);
      });
    case PacketType::kSubscribe:
      return DecodeAs<Subscribe>(r, [&](Subscribe& p) { return DecodeSubscribe(r, version, p); });
    case PacketType::kSuback:
      return DecodeAs<Suback>(r, [&](Suback& p) { return DecodeSuback(r, version, p); });
    case PacketType::kUnsubscribe:
      return DecodeAs<Unsubscribe>(
          r, [&](Unsubscribe& p) { return DecodeUnsubscribe(r, version, p); });
    case PacketType::kUnsuback:
      return DecodeAs<Unsuback>(r, [&](Unsuback& p) { return DecodeUnsuback(r, version, p); });
    case PacketType::kPingreq:
      return DecodeAs<Pingreq>(r, [](Pingreq&) { return Error(); });
    case PacketType::kPingresp:
      return DecodeAs<Pingresp>(r, [](Pingresp&) { return Error(); });
    case PacketType::kDisconnect:
      return DecodeAs<Disconnect>(r,
                                  [&](Disconnect& p) { return DecodeDisconnect(r, version, p); });
    case PacketType::kAuth:
      return DecodeAs<Auth>(r, [&](Auth& p) { return DecodeAuth(r, p); });
  }
  return DecodeError{reason::kMalformedPacket, "unknown packet type"};
}

bool DecodePublishPropertyBlock(std::string_view block, Properties* out) {
  Reader r(block);
  PropertiesBox box;
  if (ReadProperties(r, kOnPublish, &box) || !r.empty()) return false;
  *out = *box;
  return true;
}

}  // namespace meshmq::codec
