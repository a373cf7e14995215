// ParseFrame and Decode, byte for byte: the exact wire form of every packet type, every receiver
// rule of MQTT 3.1.1 (each with the reason code the broker will act on), the MQTT 5 packet forms,
// reason codes and AUTH, and a randomized no-crash run. MQTT 5 properties, one by one, are in
// properties_test.cc.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "node/codec/codec.h"
#include "tests/node/codec/hex.h"

namespace meshmq::codec {
namespace {

using test_util::Hex;

using namespace std::string_literals;

constexpr ProtocolVersion kV31 = ProtocolVersion::kV31;
constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;
constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;
constexpr size_t kNoLimit = std::numeric_limits<size_t>::max();

// Frames a whole packet (which must be exactly one complete frame) and decodes it.
DecodeResult DecodeWire(std::string_view wire, ProtocolVersion version) {
  const Frame frame = ParseFrame(wire, kNoLimit);
  EXPECT_EQ(frame.status, Frame::Status::kComplete);
  EXPECT_EQ(frame.total_size(), wire.size()) << "the test's Remaining Length is wrong";
  if (frame.status != Frame::Status::kComplete) return DecodeError{0, "not a frame"};
  return Decode(frame.first_byte, wire.substr(frame.header_size, frame.remaining_length), version);
}

template <typename T>
std::optional<T> DecodeOk(std::string_view hex, ProtocolVersion version = kV311) {
  const DecodeResult result = DecodeWire(Hex(hex), version);
  if (const auto* error = std::get_if<DecodeError>(&result)) {
    ADD_FAILURE() << "decode error 0x" << std::hex << int{error->reason_code} << ": "
                  << error->what;
    return std::nullopt;
  }
  const T* packet = std::get_if<T>(&std::get<Packet>(result));
  if (packet == nullptr) {
    ADD_FAILURE() << "decoded to another packet type";
    return std::nullopt;
  }
  return *packet;
}

// The reason code Decode reports for `first_byte` and the body `body_hex`, or -1 if it decoded.
int ErrorOf(uint8_t first_byte, std::string_view body_hex, ProtocolVersion version = kV311) {
  const DecodeResult result = Decode(first_byte, Hex(body_hex), version);
  if (const auto* error = std::get_if<DecodeError>(&result)) {
    EXPECT_FALSE(error->what.empty());
    return error->reason_code;
  }
  return -1;
}

bool DecodesOk(uint8_t first_byte, std::string_view body_hex, ProtocolVersion version = kV311) {
  return ErrorOf(first_byte, body_hex, version) == -1;
}

constexpr int kMalformed = reason::kMalformedPacket;
constexpr int kProtocol = reason::kProtocolError;
constexpr int kTopicInvalid = reason::kTopicNameInvalid;
constexpr int kUnsupported = reason::kUnsupportedProtocolVersion;

// CONNECT variable header up to the flags, for 3.1.1.
constexpr std::string_view kMqtt311 = "00 04 4D 51 54 54 04 ";

// ---------------------------------------------------------------------------------------------
// ParseFrame

TEST(ParseFrameTest, EmptyInputIsIncomplete) {
  EXPECT_EQ(ParseFrame("", 100).status, Frame::Status::kIncomplete);
}

TEST(ParseFrameTest, FirstByteAloneIsIncomplete) {
  const Frame frame = ParseFrame(Hex("30"), 100);
  EXPECT_EQ(frame.status, Frame::Status::kIncomplete);
  EXPECT_EQ(frame.first_byte, 0x30);
}

TEST(ParseFrameTest, RemainingLengthBoundaries) {
  struct Case {
    size_t value;
    std::string_view encoded;
  };
  const Case cases[] = {
      {0, "00"},
      {127, "7F"},
      {128, "80 01"},
      {16383, "FF 7F"},
      {16384, "80 80 01"},
      {2097151, "FF FF 7F"},
      {2097152, "80 80 80 01"},
      {268435455, "FF FF FF 7F"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    const std::string header = Hex("30") + Hex(c.encoded);
    const Frame frame = ParseFrame(header, kNoLimit);
    EXPECT_EQ(frame.first_byte, 0x30);
    EXPECT_EQ(frame.header_size, header.size());
    EXPECT_EQ(frame.remaining_length, c.value);
    EXPECT_EQ(frame.status, c.value == 0 ? Frame::Status::kComplete : Frame::Status::kIncomplete);
    // The limit counts the fixed header too.
    EXPECT_NE(ParseFrame(header, header.size() + c.value).status, Frame::Status::kTooLarge);
    EXPECT_EQ(ParseFrame(header, header.size() + c.value - 1).status, Frame::Status::kTooLarge);
  }
  EXPECT_EQ(kMaxRemainingLength, 268435455u);
}

TEST(ParseFrameTest, BodyCompletesTheFrame) {
  const std::string body(200, 'x');
  const std::string wire = Hex("30 C8 01") + body;
  EXPECT_EQ(ParseFrame(wire.substr(0, wire.size() - 1), kNoLimit).status,
            Frame::Status::kIncomplete);
  const Frame frame = ParseFrame(wire, kNoLimit);
  EXPECT_EQ(frame.status, Frame::Status::kComplete);
  EXPECT_EQ(frame.header_size, 3u);
  EXPECT_EQ(frame.remaining_length, 200u);
  EXPECT_EQ(frame.total_size(), wire.size());
}

TEST(ParseFrameTest, FiveByteRemainingLengthIsMalformed) {
  EXPECT_EQ(ParseFrame(Hex("30 FF FF FF FF 7F"), kNoLimit).status, Frame::Status::kMalformed);
  EXPECT_EQ(ParseFrame(Hex("30 80 80 80 80 01"), kNoLimit).status, Frame::Status::kMalformed);
  // Known as soon as the fourth length byte asks for a fifth.
  EXPECT_EQ(ParseFrame(Hex("30 80 80 80 80"), kNoLimit).status, Frame::Status::kMalformed);
  // Three continuation bytes are still only incomplete.
  EXPECT_EQ(ParseFrame(Hex("30 80 80 80"), kNoLimit).status, Frame::Status::kIncomplete);
}

TEST(ParseFrameTest, TooLargeIsReportedBeforeTheBodyArrives) {
  const Frame frame = ParseFrame(Hex("30 FF 7F"), 1000);
  EXPECT_EQ(frame.status, Frame::Status::kTooLarge);
  EXPECT_EQ(frame.remaining_length, 16383u);
  EXPECT_EQ(ParseFrame(Hex("30 FF FF FF 7F"), 1 << 20).status, Frame::Status::kTooLarge);
}

TEST(ParseFrameTest, FramesOnlyTheFirstOfSeveralPackets) {
  const std::string wire = Hex("C0 00 30 03 00 01 74 D0 00");
  const Frame first = ParseFrame(wire, kNoLimit);
  EXPECT_EQ(first.status, Frame::Status::kComplete);
  EXPECT_EQ(first.first_byte, 0xC0);
  EXPECT_EQ(first.total_size(), 2u);
  const Frame second = ParseFrame(std::string_view(wire).substr(2), kNoLimit);
  EXPECT_EQ(second.status, Frame::Status::kComplete);
  EXPECT_EQ(second.first_byte, 0x30);
  EXPECT_EQ(second.total_size(), 5u);
}

// One valid packet of every type, wire form, 3.1.1 unless noted.
std::vector<std::string> ValidPackets() {
  return {
      Hex("10 21 00 04 4D 51 54 54 04 EE 00 3C 00 03 63 69 64 00 03 77 2F 74 00 03 62 79 65 "
          "00 01 75 00 03 70 00 FF"),
      Hex("10 1D 00 04 4D 51 54 54 05 02 00 3C 0F 11 00 00 00 0A 26 00 01 6B 00 01 76 21 00 10 "
          "00 01 63"),
      Hex("20 02 00 00"),
      Hex("3B 09 00 03 61 2F 62 00 0A 68 69"),
      Hex("30 CB 01 00 01 74") + std::string(200, 'p'),  // two-byte Remaining Length
      Hex("40 02 00 0A"),
      Hex("50 02 00 0A"),
      Hex("62 02 00 0A"),
      Hex("70 02 00 0A"),
      Hex("82 10 00 0A 00 03 61 2F 62 01 00 01 23 02 00 01 2B 00"),
      Hex("90 05 00 0A 01 80 02"),
      Hex("A2 0A 00 0B 00 03 61 2F 62 00 01 23"),
      Hex("B0 02 00 0B"),
      Hex("C0 00"),
      Hex("D0 00"),
      Hex("E0 00"),
  };
}

TEST(ParseFrameTest, EveryTruncationOfAValidPacketIsIncomplete) {
  for (const std::string& wire : ValidPackets()) {
    for (size_t n = 0; n < wire.size(); ++n) {
      const Frame frame = ParseFrame(std::string_view(wire).substr(0, n), kNoLimit);
      ASSERT_EQ(frame.status, Frame::Status::kIncomplete)
          << "prefix " << n << " of " << wire.size();
    }
    const Frame frame = ParseFrame(wire, kNoLimit);
    ASSERT_EQ(frame.status, Frame::Status::kComplete);
    ASSERT_EQ(frame.total_size(), wire.size());
  }
}

// ---------------------------------------------------------------------------------------------
// Every packet type, exact bytes

TEST(DecodeTest, ConnectMinimal) {
  const auto c = DecodeOk<Connect>("10 0C 00 04 4D 51 54 54 04 02 00 00 00 00");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->version, kV311);
  EXPECT_EQ(c->protocol_name, "MQTT");
  EXPECT_TRUE(c->clean_session);
  EXPECT_EQ(c->keep_alive, 0);
  EXPECT_EQ(c->client_id, "");
  EXPECT_FALSE(c->will);
  EXPECT_FALSE(c->username);
  EXPECT_FALSE(c->password);
}

TEST(DecodeTest, ConnectWithWillUsernameAndPassword) {
  const auto c = DecodeOk<Connect>(
      "10 21 00 04 4D 51 54 54 04 EE 00 3C 00 03 63 69 64 00 03 77 2F 74 00 03 62 79 65 "
      "00 01 75 00 03 70 00 FF");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->clean_session);
  EXPECT_EQ(c->keep_alive, 60);
  EXPECT_EQ(c->client_id, "cid");
  ASSERT_TRUE(c->will);
  EXPECT_EQ(c->will->topic, "w/t");
  EXPECT_EQ(c->will->payload, "bye");
  EXPECT_EQ(c->will->qos, 1);
  EXPECT_TRUE(c->will->retain);
  EXPECT_EQ(c->username, "u");
  EXPECT_EQ(c->password, "p\0\xFF"s);  // binary, not UTF-8
}

TEST(DecodeTest, ConnectMqtt31) {
  const auto c = DecodeOk<Connect>("10 10 00 06 4D 51 49 73 64 70 03 00 00 0A 00 02 61 62");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->version, kV31);
  EXPECT_EQ(c->protocol_name, "MQIsdp");
  EXPECT_FALSE(c->clean_session);
  EXPECT_EQ(c->keep_alive, 10);
  EXPECT_EQ(c->client_id, "ab");
}

