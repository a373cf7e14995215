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
// - MQTT 5 acks (3.4.2.1) and DISCONNECT (3.14.2.1) use their short forms: Success without
//   properties sends neither reason code nor property length, any other reason without
//   properties omits only the property length. CONNACK, SUBACK, UNSUBACK and PUBLISH always
//   carry a property length, 0 when there are none.
//
// The protocol name and level of a CONNECT come from `version`, not from Connect::protocol_name,
// so one struct encodes correctly for any level ("MQIsdp"/3, "MQTT"/4, "MQTT"/5).
//
// Preconditions, guaranteed by the decoder and the broker's limits rather than checked here:
// strings and binary fields fit in 65535 bytes, and the Remaining Length in 268435455.
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
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
using wire::AppendVarInt;
using wire::ReserveFor;
using wire::VarIntSize;

constexpr uint8_t FirstByte(PacketType type, uint8_t flags = 0) {
  return static_cast<uint8_t>((static_cast<uint8_t>(type) << 4) | flags);
}

// Bytes of the properties themselves, without their length prefix.
size_t PropertiesSize(const Properties& properties) {
  size_t size = 0;
  for (const auto& [key, value] : properties.user_properties) {
    size += 1 + 2 + key.size() + 2 + value.size();
  }
  return size;
}

// A property block as sent: Variable Byte Integer length, then the properties.
size_t PropertyBlockSize(const Properties& properties) {
  const size_t size = PropertiesSize(properties);
  return VarIntSize(size) + size;
}

// `size` is PropertiesSize(properties), passed in where the caller already computed it.
void AppendProperties(const Properties& properties, size_t size, std::string* out) {
  AppendVarInt(size, out);
  for (const auto& [key, value] : properties.user_properties) {
    AppendByte(0x26, out);  // User Property
    AppendLengthPrefixed(key, out);
    AppendLengthPrefixed(value, out);
  }
}

void AppendProperties(const Properties& properties, std::string* out) {
  AppendProperties(properties, PropertiesSize(properties), out);
}

void EncodeConnect(const Connect& connect, ProtocolVersion version, std::string* out) {
  const bool v5 = version == ProtocolVersion::kV5;
  const std::string_view name = version == ProtocolVersion::kV31 ? "MQIsdp" : "MQTT";
  uint8_t flags = 0;
  if (connect.clean_session) flags |= 0x02;
  if (connect.will) {
    flags |= 0x04 | ((connect.will->qos & 0x03) << 3);
    if (connect.will->retain) flags |= 0x20;
  }
  if (connect.password) flags |= 0x40;
  if (connect.username) flags |= 0x80;

  size_t length = 2 + name.size() + 1 + 1 + 2 + 2 + connect.client_id.size();
  if (v5) length += PropertyBlockSize(connect.properties);
  if (connect.will) {
    length += 2 + connect.will->topic.size() + 2 + connect.will->payload.size();
    if (v5) length += PropertyBlockSize(connect.will->properties);
  }
  if (connect.username) length += 2 + connect.username->size();
  if (connect.password) length += 2 + connect.password->size();

  ReserveFor(1 + VarIntSize(length) + length, out);
  AppendFixedHeader(FirstByte(PacketType::kConnect), length, out);
  AppendLengthPrefixed(name, out);
  AppendByte(static_cast<uint8_t>(version), out);
  AppendByte(flags, out);
  AppendUint16(connect.keep_alive, out);
  if (v5) AppendProperties(connect.properties, out);
  AppendLengthPrefixed(connect.client_id, out);
  if (connect.will) {
    if (v5) AppendProperties(connect.will->properties, out);
    AppendLengthPrefixed(connect.will->topic, out);
    AppendLengthPrefixed(connect.will->payload, out);
  }
  if (connect.username) AppendLengthPrefixed(*connect.username, out);
  if (connect.password) AppendLengthPrefixed(*connect.password, out);
}

void EncodeConnack(const Connack& connack, ProtocolVersion version, std::string* out) {
  const bool v5 = version == ProtocolVersion::kV5;
  const bool session_present =
      connack.session_present && connack.return_code == 0 && version != ProtocolVersion::kV31;
  const size_t length = 2 + (v5 ? PropertyBlockSize(connack.properties) : 0);
  AppendFixedHeader(FirstByte(PacketType::kConnack), length, out);
  AppendByte(session_present ? 0x01 : 0x00, out);
  AppendByte(connack.return_code, out);
  if (v5) AppendProperties(connack.properties, out);
}

void EncodeAck(const Ack& ack, ProtocolVersion version, std::string* out) {
  const uint8_t flags = ack.type == PacketType::kPubrel ? 0x02 : 0x00;
  const bool has_properties = !ack.properties.user_properties.empty();
  size_t length = 2;
  if (version == ProtocolVersion::kV5) {
    if (has_properties) {
      length += 1 + PropertyBlockSize(ack.properties);
    } else if (ack.reason_code != reason::kSuccess) {
      length += 1;
    }
  }
  AppendFixedHeader(FirstByte(ack.type, flags), length, out);
  AppendUint16(ack.packet_id, out);
  if (length > 2) AppendByte(ack.reason_code, out);
  if (length > 3) AppendProperties(ack.properties, out);
}

