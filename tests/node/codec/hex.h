// Test helper for writing packets as hex, the way the spec and Wireshark show them.
#ifndef MESHMQ_TESTS_NODE_CODEC_HEX_H_
#define MESHMQ_TESTS_NODE_CODEC_HEX_H_

#include <string>
#include <string_view>

namespace meshmq::codec::test_util {

// "30 02 00 00" -> bytes; spaces are ignored.
inline std::string Hex(std::string_view hex) {
  std::string out;
  int high = -1;
  for (char c : hex) {
    if (c == ' ') continue;
    const int v = (c >= '0' && c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<char>(high << 4 | v));
      high = -1;
    }
  }
  return out;
}

// Bytes -> "30 02 00 00", so a mismatch shows where it is.
inline std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty()) out += ' ';
    out += kDigits[c >> 4];
    out += kDigits[c & 0x0F];
  }
  return out;
}

}  // namespace meshmq::codec::test_util

#endif  // MESHMQ_TESTS_NODE_CODEC_HEX_H_
