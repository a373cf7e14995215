// IsValidMqttUtf8 against MQTT-1.5.3-1 (well-formed UTF-8: no overlong forms, no surrogates, no
// code points above U+10FFFF) and MQTT-1.5.3-2 (no U+0000).
#include <cstdint>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "node/codec/codec.h"
#include "tests/node/codec/hex.h"

namespace meshmq::codec {
namespace {

using test_util::Hex;

// UTF-8 encoding of any value up to 0x10FFFF, surrogates included (what a careless encoder
// would produce), so the validator can be checked against every code point.
std::string EncodeCodePoint(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | cp >> 6);
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | cp >> 12);
    s += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | cp >> 18);
    s += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
    s += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A deliberately naive reference: decode one sequence that must span all of `s`, then apply
// the rules by value rather than by byte ranges as the implementation does.
bool ReferenceValidSingle(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  size_t length;
  uint32_t cp;
  if (b(0) < 0x80) {
    length = 1;
    cp = b(0);
  } else if ((b(0) & 0xE0) == 0xC0) {
    length = 2;
    cp = b(0) & 0x1F;
  } else if ((b(0) & 0xF0) == 0xE0) {
    length = 3;
    cp = b(0) & 0x0F;
  } else if ((b(0) & 0xF8) == 0xF0) {
    length = 4;
    cp = b(0) & 0x07;
  } else {
    return false;
  }
  if (s.size() != length) return false;
  for (size_t i = 1; i < length; ++i) {
    if ((b(i) & 0xC0) != 0x80) return false;
    cp = cp << 6 | (b(i) & 0x3F);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[length]) return false;  // overlong
  if (cp >= 0xD800 && cp <= 0xDFFF) return false;
  if (cp > 0x10FFFF) return false;
  return cp != 0;
}

TEST(Utf8Test, EmptyAndAsciiAreValid) {
  EXPECT_TRUE(IsValidMqttUtf8(""));
  EXPECT_TRUE(IsValidMqttUtf8("a"));
  EXPECT_TRUE(IsValidMqttUtf8("sensors/kitchen/temperature"));
  EXPECT_TRUE(IsValidMqttUtf8("\x7F"));
}

TEST(Utf8Test, MultibyteSequencesAreValid) {
  EXPECT_TRUE(IsValidMqttUtf8(Hex("C2 80")));        // U+0080, smallest 2-byte
  EXPECT_TRUE(IsValidMqttUtf8(Hex("C3 A9")));        // é
  EXPECT_TRUE(IsValidMqttUtf8(Hex("DF BF")));        // U+07FF
  EXPECT_TRUE(IsValidMqttUtf8(Hex("E0 A0 80")));     // U+0800, smallest 3-byte
  EXPECT_TRUE(IsValidMqttUtf8(Hex("E2 82 AC")));     // €
  EXPECT_TRUE(IsValidMqttUtf8(Hex("ED 9F BF")));     // U+D7FF, just below the surrogates
  EXPECT_TRUE(IsValidMqttUtf8(Hex("EE 80 80")));     // U+E000, just above them
  EXPECT_TRUE(IsValidMqttUtf8(Hex("EF BB BF")));     // U+FEFF is kept (MQTT-1.5.3-3)
  EXPECT_TRUE(IsValidMqttUtf8(Hex("EF BF BF")));     // U+FFFF: a non-character is allowed
  EXPECT_TRUE(IsValidMqttUtf8(Hex("F0 90 80 80")));  // U+10000, smallest 4-byte
  EXPECT_TRUE(IsValidMqttUtf8(Hex("F0 9D 84 9E")));  // 𝄞
  EXPECT_TRUE(IsValidMqttUtf8(Hex("F4 8F BF BF")));  // U+10FFFF, the largest
  EXPECT_TRUE(IsValidMqttUtf8("caf\xC3\xA9/\xE2\x82\xAC/\xF0\x9D\x84\x9E/end of a long topic"));
}

