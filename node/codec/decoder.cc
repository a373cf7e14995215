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
// - MQTT-4.7.3-1: topic names are at least one character long; an empty PUBLISH or will topic
//   is kTopicNameInvalid. (MQTT 5 allows an empty topic with a Topic Alias; we do not offer
//   aliases yet, so there it is refused too.)
// - MQTT-3.8.3-3, MQTT-3.10.3-2: SUBSCRIBE and UNSUBSCRIBE carry at least one filter. Protocol
//   Error.
// - MQTT-3.8.3-4: reserved bits of the requested-QoS byte are 0 and QoS is not 3. Malformed.
//   MQTT 5 (3.8.3.1) keeps bits 6-7 reserved (Malformed) and makes QoS 3 and Retain Handling 3
//   Protocol Errors.
// - A length that runs past the end of the body, or bytes left over after the last field
//   (including any body on PINGREQ, PINGRESP and 3.1.1 DISCONNECT), is Malformed.
// - MQTT-3.2.2-4 (client side): a CONNACK with a non-zero return code has Session Present 0.
//
// Topic name and filter syntax (wildcards, '$') is checked by the broker, not here.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

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

// How each MQTT 5 property (section 2.2.2.2) is laid out, so the ones we do not use yet can be
// skipped by their type.
enum class PropertyType { kByte, kUint16, kUint32, kVarInt, kString, kBinary, kStringPair };

std::optional<PropertyType> PropertyTypeOf(uint32_t id) {
  switch (id) {
    case 0x01:  // Payload Format Indicator
    case 0x17:  // Request Problem Information
    case 0x19:  // Request Response Information
    case 0x24:  // Maximum QoS
    case 0x25:  // Retain Available
    case 0x28:  // Wildcard Subscription Available
    case 0x29:  // Subscription Identifier Available
    case 0x2A:  // Shared Subscription Available
      return PropertyType::kByte;
    case 0x13:  // Server Keep Alive
    case 0x21:  // Receive Maximum
    case 0x22:  // Topic Alias Maximum
    case 0x23:  // Topic Alias
      return PropertyType::kUint16;
    case 0x02:  // Message Expiry Interval
    case 0x11:  // Session Expiry Interval
    case 0x18:  // Will Delay Interval
    case 0x27:  // Maximum Packet Size
      return PropertyType::kUint32;
    case 0x0B:  // Subscription Identifier
      return PropertyType::kVarInt;
    case 0x03:  // Content Type
    case 0x08:  // Response Topic
    case 0x12:  // Assigned Client Identifier
    case 0x15:  // Authentication Method
    case 0x1A:  // Response Information
    case 0x1C:  // Server Reference
    case 0x1F:  // Reason String
      return PropertyType::kString;
    case 0x09:  // Correlation Data
    case 0x16:  // Authentication Data
      return PropertyType::kBinary;
    case 0x26:  // User Property
      return PropertyType::kStringPair;
    default:
      return std::nullopt;
  }
}

