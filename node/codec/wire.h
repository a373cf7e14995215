// Internal to node/codec: the primitive data representations of MQTT (section 1.5) as a bounds-
// checked reader over a packet body and append-only writers into an output string, and the list of
// MQTT 5 properties that the decoder and the encoder both walk. Not part of the codec's API;
// include node/codec/codec.h instead.
//
// Every Read* returns false instead of reading past the end, so the decoder can turn any
// truncation into a Malformed Packet without ever touching memory it was not given.
#ifndef MESHMQ_NODE_CODEC_WIRE_H_
#define MESHMQ_NODE_CODEC_WIRE_H_

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "node/codec/packet.h"

namespace meshmq::codec::wire {

// A Variable Byte Integer takes at most 4 bytes (MQTT-2.2.3, MQTT 5 section 1.5.5).
inline constexpr size_t kMaxVarIntBytes = 4;
inline constexpr uint32_t kMaxVarInt = 268'435'455;

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return pos_ == data_.size(); }

  bool ReadByte(uint8_t* value) {
    if (remaining() < 1) return false;
    *value = Byte(pos_++);
    return true;
  }

  // Two Byte Integer, big-endian (MQTT-1.5.2).
  bool ReadUint16(uint16_t* value) {
    if (remaining() < 2) return false;
    *value = static_cast<uint16_t>((Byte(pos_) << 8) | Byte(pos_ + 1));
    pos_ += 2;
    return true;
  }

  // Four Byte Integer, big-endian (MQTT 5 section 1.5.3).
  bool ReadUint32(uint32_t* value) {
    if (remaining() < 4) return false;
    *value = (uint32_t{Byte(pos_)} << 24) | (uint32_t{Byte(pos_ + 1)} << 16) |
             (uint32_t{Byte(pos_ + 2)} << 8) | uint32_t{Byte(pos_ + 3)};
    pos_ += 4;
    return true;
  }

  // Variable Byte Integer: false if truncated or if a 4th byte still has its continuation bit.
  bool ReadVarInt(uint32_t* value) {
    uint32_t result = 0;
    for (size_t i = 0; i < kMaxVarIntBytes; ++i) {
      if (empty()) return false;
      const uint8_t byte = Byte(pos_++);
      result |= uint32_t{byte & 0x7Fu} << (7 * i);
      if ((byte & 0x80) == 0) {
        *value = result;
        return true;
      }
    }
    return false;
  }

  bool ReadBytes(size_t n, std::string_view* value) {
    if (remaining() < n) return false;
    *value = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }

  // A two-byte length followed by that many bytes: the shape of both UTF-8 Encoded Strings and
  // Binary Data (MQTT-1.5.3, MQTT 5 section 1.5.6). Validating the UTF-8 is the caller's choice.
  bool ReadLengthPrefixed(std::string_view* value) {
    uint16_t length = 0;
    const size_t start = pos_;
    if (!ReadUint16(&length) || !ReadBytes(length, value)) {
      pos_ = start;
      return false;
    }
    return true;
  }

  // Everything not read yet, e.g. a PUBLISH payload.
  std::string_view ReadRest() {
    std::string_view rest = data_.substr(pos_);
    pos_ = data_.size();
    return rest;
  }

 private:
  uint8_t Byte(size_t i) const { return static_cast<uint8_t>(data_[i]); }

  std::string_view data_;
  size_t pos_ = 0;
};