TEST(DecodeTest, ConnectMqtt5Properties) {
  // Session Expiry Interval 10, User Property k=v, Receive Maximum 16.
  const auto c = DecodeOk<Connect>(
      "10 1D 00 04 4D 51 54 54 05 02 00 3C 0F 11 00 00 00 0A 26 00 01 6B 00 01 76 21 00 10 "
      "00 01 63");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->version, kV5);
  EXPECT_EQ(c->keep_alive, 60);
  EXPECT_EQ(c->client_id, "c");
  Properties expected;
  expected.session_expiry_interval = 10;
  expected.user_properties = {{"k", "v"}};
  expected.receive_maximum = 16;
  EXPECT_EQ(c->properties, expected);
}

TEST(DecodeTest, ConnectMqtt5WillPropertiesAndPasswordWithoutUsername) {
  // MQTT 5 (3.1.2.9) allows a password without a user name.
  const auto c = DecodeOk<Connect>(
      "10 24 00 04 4D 51 54 54 05 46 00 00 00 00 01 63 "
      "0C 18 00 00 00 05 26 00 01 61 00 01 62 00 01 74 00 00 00 02 AB CD");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->version, kV5);
  ASSERT_TRUE(c->will);
  EXPECT_EQ(c->will->topic, "t");
  EXPECT_EQ(c->will->payload, "");
  EXPECT_EQ(c->will->properties->will_delay_interval, 5u);
  EXPECT_EQ(c->will->properties->user_properties,
            (std::vector<std::pair<std::string, std::string>>{{"a", "b"}}));
  EXPECT_FALSE(c->username);
  EXPECT_EQ(c->password, "\xAB\xCD");
}

TEST(DecodeTest, Connack) {
  const auto accepted = DecodeOk<Connack>("20 02 00 00");
  ASSERT_TRUE(accepted);
  EXPECT_FALSE(accepted->session_present);
  EXPECT_EQ(accepted->return_code, connack::kAccepted);
  const auto resumed = DecodeOk<Connack>("20 02 01 00");
  ASSERT_TRUE(resumed);
  EXPECT_TRUE(resumed->session_present);
  const auto refused = DecodeOk<Connack>("20 02 00 05");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->return_code, connack::kNotAuthorized);
}

TEST(DecodeTest, PublishQos0) {
  const auto p = DecodeOk<Publish>("30 07 00 03 61 2F 62 68 69");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->topic, "a/b");
  EXPECT_EQ(p->payload, "hi");
  EXPECT_EQ(p->qos, 0);
  EXPECT_FALSE(p->retain);
  EXPECT_FALSE(p->dup);
  EXPECT_EQ(p->packet_id, 0);
}

TEST(DecodeTest, PublishQos1DupRetain) {
  const auto p = DecodeOk<Publish>("3B 09 00 03 61 2F 62 00 0A 68 69");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->qos, 1);
  EXPECT_TRUE(p->dup);
  EXPECT_TRUE(p->retain);
  EXPECT_EQ(p->packet_id, 10);
  EXPECT_EQ(p->payload, "hi");
}

TEST(DecodeTest, PublishQos2BinaryPayload) {
  const auto p = DecodeOk<Publish>("34 07 00 01 74 FF FF 00 01");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->qos, 2);
  EXPECT_EQ(p->packet_id, 0xFFFF);
  EXPECT_EQ(p->payload, "\0\x01"s);  // payloads are not UTF-8 checked
}

