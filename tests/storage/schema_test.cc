#include "storage/schema.h"

#include <string>

#include "gtest/gtest.h"

namespace meshmq::storage {
namespace {

using std::string_literals::operator""s;

TEST(SchemaTest, MessageKeyLayout) {
  EXPECT_EQ(MessageKey("c1", 0x0102), "c1\0\0\0\0\0\0\0\x01\x02"s);
  EXPECT_EQ(InboundQos2Key("c1", 0x0102), "c1\0\x01\x02"s);
  EXPECT_EQ(SessionRangeBegin("c1"), "c1\0"s);
  EXPECT_EQ(SessionRangeEnd("c1"), "c1\1"s);
}

TEST(SchemaTest, MessageKeyRoundTrips) {
  for (uint64_t seq : {uint64_t{0}, uint64_t{1}, uint64_t{255}, uint64_t{256}, uint64_t{1} << 32,
                       uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string client_id;
    uint64_t parsed = 12345;
    ASSERT_TRUE(ParseMessageKey(MessageKey("client/é", seq), &client_id, &parsed)) << seq;
    EXPECT_EQ(client_id, "client/é");
    EXPECT_EQ(parsed, seq);
  }
}

TEST(SchemaTest, InboundQos2KeyRoundTrips) {
  for (uint16_t packet_id : {1, 255, 256, 65535}) {
    std::string client_id;
    uint16_t parsed = 0;
    ASSERT_TRUE(ParseInboundQos2Key(InboundQos2Key("c", packet_id), &client_id, &parsed));
    EXPECT_EQ(client_id, "c");
    EXPECT_EQ(parsed, packet_id);
  }
}

TEST(SchemaTest, EmptyClientIdRoundTrips) {
  std::string client_id = "x";
  uint64_t seq = 0;
  ASSERT_TRUE(ParseMessageKey(MessageKey("", 7), &client_id, &seq));
  EXPECT_EQ(client_id, "");
  EXPECT_EQ(seq, 7u);
}

// RocksDB orders keys bytewise; big-endian seqs make that queue order.
TEST(SchemaTest, KeysSortInSeqOrder) {
  EXPECT_LT(MessageKey("c", 1), MessageKey("c", 256));
  EXPECT_LT(MessageKey("c", 256), MessageKey("c", uint64_t{1} << 32));
  EXPECT_LT(MessageKey("c", uint64_t{1} << 32), MessageKey("c", uint64_t{1} << 40));
  EXPECT_LT(InboundQos2Key("c", 255), InboundQos2Key("c", 256));
}

// A client whose id extends another's ("a" and "ab") keeps its keys out of the other's range.
TEST(SchemaTest, SessionRangeHoldsExactlyOneClient) {
  const std::string begin = SessionRangeBegin("a");
  const std::string end = SessionRangeEnd("a");
  for (uint64_t seq : {uint64_t{0}, uint64_t{1} << 40, ~uint64_t{0}}) {
    EXPECT_GE(MessageKey("a", seq), begin);
    EXPECT_LT(MessageKey("a", seq), end);
    EXPECT_GE(MessageKey("ab", seq), end);
    EXPECT_GE(MessageKey("a\x01", seq), end);
  }
  EXPECT_GE(InboundQos2Key("a", 65535), begin);
  EXPECT_LT(InboundQos2Key("a", 65535), end);
  EXPECT_GE(InboundQos2Key("ab", 0), end);
}

TEST(SchemaTest, ParseRejectsMalformedKeys) {
  std::string client_id;
  uint64_t seq = 0;
  uint16_t packet_id = 0;
  EXPECT_FALSE(ParseMessageKey("no-separator-12345", &client_id, &seq));
  EXPECT_FALSE(ParseMessageKey("c\0\0\0\0\0\0\0\x01"s, &client_id, &seq));      // 7 bytes
  EXPECT_FALSE(ParseMessageKey("c\0\0\0\0\0\0\0\0\0\x01"s, &client_id, &seq));  // 9 bytes
  EXPECT_FALSE(ParseMessageKey(InboundQos2Key("c", 1), &client_id, &seq));
  EXPECT_FALSE(ParseMessageKey("", &client_id, &seq));
  EXPECT_FALSE(ParseInboundQos2Key("c", &client_id, &packet_id));
  EXPECT_FALSE(ParseInboundQos2Key("c\0\x01"s, &client_id, &packet_id));
  EXPECT_FALSE(ParseInboundQos2Key(MessageKey("c", 1), &client_id, &packet_id));
}

}  // namespace
}  // namespace meshmq::storage