TEST(Utf8Test, ControlCharactersAreOnlyASenderShouldNot) {
  EXPECT_TRUE(IsValidMqttUtf8("\x01"));
  EXPECT_TRUE(IsValidMqttUtf8("\x1F"));
  EXPECT_TRUE(IsValidMqttUtf8(Hex("C2 9F")));  // U+009F
}

TEST(Utf8Test, OverlongEncodingsAreInvalid) {
  EXPECT_FALSE(IsValidMqttUtf8(Hex("C0 80")));        // overlong U+0000
  EXPECT_FALSE(IsValidMqttUtf8(Hex("C0 AF")));        // overlong '/'
  EXPECT_FALSE(IsValidMqttUtf8(Hex("C1 BF")));        // overlong U+007F
  EXPECT_FALSE(IsValidMqttUtf8(Hex("E0 80 80")));     // overlong U+0000
  EXPECT_FALSE(IsValidMqttUtf8(Hex("E0 80 AF")));     // overlong '/'
  EXPECT_FALSE(IsValidMqttUtf8(Hex("E0 9F BF")));     // overlong U+07FF
  EXPECT_FALSE(IsValidMqttUtf8(Hex("F0 80 80 80")));  // overlong U+0000
  EXPECT_FALSE(IsValidMqttUtf8(Hex("F0 8F BF BF")));  // overlong U+FFFF
  EXPECT_FALSE(IsValidMqttUtf8("a/" + Hex("C0 AF") + "b"));
}

TEST(Utf8Test, SurrogatesAreInvalid) {
  EXPECT_FALSE(IsValidMqttUtf8(Hex("ED A0 80")));  // U+D800
  EXPECT_FALSE(IsValidMqttUtf8(Hex("ED AD BF")));  // U+DB7F
  EXPECT_FALSE(IsValidMqttUtf8(Hex("ED B0 80")));  // U+DC00
  EXPECT_FALSE(IsValidMqttUtf8(Hex("ED BF BF")));  // U+DFFF
  // A surrogate pair encoded as two 3-byte sequences (CESU-8) is still two surrogates.
  EXPECT_FALSE(IsValidMqttUtf8(Hex("ED A0 BD ED B2 A9")));
}

TEST(Utf8Test, CodePointsAbove10FFFFAreInvalid) {
  EXPECT_FALSE(IsValidMqttUtf8(Hex("F4 90 80 80")));  // U+110000
  EXPECT_FALSE(IsValidMqttUtf8(Hex("F5 80 80 80")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("F7 BF BF BF")));        // U+1FFFFF
  EXPECT_FALSE(IsValidMqttUtf8(Hex("F8 88 80 80 80")));     // old 5-byte form
  EXPECT_FALSE(IsValidMqttUtf8(Hex("FC 84 80 80 80 80")));  // old 6-byte form
  EXPECT_FALSE(IsValidMqttUtf8(Hex("FE")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("FF")));
}

TEST(Utf8Test, TruncatedSequencesAreInvalid) {
  EXPECT_FALSE(IsValidMqttUtf8(Hex("C3")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("E2 82")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("E2")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("F0 9D 84")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("F0 9D")));
  EXPECT_FALSE(IsValidMqttUtf8("abc" + Hex("F0 9D 84")));
  // Cut short by the next character rather than by the end of the string.
  EXPECT_FALSE(IsValidMqttUtf8(Hex("C3 41")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("E2 82 41")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("F0 9D 84 41")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("E2 C3 A9")));
}

TEST(Utf8Test, StrayContinuationBytesAreInvalid) {
  EXPECT_FALSE(IsValidMqttUtf8(Hex("80")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("BF")));
  EXPECT_FALSE(IsValidMqttUtf8(Hex("C3 A9 A9")));
  EXPECT_FALSE(IsValidMqttUtf8("topic/" + Hex("80") + "/more"));
}