TEST(DecodeTest, PublishEmptyPayload) {
  const auto p = DecodeOk<Publish>("31 03 00 01 74");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->topic, "t");
  EXPECT_TRUE(p->retain);
  EXPECT_EQ(p->payload, "");
}

TEST(DecodeTest, PublishAcks) {
  const std::pair<std::string_view, PacketType> cases[] = {
      {"40 02 00 0A", PacketType::kPuback},
      {"50 02 00 0A", PacketType::kPubrec},
      {"62 02 00 0A", PacketType::kPubrel},
      {"70 02 00 0A", PacketType::kPubcomp},
  };
  for (const auto& [hex, type] : cases) {
    const auto ack = DecodeOk<Ack>(hex);
    ASSERT_TRUE(ack) << hex;
    EXPECT_EQ(ack->type, type);
    EXPECT_EQ(ack->packet_id, 10);
  }
}

TEST(DecodeTest, Subscribe) {
  const auto s = DecodeOk<Subscribe>("82 10 00 0A 00 03 61 2F 62 01 00 01 23 02 00 01 2B 00");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->packet_id, 10);
  ASSERT_EQ(s->topics.size(), 3u);
  EXPECT_EQ(s->topics[0].filter, "a/b");
  EXPECT_EQ(s->topics[0].qos, 1);
  EXPECT_EQ(s->topics[1].filter, "#");
  EXPECT_EQ(s->topics[1].qos, 2);
  EXPECT_EQ(s->topics[2].filter, "+");
  EXPECT_EQ(s->topics[2].qos, 0);
}

TEST(DecodeTest, Suback) {
  const auto s = DecodeOk<Suback>("90 05 00 0A 01 80 02");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->packet_id, 10);
  EXPECT_EQ(s->return_codes, (std::vector<uint8_t>{1, kSubackFailure, 2}));
}

TEST(DecodeTest, Unsubscribe) {
  const auto u = DecodeOk<Unsubscribe>("A2 0A 00 0B 00 03 61 2F 62 00 01 23");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->packet_id, 11);
  EXPECT_EQ(u->filters, (std::vector<std::string>{"a/b", "#"}));
}

TEST(DecodeTest, Unsuback) {
  const auto u = DecodeOk<Unsuback>("B0 02 00 0B");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->packet_id, 11);
  EXPECT_TRUE(u->reason_codes.empty());
}

TEST(DecodeTest, PingAndDisconnect) {
  EXPECT_TRUE(DecodeOk<Pingreq>("C0 00"));
  EXPECT_TRUE(DecodeOk<Pingresp>("D0 00"));
  const auto d = DecodeOk<Disconnect>("E0 00");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->reason_code, reason::kSuccess);
}

TEST(DecodeTest, TopicsMayBeMultibyteUtf8) {
  const auto p = DecodeOk<Publish>("30 08 00 06 63 61 66 C3 A9 2F");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->topic, "caf\xC3\xA9/");
}

// ---------------------------------------------------------------------------------------------
// Fixed header (MQTT-2.2.2-1, -2)

TEST(DecodeErrorTest, ReservedPacketType0IsMalformed) { EXPECT_EQ(ErrorOf(0x00, ""), kMalformed); }

TEST(DecodeErrorTest, WrongFixedHeaderFlagsAreMalformed) {
  // Valid bodies, so only the flags can be at fault.
  const std::pair<uint8_t, std::string_view> packets[] = {
      {0x10, "00 04 4D 51 54 54 04 02 00 00 00 00"},
      {0x20, "00 00"},
      {0x40, "00 01"},
      {0x50, "00 01"},
      {0x60, "00 01"},
      {0x70, "00 01"},
      {0x80, "00 01 00 01 74 00"},
      {0x90, "00 01 00"},
      {0xA0, "00 01 00 01 74"},
      {0xB0, "00 01"},
      {0xC0, ""},
      {0xD0, ""},
      {0xE0, ""},
  };
  for (const auto& [type, body] : packets) {
    const uint8_t valid = (type == 0x60 || type == 0x80 || type == 0xA0) ? 0x02 : 0x00;
    ASSERT_TRUE(DecodesOk(type | valid, body)) << std::hex << int{type};
    for (uint8_t flags = 0; flags < 16; ++flags) {
      if (flags == valid) continue;
      EXPECT_EQ(ErrorOf(type | flags, body), kMalformed) << std::hex << int{type | flags};
    }
  }
}

TEST(DecodeErrorTest, PubrelWithFlags0000IsMalformed) {
  EXPECT_EQ(ErrorOf(0x60, "00 01"), kMalformed);
}

TEST(DecodeErrorTest, SubscribeWithFlags0000IsMalformed) {
  EXPECT_EQ(ErrorOf(0x80, "00 01 00 01 74 00"), kMalformed);
}

TEST(DecodeErrorTest, UnsubscribeWithFlags0000IsMalformed) {
  EXPECT_EQ(ErrorOf(0xA0, "00 01 00 01 74"), kMalformed);
}

// ---------------------------------------------------------------------------------------------
// PUBLISH

TEST(DecodeErrorTest, PublishQos3IsMalformed) {  // MQTT-3.3.1-4
  EXPECT_EQ(ErrorOf(0x36, "00 01 74 00 01"), kMalformed);
  EXPECT_EQ(ErrorOf(0x3F, "00 01 74 00 01"), kMalformed);
}

TEST(DecodeErrorTest, PublishDupOnQos0IsMalformed) {  // MQTT-3.3.1-2
  EXPECT_EQ(ErrorOf(0x38, "00 01 74"), kMalformed);
  EXPECT_TRUE(DecodesOk(0x3A, "00 01 74 00 01"));  // DUP on QoS 1 is fine
}

TEST(DecodeErrorTest, PublishEmptyTopicIsInvalid) {  // MQTT-4.7.3-1
  EXPECT_EQ(ErrorOf(0x30, "00 00 68 69"), kTopicInvalid);
  EXPECT_EQ(ErrorOf(0x32, "00 00 00 01"), kTopicInvalid);
  EXPECT_EQ(ErrorOf(0x30, "00 00 68 69", kV31), kTopicInvalid);
}

TEST(DecodeErrorTest, PublishTopicInvalidUtf8IsMalformed) {  // MQTT-3.3.2-1, MQTT-1.5.3-1
  EXPECT_EQ(ErrorOf(0x30, "00 02 C0 AF"), kMalformed);       // overlong
  EXPECT_EQ(ErrorOf(0x30, "00 03 ED A0 80"), kMalformed);    // surrogate
  EXPECT_EQ(ErrorOf(0x30, "00 01 FF"), kMalformed);
}

TEST(DecodeErrorTest, PublishTopicWithNulIsMalformed) {  // MQTT-1.5.3-2, MQTT-4.7.3-2
  EXPECT_EQ(ErrorOf(0x30, "00 03 61 00 62"), kMalformed);
}

TEST(DecodeErrorTest, PublishTopicLongerThanBodyIsMalformed) {
  EXPECT_EQ(ErrorOf(0x30, "00 05 61 62"), kMalformed);
  EXPECT_EQ(ErrorOf(0x30, "00"), kMalformed);
  EXPECT_EQ(ErrorOf(0x30, ""), kMalformed);
}