// Bytes a Variable Byte Integer needs for `value` (which must be <= kMaxVarInt).
inline size_t VarIntSize(size_t value) {
  if (value < 128) return 1;
  if (value < 16'384) return 2;
  if (value < 2'097'152) return 3;
  return 4;
}

// Writes `value` as a Variable Byte Integer into `dest`, returning the bytes written. The caller
// guarantees value <= kMaxVarInt: the encoder only builds packets from fields the decoder
// accepted or the broker bounded, and a larger packet cannot exist on the wire at all.
inline size_t PutVarInt(size_t value, char* dest) {
  assert(value <= kMaxVarInt);
  size_t n = 0;
  do {
    uint8_t byte = value & 0x7F;
    value >>= 7;
    if (value > 0) byte |= 0x80;
    dest[n++] = static_cast<char>(byte);
  } while (value > 0 && n < kMaxVarIntBytes);
  return n;
}

inline void AppendByte(uint8_t value, std::string* out) {
  out->push_back(static_cast<char>(value));
}

inline void AppendUint16(uint16_t value, std::string* out) {
  const char bytes[2] = {static_cast<char>(value >> 8), static_cast<char>(value & 0xFF)};
  out->append(bytes, 2);
}

inline void AppendVarInt(size_t value, std::string* out) {
  char bytes[kMaxVarIntBytes];
  out->append(bytes, PutVarInt(value, bytes));
}

// String or Binary Data with its two-byte length. Fields longer than 65535 bytes cannot be
// represented; the decoder never produces them and the broker bounds what it builds.
inline void AppendLengthPrefixed(std::string_view value, std::string* out) {
  assert(value.size() <= 0xFFFF);
  AppendUint16(static_cast<uint16_t>(value.size()), out);
  out->append(value.data(), value.size());
}

// Makes room for `n` more bytes with one allocation at most. Growing to at least twice the
// capacity keeps appending many packets to one buffer amortized O(1) on any standard library,
// not only on those whose reserve() already rounds up.
inline void ReserveFor(size_t n, std::string* out) {
  const size_t needed = out->size() + n;
  if (needed > out->capacity()) out->reserve(std::max(needed, 2 * out->capacity()));
}

// The fixed header: first byte and Remaining Length (MQTT-2.2).
inline void AppendFixedHeader(uint8_t first_byte, size_t remaining_length, std::string* out) {
  char bytes[1 + kMaxVarIntBytes];
  bytes[0] = static_cast<char>(first_byte);
  out->append(bytes, 1 + PutVarInt(remaining_length, bytes + 1));
}

inline void AppendUint32(uint32_t value, std::string* out) {
  const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>((value >> 16) & 0xFF),
                         static_cast<char>((value >> 8) & 0xFF), static_cast<char>(value & 0xFF)};
  out->append(bytes, 4);
}

// Calls `f(id, field)` for every field of `properties` (const or not), in ascending property
// identifier order (MQTT 5 section 2.2.2.2). The field's C++ type says how its value is laid out:
// optional<uint8_t> a Byte, optional<uint16_t> a Two Byte Integer, optional<uint32_t> a Four Byte
// Integer, optional<string> a UTF-8 String or Binary Data (0x09 and 0x16 are binary),
// vector<uint32_t> one Variable Byte Integer property per element, and the vector of pairs one
// UTF-8 String Pair property per element. The one list of properties in the codec: the encoder's
// size and its bytes come from the same walk, and the decoder finds a property's field here.
template <typename P, typename F>
void ForEachProperty(P& properties, F&& f) {
  f(0x01, properties.payload_format_indicator);
  f(0x02, properties.message_expiry_interval);
  f(0x03, properties.content_type);
  f(0x08, properties.response_topic);
  f(0x09, properties.correlation_data);
  f(0x0B, properties.subscription_identifiers);
  f(0x11, properties.session_expiry_interval);
  f(0x12, properties.assigned_client_identifier);
  f(0x13, properties.server_keep_alive);
  f(0x15, properties.authentication_method);
  f(0x16, properties.authentication_data);
  f(0x17, properties.request_problem_information);
  f(0x18, properties.will_delay_interval);
  f(0x19, properties.request_response_information);
  f(0x1A, properties.response_information);
  f(0x1C, properties.server_reference);
  f(0x1F, properties.reason_string);
  f(0x21, properties.receive_maximum);
  f(0x22, properties.topic_alias_maximum);
  f(0x23, properties.topic_alias);
  f(0x24, properties.maximum_qos);
  f(0x25, properties.retain_available);
  f(0x26, properties.user_properties);
  f(0x27, properties.maximum_packet_size);
  f(0x28, properties.wildcard_subscription_available);
  f(0x29, properties.subscription_identifier_available);
  f(0x2A, properties.shared_subscription_available);
}

}  // namespace meshmq::codec::wire

#endif  // MESHMQ_NODE_CODEC_WIRE_H_