TEST(Utf8Test, EmbeddedNulIsInvalid) {
  using namespace std::string_literals;
  EXPECT_FALSE(IsValidMqttUtf8("\0"s));
  EXPECT_FALSE(IsValidMqttUtf8("a\0b"s));
  EXPECT_FALSE(IsValidMqttUtf8("abc\0"s));
  // At every position of a string long enough for the word-at-a-time path.
  for (size_t i = 0; i < 40; ++i) {
    std::string s(40, 'x');
    s[i] = '\0';
    EXPECT_FALSE(IsValidMqttUtf8(s)) << "NUL at " << i;
  }
}

TEST(Utf8Test, BadByteAtEveryPositionOfALongStringIsFound) {
  for (size_t i = 0; i < 40; ++i) {
    std::string s(40, 'y');
    s[i] = '\x80';
    EXPECT_FALSE(IsValidMqttUtf8(s)) << "continuation byte at " << i;
    s[i] = '\xC3';  // truncated by the following ASCII
    EXPECT_FALSE(IsValidMqttUtf8(s)) << "lead byte at " << i;
    s.replace(i, 1, "\xC3\xA9");
    EXPECT_TRUE(IsValidMqttUtf8(s)) << "é at " << i;
  }
}

TEST(Utf8Test, EveryCodePointMatchesTheRules) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const bool expected = cp != 0 && (cp < 0xD800 || cp > 0xDFFF);
    const std::string s = EncodeCodePoint(cp);
    ASSERT_EQ(IsValidMqttUtf8(s), expected) << std::hex << "U+" << cp;
    // The same character inside a longer string takes the other code paths.
    ASSERT_EQ(IsValidMqttUtf8("abcdefgh" + s + "ijklmnop"), expected) << std::hex << "U+" << cp;
  }
}

// Every sequence of two or three non-ASCII-led bytes, compared with the naive reference: this
// covers all overlong, surrogate, truncated and misplaced-continuation combinations of that size.
TEST(Utf8Test, AllShortByteSequencesAgreeWithReference) {
  std::string s2(2, '\0');
  std::string s3(3, '\0');
  for (int a = 0x80; a <= 0xFF; ++a) {
    s2[0] = s3[0] = static_cast<char>(a);
    for (int b = 0; b <= 0xFF; ++b) {
      s2[1] = s3[1] = static_cast<char>(b);
      // Two bytes: one 2-byte sequence, or a lead followed by ASCII (never valid for a >= 0x80).
      const bool ref2 = ReferenceValidSingle(s2);
      ASSERT_EQ(IsValidMqttUtf8(s2), ref2) << std::hex << a << " " << b;
      for (int c = 0; c <= 0xFF; ++c) {
        s3[2] = static_cast<char>(c);
        const bool ref3 =
            ReferenceValidSingle(s3) || (ref2 && c != 0 && c < 0x80);  // 2-byte sequence then ASCII
        ASSERT_EQ(IsValidMqttUtf8(s3), ref3) << std::hex << a << " " << b << " " << c;
      }
    }
  }
}

TEST(Utf8Test, FourByteLeadsAgreeWithReference) {
  std::string s(4, '\x80');
  for (int a = 0xF0; a <= 0xFF; ++a) {
    s[0] = static_cast<char>(a);
    for (int b = 0x70; b <= 0xC0; ++b) {
      s[1] = static_cast<char>(b);
      for (int c : {0x41, 0x80, 0xBF, 0xC0}) {
        s[2] = static_cast<char>(c);
        for (int d : {0x41, 0x80, 0xBF, 0xC0}) {
          s[3] = static_cast<char>(d);
          ASSERT_EQ(IsValidMqttUtf8(s), ReferenceValidSingle(s))
              << std::hex << a << " " << b << " " << c << " " << d;
        }
      }
    }
  }
}

}  // namespace
}  // namespace meshmq::codec