TEST(DecodeErrorTest, PublishQos1WithoutPacketIdIsMalformed) {
  EXPECT_EQ(ErrorOf(0x32, "00 01 74"), kMalformed);
  EXPECT_EQ(ErrorOf(0x32, "00 01 74 00"), kMalformed);
}

// ---------------------------------------------------------------------------------------------
// Packet identifier 0 (MQTT-2.3.1-1)

TEST(DecodeErrorTest, PacketIdZeroOnQos1PublishIsProtocolError) {
  EXPECT_EQ(ErrorOf(0x32, "00 01 74 00 00 68 69"), kProtocol);
}

TEST(DecodeErrorTest, PacketIdZeroOnQos2PublishIsProtocolError) {
  EXPECT_EQ(ErrorOf(0x34, "00 01 74 00 00"), kProtocol);
}

TEST(DecodeErrorTest, PacketIdZeroOnPublishAcksIsProtocolError) {
  for (uint8_t first_byte : {0x40, 0x50, 0x62, 0x70}) {
    EXPECT_EQ(ErrorOf(first_byte, "00 00"), kProtocol) << std::hex << int{first_byte};
    EXPECT_EQ(ErrorOf(first_byte, "00 00", kV5), kProtocol) << std::hex << int{first_byte};
  }
}

TEST(DecodeErrorTest, PacketIdZeroOnSubscribeIsProtocolError) {
  EXPECT_EQ(ErrorOf(0x82, "00 00 00 01 74 00"), kProtocol);
}

TEST(DecodeErrorTest, PacketIdZeroOnUnsubscribeIsProtocolError) {
  EXPECT_EQ(ErrorOf(0xA2, "00 00 00 01 74"), kProtocol);
}

TEST(DecodeErrorTest, PacketIdZeroOnSubackAndUnsubackIsProtocolError) {
  EXPECT_EQ(ErrorOf(0x90, "00 00 00"), kProtocol);
  EXPECT_EQ(ErrorOf(0xB0, "00 00"), kProtocol);
}

TEST(DecodeErrorTest, TruncatedAckIsMalformed) {
  EXPECT_EQ(ErrorOf(0x40, "00"), kMalformed);
  EXPECT_EQ(ErrorOf(0x40, ""), kMalformed);
}

// ---------------------------------------------------------------------------------------------
// CONNECT

std::string ConnectBody(std::string_view flags_and_rest) {
  return std::string(kMqtt311) + std::string(flags_and_rest);
}

TEST(DecodeErrorTest, ConnectReservedFlagIsMalformed) {  // MQTT-3.1.2-3
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("03 00 00 00 01 63")), kMalformed);
}

TEST(DecodeErrorTest, WillQosWithoutWillFlagIsProtocolError) {            // MQTT-3.1.2-11, -13
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("0A 00 00 00 01 63")), kProtocol);  // QoS 1
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("12 00 00 00 01 63")), kProtocol);  // QoS 2
}

TEST(DecodeErrorTest, WillRetainWithoutWillFlagIsProtocolError) {  // MQTT-3.1.2-15
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("22 00 00 00 01 63")), kProtocol);
}

TEST(DecodeErrorTest, WillQos3IsMalformed) {  // MQTT-3.1.2-14
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("1E 00 00 00 01 63 00 01 74 00 00")), kMalformed);
}

TEST(DecodeErrorTest, PasswordWithoutUsernameIsProtocolErrorIn311) {  // MQTT-3.1.2-22
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("42 00 00 00 01 63 00 01 70")), kProtocol);
}

TEST(DecodeTest, PasswordWithoutUsernameIsDisregardedIn31) {
  const DecodeResult r =
      Decode(0x10, Hex("00 06 4D 51 49 73 64 70 03 42 00 00 00 01 63 00 01 70"), kV31);
  ASSERT_TRUE(std::holds_alternative<Packet>(r));
  const Connect& c = std::get<Connect>(std::get<Packet>(r));
  EXPECT_EQ(c.version, kV31);
  EXPECT_FALSE(c.username);
  EXPECT_FALSE(c.password);
}

TEST(DecodeErrorTest, ClientIdInvalidUtf8IsMalformed) {  // MQTT-3.1.3-4
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("02 00 00 00 02 C3 28")), kMalformed);
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("02 00 00 00 01 00")), kMalformed);  // U+0000
}

TEST(DecodeErrorTest, WillTopicInvalidUtf8IsMalformed) {  // MQTT-3.1.3-10
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("06 00 00 00 01 63 00 03 ED BF BF 00 00")), kMalformed);
}

TEST(DecodeErrorTest, WillTopicEmptyIsInvalid) {  // MQTT-4.7.3-1
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("06 00 00 00 01 63 00 00 00 00")), kTopicInvalid);
}

TEST(DecodeErrorTest, UsernameInvalidUtf8IsMalformed) {  // MQTT-3.1.3-11
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("82 00 00 00 01 63 00 04 F4 90 80 80")), kMalformed);
}

TEST(DecodeErrorTest, ConnectMissingPayloadFieldsIsMalformed) {
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("02 00 00")), kMalformed);           // no client id
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("02 00")), kMalformed);              // keep alive cut
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("")), kMalformed);                   // no flags
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("06 00 00 00 01 63")), kMalformed);  // will missing
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("06 00 00 00 01 63 00 01 74")), kMalformed);
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("82 00 00 00 01 63")), kMalformed);  // user missing
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("C2 00 00 00 01 63 00 01 75")), kMalformed);
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("C2 00 00 00 01 63 00 01 75 00 05 70")), kMalformed);
}

TEST(DecodeErrorTest, ConnectTrailingBytesAreMalformed) {
  EXPECT_EQ(ErrorOf(0x10, ConnectBody("02 00 00 00 01 63 FF")), kMalformed);
}

TEST(DecodeErrorTest, UnknownProtocolLevelIsUnsupported) {  // MQTT-3.1.2-2
  EXPECT_EQ(ErrorOf(0x10, "00 04 4D 51 54 54 03 02 00 00 00 00"), kUnsupported);
  EXPECT_EQ(ErrorOf(0x10, "00 04 4D 51 54 54 06 02 00 00 00 00"), kUnsupported);
  EXPECT_EQ(ErrorOf(0x10, "00 04 4D 51 54 54 84 02 00 00 00 00"), kUnsupported);
  EXPECT_EQ(ErrorOf(0x10, "00 06 4D 51 49 73 64 70 04 02 00 00 00 00"), kUnsupported);
}

// MQTT-3.1.2-1: not MQTT at all, so no CONNACK: a protocol error the server just disconnects.
TEST(DecodeErrorTest, UnknownProtocolNameIsAProtocolError) {
  EXPECT_EQ(ErrorOf(0x10, "00 04 48 54 54 50 04 02 00 00 00 00"), kProtocol);
  EXPECT_EQ(ErrorOf(0x10, "00 04 6D 71 74 74 04 02 00 00 00 00"), kProtocol);  // "mqtt"
  EXPECT_EQ(ErrorOf(0x10, "00 00 04 02 00 00 00 00"), kProtocol);
}

