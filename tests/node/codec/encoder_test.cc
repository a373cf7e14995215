// Encode and EncodePublish, byte for byte, Encode -> ParseFrame -> Decode round trips of every
// packet type for MQTT 3.1, 3.1.1 and 5 (MQTT 5 ones with every property they may carry), and
// EncodedSize / EncodedPublishSize against what the encoders append.
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "node/codec/codec.h"
#include "tests/node/codec/hex.h"

namespace meshmq::codec {
namespace {

using test_util::Hex;
using test_util::ToHex;

using namespace std::string_literals;

constexpr ProtocolVersion kV31 = ProtocolVersion::kV31;
constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;
constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;

std::string EncodeToHex(const Packet& packet, ProtocolVersion version = kV311) {
  std::string out;
  Encode(packet, version, &out);
  return ToHex(out);
}

// Normalizes the expected hex the same way, so tests can write it with any spacing.
std::string H(std::string_view hex) { return ToHex(Hex(hex)); }

Properties UserProperties(std::vector<std::pair<std::string, std::string>> pairs) {
  Properties properties;
  properties.user_properties = std::move(pairs);
  return properties;
}

// ---------------------------------------------------------------------------------------------
// MQTT 3.1.1 exact bytes

TEST(EncodeTest, ConnectMinimal) {
  EXPECT_EQ(EncodeToHex(Connect{}), H("10 0C 00 04 4D 51 54 54 04 02 00 00 00 00"));
}

TEST(EncodeTest, ConnectWithWillUsernameAndPassword) {
  Connect c;
  c.keep_alive = 60;
  c.client_id = "cid";
  c.will = Will{"w/t", "bye", 1, true, {}};
  c.username = "u";
  c.password = "p\0\xFF"s;
  EXPECT_EQ(EncodeToHex(c), H("10 21 00 04 4D 51 54 54 04 EE 00 3C 00 03 63 69 64 "
                              "00 03 77 2F 74 00 03 62 79 65 00 01 75 00 03 70 00 FF"));
}

TEST(EncodeTest, ConnectFlagsOneByOne) {
  Connect c;
  c.clean_session = false;
  c.client_id = "c";
  EXPECT_EQ(EncodeToHex(c), H("10 0D 00 04 4D 51 54 54 04 00 00 00 00 01 63"));
  c.will = Will{"t", "", 2, false, {}};
  EXPECT_EQ(EncodeToHex(c), H("10 12 00 04 4D 51 54 54 04 14 00 00 00 01 63 00 01 74 00 00"));
  c.will.reset();
  c.username = "";
  EXPECT_EQ(EncodeToHex(c), H("10 0F 00 04 4D 51 54 54 04 80 00 00 00 01 63 00 00"));
}

TEST(EncodeTest, ConnectMqtt31UsesMQIsdp) {
  Connect c;
  c.clean_session = false;
  c.keep_alive = 10;
  c.client_id = "ab";
  EXPECT_EQ(EncodeToHex(c, kV31), H("10 10 00 06 4D 51 49 73 64 70 03 00 00 0A 00 02 61 62"));
}

TEST(EncodeTest, Connack) {
  EXPECT_EQ(EncodeToHex(Connack{}), "20 02 00 00");
  EXPECT_EQ(EncodeToHex(Connack{true, connack::kAccepted, {}}), "20 02 01 00");
  EXPECT_EQ(EncodeToHex(Connack{false, connack::kBadUsernameOrPassword, {}}), "20 02 00 04");
}

TEST(EncodeTest, RefusedConnackNeverClaimsASession) {  // MQTT-3.2.2-4
  EXPECT_EQ(EncodeToHex(Connack{true, connack::kNotAuthorized, {}}), "20 02 00 05");
}

TEST(EncodeTest, Mqtt31ConnackHasNoSessionPresent) {
  EXPECT_EQ(EncodeToHex(Connack{true, connack::kAccepted, {}}, kV31), "20 02 00 00");
}

TEST(EncodeTest, PublishQos0) {
  Publish p;
  p.topic = "a/b";
  p.payload = "hi";
  EXPECT_EQ(EncodeToHex(p), H("30 07 00 03 61 2F 62 68 69"));
}

TEST(EncodeTest, PublishQos1DupRetain) {
  Publish p;
  p.topic = "a/b";
  p.payload = "hi";
  p.qos = 1;
  p.dup = true;
  p.retain = true;
  p.packet_id = 10;
  EXPECT_EQ(EncodeToHex(p), H("3B 09 00 03 61 2F 62 00 0A 68 69"));
}

TEST(EncodeTest, PublishQos2BinaryPayload) {
  Publish p;
  p.topic = "t";
  p.payload = "\0\x01"s;
  p.qos = 2;
  p.packet_id = 0xFFFF;
  EXPECT_EQ(EncodeToHex(p), H("34 07 00 01 74 FF FF 00 01"));
}

TEST(EncodeTest, PublishQos0HasNeitherDupNorPacketId) {  // MQTT-3.3.1-2, MQTT-2.3.1-5
  Publish p;
  p.topic = "t";
  p.dup = true;
  p.packet_id = 7;
  EXPECT_EQ(EncodeToHex(p), H("30 03 00 01 74"));
}

TEST(EncodeTest, PublishAcks) {
  EXPECT_EQ(EncodeToHex(Ack{PacketType::kPuback, 10, reason::kSuccess, {}}), "40 02 00 0A");
  EXPECT_EQ(EncodeToHex(Ack{PacketType::kPubrec, 10, reason::kSuccess, {}}), "50 02 00 0A");
  EXPECT_EQ(EncodeToHex(Ack{PacketType::kPubrel, 10, reason::kSuccess, {}}), "62 02 00 0A");
  EXPECT_EQ(EncodeToHex(Ack{PacketType::kPubcomp, 0x1234, reason::kSuccess, {}}), "70 02 12 34");
}

TEST(EncodeTest, Mqtt311AcksCarryNoReasonCodeOrProperties) {
  EXPECT_EQ(EncodeToHex(Ack{PacketType::kPuback, 10, 0x80, UserProperties({{"a", "b"}})}),
            "40 02 00 0A");
}

TEST(EncodeTest, Subscribe) {
  Subscribe s;
  s.packet_id = 10;
  s.topics = {{"a/b", 1, false, false, 0}, {"#", 2, false, false, 0}, {"+", 0, false, false, 0}};
  EXPECT_EQ(EncodeToHex(s), H("82 10 00 0A 00 03 61 2F 62 01 00 01 23 02 00 01 2B 00"));
}

TEST(EncodeTest, Mqtt311SubscribeSendsOnlyTheQos) {
  Subscribe s;
  s.packet_id = 1;
  s.topics = {{"t", 1, true, true, 2}};
  EXPECT_EQ(EncodeToHex(s), H("82 06 00 01 00 01 74 01"));
}

TEST(EncodeTest, Suback) {
  EXPECT_EQ(EncodeToHex(Suback{10, {1, kSubackFailure, 2}, {}}), "90 05 00 0A 01 80 02");
}

TEST(EncodeTest, Unsubscribe) {
  EXPECT_EQ(EncodeToHex(Unsubscribe{11, {"a/b", "#"}, {}}),
            H("A2 0A 00 0B 00 03 61 2F 62 00 01 23"));
}

TEST(EncodeTest, UnsubackIsOnlyThePacketId) {
  EXPECT_EQ(EncodeToHex(Unsuback{11, {}, {}}), "B0 02 00 0B");
  EXPECT_EQ(EncodeToHex(Unsuback{11, {0x00, 0x11}, {}}), "B0 02 00 0B");
}

TEST(EncodeTest, PingAndDisconnect) {
  EXPECT_EQ(EncodeToHex(Pingreq{}), "C0 00");
  EXPECT_EQ(EncodeToHex(Pingresp{}), "D0 00");
  EXPECT_EQ(EncodeToHex(Disconnect{}), "E0 00");
  EXPECT_EQ(EncodeToHex(Disconnect{0x8E, UserProperties({{"a", "b"}})}), "E0 00");
}

TEST(EncodeTest, AppendsToWhatIsAlreadyThere) {
  std::string out = "xy";
  Encode(Pingresp{}, kV311, &out);
  Encode(Connack{}, kV311, &out);
  EXPECT_EQ(ToHex(out), H("78 79 D0 00 20 02 00 00"));
}

// ---------------------------------------------------------------------------------------------
// EncodePublish

TEST(EncodePublishTest, MatchesEncodeOfAPublish) {
  Publish p;
  p.topic = "sensors/1";
  p.payload = "21.5";
  p.qos = 1;
  p.retain = true;
  p.packet_id = 300;
  p.properties = UserProperties({{"unit", "C"}});
  for (const ProtocolVersion version : {kV31, kV311, kV5}) {
    std::string via_struct;
    std::string via_parts;
    Encode(p, version, &via_struct);
    EncodePublish(p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, p.properties.get(),
                  nullptr, version, &via_parts);
    EXPECT_EQ(ToHex(via_parts), ToHex(via_struct));
  }
}

TEST(EncodePublishTest, AppendsAfterExistingBytes) {
  std::string out = Hex("D0 00");
  EncodePublish("t", "x", 0, false, false, 0, nullptr, nullptr, kV311, &out);
  EncodePublish("u", "", 1, false, true, 2, nullptr, nullptr, kV311, &out);
  EXPECT_EQ(ToHex(out), H("D0 00 30 04 00 01 74 78 3A 05 00 01 75 00 02"));
}

TEST(EncodePublishTest, Mqtt5WithoutPropertiesSendsPropertyLengthZero) {
  std::string out;
  EncodePublish("t", "x", 0, false, false, 0, nullptr, nullptr, kV5, &out);
  EXPECT_EQ(ToHex(out), H("30 05 00 01 74 00 78"));
  const Properties none;
  out.clear();
  EncodePublish("t", "x", 0, false, false, 0, &none, &none, kV5, &out);
  EXPECT_EQ(ToHex(out), H("30 05 00 01 74 00 78"));
}

TEST(EncodePublishTest, RemainingLengthBoundaries) {
  struct Case {
    size_t remaining_length;
    std::string_view header;
  };
  const Case cases[] = {
      {127, "30 7F"},         {128, "30 80 01"},        {16383, "30 FF 7F"},
      {16384, "30 80 80 01"}, {2097151, "30 FF FF 7F"}, {2097152, "30 80 80 80 01"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.remaining_length);
    const std::string payload(c.remaining_length - 3, 'p');  // topic "t" takes 3 bytes
    std::string out;
    EncodePublish("t", payload, 0, false, false, 0, nullptr, nullptr, kV311, &out);
    const std::string header = Hex(c.header);
    ASSERT_EQ(out.size(), header.size() + c.remaining_length);
    EXPECT_EQ(ToHex(out.substr(0, header.size())), ToHex(header));
    const Frame frame = ParseFrame(out, std::numeric_limits<size_t>::max());
    EXPECT_EQ(frame.status, Frame::Status::kComplete);
    EXPECT_EQ(frame.remaining_length, c.remaining_length);
  }
}

// ---------------------------------------------------------------------------------------------
// MQTT 5 forms

TEST(EncodeV5Test, ConnectWithPropertiesAndWillProperties) {
  Connect c;
  c.version = kV5;
  c.keep_alive = 0;
  c.client_id = "c";
  c.properties = UserProperties({{"k", "v"}});
  c.will = Will{"t", "", 0, false, UserProperties({{"a", "b"}})};
  c.password = "\xAB\xCD";
  EXPECT_EQ(EncodeToHex(c, kV5),
            H("10 26 00 04 4D 51 54 54 05 46 00 00 07 26 00 01 6B 00 01 76 00 01 63 "
              "07 26 00 01 61 00 01 62 00 01 74 00 00 00 02 AB CD"));
}

TEST(EncodeV5Test, ConnackAlwaysHasAPropertyLength) {
  EXPECT_EQ(EncodeToHex(Connack{}, kV5), "20 03 00 00 00");
  EXPECT_EQ(EncodeToHex(Connack{false, 0x87, UserProperties({{"a", "b"}})}, kV5),
            H("20 0A 00 87 07 26 00 01 61 00 01 62"));
}

TEST(EncodeV5Test, AckShortForms) {
  EXPECT_EQ(EncodeToHex(Ack{PacketType::kPuback, 10, reason::kSuccess, {}}, kV5), "40 02 00 0A");
  EXPECT_EQ(EncodeToHex(Ack{PacketType::kPubrec, 10, 0x10, {}}, kV5), "50 03 00 0A 10");
  EXPECT_EQ(EncodeToHex(Ack{PacketType::kPubrel, 10, 0x92, {}}, kV5), "62 03 00 0A 92");
  EXPECT_EQ(EncodeToHex(
                Ack{PacketType::kPubcomp, 10, reason::kSuccess, UserProperties({{"a", "b"}})}, kV5),
            H("70 0B 00 0A 00 07 26 00 01 61 00 01 62"));
}

TEST(EncodeV5Test, DisconnectForms) {
  EXPECT_EQ(EncodeToHex(Disconnect{}, kV5), "E0 00");
  EXPECT_EQ(EncodeToHex(Disconnect{0x8E, {}}, kV5), "E0 01 8E");
  EXPECT_EQ(EncodeToHex(Disconnect{0x04, UserProperties({{"a", "b"}})}, kV5),
            H("E0 09 04 07 26 00 01 61 00 01 62"));
}

TEST(EncodeV5Test, PublishWithUserProperties) {
  Publish p;
  p.topic = "t";
  p.payload = "x";
  p.qos = 1;
  p.packet_id = 5;
  p.properties = UserProperties({{"k", "v"}});
  EXPECT_EQ(EncodeToHex(p, kV5), H("32 0E 00 01 74 00 05 07 26 00 01 6B 00 01 76 78"));
}

TEST(EncodeV5Test, SubscribeOptions) {
  Subscribe s;
  s.packet_id = 1;
  s.topics = {{"t", 2, true, true, 2}};
  EXPECT_EQ(EncodeToHex(s, kV5), H("82 07 00 01 00 00 01 74 2E"));
}

TEST(EncodeV5Test, SubackUnsubscribeUnsuback) {
  EXPECT_EQ(EncodeToHex(Suback{1, {0x01, 0x97}, {}}, kV5), "90 05 00 01 00 01 97");
  EXPECT_EQ(EncodeToHex(Unsubscribe{1, {"a", "b"}, {}}, kV5),
            H("A2 09 00 01 00 00 01 61 00 01 62"));
  EXPECT_EQ(EncodeToHex(Unsuback{1, {0x00, 0x11}, {}}, kV5), "B0 05 00 01 00 00 11");
}

TEST(EncodeV5Test, ShortFormsCountEveryProperty) {
  // One property that is not a User Property is enough to need the long form.
  Properties reason_string;
  reason_string.reason_string = "x";
  EXPECT_EQ(EncodeToHex(Ack{PacketType::kPuback, 10, reason::kSuccess, reason_string}, kV5),
            H("40 08 00 0A 00 04 1F 00 01 78"));
  Properties session_expiry;
  session_expiry.session_expiry_interval = 0;
  EXPECT_EQ(EncodeToHex(Disconnect{reason::kSuccess, session_expiry}, kV5),
            H("E0 07 00 05 11 00 00 00 00"));
  Properties method;
  method.authentication_method = "m";
  EXPECT_EQ(EncodeToHex(Auth{reason::kReAuthenticate, method}, kV5), H("F0 06 19 04 15 00 01 6D"));
}

TEST(EncodeV5Test, AuthForms) {
  EXPECT_EQ(EncodeToHex(Auth{}, kV5), "F0 00");
  EXPECT_EQ(EncodeToHex(Auth{reason::kContinueAuthentication, {}}, kV5), "F0 01 18");
  EXPECT_EQ(EncodeToHex(Auth{reason::kSuccess, UserProperties({{"a", "b"}})}, kV5),
            H("F0 09 00 07 26 00 01 61 00 01 62"));
}

TEST(EncodeTest, AuthBeforeMqtt5IsBare) {
  EXPECT_EQ(EncodeToHex(Auth{reason::kContinueAuthentication, UserProperties({{"a", "b"}})}),
            "F0 00");
}

TEST(EncodeTest, Mqtt311IgnoresEveryProperty) {
  Publish p;
  p.topic = "t";
  p.properties.Mutable().payload_format_indicator = 1;
  p.properties.Mutable().topic_alias = 3;
  p.properties.Mutable().subscription_identifiers = {1, 2};
  EXPECT_EQ(EncodeToHex(p), H("30 03 00 01 74"));
  Properties reason_string;
  reason_string.reason_string = "x";
  EXPECT_EQ(EncodeToHex(Disconnect{0x8E, reason_string}), "E0 00");
  EXPECT_EQ(EncodeToHex(Connack{false, 0, reason_string}), "20 02 00 00");
}

// ---------------------------------------------------------------------------------------------
// EncodePublish with the delivery's own properties

Properties MessageProperties() {
  Properties properties;
  properties.payload_format_indicator = 1;
  properties.content_type = "c";
  properties.user_properties = {{"k", "v"}};
  return properties;
}

Properties DeliveryProperties() {
  Properties extra;
  extra.message_expiry_interval = 30;
  extra.subscription_identifiers = {1, 200};
  extra.topic_alias = 2;
  return extra;
}

TEST(EncodePublishTest, ExtraPropertiesFollowTheMessagesInOneBlock) {
  const Properties properties = MessageProperties();
  const Properties extra = DeliveryProperties();
  std::string out;
  EncodePublish("t", "x", 1, false, false, 7, &properties, &extra, kV5, &out);
  EXPECT_EQ(ToHex(out), H("32 21 00 01 74 00 07 1A "
                          "01 01  03 00 01 63  26 00 01 6B 00 01 76 "   // the message's
                          "02 00 00 00 1E  0B 01  0B C8 01  23 00 02 "  // this delivery's
                          "78"));
  const Frame frame = ParseFrame(out, std::numeric_limits<size_t>::max());
  ASSERT_EQ(frame.status, Frame::Status::kComplete);
  const DecodeResult result =
      Decode(frame.first_byte, std::string_view(out).substr(frame.header_size), kV5);
  ASSERT_TRUE(std::holds_alternative<Packet>(result)) << std::get<DecodeError>(result).what;
  Properties merged = properties;
  merged.message_expiry_interval = 30;
  merged.subscription_identifiers = {1, 200};
  merged.topic_alias = 2;
  EXPECT_EQ(std::get<Publish>(std::get<Packet>(result)).properties, merged);
}

TEST(EncodePublishTest, ExtraAloneOrEmpty) {
  const Properties extra = DeliveryProperties();
  const Properties none;
  std::string alone;
  std::string with_empty;
  EncodePublish("t", "", 0, false, false, 0, nullptr, &extra, kV5, &alone);
  EncodePublish("t", "", 0, false, false, 0, &none, &extra, kV5, &with_empty);
  EXPECT_EQ(ToHex(alone), H("30 11 00 01 74 0D 02 00 00 00 1E 0B 01 0B C8 01 23 00 02"));
  EXPECT_EQ(ToHex(with_empty), ToHex(alone));
  std::string v311;
  EncodePublish("t", "", 0, false, false, 0, nullptr, &extra, kV311, &v311);
  EXPECT_EQ(ToHex(v311), H("30 03 00 01 74"));
}

TEST(EncodePublishTest, EncodedPublishSizeIsExact) {
  const Properties properties = MessageProperties();
  const Properties extra = DeliveryProperties();
  const Properties none;
  Properties big;  // pushes the property length to two bytes
  big.user_properties = {{"key", std::string(200, 'v')}};
  const std::pair<const Properties*, const Properties*> property_sets[] = {
      {nullptr, nullptr}, {&properties, nullptr}, {nullptr, &extra}, {&properties, &extra},
      {&none, &none},     {&big, &extra},         {&none, &big},
  };
  // Payload sizes around the 1/2 and 2/3 byte Remaining Length boundaries.
  const size_t payload_sizes[] = {0, 1, 100, 120, 127, 128, 16'000, 16'383, 16'384, 70'000};
  size_t checked = 0;
  for (const ProtocolVersion version : {kV31, kV311, kV5}) {
    for (const auto& [message, delivery] : property_sets) {
      for (const size_t payload_size : payload_sizes) {
        for (uint8_t qos = 0; qos < 3; ++qos) {
          const std::string payload(payload_size, 'p');
          std::string out = "prefix";
          EncodePublish("a/b", payload, qos, true, true, 9, message, delivery, version, &out);
          ASSERT_EQ(EncodedPublishSize("a/b", payload_size, qos, message, delivery, version),
                    out.size() - 6)
              << "version " << int(version) << ", payload " << payload_size << ", qos " << int{qos};
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 3u * 7 * 10 * 3);
}

// ---------------------------------------------------------------------------------------------
// MQTT 5 packets with every property they may carry, byte for byte in both directions.

struct FullPacket {
  std::string_view name;
  Packet packet;
  std::string_view hex;
};

std::vector<FullPacket> FullV5Packets() {
  std::vector<FullPacket> packets;

  Connect connect;
  connect.version = kV5;
  connect.keep_alive = 30;
  connect.client_id = "id";
  Properties& cp = connect.properties.Mutable();
  cp.session_expiry_interval = kSessionNeverExpires;
  cp.authentication_method = "m";
  cp.authentication_data = "\x01";
  cp.request_problem_information = 0;
  cp.request_response_information = 1;
  cp.receive_maximum = 100;
  cp.topic_alias_maximum = 10;
  cp.user_properties = {{"a", "1"}, {"a", "2"}};
  cp.maximum_packet_size = 1 << 20;
  Will& will = connect.will.emplace();
  will.topic = "w";
  will.payload = "bye";
  will.qos = 1;
  will.retain = true;
  will.properties.Mutable().payload_format_indicator = 1;
  will.properties.Mutable().message_expiry_interval = 3600;
  will.properties.Mutable().content_type = "t/p";
  will.properties.Mutable().response_topic = "r";
  will.properties.Mutable().correlation_data = "\0\x01"s;
  will.properties.Mutable().will_delay_interval = 60;
  will.properties.Mutable().user_properties = {{"k", "v"}};
  connect.username = "u";
  connect.password = "pw";
  packets.push_back(
      {"CONNECT", connect,
       "10 6B 00 04 4D 51 54 54 05 EE 00 1E "
       "2A 11 FF FF FF FF  15 00 01 6D  16 00 01 01  17 00  19 01  21 00 64  22 00 0A "
       "26 00 01 61 00 01 31  26 00 01 61 00 01 32  27 00 10 00 00 "
       "00 02 69 64 "
       "22 01 01  02 00 00 0E 10  03 00 03 74 2F 70  08 00 01 72  09 00 02 00 01  18 00 00 00 3C "
       "26 00 01 6B 00 01 76 "
       "00 01 77  00 03 62 79 65  00 01 75  00 02 70 77"});

  Connack connack;
  connack.session_present = true;
  Properties& ap = connack.properties.Mutable();
  ap.session_expiry_interval = 120;
  ap.assigned_client_identifier = "abc";
  ap.server_keep_alive = 60;
  ap.authentication_method = "m";
  ap.authentication_data = "\x02";
  ap.response_information = "r/";
  ap.server_reference = "s";
  ap.reason_string = "ok";
  ap.receive_maximum = 20;
  ap.topic_alias_maximum = 5;
  ap.maximum_qos = 1;
  ap.retain_available = 0;
  ap.user_properties = {{"k", "v"}};
  ap.maximum_packet_size = 65535;
  ap.wildcard_subscription_available = 1;
  ap.subscription_identifier_available = 0;
  ap.shared_subscription_available = 1;
  packets.push_back({"CONNACK", connack,
                     "20 43 01 00 40 11 00 00 00 78  12 00 03 61 62 63  13 00 3C  15 00 01 6D "
                     "16 00 01 02  1A 00 02 72 2F  1C 00 01 73  1F 00 02 6F 6B  21 00 14  22 00 05 "
                     "24 01  25 00  26 00 01 6B 00 01 76  27 00 00 FF FF  28 01  29 00  2A 01"});

  Publish publish;
  publish.topic = "a/b";
  publish.payload = "hi";
  publish.qos = 2;
  publish.retain = true;
  publish.packet_id = 9;
  Properties& pp = publish.properties.Mutable();
  pp.payload_format_indicator = 0;
  pp.message_expiry_interval = 10;
  pp.content_type = "json";
  pp.response_topic = "r/1";
  pp.correlation_data = "\xFF";
  pp.subscription_identifiers = {1, 268'435'455};
  pp.topic_alias = 3;
  pp.user_properties = {{"a", "b"}, {"a", "c"}};
  packets.push_back({"PUBLISH", publish,
                     "35 3A 00 03 61 2F 62 00 09 30  01 00  02 00 00 00 0A  03 00 04 6A 73 6F 6E "
                     "08 00 03 72 2F 31  09 00 01 FF  0B 01  0B FF FF FF 7F  23 00 03 "
                     "26 00 01 61 00 01 62  26 00 01 61 00 01 63  68 69"});

  Properties kv = UserProperties({{"k", "v"}});
  Subscribe subscribe;
  subscribe.packet_id = 3;
  subscribe.topics = {{"a/#", 1, true, false, 1}};
  subscribe.properties = kv;
  subscribe.properties.Mutable().subscription_identifiers = {42};
  packets.push_back(
      {"SUBSCRIBE", subscribe, "82 12 00 03 09 0B 2A 26 00 01 6B 00 01 76 00 03 61 2F 23 15"});

  Properties ok = kv;
  ok.reason_string = "ok";
  packets.push_back({"SUBACK", Suback{3, {0x01, 0xA2}, ok},
                     "90 11 00 03 0C 1F 00 02 6F 6B 26 00 01 6B 00 01 76 01 A2"});
  packets.push_back({"UNSUBSCRIBE", Unsubscribe{4, {"a/#"}, kv},
                     "A2 0F 00 04 07 26 00 01 6B 00 01 76 00 03 61 2F 23"});

  Properties no;
  no.reason_string = "no";
  Properties just_ok;
  just_ok.reason_string = "ok";
  packets.push_back({"UNSUBACK", Unsuback{4, {0x11}, no}, "B0 09 00 04 05 1F 00 02 6E 6F 11"});
  packets.push_back(
      {"PUBACK", Ack{PacketType::kPuback, 5, 0x10, no}, "40 09 00 05 10 05 1F 00 02 6E 6F"});
  packets.push_back({"PUBREC", Ack{PacketType::kPubrec, 5, reason::kSuccess, just_ok},
                     "50 09 00 05 00 05 1F 00 02 6F 6B"});
  packets.push_back(
      {"PUBREL", Ack{PacketType::kPubrel, 5, 0x92, kv}, "62 0B 00 05 92 07 26 00 01 6B 00 01 76"});
  packets.push_back({"PUBCOMP", Ack{PacketType::kPubcomp, 5, reason::kSuccess, just_ok},
                     "70 09 00 05 00 05 1F 00 02 6F 6B"});

  Properties moved = kv;
  moved.session_expiry_interval = 0;
  moved.server_reference = "host";
  moved.reason_string = "by";
  packets.push_back({"DISCONNECT", Disconnect{reason::kUseAnotherServer, moved},
                     "E0 1A 9C 18 11 00 00 00 00  1C 00 04 68 6F 73 74  1F 00 02 62 79 "
                     "26 00 01 6B 00 01 76"});

  Properties auth = UserProperties({{"a", "b"}});
  auth.authentication_method = "SCRAM";
  auth.authentication_data = "\0\xFF"s;
  auth.reason_string = "go";
  packets.push_back({"AUTH", Auth{reason::kContinueAuthentication, auth},
                     "F0 1B 18 19 15 00 05 53 43 52 41 4D  16 00 02 00 FF  1F 00 02 67 6F "
                     "26 00 01 61 00 01 62"});
  return packets;
}

TEST(EncodeV5Test, EveryPropertyOfEveryPacketByteForByte) {
  for (const FullPacket& full : FullV5Packets()) {
    SCOPED_TRACE(full.name);
    EXPECT_EQ(EncodeToHex(full.packet, kV5), H(full.hex));
    EXPECT_EQ(EncodedSize(full.packet, kV5), Hex(full.hex).size());
    const std::string wire = Hex(full.hex);
    const Frame frame = ParseFrame(wire, std::numeric_limits<size_t>::max());
    ASSERT_EQ(frame.status, Frame::Status::kComplete);
    ASSERT_EQ(frame.total_size(), wire.size());
    const DecodeResult result =
        Decode(frame.first_byte, std::string_view(wire).substr(frame.header_size), kV5);
    ASSERT_TRUE(std::holds_alternative<Packet>(result)) << std::get<DecodeError>(result).what;
    EXPECT_TRUE(std::get<Packet>(result) == full.packet);
  }
}

// ---------------------------------------------------------------------------------------------
// Round trips

std::vector<Packet> SamplePackets(ProtocolVersion version) {
  const bool v5 = version == kV5;
  const Properties props = v5 ? UserProperties({{"k", "v"}, {"k", "w"}, {"", ""}}) : Properties{};
  std::vector<Packet> packets;

  Connect minimal;
  minimal.version = version;
  minimal.protocol_name = version == kV31 ? "MQIsdp" : "MQTT";
  minimal.client_id = "client-1";
  packets.push_back(minimal);

  Connect full = minimal;
  full.clean_session = false;
  full.keep_alive = 65535;
  full.client_id = "";
  full.will = Will{"last/will", "gone\0"s, 2, true, props};
  full.username = "user \xC3\xA9";
  full.password = "\0\xFF pw"s;
  full.properties = props;
  packets.push_back(full);

  packets.push_back(
      Connack{false, v5 ? reason::kClientIdentifierNotValid : connack::kIdentifierRejected, props});
  packets.push_back(Connack{version != kV31, connack::kAccepted, props});

  Publish publish;
  publish.topic = "a/b/c";
  publish.payload = std::string(300, '\x00');
  publish.properties = props;
  packets.push_back(publish);
  publish.qos = 1;
  publish.packet_id = 1;
  publish.dup = true;
  packets.push_back(publish);
  publish.qos = 2;
  publish.packet_id = 65535;
  publish.retain = true;
  publish.payload.clear();
  packets.push_back(publish);

  for (PacketType type :
       {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel, PacketType::kPubcomp}) {
    // PUBREL and PUBCOMP have only one failure (MQTT 5 3.6.2.1, 3.7.2.1).
    const uint8_t failure =
        type == PacketType::kPuback || type == PacketType::kPubrec ? 0x80 : 0x92;
    packets.push_back(Ack{type, 42, reason::kSuccess, {}});
    if (v5) packets.push_back(Ack{type, 42, failure, {}});
    if (v5) packets.push_back(Ack{type, 42, failure, props});
    if (v5) packets.push_back(Ack{type, 42, reason::kSuccess, props});
  }

  Subscribe subscribe;
  subscribe.packet_id = 7;
  subscribe.topics = {{"a/+", 0, false, false, 0}, {"#", 2, false, false, 0}};
  if (v5) subscribe.topics.push_back({"$share/g/x", 1, true, true, 2});
  subscribe.properties = props;
  packets.push_back(subscribe);

  packets.push_back(Suback{7, {0, 1, 2, kSubackFailure}, props});
  packets.push_back(Unsubscribe{8, {"a/+", "#"}, props});
  packets.push_back(
      Unsuback{8, v5 ? std::vector<uint8_t>{0x00, 0x11} : std::vector<uint8_t>{}, props});
  packets.push_back(Pingreq{});
  packets.push_back(Pingresp{});
  packets.push_back(Disconnect{});
  if (v5) packets.push_back(Disconnect{0x04, {}});
  if (v5) packets.push_back(Disconnect{0x8E, props});
  if (v5) {
    packets.push_back(Auth{});
    packets.push_back(Auth{reason::kContinueAuthentication, {}});
    packets.push_back(Auth{reason::kReAuthenticate, props});
    for (FullPacket& full : FullV5Packets()) packets.push_back(std::move(full.packet));
  }
  return packets;
}

TEST(RoundTripTest, EveryPacketTypeForEveryVersion) {
  for (const ProtocolVersion version : {kV31, kV311, kV5}) {
    for (const Packet& packet : SamplePackets(version)) {
      SCOPED_TRACE(testing::Message()
                   << "version " << int(version) << ", packet index " << packet.index());
      std::string wire;
      Encode(packet, version, &wire);
      const Frame frame = ParseFrame(wire, std::numeric_limits<size_t>::max());
      ASSERT_EQ(frame.status, Frame::Status::kComplete);
      ASSERT_EQ(frame.total_size(), wire.size());
      const DecodeResult result =
          Decode(frame.first_byte, std::string_view(wire).substr(frame.header_size), version);
      ASSERT_TRUE(std::holds_alternative<Packet>(result))
          << std::get<DecodeError>(result).what << "\n"
          << ToHex(wire);
      EXPECT_TRUE(std::get<Packet>(result) == packet) << ToHex(wire);
    }
  }
}

TEST(EncodedSizeTest, EqualsWhatEncodeAppends) {
  size_t checked = 0;
  for (const ProtocolVersion version : {kV31, kV311, kV5}) {
    for (const Packet& packet : SamplePackets(version)) {
      std::string out = "xyz";  // appending must not change the answer
      Encode(packet, version, &out);
      EXPECT_EQ(EncodedSize(packet, version), out.size() - 3)
          << "version " << int(version) << ", packet index " << packet.index() << ": "
          << ToHex(out);
      ++checked;
    }
  }
  EXPECT_GT(checked, 80u);
}

TEST(EncodedSizeTest, CountsMultiByteLengths) {
  Publish publish;
  publish.topic = "t";
  publish.payload = std::string(20'000, 'p');
  publish.properties.Mutable().user_properties = {{"k", std::string(300, 'v')}};
  Connect connect;
  connect.version = kV5;
  connect.properties.Mutable().user_properties = {{"k", std::string(200, 'v')}};
  for (const Packet& packet : {Packet(publish), Packet(connect)}) {
    for (const ProtocolVersion version : {kV311, kV5}) {
      std::string out;
      Encode(packet, version, &out);
      EXPECT_EQ(EncodedSize(packet, version), out.size());
    }
  }
}

}  // namespace
}  // namespace meshmq::codec
