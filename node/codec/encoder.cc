// Encode and EncodePublish: packets to their exact wire bytes.
//
// Sender rules this file owns:
// - MQTT-2.2.2-1: PUBREL, SUBSCRIBE and UNSUBSCRIBE are sent with flags 0010, every other type
//   but PUBLISH with 0000.
// - MQTT-3.3.1-2: DUP is always 0 on a QoS 0 PUBLISH; the packet identifier is only on the wire
//   for QoS 1 and 2 (MQTT-2.3.1-5).
// - MQTT-3.2.2-4: a refused CONNACK never claims a present session.
// - MQTT 3.1 CONNACK has no Session Present flag; its first byte is sent as 0.
// - MQTT 3.1.1 UNSUBACK is only the packet identifier (3.11); reason codes are MQTT 5 only.
// - MQTT 5 acks (3.4.2.1), DISCONNECT (3.14.2.1) and AUTH (3.15.2.1) use their short forms:
//   Success without properties (none of them set, user properties included) sends neither reason
//   code nor property length, any other reason without properties omits only the property length.
//   CONNACK, SUBACK, UNSUBACK and PUBLISH always carry a property length, 0 when there are none.
// - MQTT 5 properties (2.2.2.2): every field that is set is sent, in ascending identifier order
//   (the standard allows any order; a fixed one makes the bytes testable), User Properties in
//   their order (3.3.2.3.7: the order must be kept when forwarded), each Subscription Identifier
//   as a property of its own (3.3.4). EncodePublish writes the message's properties, then the
//   delivery's extra ones, into one block.
// - AUTH exists only in MQTT 5; asked to encode one for an older level, the encoder ignores its
//   reason code and properties like those of every other packet, leaving F0 00.
//
// The protocol name and level of a CONNECT come from `version`, not from Connect::protocol_name,
// so one struct encodes correctly for any level ("MQIsdp"/3, "MQTT"/4, "MQTT"/5).
//
// Preconditions, guaranteed by the decoder and the broker's limits rather than checked here:
// strings and binary fields fit in 65535 bytes, the Remaining Length in 268435455, and the
// properties set on a packet are ones that packet may carry.
//
// Every encoder takes its Remaining Length from the same function EncodedSize uses, and property
// sizes and bytes come from the same walk (wire::ForEachProperty), so the size is exact.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "node/codec/codec.h"
#include "node/codec/wire.h"