TEST(DecodeErrorTest, UnsupportedVersionWinsOverLaterMalformations) {
  // Reserved flag set and nothing after the flags: still answered with CONNACK code 1.
  EXPECT_EQ(ErrorOf(0x10, "00 04 4D 51 54 54 07 FF"), kUnsupported);
  EXPECT_EQ(ErrorOf(0x10, "00 04 4D 51 54 54 07"), kUnsupported);
}

TEST(DecodeErrorTest, UnreadableProtocolNameIsMalformed) {
  EXPECT_EQ(ErrorOf(0x10, "00 04 4D 51"), kMalformed);
  EXPECT_EQ(ErrorOf(0x10, "00 04 4D 51 54 54"), kMalformed);  // level missing
  EXPECT_EQ(ErrorOf(0x10, ""), kMalformed);
}

// ---------------------------------------------------------------------------------------------
// CONNACK (client side)

TEST(DecodeErrorTest, ConnackReservedFlagsAreMalformed) {
  EXPECT_EQ(ErrorOf(0x20, "02 00"), kMalformed);
  EXPECT_EQ(ErrorOf(0x20, "80 00"), kMalformed);
}

TEST(DecodeErrorTest, ConnackReservedReturnCodeIsMalformed) {
  EXPECT_EQ(ErrorOf(0x20, "00 06"), kMalformed);
}

TEST(DecodeErrorTest, ConnackSessionPresentOnRefusalIsProtocolError) {  // MQTT-3.2.2-4
  EXPECT_EQ(ErrorOf(0x20, "01 05"), kProtocol);
}

TEST(DecodeErrorTest, ConnackWrongLengthIsMalformed) {
  EXPECT_EQ(ErrorOf(0x20, "00"), kMalformed);
  EXPECT_EQ(ErrorOf(0x20, "00 00 00"), kMalformed);
}

TEST(DecodeTest, Mqtt31ConnackHasNoSessionPresentFlag) {
  const DecodeResult r = Decode(0x20, Hex("01 00"), kV31);
  ASSERT_TRUE(std::holds_alternative<Packet>(r));
  EXPECT_FALSE(std::get<Connack>(std::get<Packet>(r)).session_present);
}

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK

TEST(DecodeErrorTest, SubscribeWithoutTopicsIsProtocolError) {  // MQTT-3.8.3-3
  EXPECT_EQ(ErrorOf(0x82, "00 01"), kProtocol);
}

TEST(DecodeErrorTest, SubscribeRequestedQosReservedBitsAreMalformed) {  // MQTT-3.8.3-4
  for (uint8_t bit = 2; bit < 8; ++bit) {
    const std::string body = Hex("00 01 00 01 74") + std::string(1, char(1 << bit));
    const DecodeResult r = Decode(0x82, body, kV311);
    ASSERT_TRUE(std::holds_alternative<DecodeError>(r)) << int{bit};
    EXPECT_EQ(std::get<DecodeError>(r).reason_code, kMalformed) << int{bit};
  }
}

TEST(DecodeErrorTest, SubscribeRequestedQos3IsMalformed) {  // MQTT-3.8.3-4
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 01 74 03"), kMalformed);
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 01 74 01 00 01 75 03"), kMalformed);  // in the 2nd topic
}

TEST(DecodeErrorTest, SubscribeFilterInvalidUtf8IsMalformed) {  // MQTT-3.8.3-1
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 02 C3 28 00"), kMalformed);
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 01 00 00"), kMalformed);
}

TEST(DecodeErrorTest, SubscribeTruncatedTopicIsMalformed) {
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 01 74"), kMalformed);        // options byte missing
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 05 74 00"), kMalformed);     // filter longer than body
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 01 74 00 00"), kMalformed);  // one stray byte after
}

TEST(DecodeErrorTest, UnsubscribeWithoutTopicsIsProtocolError) {  // MQTT-3.10.3-2
  EXPECT_EQ(ErrorOf(0xA2, "00 01"), kProtocol);
}

TEST(DecodeErrorTest, UnsubscribeFilterInvalidUtf8IsMalformed) {  // MQTT-3.10.3-1
  EXPECT_EQ(ErrorOf(0xA2, "00 01 00 01 80"), kMalformed);
  EXPECT_EQ(ErrorOf(0xA2, "00 01 00 01 74 00 03 ED A0 80"), kMalformed);
}

TEST(DecodeErrorTest, UnsubscribeTruncatedFilterIsMalformed) {
  EXPECT_EQ(ErrorOf(0xA2, "00 01 00 02 74"), kMalformed);
  EXPECT_EQ(ErrorOf(0xA2, "00 01 00 01 74 00"), kMalformed);
}

TEST(DecodeErrorTest, SubackReservedReturnCodeIsMalformed) {  // MQTT-3.9.3-2
  EXPECT_EQ(ErrorOf(0x90, "00 01 03"), kMalformed);
  EXPECT_EQ(ErrorOf(0x90, "00 01 00 81"), kMalformed);
}

TEST(DecodeErrorTest, SubackWithoutReturnCodesIsProtocolError) {
  EXPECT_EQ(ErrorOf(0x90, "00 01"), kProtocol);
}

// ---------------------------------------------------------------------------------------------
// Bodies that must be empty or exactly sized

TEST(DecodeErrorTest, TrailingBytesAreMalformed) {
  EXPECT_EQ(ErrorOf(0x40, "00 01 00"), kMalformed);
  EXPECT_EQ(ErrorOf(0x50, "00 01 00"), kMalformed);
  EXPECT_EQ(ErrorOf(0x62, "00 01 00 00"), kMalformed);
  EXPECT_EQ(ErrorOf(0x70, "00 01 00"), kMalformed);
  EXPECT_EQ(ErrorOf(0xB0, "00 01 00"), kMalformed);
}

TEST(DecodeErrorTest, PingreqWithBodyIsMalformed) { EXPECT_EQ(ErrorOf(0xC0, "00"), kMalformed); }

TEST(DecodeErrorTest, PingrespWithBodyIsMalformed) { EXPECT_EQ(ErrorOf(0xD0, "00"), kMalformed); }

TEST(DecodeErrorTest, DisconnectWithBodyIsMalformedBeforeMqtt5) {
  EXPECT_EQ(ErrorOf(0xE0, "00"), kMalformed);
  EXPECT_EQ(ErrorOf(0xE0, "00", kV31), kMalformed);
}

TEST(DecodeErrorTest, AuthIsMalformedBeforeMqtt5) {
  EXPECT_EQ(ErrorOf(0xF0, ""), kMalformed);
  EXPECT_EQ(ErrorOf(0xF0, "00 00"), kMalformed);
  EXPECT_EQ(ErrorOf(0xF0, "18 00"), kMalformed);
  EXPECT_EQ(ErrorOf(0xF0, "", kV31), kMalformed);
}

// ---------------------------------------------------------------------------------------------
// MQTT 5

TEST(DecodeV5Test, PublishWithProperties) {
  // Message Expiry 60, User Property k=v, Subscription Identifier 5.
  const auto p = DecodeOk<Publish>(
      "32 15 00 01 74 00 05 0E 02 00 00 00 3C 26 00 01 6B 00 01 76 0B 05 78", kV5);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->topic, "t");
  EXPECT_EQ(p->packet_id, 5);
  EXPECT_EQ(p->payload, "x");
  Properties expected;
  expected.message_expiry_interval = 60;
  expected.user_properties = {{"k", "v"}};
  expected.subscription_identifiers = {5};
  EXPECT_EQ(p->properties, expected);
}