void EncodeSubscribe(const Subscribe& subscribe, ProtocolVersion version, std::string* out) {
  const bool v5 = version == ProtocolVersion::kV5;
  size_t length = 2 + (v5 ? PropertyBlockSize(subscribe.properties) : 0);
  for (const SubscribeTopic& topic : subscribe.topics) length += 2 + topic.filter.size() + 1;
  ReserveFor(1 + VarIntSize(length) + length, out);
  AppendFixedHeader(FirstByte(PacketType::kSubscribe, 0x02), length, out);
  AppendUint16(subscribe.packet_id, out);
  if (v5) AppendProperties(subscribe.properties, out);
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

// SUBACK and UNSUBACK: packet id, (v5) properties, one code per filter.
void EncodeAckWithCodes(PacketType type, uint16_t packet_id, const std::vector<uint8_t>& codes,
                        const Properties& properties, ProtocolVersion version, std::string* out) {
  const size_t length =
      2 + (version == ProtocolVersion::kV5 ? PropertyBlockSize(properties) + codes.size()
                                           : (type == PacketType::kSuback ? codes.size() : 0));
  AppendFixedHeader(FirstByte(type), length, out);
  AppendUint16(packet_id, out);
  if (version == ProtocolVersion::kV5) AppendProperties(properties, out);
  if (version == ProtocolVersion::kV5 || type == PacketType::kSuback) {
    out->append(reinterpret_cast<const char*>(codes.data()), codes.size());
  }
}

void EncodeUnsubscribe(const Unsubscribe& unsubscribe, ProtocolVersion version, std::string* out) {
  const bool v5 = version == ProtocolVersion::kV5;
  size_t length = 2 + (v5 ? PropertyBlockSize(unsubscribe.properties) : 0);
  for (const std::string& filter : unsubscribe.filters) length += 2 + filter.size();
  ReserveFor(1 + VarIntSize(length) + length, out);
  AppendFixedHeader(FirstByte(PacketType::kUnsubscribe, 0x02), length, out);
  AppendUint16(unsubscribe.packet_id, out);
  if (v5) AppendProperties(unsubscribe.properties, out);
  for (const std::string& filter : unsubscribe.filters) AppendLengthPrefixed(filter, out);
}

void EncodeDisconnect(const Disconnect& disconnect, ProtocolVersion version, std::string* out) {
  size_t length = 0;
  if (version == ProtocolVersion::kV5) {
    if (!disconnect.properties.user_properties.empty()) {
      length = 1 + PropertyBlockSize(disconnect.properties);
    } else if (disconnect.reason_code != reason::kSuccess) {
      length = 1;
    }
  }
  AppendFixedHeader(FirstByte(PacketType::kDisconnect), length, out);
  if (length > 0) AppendByte(disconnect.reason_code, out);
  if (length > 1) AppendProperties(disconnect.properties, out);
}

}  // namespace

void EncodePublish(std::string_view topic, std::string_view payload, uint8_t qos, bool retain,
                   bool dup, uint16_t packet_id, const Properties* properties,
                   ProtocolVersion version, std::string* out) {
  qos &= 0x03;
  const bool v5 = version == ProtocolVersion::kV5;
  size_t properties_size = 0;
  size_t length = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size();
  if (v5) {
    properties_size = properties != nullptr ? PropertiesSize(*properties) : 0;
    length += VarIntSize(properties_size) + properties_size;
  }
  uint8_t flags = static_cast<uint8_t>(qos << 1);
  if (dup && qos > 0) flags |= 0x08;
  if (retain) flags |= 0x01;

  ReserveFor(1 + VarIntSize(length) + length, out);
  AppendFixedHeader(FirstByte(PacketType::kPublish, flags), length, out);
  AppendLengthPrefixed(topic, out);
  if (qos > 0) AppendUint16(packet_id, out);
  if (v5) {
    if (properties != nullptr) {
      AppendProperties(*properties, properties_size, out);
    } else {
      AppendByte(0, out);
    }
  }
  out->append(payload.data(), payload.size());
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
          EncodePublish(p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, &p.properties,
                        version, out);
        } else if constexpr (std::is_same_v<T, Ack>) {
          EncodeAck(p, version, out);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          EncodeSubscribe(p, version, out);
        } else if constexpr (std::is_same_v<T, Suback>) {
          EncodeAckWithCodes(PacketType::kSuback, p.packet_id, p.return_codes, p.properties,
                             version, out);
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
          EncodeUnsubscribe(p, version, out);
        } else if constexpr (std::is_same_v<T, Unsuback>) {
          EncodeAckWithCodes(PacketType::kUnsuback, p.packet_id, p.reason_codes, p.properties,
                             version, out);
        } else if constexpr (std::is_same_v<T, Pingreq>) {
          AppendFixedHeader(FirstByte(PacketType::kPingreq), 0, out);
        } else if constexpr (std::is_same_v<T, Pingresp>) {
          AppendFixedHeader(FirstByte(PacketType::kPingresp), 0, out);
        } else if constexpr (std::is_same_v<T, Disconnect>) {
          EncodeDisconnect(p, version, out);
        } else {
          static_assert(!sizeof(T), "every packet type must be encodable");
        }
      },
      packet);
}

}  // namespace meshmq::codec
