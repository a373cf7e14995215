// Framing and UTF-8 validation, the two checks that run on every byte a client sends.
//
// Rules enforced here:
// - MQTT-2.2.3: the Remaining Length is a Variable Byte Integer of at most four bytes; a fourth
//   byte with its continuation bit set is a malformed packet.
// - MQTT-1.5.3-1: UTF-8 Encoded Strings must be well-formed UTF-8 (RFC 3629): no overlong forms,
//   no code points above U+10FFFF, and no surrogates U+D800..U+DFFF; the receiver closes the
//   connection on ill-formed data.
// - MQTT-1.5.3-2: a UTF-8 Encoded String must not contain U+0000.
// - MQTT-1.5.3-3: U+FEFF is an ordinary character, never stripped. Control characters and
//   non-characters are only a SHOULD NOT for senders, so they are accepted.
#include "node/codec/codec.h"

#include <cstring>

#include "node/codec/wire.h"

namespace meshmq::codec {

Frame ParseFrame(std::string_view data, size_t max_packet_size) {
  Frame frame;
  if (data.empty()) return frame;
  frame.first_byte = static_cast<uint8_t>(data[0]);

  size_t remaining_length = 0;
  for (size_t i = 0; i < wire::kMaxVarIntBytes; ++i) {
    if (1 + i >= data.size()) return frame;  // kIncomplete: the length is not all here yet
    const uint8_t byte = static_cast<uint8_t>(data[1 + i]);
    remaining_length |= size_t{byte & 0x7Fu} << (7 * i);
    if ((byte & 0x80) == 0) {
      frame.header_size = 2 + i;
      frame.remaining_length = remaining_length;
      if (frame.total_size() > max_packet_size) {
        frame.status = Frame::Status::kTooLarge;
      } else if (data.size() >= frame.total_size()) {
        frame.status = Frame::Status::kComplete;
      }
      return frame;
    }
  }
  frame.status = Frame::Status::kMalformed;
  return frame;
}

namespace {

// True if the 8 bytes at `p` are all ASCII and none is zero: the common case for topics and
// client ids, checked a word at a time.
bool IsPlainAsciiWord(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof(word));
  constexpr uint64_t kHighBits = 0x8080808080808080ull;
  constexpr uint64_t kLowBits = 0x0101010101010101ull;
  const bool has_zero = ((word - kLowBits) & ~word & kHighBits) != 0;
  return (word & kHighBits) == 0 && !has_zero;
}

bool IsContinuation(uint8_t byte) { return (byte & 0xC0) == 0x80; }

}  // namespace

bool IsValidMqttUtf8(std::string_view s) {
  const char* const data = s.data();
  const size_t size = s.size();
  size_t i = 0;
  while (i < size) {
    if (i + 8 <= size && IsPlainAsciiWord(data + i)) {
      i += 8;
      continue;
    }
    const uint8_t lead = static_cast<uint8_t>(data[i]);
    if (lead < 0x80) {
      if (lead == 0) return false;  // MQTT-1.5.3-2
      ++i;
      continue;
    }
    // The well-formed sequences of the Unicode Standard, Table 3-7: the allowed range of the
    // second byte excludes overlong forms (E0, F0), surrogates (ED) and > U+10FFFF (F4).
    size_t length;
    uint8_t second_min = 0x80;
    uint8_t second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_min = 0xA0;
      if (lead == 0xED) second_max = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_min = 0x90;
      if (lead == 0xF4) second_max = 0x8F;
    } else {
      return false;  // a stray continuation byte, an overlong C0/C1 lead, or F5..FF
    }
    if (size - i < length) return false;
    const uint8_t second = static_cast<uint8_t>(data[i + 1]);
    if (second < second_min || second > second_max) return false;
    for (size_t k = 2; k < length; ++k) {
      if (!IsContinuation(static_cast<uint8_t>(data[i + k]))) return false;
    }
    i += length;
  }
  return true;
}

}  // namespace meshmq::codec