TEST(DecodeV5Test, PublishWithoutProperties) {
  const auto p = DecodeOk<Publish>("30 05 00 01 74 00 78", kV5);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->payload, "x");
  EXPECT_TRUE(p->properties->user_properties.empty());
}

TEST(DecodeV5Test, UnknownPropertyIsMalformed) {
  EXPECT_EQ(ErrorOf(0x30, "00 01 74 02 7F 00", kV5), kMalformed);
  EXPECT_EQ(ErrorOf(0x30, "00 01 74 02 00 00", kV5), kMalformed);
  EXPECT_EQ(ErrorOf(0x30, "00 01 74 01 04", kV5), kMalformed);
}

TEST(DecodeV5Test, PropertyLengthBeyondBodyIsMalformed) {
  EXPECT_EQ(ErrorOf(0x30, "00 01 74 05 01 01", kV5), kMalformed);
  EXPECT_EQ(ErrorOf(0x30, "00 01 74", kV5), kMalformed);  // no property length at all
  EXPECT_EQ(ErrorOf(0x30, "00 01 74 80 80 80 80 01", kV5), kMalformed);
}

TEST(DecodeV5Test, PropertyCutByItsBlockIsMalformed) {
  // The block says 2 bytes, the Four Byte Integer needs 4 (payload bytes must not be borrowed).
  EXPECT_EQ(ErrorOf(0x30, "00 01 74 02 02 00 00 00 00", kV5), kMalformed);
  EXPECT_EQ(ErrorOf(0x30, "00 01 74 03 26 00 05 61 62", kV5), kMalformed);
}

TEST(DecodeV5Test, UserPropertyInvalidUtf8IsMalformed) {
  EXPECT_EQ(ErrorOf(0x30, "00 01 74 06 26 00 01 80 00 00", kV5), kMalformed);
  EXPECT_EQ(ErrorOf(0x30, "00 01 74 06 26 00 00 00 01 00", kV5), kMalformed);
}

TEST(DecodeV5Test, AckShortForms) {
  const auto plain = DecodeOk<Ack>("40 02 00 0A", kV5);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->reason_code, reason::kSuccess);
  const auto with_reason = DecodeOk<Ack>("50 03 00 0A 10", kV5);
  ASSERT_TRUE(with_reason);
  EXPECT_EQ(with_reason->type, PacketType::kPubrec);
  EXPECT_EQ(with_reason->reason_code, 0x10);
  const auto empty_props = DecodeOk<Ack>("62 04 00 0A 92 00", kV5);
  ASSERT_TRUE(empty_props);
  EXPECT_EQ(empty_props->reason_code, 0x92);
  const auto with_props = DecodeOk<Ack>("70 0B 00 0A 00 07 26 00 01 61 00 01 62", kV5);
  ASSERT_TRUE(with_props);
  EXPECT_EQ(with_props->properties->user_properties.size(), 1u);
  EXPECT_EQ(ErrorOf(0x40, "00 0A 00 05", kV5), kMalformed);
}

TEST(DecodeV5Test, DisconnectForms) {
  const auto plain = DecodeOk<Disconnect>("E0 00", kV5);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->reason_code, reason::kSuccess);
  const auto with_reason = DecodeOk<Disconnect>("E0 01 8E", kV5);
  ASSERT_TRUE(with_reason);
  EXPECT_EQ(with_reason->reason_code, 0x8E);
  const auto with_props = DecodeOk<Disconnect>("E0 09 04 07 26 00 01 61 00 01 62", kV5);
  ASSERT_TRUE(with_props);
  EXPECT_EQ(with_props->reason_code, 0x04);
  EXPECT_EQ(with_props->properties->user_properties.size(), 1u);
  EXPECT_EQ(ErrorOf(0xE0, "00 00 00", kV5), kMalformed);
}

TEST(DecodeV5Test, Connack) {
  const auto c = DecodeOk<Connack>("20 03 01 00 00", kV5);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->session_present);
  EXPECT_EQ(c->return_code, 0);
  const auto refused = DecodeOk<Connack>("20 0A 00 87 07 26 00 01 61 00 01 62", kV5);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->return_code, 0x87);
  EXPECT_EQ(refused->properties->user_properties.size(), 1u);
  EXPECT_EQ(ErrorOf(0x20, "00 00", kV5), kMalformed);  // the property length is required
}

TEST(DecodeV5Test, SubscribeOptions) {
  // QoS 2 + No Local + Retain As Published + Retain Handling 2 = 0x2E.
  const auto s = DecodeOk<Subscribe>("82 07 00 01 00 00 01 74 2E", kV5);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->topics.size(), 1u);
  EXPECT_EQ(s->topics[0].qos, 2);
  EXPECT_TRUE(s->topics[0].no_local);
  EXPECT_TRUE(s->topics[0].retain_as_published);
  EXPECT_EQ(s->topics[0].retain_handling, 2);
}

TEST(DecodeV5Test, SubscribeOptionViolations) {
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 00 01 74 40", kV5), kMalformed);  // reserved bit 6
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 00 01 74 80", kV5), kMalformed);  // reserved bit 7
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 00 01 74 03", kV5), kProtocol);   // QoS 3
  EXPECT_EQ(ErrorOf(0x82, "00 01 00 00 01 74 30", kV5), kProtocol);   // Retain Handling 3
  EXPECT_EQ(ErrorOf(0x82, "00 01 00", kV5), kProtocol);               // no topics
}

TEST(DecodeV5Test, SubackAndUnsuback) {
  const auto s = DecodeOk<Suback>("90 05 00 01 00 01 97", kV5);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->return_codes, (std::vector<uint8_t>{0x01, 0x97}));
  const auto u = DecodeOk<Unsuback>("B0 05 00 01 00 00 11", kV5);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->reason_codes, (std::vector<uint8_t>{0x00, 0x11}));
}

TEST(DecodeV5Test, Unsubscribe) {
  const auto u = DecodeOk<Unsubscribe>("A2 09 00 01 00 00 01 61 00 01 62", kV5);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->filters, (std::vector<std::string>{"a", "b"}));
}

// ---------------------------------------------------------------------------------------------
// MQTT 5: empty topic with Topic Alias (3.3.2.1)

TEST(DecodeV5Test, EmptyTopicWithTopicAliasIsAccepted) {
  const auto p = DecodeOk<Publish>("30 07 00 00 03 23 00 07 78", kV5);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->topic, "");
  EXPECT_EQ(p->properties->topic_alias, 7);
  EXPECT_EQ(p->payload, "x");
  // Alias values are the broker's business, even 0.
  EXPECT_TRUE(DecodesOk(0x32, "00 00 00 01 03 23 00 00", kV5));
}

TEST(DecodeV5Test, EmptyTopicWithoutTopicAliasIsProtocolError) {
  EXPECT_EQ(ErrorOf(0x30, "00 00 00", kV5), kProtocol);
  EXPECT_EQ(ErrorOf(0x30, "00 00 00 68 69", kV5), kProtocol);
  EXPECT_EQ(ErrorOf(0x32, "00 00 00 01 07 26 00 01 61 00 01 62", kV5), kProtocol);
}