// An MQTT 5 property block: a Variable Byte Integer length, then that many bytes of properties.
// User Properties are kept; the others are checked for shape and skipped until the MQTT 5 work
// gives them fields. An unknown identifier is Malformed (MQTT 5 section 2.2.2.2).
Error ReadProperties(Reader& r, Properties* properties) {
  uint32_t length = 0;
  std::string_view block;
  if (!r.ReadVarInt(&length)) return Malformed("property length truncated or too long");
  if (!r.ReadBytes(length, &block)) return Malformed("property length exceeds the packet");
  Reader p(block);
  while (!p.empty()) {
    uint32_t id = 0;
    if (!p.ReadVarInt(&id)) return Malformed("property identifier truncated");
    const std::optional<PropertyType> type = PropertyTypeOf(id);
    if (!type) return Malformed("unknown property identifier");
    bool ok = false;
    switch (*type) {
      case PropertyType::kByte: {
        uint8_t v;
        ok = p.ReadByte(&v);
        break;
      }
      case PropertyType::kUint16: {
        uint16_t v;
        ok = p.ReadUint16(&v);
        break;
      }
      case PropertyType::kUint32: {
        uint32_t v;
        ok = p.ReadUint32(&v);
        break;
      }
      case PropertyType::kVarInt: {
        uint32_t v;
        ok = p.ReadVarInt(&v);
        break;
      }
      case PropertyType::kString: {
        std::string_view v;
        if (Error e = ReadUtf8(p, &v, "property truncated", "property is not valid UTF-8")) {
          return e;
        }
        ok = true;
        break;
      }
      case PropertyType::kBinary: {
        std::string_view v;
        ok = p.ReadLengthPrefixed(&v);
        break;
      }
      case PropertyType::kStringPair: {
        std::string_view key;
        std::string_view value;
        if (Error e =
                ReadUtf8(p, &key, "user property truncated", "user property is not valid UTF-8")) {
          return e;
        }
        if (Error e = ReadUtf8(p, &value, "user property truncated",
                               "user property is not valid UTF-8")) {
          return e;
        }
        properties->user_properties.emplace_back(std::string(key), std::string(value));
        ok = true;
        break;
      }
    }
    if (!ok) return Malformed("property truncated");
  }
  return std::nullopt;
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
    if (Error e = ReadProperties(r, &connect.properties)) return e;
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
      if (Error e = ReadProperties(r, &will.properties)) return e;
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
    if (Error e = ReadProperties(r, &connack.properties)) return e;
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
  if (topic.empty()) return DecodeError{reason::kTopicNameInvalid, "empty topic name"};
  if (publish.qos > 0) {
    if (Error e = ReadPacketId(r, &publish.packet_id)) return e;
  }
  if (version == ProtocolVersion::kV5) {
    if (Error e = ReadProperties(r, &publish.properties)) return e;
  }
  const std::string_view payload = r.ReadRest();
  publish.topic.assign(topic.data(), topic.size());
  publish.payload.assign(payload.data(), payload.size());
  return std::nullopt;
}

// PUBACK, PUBREC, PUBREL, PUBCOMP. MQTT 5 (3.4.2.1) may omit the reason code (then Success)
// and, with a reason code, the property length (then no properties).
Error DecodeAck(Reader& r, ProtocolVersion version, Ack& ack) {
  if (Error e = ReadPacketId(r, &ack.packet_id)) return e;
  if (version == ProtocolVersion::kV5 && !r.empty()) {
    r.ReadByte(&ack.reason_code);
    if (!r.empty()) {
      if (Error e = ReadProperties(r, &ack.properties)) return e;
    }
  }
  return std::nullopt;
}

Error DecodeSubscribe(Reader& r, ProtocolVersion version, Subscribe& subscribe) {
  const bool v5 = version == ProtocolVersion::kV5;
  if (Error e = ReadPacketId(r, &subscribe.packet_id)) return e;
  if (v5) {
    if (Error e = ReadProperties(r, &subscribe.properties)) return e;
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
  if (version == ProtocolVersion::kV5) {
    if (Error e = ReadProperties(r, &suback.properties)) return e;
  }
  const std::string_view codes = r.ReadRest();
  if (codes.empty()) return ProtocolError("SUBACK without return codes");
  suback.return_codes.assign(codes.begin(), codes.end());
  if (version != ProtocolVersion::kV5) {
    for (uint8_t code : suback.return_codes) {
      if (code > 2 && code != kSubackFailure) return Malformed("reserved SUBACK return code");
    }
  }
  return std::nullopt;
}

Error DecodeUnsubscribe(Reader& r, ProtocolVersion version, Unsubscribe& unsubscribe) {
  if (Error e = ReadPacketId(r, &unsubscribe.packet_id)) return e;
  if (version == ProtocolVersion::kV5) {
    if (Error e = ReadProperties(r, &unsubscribe.properties)) return e;
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
    if (Error e = ReadProperties(r, &unsuback.properties)) return e;
    const std::string_view codes = r.ReadRest();
    unsuback.reason_codes.assign(codes.begin(), codes.end());
  }
  return std::nullopt;
}

// MQTT 5 (3.14.2.1): Remaining Length 0 means reason Success; below 2 means no properties.
Error DecodeDisconnect(Reader& r, ProtocolVersion version, Disconnect& disconnect) {
  if (version == ProtocolVersion::kV5 && !r.empty()) {
    r.ReadByte(&disconnect.reason_code);
    if (!r.empty()) {
      if (Error e = ReadProperties(r, &disconnect.properties)) return e;
    }
  }
  return std::nullopt;
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
  if (type == static_cast<uint8_t>(PacketType::kAuth)) {
    if (v5) return DecodeError{reason::kProtocolError, "AUTH not supported yet"};
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
      break;  // handled above
  }
  return DecodeError{reason::kMalformedPacket, "unknown packet type"};
}

}  // namespace meshmq::codec