namespace meshmq::codec {
namespace {

using wire::AppendByte;
using wire::AppendFixedHeader;
using wire::AppendLengthPrefixed;
using wire::AppendUint16;
using wire::AppendUint32;
using wire::AppendVarInt;
using wire::ReserveFor;
using wire::VarIntSize;

using StringPairs = std::vector<std::pair<std::string, std::string>>;

constexpr uint8_t FirstByte(PacketType type, uint8_t flags = 0) {
  return static_cast<uint8_t>((static_cast<uint8_t>(type) << 4) | flags);
}

// A packet of `length` bytes after its fixed header, fixed header included.
size_t PacketSize(size_t length) { return 1 + VarIntSize(length) + length; }

// ---------------------------------------------------------------------------------------------
// Properties. Every identifier is below 128, so it takes one byte as a Variable Byte Integer.

// Bytes of one property field on the wire, identifiers included; 0 if it is not set.
size_t FieldSize(const std::optional<uint8_t>& value) { return value ? 1 + 1 : 0; }
size_t FieldSize(const std::optional<uint16_t>& value) { return value ? 1 + 2 : 0; }
size_t FieldSize(const std::optional<uint32_t>& value) { return value ? 1 + 4 : 0; }
size_t FieldSize(const std::optional<std::string>& value) {
  return value ? 1 + 2 + value->size() : 0;
}
size_t FieldSize(const std::vector<uint32_t>& values) {
  size_t size = 0;
  for (const uint32_t value : values) size += 1 + VarIntSize(value);
  return size;
}
size_t FieldSize(const StringPairs& pairs) {
  size_t size = 0;
  for (const auto& [key, value] : pairs) size += 1 + 2 + key.size() + 2 + value.size();
  return size;
}

void AppendField(uint8_t id, const std::optional<uint8_t>& value, std::string* out) {
  if (!value) return;
  AppendByte(id, out);
  AppendByte(*value, out);
}
void AppendField(uint8_t id, const std::optional<uint16_t>& value, std::string* out) {
  if (!value) return;
  AppendByte(id, out);
  AppendUint16(*value, out);
}
void AppendField(uint8_t id, const std::optional<uint32_t>& value, std::string* out) {
  if (!value) return;
  AppendByte(id, out);
  AppendUint32(*value, out);
}
void AppendField(uint8_t id, const std::optional<std::string>& value, std::string* out) {
  if (!value) return;
  AppendByte(id, out);
  AppendLengthPrefixed(*value, out);
}
void AppendField(uint8_t id, const std::vector<uint32_t>& values, std::string* out) {
  for (const uint32_t value : values) {
    AppendByte(id, out);
    AppendVarInt(value, out);
  }
}
void AppendField(uint8_t id, const StringPairs& pairs, std::string* out) {
  for (const auto& [key, value] : pairs) {
    AppendByte(id, out);
    AppendLengthPrefixed(key, out);
    AppendLengthPrefixed(value, out);
  }
}

// Bytes of the properties themselves, without their length prefix. 0 exactly when none is set.
size_t PropertiesSize(const Properties& properties) {
  size_t size = 0;
  wire::ForEachProperty(properties,
                        [&size](uint8_t, const auto& field) { size += FieldSize(field); });
  return size;
}

// The properties without their length prefix.
void AppendPropertyList(const Properties& properties, std::string* out) {
  wire::ForEachProperty(properties,
                        [out](uint8_t id, const auto& field) { AppendField(id, field, out); });
}

// A property block as sent: Variable Byte Integer length, then the properties.
size_t PropertyBlockSize(const Properties& properties) {
  const size_t size = PropertiesSize(properties);
  return VarIntSize(size) + size;
}

void AppendProperties(const Properties& properties, std::string* out) {
  AppendVarInt(PropertiesSize(properties), out);
  AppendPropertyList(properties, out);
}

// The short forms of MQTT 5 acks, DISCONNECT and AUTH: the bytes of reason code and property
// block, either or both of which may be left off.
size_t ReasonAndPropertiesLength(uint8_t reason_code, const Properties& properties) {
  const size_t size = PropertiesSize(properties);
  if (size > 0) return 1 + VarIntSize(size) + size;
  return reason_code != reason::kSuccess ? 1 : 0;
}

// `length` is what ReasonAndPropertiesLength returned.
void AppendReasonAndProperties(uint8_t reason_code, const Properties& properties, size_t length,
                               std::string* out) {
  if (length > 0) AppendByte(reason_code, out);
  if (length > 1) AppendProperties(properties, out);
}

// ---------------------------------------------------------------------------------------------
// Remaining Length of each packet type: what Encode writes after the fixed header.

std::string_view ProtocolName(ProtocolVersion version) {
  return version == ProtocolVersion::kV31 ? "MQIsdp" : "MQTT";
}

size_t RemainingLength(const Connect& connect, ProtocolVersion version) {
  const bool v5 = version == ProtocolVersion::kV5;
  size_t length = 2 + ProtocolName(version).size() + 1 + 1 + 2 + 2 + connect.client_id.size();
  if (v5) length += PropertyBlockSize(*connect.properties);
  if (connect.will) {
    length += 2 + connect.will->topic.size() + 2 + connect.will->payload.size();
    if (v5) length += PropertyBlockSize(*connect.will->properties);
  }
  if (connect.username) length += 2 + connect.username->size();
  if (connect.password) length += 2 + connect.password->size();
  return length;
}

size_t RemainingLength(const Connack& connack, ProtocolVersion version) {
  return 2 + (version == ProtocolVersion::kV5 ? PropertyBlockSize(*connack.properties) : 0);
}

// Both property sets of EncodePublish, as one block's content.
size_t PublishPropertiesSize(const Properties* properties, const Properties* extra) {
  return (properties != nullptr ? PropertiesSize(*properties) : 0) +
         (extra != nullptr ? PropertiesSize(*extra) : 0);
}

size_t PublishRemainingLength(size_t topic_size, size_t payload_size, uint8_t qos, bool v5,
                              size_t properties_size) {
  size_t length = 2 + topic_size + (qos > 0 ? 2 : 0) + payload_size;
  if (v5) length += VarIntSize(properties_size) + properties_size;
  return length;
}

size_t RemainingLength(const Publish& publish, ProtocolVersion version) {
  const bool v5 = version == ProtocolVersion::kV5;
  return PublishRemainingLength(publish.topic.size(), publish.payload.size(), publish.qos & 0x03,
                                v5, v5 ? PropertiesSize(*publish.properties) : 0);
}

size_t RemainingLength(const Ack& ack, ProtocolVersion version) {
  return 2 + (version == ProtocolVersion::kV5
                  ? ReasonAndPropertiesLength(ack.reason_code, *ack.properties)
                  : 0);
}

size_t RemainingLength(const Subscribe& subscribe, ProtocolVersion version) {
  size_t length =
      2 + (version == ProtocolVersion::kV5 ? PropertyBlockSize(*subscribe.properties) : 0);
  for (const SubscribeTopic& topic : subscribe.topics) length += 2 + topic.filter.size() + 1;
  return length;
}

// SUBACK and UNSUBACK: packet id, (v5) properties, one code per filter; 3.1.1 UNSUBACK has no
// codes.
size_t AckWithCodesLength(PacketType type, const std::vector<uint8_t>& codes,
                          const Properties& properties, ProtocolVersion version) {
  if (version == ProtocolVersion::kV5) return 2 + PropertyBlockSize(properties) + codes.size();
  return 2 + (type == PacketType::kSuback ? codes.size() : 0);
}

size_t RemainingLength(const Suback& suback, ProtocolVersion version) {
  return AckWithCodesLength(PacketType::kSuback, suback.return_codes, *suback.properties, version);
}

size_t RemainingLength(const Unsubscribe& unsubscribe, ProtocolVersion version) {
  size_t length =
      2 + (version == ProtocolVersion::kV5 ? PropertyBlockSize(*unsubscribe.properties) : 0);
  for (const std::string& filter : unsubscribe.filters) length += 2 + filter.size();
  return length;
}

size_t RemainingLength(const Unsuback& unsuback, ProtocolVersion version) {
  return AckWithCodesLength(PacketType::kUnsuback, unsuback.reason_codes, *unsuback.properties,
                            version);
}

size_t RemainingLength(const Pingreq&, ProtocolVersion) { return 0; }
size_t RemainingLength(const Pingresp&, ProtocolVersion) { return 0; }

size_t RemainingLength(const Disconnect& disconnect, ProtocolVersion version) {
  if (version != ProtocolVersion::kV5) return 0;
  return ReasonAndPropertiesLength(disconnect.reason_code, *disconnect.properties);
}

size_t RemainingLength(const Auth& auth, ProtocolVersion version) {
  if (version != ProtocolVersion::kV5) return 0;
  return ReasonAndPropertiesLength(auth.reason_code, *auth.properties);
}

// ---------------------------------------------------------------------------------------------
// Encoders

void EncodeConnect(const Connect& connect, ProtocolVersion version, std::string* out) {
  const bool v5 = version == ProtocolVersion::kV5;
  uint8_t flags = 0;
  if (connect.clean_session) flags |= 0x02;
  if (connect.will) {
    flags |= 0x04 | ((connect.will->qos & 0x03) << 3);
    if (connect.will->retain) flags |= 0x20;
  }
  if (connect.password) flags |= 0x40;
  if (connect.username) flags |= 0x80;

  const size_t length = RemainingLength(connect, version);
  ReserveFor(PacketSize(length), out);
  AppendFixedHeader(FirstByte(PacketType::kConnect), length, out);
  AppendLengthPrefixed(ProtocolName(version), out);
  AppendByte(static_cast<uint8_t>(version), out);
  AppendByte(flags, out);
  AppendUint16(connect.keep_alive, out);
  if (v5) AppendProperties(*connect.properties, out);
  AppendLengthPrefixed(connect.client_id, out);
  if (connect.will) {
    if (v5) AppendProperties(*connect.will->properties, out);
    AppendLengthPrefixed(connect.will->topic, out);
    AppendLengthPrefixed(connect.will->payload, out);
  }
  if (connect.username) AppendLengthPrefixed(*connect.username, out);
  if (connect.password) AppendLengthPrefixed(*connect.password, out);
}

void EncodeConnack(const Connack& connack, ProtocolVersion version, std::string* out) {
  const bool session_present =
      connack.session_present && connack.return_code == 0 && version != ProtocolVersion::kV31;
  const size_t length = RemainingLength(connack, version);
  ReserveFor(PacketSize(length), out);
  AppendFixedHeader(FirstByte(PacketType::kConnack), length, out);
  AppendByte(session_present ? 0x01 : 0x00, out);
  AppendByte(connack.return_code, out);
  if (version == ProtocolVersion::kV5) AppendProperties(*connack.properties, out);
}

void EncodeAck(const Ack& ack, ProtocolVersion version, std::string* out) {
  const uint8_t flags = ack.type == PacketType::kPubrel ? 0x02 : 0x00;
  const size_t length = RemainingLength(ack, version);
  AppendFixedHeader(FirstByte(ack.type, flags), length, out);
  AppendUint16(ack.packet_id, out);
  AppendReasonAndProperties(ack.reason_code, *ack.properties, length - 2, out);
}

void EncodeSubscribe(const Subscribe& subscribe, ProtocolVersion version, std::string* out) {
  const bool v5 = version == ProtocolVersion::kV5;
  const size_t length = RemainingLength(subscribe, version);
  ReserveFor(PacketSize(length), out);
  AppendFixedHeader(FirstByte(PacketType::kSubscribe, 0x02), length, out);
  AppendUint16(subscribe.packet_id, out);
  if (v5) AppendProperties(*subscribe.properties, out);
  for (const SubscribeTopic& topic : subscribe.topics) {
    AppendLengthPrefixed(topic.filter, out);
    uint8_t options = topic.qos & 0x03;
    if (v5) {
      if (topic.no_local) options |= 0x04;
      if (topic.retain_as_published) options |= 0x08;
      options |= (topic.retain_handling & 0x03) << 4;
    }
    AppendByte(options, out);
  }
}

void EncodeAckWithCodes(PacketType type, uint16_t packet_id, const std::vector<uint8_t>& codes,
                        const Properties& properties, ProtocolVersion version, std::string* out) {
  const size_t length = AckWithCodesLength(type, codes, properties, version);
  ReserveFor(PacketSize(length), out);
  AppendFixedHeader(FirstByte(type), length, out);
  AppendUint16(packet_id, out);
  if (version == ProtocolVersion::kV5) AppendProperties(properties, out);
  if (version == ProtocolVersion::kV5 || type == PacketType::kSuback) {
    out->append(reinterpret_cast<const char*>(codes.data()), codes.size());
  }
}

void EncodeUnsubscribe(const Unsubscribe& unsubscribe, ProtocolVersion version, std::string* out) {
  const size_t length = RemainingLength(unsubscribe, version);
  ReserveFor(PacketSize(length), out);
  AppendFixedHeader(FirstByte(PacketType::kUnsubscribe, 0x02), length, out);
  AppendUint16(unsubscribe.packet_id, out);
  if (version == ProtocolVersion::kV5) AppendProperties(*unsubscribe.properties, out);
  for (const std::string& filter : unsubscribe.filters) AppendLengthPrefixed(filter, out);
}

// DISCONNECT and AUTH: only a reason code and properties, both optional.
void EncodeReasonOnly(PacketType type, uint8_t reason_code, const Properties& properties,
                      size_t length, std::string* out) {
  ReserveFor(PacketSize(length), out);
  AppendFixedHeader(FirstByte(type), length, out);
  AppendReasonAndProperties(reason_code, properties, length, out);
}

}  // namespace

void EncodePublish(std::string_view topic, std::string_view payload, uint8_t qos, bool retain,
                   bool dup, uint16_t packet_id, const Properties* properties,
                   const Properties* extra, ProtocolVersion version, std::string* out) {
  qos &= 0x03;
  const bool v5 = version == ProtocolVersion::kV5;
  const size_t properties_size = v5 ? PublishPropertiesSize(properties, extra) : 0;
  const size_t length =
      PublishRemainingLength(topic.size(), payload.size(), qos, v5, properties_size);
  uint8_t flags = static_cast<uint8_t>(qos << 1);
  if (dup && qos > 0) flags |= 0x08;
  if (retain) flags |= 0x01;

  ReserveFor(PacketSize(length), out);
  AppendFixedHeader(FirstByte(PacketType::kPublish, flags), length, out);
  AppendLengthPrefixed(topic, out);
  if (qos > 0) AppendUint16(packet_id, out);
  if (v5) {
    AppendVarInt(properties_size, out);
    if (properties_size > 0) {
      if (properties != nullptr) AppendPropertyList(*properties, out);
      if (extra != nullptr) AppendPropertyList(*extra, out);
    }
  }
  out->append(payload.data(), payload.size());
}

size_t EncodedPublishSize(std::string_view topic, size_t payload_size, uint8_t qos,
                          const Properties* properties, const Properties* extra,
                          ProtocolVersion version) {
  const bool v5 = version == ProtocolVersion::kV5;
  return PacketSize(PublishRemainingLength(topic.size(), payload_size, qos & 0x03, v5,
                                           v5 ? PublishPropertiesSize(properties, extra) : 0));
}

size_t EncodedSize(const Packet& packet, ProtocolVersion version) {
  return std::visit([version](const auto& p) { return PacketSize(RemainingLength(p, version)); },
                    packet);
}

void Encode(const Packet& packet, ProtocolVersion version, std::string* out) {
  std::visit(
      [version, out](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Connect>) {
          EncodeConnect(p, version, out);
        } else if constexpr (std::is_same_v<T, Connack>) {
          EncodeConnack(p, version, out);
        } else if constexpr (std::is_same_v<T, Publish>) {
          EncodePublish(p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, p.properties.get(),
                        nullptr, version, out);
        } else if constexpr (std::is_same_v<T, Ack>) {
          EncodeAck(p, version, out);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          EncodeSubscribe(p, version, out);
        } else if constexpr (std::is_same_v<T, Suback>) {
          EncodeAckWithCodes(PacketType::kSuback, p.packet_id, p.return_codes, *p.properties,
                             version, out);
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
          EncodeUnsubscribe(p, version, out);
        } else if constexpr (std::is_same_v<T, Unsuback>) {
          EncodeAckWithCodes(PacketType::kUnsuback, p.packet_id, p.reason_codes, *p.properties,
                             version, out);
        } else if constexpr (std::is_same_v<T, Pingreq>) {
          AppendFixedHeader(FirstByte(PacketType::kPingreq), 0, out);
        } else if constexpr (std::is_same_v<T, Pingresp>) {
          AppendFixedHeader(FirstByte(PacketType::kPingresp), 0, out);
        } else if constexpr (std::is_same_v<T, Disconnect>) {
          EncodeReasonOnly(PacketType::kDisconnect, p.reason_code, *p.properties,
                           RemainingLength(p, version), out);
        } else if constexpr (std::is_same_v<T, Auth>) {
          EncodeReasonOnly(PacketType::kAuth, p.reason_code, *p.properties,
                           RemainingLength(p, version), out);
        } else {
          static_assert(!sizeof(T), "every packet type must be encodable");
        }
      },
      packet);
}

void EncodePropertyBlock(const Properties& properties, std::string* out) {
  AppendProperties(properties, out);
}

}  // namespace meshmq::codec