TEST(DecodeV5Test, NonEmptyTopicMayAlsoCarryATopicAlias) {  // sets the alias (3.3.2.3.4)
  const auto p = DecodeOk<Publish>("30 07 00 01 74 03 23 00 01", kV5);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->topic, "t");
  EXPECT_EQ(p->properties->topic_alias, 1);
}

// ---------------------------------------------------------------------------------------------
// MQTT 5 reason codes: one allowed and one refused code per packet type, and every code of the
// standard's tables against every packet type.

struct ReasonCase {
  std::string_view name;
  uint8_t first_byte;
  std::string_view before;  // body before the reason code
  std::string_view after;   // body after it
  std::vector<uint8_t> allowed;
};

std::vector<ReasonCase> ReasonCases() {
  return {
      {"CONNACK", 0x20, "00", "00", {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                     0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                     0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}},
      {"PUBACK", 0x40, "00 01", "", {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}},
      {"PUBREC", 0x50, "00 01", "", {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}},
      {"PUBREL", 0x62, "00 01", "", {0x00, 0x92}},
      {"PUBCOMP", 0x70, "00 01", "", {0x00, 0x92}},
      {"SUBACK",
       0x90,
       "00 01 00",
       "",
       {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}},
      {"UNSUBACK", 0xB0, "00 01 00", "", {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}},
      {"DISCONNECT", 0xE0, "", "", {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                    0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                    0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2}},
      {"AUTH", 0xF0, "", "", {0x00, 0x18, 0x19}},
  };
}

TEST(DecodeV5Test, ReasonCodesAreCheckedPerPacketType) {
  for (const ReasonCase& c : ReasonCases()) {
    for (int code = 0; code < 256; ++code) {
      const std::string body = Hex(c.before) + static_cast<char>(code) + Hex(c.after);
      const bool allowed = std::find(c.allowed.begin(), c.allowed.end(), code) != c.allowed.end();
      const DecodeResult r = Decode(c.first_byte, body, kV5);
      if (allowed) {
        EXPECT_TRUE(std::holds_alternative<Packet>(r))
            << c.name << " 0x" << std::hex << code << ": " << std::get<DecodeError>(r).what;
      } else {
        ASSERT_TRUE(std::holds_alternative<DecodeError>(r)) << c.name << " 0x" << std::hex << code;
        EXPECT_EQ(std::get<DecodeError>(r).reason_code, kProtocol)
            << c.name << " 0x" << std::hex << code;
      }
    }
  }
}

TEST(DecodeV5Test, OneValidAndOneInvalidReasonCodePerPacketType) {
  EXPECT_TRUE(DecodesOk(0x20, "00 87 00", kV5));               // CONNACK Not authorized
  EXPECT_EQ(ErrorOf(0x20, "00 02 00", kV5), kProtocol);        // 3.1.1's "identifier rejected"
  EXPECT_TRUE(DecodesOk(0x40, "00 01 10", kV5));               // PUBACK No matching subscribers
  EXPECT_EQ(ErrorOf(0x40, "00 01 92", kV5), kProtocol);        // a PUBREL code
  EXPECT_TRUE(DecodesOk(0x50, "00 01 97 00", kV5));            // PUBREC Quota exceeded
  EXPECT_EQ(ErrorOf(0x50, "00 01 01 00", kV5), kProtocol);     // a SUBACK code
  EXPECT_TRUE(DecodesOk(0x62, "00 01 92", kV5));               // PUBREL Packet id not found
  EXPECT_EQ(ErrorOf(0x62, "00 01 80", kV5), kProtocol);        // Unspecified error: not for PUBREL
  EXPECT_TRUE(DecodesOk(0x70, "00 01 92 00", kV5));            // PUBCOMP Packet id not found
  EXPECT_EQ(ErrorOf(0x70, "00 01 10", kV5), kProtocol);        // a PUBACK code
  EXPECT_TRUE(DecodesOk(0x90, "00 01 00 02 A2", kV5));         // SUBACK QoS 2, no wildcards
  EXPECT_EQ(ErrorOf(0x90, "00 01 00 02 03", kV5), kProtocol);  // QoS 3 in the 2nd code
  EXPECT_TRUE(DecodesOk(0xB0, "00 01 00 11 00", kV5));         // UNSUBACK
  EXPECT_EQ(ErrorOf(0xB0, "00 01 00 00 01", kV5), kProtocol);  // a SUBACK code
  EXPECT_TRUE(DecodesOk(0xE0, "8E", kV5));                     // DISCONNECT Session taken over
  EXPECT_EQ(ErrorOf(0xE0, "18", kV5), kProtocol);              // an AUTH code
  EXPECT_TRUE(DecodesOk(0xF0, "19 00", kV5));                  // AUTH Re-authenticate
  EXPECT_EQ(ErrorOf(0xF0, "87", kV5), kProtocol);              // Not authorized: not for AUTH
}

TEST(DecodeV5Test, ReasonCodesAreNotCheckedBefore5) {
  // 3.1.1 keeps its own rules: a CONNACK return code above 5 is Malformed, SUBACK likewise.
  EXPECT_EQ(ErrorOf(0x20, "00 87"), kMalformed);
  EXPECT_TRUE(DecodesOk(0x90, "00 01 80"));
  EXPECT_EQ(ErrorOf(0x90, "00 01 97"), kMalformed);
}

TEST(DecodeV5Test, UnsubackWithoutReasonCodesIsProtocolError) {
  EXPECT_EQ(ErrorOf(0xB0, "00 01 00", kV5), kProtocol);
  EXPECT_TRUE(DecodesOk(0xB0, "00 01"));  // 3.1.1 UNSUBACK has none
}

// ---------------------------------------------------------------------------------------------
// AUTH (MQTT 5 section 3.15)

TEST(DecodeV5Test, AuthShortForm) {
  const auto a = DecodeOk<Auth>("F0 00", kV5);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, Auth{});
  const auto with_reason = DecodeOk<Auth>("F0 01 18", kV5);
  ASSERT_TRUE(with_reason);
  EXPECT_EQ(with_reason->reason_code, reason::kContinueAuthentication);
  EXPECT_TRUE(with_reason->properties.empty());
  const auto empty_properties = DecodeOk<Auth>("F0 02 19 00", kV5);
  ASSERT_TRUE(empty_properties);
  EXPECT_EQ(empty_properties->reason_code, reason::kReAuthenticate);
  EXPECT_TRUE(empty_properties->properties.empty());
}

TEST(DecodeV5Test, AuthWithProperties) {
  // Continue authentication; Authentication Method "SCRAM", Authentication Data 00 FF,
  // Reason String "go", User Property a=b.
  const auto a = DecodeOk<Auth>(
      "F0 1B 18 19 15 00 05 53 43 52 41 4D 16 00 02 00 FF 1F 00 02 67 6F 26 00 01 61 00 01 62",
      kV5);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->reason_code, reason::kContinueAuthentication);
  Properties expected;
  expected.authentication_method = "SCRAM";
  expected.authentication_data = "\0\xFF"s;
  expected.reason_string = "go";
  expected.user_properties = {{"a", "b"}};
  EXPECT_EQ(a->properties, expected);
}

TEST(DecodeV5Test, AuthErrors) {
  for (uint8_t flags = 1; flags < 16; ++flags) {  // MQTT-2.2.2-2
    EXPECT_EQ(ErrorOf(0xF0 | flags, "", kV5), kMalformed) << int{flags};
  }
  EXPECT_EQ(ErrorOf(0xF0, "18 05 15 00 01", kV5), kMalformed);        // property block truncated
  EXPECT_EQ(ErrorOf(0xF0, "18 00 00", kV5), kMalformed);              // trailing byte
  EXPECT_EQ(ErrorOf(0xF0, "18 02 1F 00", kV5), kMalformed);           // property cut by the block
  EXPECT_EQ(ErrorOf(0xF0, "18 05 11 00 00 00 01", kV5), kMalformed);  // Session Expiry on AUTH
}

TEST(DecodeV5Test, ConnectPropertiesTooLongIsMalformed) {
  EXPECT_EQ(ErrorOf(0x10, "00 04 4D 51 54 54 05 02 00 00 10 00 00", kV5), kMalformed);
}

// ---------------------------------------------------------------------------------------------
// Randomized: ParseFrame + Decode never crash, never read out of bounds (run under ASan/UBSan),
// and whatever decodes re-encodes to something that decodes to the same packet.

std::vector<std::string> FuzzSeeds() {
  std::vector<std::string> seeds = ValidPackets();
  const char* const v5_packets[] = {
      "10 24 00 04 4D 51 54 54 05 46 00 00 00 00 01 63 "
      "0C 18 00 00 00 05 26 00 01 61 00 01 62 00 01 74 00 00 00 02 AB CD",
      "32 15 00 01 74 00 05 0E 02 00 00 00 3C 26 00 01 6B 00 01 76 0B 05 78",
      "70 0B 00 0A 00 07 26 00 01 61 00 01 62",
      "E0 09 04 07 26 00 01 61 00 01 62",
      "20 0A 00 87 07 26 00 01 61 00 01 62",
      "82 07 00 01 00 00 01 74 2E",
      "B0 05 00 01 00 00 11",
      "10 10 00 06 4D 51 49 73 64 70 03 00 00 0A 00 02 61 62",
      "F0 00",
      "F0 1B 18 19 15 00 05 53 43 52 41 4D 16 00 02 00 FF 1F 00 02 67 6F 26 00 01 61 00 01 62",
      "30 07 00 00 03 23 00 07 78",
      // CONNACK with every property it may carry.
      "20 3F 00 00 3C 11 00 00 00 0A 12 00 01 63 13 00 3C 15 00 01 6D 16 00 01 64 1A 00 01 72 "
      "1C 00 01 73 1F 00 01 77 21 00 0A 22 00 05 24 01 25 01 26 00 01 6B 00 01 76 27 00 00 10 00 "
      "28 01 29 00 2A 01",
      // PUBLISH with every property it may carry, two Subscription Identifiers.
      "32 29 00 01 74 00 01 22 01 01 02 00 00 00 3C 03 00 01 63 08 00 01 72 09 00 01 FF 0B 01 "
      "0B 80 01 23 00 02 26 00 01 6B 00 01 76 78",
      "E0 0B 8B 09 11 00 00 00 00 1C 00 01 68",
  };
  for (const char* hex : v5_packets) seeds.push_back(Hex(hex));
  return seeds;
}

void CheckReencodes(const Packet& packet, ProtocolVersion version) {
  if (const auto* connect = std::get_if<Connect>(&packet)) version = connect->version;
  std::string wire;
  Encode(packet, version, &wire);
  const Frame frame = ParseFrame(wire, kNoLimit);
  ASSERT_EQ(frame.status, Frame::Status::kComplete);
  ASSERT_EQ(frame.total_size(), wire.size());
  const DecodeResult again =
      Decode(frame.first_byte, std::string_view(wire).substr(frame.header_size), version);
  ASSERT_TRUE(std::holds_alternative<Packet>(again)) << std::get<DecodeError>(again).what;
  ASSERT_TRUE(std::get<Packet>(again) == packet);
  ASSERT_EQ(EncodedSize(packet, version), wire.size());
}

// The mutations start from valid packets, so every seed must decode (3.1.1 ones at 3.1.1).
TEST(DecodeFuzzTest, SeedsDecode) {
  const std::vector<std::string> seeds = FuzzSeeds();
  const size_t v311_seeds = ValidPackets().size();
  for (size_t i = 0; i < seeds.size(); ++i) {
    const DecodeResult r = DecodeWire(seeds[i], i < v311_seeds ? kV311 : kV5);
    EXPECT_TRUE(std::holds_alternative<Packet>(r)) << "seed " << i;
  }
}

TEST(DecodeFuzzTest, RandomAndMutatedInputNeverCrashes) {
  const std::vector<std::string> seeds = FuzzSeeds();
  std::mt19937_64 rng(20240601);
  const auto random = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  size_t decoded = 0;
  size_t rejected = 0;
  constexpr int kIterations = 300'000;
  for (int i = 0; i < kIterations; ++i) {
    std::string data;
    if (random(8) == 0) {
      data.resize(random(48));
      for (char& c : data) c = static_cast<char>(rng());
    } else {
      data = seeds[random(seeds.size())];
      for (size_t m = 1 + random(4); m > 0; --m) {
        const size_t at = data.empty() ? 0 : random(data.size());
        switch (random(6)) {
          case 0:
            if (!data.empty()) data[at] = static_cast<char>(data[at] ^ (1 << random(8)));
            break;
          case 1:
            if (!data.empty()) data[at] = static_cast<char>(rng());
            break;
          case 2:
            data.insert(at, 1, static_cast<char>(rng()));
            break;
          case 3:
            if (!data.empty()) data.erase(at, 1);
            break;
          case 4:
            data.resize(random(data.size() + 1));
            break;
          case 5:  // a plausible length byte right after the first byte
            if (data.size() > 1) data[1] = static_cast<char>(random(data.size()));
            break;
        }
      }
    }
    // Walk the buffer as a connection would, under a small limit and under none.
    for (const size_t limit : {size_t{64}, kNoLimit}) {
      std::string_view rest = data;
      while (true) {
        const Frame frame = ParseFrame(rest, limit);
        if (frame.status != Frame::Status::kComplete) break;
        ASSERT_LE(frame.total_size(), rest.size());
        const std::string_view body = rest.substr(frame.header_size, frame.remaining_length);
        for (const ProtocolVersion version : {kV31, kV311, kV5}) {
          const DecodeResult result = Decode(frame.first_byte, body, version);
          if (const auto* packet = std::get_if<Packet>(&result)) {
            ++decoded;
            CheckReencodes(*packet, version);
            if (HasFatalFailure()) return;
          } else {
            ++rejected;
            const uint8_t code = std::get<DecodeError>(result).reason_code;
            ASSERT_TRUE(code == reason::kMalformedPacket || code == reason::kProtocolError ||
                        code == reason::kTopicNameInvalid ||
                        code == reason::kUnsupportedProtocolVersion)
                << int{code};
          }
        }
        rest.remove_prefix(frame.total_size());
      }
    }
  }
  RecordProperty("decoded", static_cast<int>(decoded));
  RecordProperty("rejected", static_cast<int>(rejected));
  // The mutations must reach both outcomes, or the test proves little.
  EXPECT_GT(decoded, 10'000u);
  EXPECT_GT(rejected, 10'000u);
}

}  // namespace
}  // namespace meshmq::codec
