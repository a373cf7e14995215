// MQTT 5 properties (section 2.2.2), one by one: the exact bytes of each, encoded and decoded, on
// every packet that may carry it; refused as a Protocol Error on every packet that may not (table
// 2-4, the will properties of a CONNECT counting as a packet of their own) and when repeated;
// value ranges; UTF-8; unknown identifiers and truncation (Malformed).
#include <algorithm>
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

constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;
constexpr int kMalformed = reason::kMalformedPacket;
constexpr int kProtocol = reason::kProtocolError;

std::string VarInt(size_t value) {
  std::string out;
  do {
    uint8_t byte = value & 0x7F;
    value >>= 7;
    if (value > 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (value > 0);
  return out;
}

// Every property block of MQTT 5.
enum class Carrier {
  kConnect,
  kWill,
  kConnack,
  kPublish,
  kPuback,
  kPubrec,
  kPubrel,
  kPubcomp,
  kSubscribe,
  kSuback,
  kUnsubscribe,
  kUnsuback,
  kDisconnect,
  kAuth,
};

constexpr Carrier kAllCarriers[] = {
    Carrier::kConnect,    Carrier::kWill,   Carrier::kConnack,     Carrier::kPublish,
    Carrier::kPuback,     Carrier::kPubrec, Carrier::kPubrel,      Carrier::kPubcomp,
    Carrier::kSubscribe,  Carrier::kSuback, Carrier::kUnsubscribe, Carrier::kUnsuback,
    Carrier::kDisconnect, Carrier::kAuth,
};

const char* NameOf(Carrier carrier) {
  static constexpr const char* kNames[] = {
      "CONNECT", "will",      "CONNACK", "PUBLISH",     "PUBACK",   "PUBREC",     "PUBREL",
      "PUBCOMP", "SUBSCRIBE", "SUBACK",  "UNSUBSCRIBE", "UNSUBACK", "DISCONNECT", "AUTH",
  };
  return kNames[static_cast<int>(carrier)];
}

// A minimal packet around one property block: first byte, body before the property length, body
// after the properties. PacketWith below builds the same packet as a struct.
struct Layout {
  uint8_t first_byte;
  std::string_view before;
  std::string_view after;
};

Layout LayoutOf(Carrier carrier) {
  switch (carrier) {
    case Carrier::kConnect:  // clean start, keep alive 0, client id "c"
      return {0x10, "00 04 4D 51 54 54 05 02 00 00", "00 01 63"};
    case Carrier::kWill:  // will flag, no CONNECT properties, will topic "t", empty will message
      return {0x10, "00 04 4D 51 54 54 05 06 00 00 00 00 01 63", "00 01 74 00 00"};
    case Carrier::kConnack:
      return {0x20, "00 00", ""};
    case Carrier::kPublish:  // topic "t", QoS 0, empty payload
      return {0x30, "00 01 74", ""};
    case Carrier::kPuback:
      return {0x40, "00 01 00", ""};
    case Carrier::kPubrec:
      return {0x50, "00 01 00", ""};
    case Carrier::kPubrel:
      return {0x62, "00 01 00", ""};
    case Carrier::kPubcomp:
      return {0x70, "00 01 00", ""};
    case Carrier::kSubscribe:
      return {0x82, "00 01", "00 01 74 00"};
    case Carrier::kSuback:
      return {0x90, "00 01", "00"};
    case Carrier::kUnsubscribe:
      return {0xA2, "00 01", "00 01 74"};
    case Carrier::kUnsuback:
      return {0xB0, "00 01", "00"};
    case Carrier::kDisconnect:
      return {0xE0, "00", ""};
    case Carrier::kAuth:
      return {0xF0, "00", ""};
  }
  return {};
}

// The wire form of the packet of `carrier` whose property block holds `properties` (the bytes
// after the property length).
std::string WireWith(Carrier carrier, std::string_view properties) {
  const Layout layout = LayoutOf(carrier);
  const std::string body =
      Hex(layout.before) + VarInt(properties.size()) + std::string(properties) + Hex(layout.after);
  return static_cast<char>(layout.first_byte) + VarInt(body.size()) + body;
}

Packet PacketWith(Carrier carrier, const Properties& properties) {
  switch (carrier) {
    case Carrier::kConnect: {
      Connect connect;
      connect.version = kV5;
      connect.client_id = "c";
      connect.properties = properties;
      return connect;
    }
    case Carrier::kWill: {
      Connect connect;
      connect.version = kV5;
      connect.client_id = "c";
      connect.will = Will{"t", "", 0, false, properties};
      return connect;
    }
    case Carrier::kConnack:
      return Connack{false, reason::kSuccess, properties};
    case Carrier::kPublish: {
      Publish publish;
      publish.topic = "t";
      publish.properties = properties;
      return publish;
    }
    case Carrier::kPuback:
      return Ack{PacketType::kPuback, 1, reason::kSuccess, properties};
    case Carrier::kPubrec:
      return Ack{PacketType::kPubrec, 1, reason::kSuccess, properties};
    case Carrier::kPubrel:
      return Ack{PacketType::kPubrel, 1, reason::kSuccess, properties};
    case Carrier::kPubcomp:
      return Ack{PacketType::kPubcomp, 1, reason::kSuccess, properties};
    case Carrier::kSubscribe:
      return Subscribe{1, {{"t", 0, false, false, 0}}, properties};
    case Carrier::kSuback:
      return Suback{1, {reason::kSuccess}, properties};
    case Carrier::kUnsubscribe:
      return Unsubscribe{1, {"t"}, properties};
    case Carrier::kUnsuback:
      return Unsuback{1, {reason::kSuccess}, properties};
    case Carrier::kDisconnect:
      return Disconnect{reason::kSuccess, properties};
    case Carrier::kAuth:
      return Auth{reason::kSuccess, properties};
  }
  return Pingreq{};
}

DecodeResult DecodeWire(std::string_view wire) {
  const Frame frame = ParseFrame(wire, std::numeric_limits<size_t>::max());
  EXPECT_EQ(frame.status, Frame::Status::kComplete);
  EXPECT_EQ(frame.total_size(), wire.size());
  return Decode(frame.first_byte, wire.substr(frame.header_size, frame.remaining_length), kV5);
}

// The reason code of the error, or -1 if the packet decoded.
int ErrorOf(Carrier carrier, std::string_view properties_hex) {
  const DecodeResult result = DecodeWire(WireWith(carrier, Hex(properties_hex)));
  if (const auto* error = std::get_if<DecodeError>(&result)) {
    EXPECT_FALSE(error->what.empty());
    return error->reason_code;
  }
  return -1;
}

// One property, as the standard's table 2-4 lists it.
struct PropertyCase {
  std::string_view name;
  std::string_view hex;  // identifier and value, as on the wire
  Properties value;      // the same property as a field
  std::vector<Carrier> allowed;
};

template <typename Field, typename Value>
Properties With(Field Properties::*field, Value value) {
  Properties properties;
  properties.*field = std::move(value);
  return properties;
}

std::vector<PropertyCase> PropertyCases() {
  using C = Carrier;
  const std::vector<Carrier> kPublishAndWill = {C::kPublish, C::kWill};
  return {
      {"Payload Format Indicator", "01 01", With(&Properties::payload_format_indicator, 1),
       kPublishAndWill},
      {"Message Expiry Interval", "02 00 00 01 2C", With(&Properties::message_expiry_interval, 300),
       kPublishAndWill},
      {"Content Type", "03 00 04 74 65 78 74", With(&Properties::content_type, "text"),
       kPublishAndWill},
      {"Response Topic", "08 00 03 72 2F 31", With(&Properties::response_topic, "r/1"),
       kPublishAndWill},
      {"Correlation Data", "09 00 03 00 FF 80", With(&Properties::correlation_data, "\0\xFF\x80"s),
       kPublishAndWill},
      {"Subscription Identifier",
       "0B 80 01",
       With(&Properties::subscription_identifiers, std::vector<uint32_t>{128}),
       {C::kPublish, C::kSubscribe}},
      {"Session Expiry Interval",
       "11 FF FF FF FF",
       With(&Properties::session_expiry_interval, kSessionNeverExpires),
       {C::kConnect, C::kConnack, C::kDisconnect}},
      {"Assigned Client Identifier",
       "12 00 02 69 64",
       With(&Properties::assigned_client_identifier, "id"),
       {C::kConnack}},
      {"Server Keep Alive", "13 01 2C", With(&Properties::server_keep_alive, 300), {C::kConnack}},
      {"Authentication Method",
       "15 00 05 53 43 52 41 4D",
       With(&Properties::authentication_method, "SCRAM"),
       {C::kConnect, C::kConnack, C::kAuth}},
      {"Authentication Data",
       "16 00 02 00 FF",
       With(&Properties::authentication_data, "\0\xFF"s),
       {C::kConnect, C::kConnack, C::kAuth}},
      {"Request Problem Information",
       "17 00",
       With(&Properties::request_problem_information, 0),
       {C::kConnect}},
      {"Will Delay Interval",
       "18 00 00 00 0A",
       With(&Properties::will_delay_interval, 10),
       {C::kWill}},
      {"Request Response Information",
       "19 01",
       With(&Properties::request_response_information, 1),
       {C::kConnect}},
      {"Response Information",
       "1A 00 02 72 2F",
       With(&Properties::response_information, "r/"),
       {C::kConnack}},
      {"Server Reference",
       "1C 00 04 68 6F 73 74",
       With(&Properties::server_reference, "host"),
       {C::kConnack, C::kDisconnect}},
      {"Reason String",
       "1F 00 02 6E 6F",
       With(&Properties::reason_string, "no"),
       {C::kConnack, C::kPuback, C::kPubrec, C::kPubrel, C::kPubcomp, C::kSuback, C::kUnsuback,
        C::kDisconnect, C::kAuth}},
      {"Receive Maximum",
       "21 00 0A",
       With(&Properties::receive_maximum, 10),
       {C::kConnect, C::kConnack}},
      {"Topic Alias Maximum",
       "22 00 00",
       With(&Properties::topic_alias_maximum, 0),
       {C::kConnect, C::kConnack}},
      {"Topic Alias", "23 00 05", With(&Properties::topic_alias, 5), {C::kPublish}},
      {"Maximum QoS", "24 01", With(&Properties::maximum_qos, 1), {C::kConnack}},
      {"Retain Available", "25 00", With(&Properties::retain_available, 0), {C::kConnack}},
      {"User Property", "26 00 01 6B 00 01 76",
       With(&Properties::user_properties,
            std::vector<std::pair<std::string, std::string>>{{"k", "v"}}),
       std::vector<Carrier>(std::begin(kAllCarriers), std::end(kAllCarriers))},
      {"Maximum Packet Size",
       "27 00 00 10 00",
       With(&Properties::maximum_packet_size, 4096),
       {C::kConnect, C::kConnack}},
      {"Wildcard Subscription Available",
       "28 00",
       With(&Properties::wildcard_subscription_available, 0),
       {C::kConnack}},
      {"Subscription Identifier Available",
       "29 01",
       With(&Properties::subscription_identifier_available, 1),
       {C::kConnack}},
      {"Shared Subscription Available",
       "2A 00",
       With(&Properties::shared_subscription_available, 0),
       {C::kConnack}},
  };
}

bool Allows(const PropertyCase& c, Carrier carrier) {
  return std::find(c.allowed.begin(), c.allowed.end(), carrier) != c.allowed.end();
}

// 27 cases with 27 different identifiers: with the byte-exact test below (each case's field is
// sent under its identifier), every field of Properties is covered.
TEST(PropertiesTest, TheCasesCoverEveryProperty) {
  std::vector<uint8_t> ids;
  for (const PropertyCase& c : PropertyCases()) {
    EXPECT_FALSE(c.value.empty()) << c.name;
    ids.push_back(static_cast<uint8_t>(Hex(c.hex)[0]));
  }
  EXPECT_EQ(ids.size(), 27u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

TEST(PropertiesTest, EncodesAndDecodesByteForByteOnEveryPacketThatMayCarryIt) {
  for (const PropertyCase& c : PropertyCases()) {
    for (const Carrier carrier : c.allowed) {
      SCOPED_TRACE(testing::Message() << c.name << " on " << NameOf(carrier));
      const std::string wire = WireWith(carrier, Hex(c.hex));
      const Packet packet = PacketWith(carrier, c.value);
      std::string encoded;
      Encode(packet, kV5, &encoded);
      EXPECT_EQ(ToHex(encoded), ToHex(wire));
      EXPECT_EQ(EncodedSize(packet, kV5), wire.size());
      const DecodeResult result = DecodeWire(wire);
      ASSERT_TRUE(std::holds_alternative<Packet>(result)) << std::get<DecodeError>(result).what;
      EXPECT_TRUE(std::get<Packet>(result) == packet);
    }
  }
}

TEST(PropertiesTest, RefusedOnEveryPacketThatMayNotCarryIt) {
  int refusals = 0;
  for (const PropertyCase& c : PropertyCases()) {
    for (const Carrier carrier : kAllCarriers) {
      if (Allows(c, carrier)) continue;
      // MQTT 5 2.2.2.2: an identifier not valid for its packet type is a Malformed Packet.
      EXPECT_EQ(ErrorOf(carrier, c.hex), kMalformed) << c.name << " on " << NameOf(carrier);
      ++refusals;
    }
  }
  // 27 properties x 14 property blocks, minus the 64 places table 2-4 allows.
  EXPECT_EQ(refusals, 27 * 14 - 64);
}

TEST(PropertiesTest, RepeatedPropertyIsProtocolError) {
  for (const PropertyCase& c : PropertyCases()) {
    for (const Carrier carrier : c.allowed) {
      const std::string twice = std::string(c.hex) + " " + std::string(c.hex);
      const bool repeatable = c.name == "User Property" ||
                              (c.name == "Subscription Identifier" && carrier == Carrier::kPublish);
      EXPECT_EQ(ErrorOf(carrier, twice), repeatable ? -1 : kProtocol)
          << c.name << " on " << NameOf(carrier);
    }
  }
}

TEST(PropertiesTest, RepeatedEvenWithAnotherValue) {
  EXPECT_EQ(ErrorOf(Carrier::kPublish, "02 00 00 00 01 02 00 00 00 02"), kProtocol);
  EXPECT_EQ(ErrorOf(Carrier::kConnack, "1F 00 01 61 26 00 00 00 00 1F 00 01 62"), kProtocol);
  EXPECT_EQ(ErrorOf(Carrier::kSubscribe, "0B 01 0B 02"), kProtocol);
}

TEST(PropertiesTest, SeveralSubscriptionIdentifiersOnPublishKeepTheirOrder) {
  const std::string wire = WireWith(Carrier::kPublish, Hex("0B 05 0B 01 0B FF FF FF 7F"));
  const DecodeResult result = DecodeWire(wire);
  ASSERT_TRUE(std::holds_alternative<Packet>(result)) << std::get<DecodeError>(result).what;
  const Publish& publish = std::get<Publish>(std::get<Packet>(result));
  EXPECT_EQ(publish.properties->subscription_identifiers,
            (std::vector<uint32_t>{5, 1, 268'435'455}));
  std::string encoded;
  Encode(publish, kV5, &encoded);
  EXPECT_EQ(ToHex(encoded), ToHex(wire));
}

TEST(PropertiesTest, UserPropertiesKeepTheirOrderAndRepeats) {
  // Interleaved with other properties on the wire; the encoder sends ascending identifiers, so
  // the Message Expiry Interval moves to the front and the pairs stay in order.
  const DecodeResult result = DecodeWire(WireWith(
      Carrier::kPublish,
      Hex("26 00 01 62 00 01 32  02 00 00 00 01  26 00 01 61 00 01 31  26 00 01 62 00 01 32")));
  ASSERT_TRUE(std::holds_alternative<Packet>(result)) << std::get<DecodeError>(result).what;
  const Publish& publish = std::get<Publish>(std::get<Packet>(result));
  EXPECT_EQ(publish.properties->user_properties,
            (std::vector<std::pair<std::string, std::string>>{{"b", "2"}, {"a", "1"}, {"b", "2"}}));
  std::string encoded;
  Encode(publish, kV5, &encoded);
  EXPECT_EQ(ToHex(encoded),
            ToHex(WireWith(Carrier::kPublish, Hex("02 00 00 00 01  26 00 01 62 00 01 32 "
                                                  "26 00 01 61 00 01 31  26 00 01 62 00 01 32"))));
}

// A packet without properties holds no Properties at all (the box stays null), so a 3.1.1
// PUBLISH, or a v5 one with an empty property block, costs nothing for MQTT 5's sake.
TEST(PropertiesBoxTest, NothingIsAllocatedForAnAbsentOrEmptyBlock) {
  for (const auto& [wire, version] : {std::pair{Hex("30 04 00 01 74 78"), ProtocolVersion::kV311},
                                      std::pair{Hex("30 05 00 01 74 00 78"), kV5}}) {
    const DecodeResult result = Decode(0x30, std::string_view(wire).substr(2), version);
    ASSERT_TRUE(std::holds_alternative<Packet>(result)) << std::get<DecodeError>(result).what;
    const Publish& publish = std::get<Publish>(std::get<Packet>(result));
    EXPECT_EQ(publish.properties.get(), nullptr);
    EXPECT_TRUE(publish.properties.empty());
    EXPECT_EQ(publish.properties->topic_alias, std::nullopt);  // reads see an empty value
    EXPECT_EQ(publish.payload, "x");
  }
}

TEST(PropertiesBoxTest, CopiesAreDeepAndReleaseEmptiesTheBox) {
  PropertiesBox box;
  box.Mutable().content_type = "text/plain";
  PropertiesBox copy = box;
  copy.Mutable().content_type = "other";
  EXPECT_EQ(box->content_type, "text/plain");
  EXPECT_FALSE(box == copy);
  std::unique_ptr<Properties> released = box.Release();
  ASSERT_NE(released, nullptr);
  EXPECT_EQ(released->content_type, "text/plain");
  EXPECT_TRUE(box.empty());
  EXPECT_EQ(box, Properties{});
  EXPECT_EQ(PropertiesBox(Properties{}).get(), nullptr);  // an empty value allocates nothing
}

TEST(PropertiesTest, SubscriptionIdentifierIsAVariableByteInteger) {
  const std::pair<std::string_view, uint32_t> cases[] = {
      {"0B 01", 1},         {"0B 7F", 127},          {"0B 80 01", 128},
      {"0B FF 7F", 16'383}, {"0B 80 80 01", 16'384}, {"0B FF FF FF 7F", 268'435'455},
  };
  for (const auto& [hex, value] : cases) {
    SCOPED_TRACE(hex);
    const Packet packet = PacketWith(
        Carrier::kSubscribe, With(&Properties::subscription_identifiers, std::vector{value}));
    std::string encoded;
    Encode(packet, kV5, &encoded);
    EXPECT_EQ(ToHex(encoded), ToHex(WireWith(Carrier::kSubscribe, Hex(hex))));
    const DecodeResult result = DecodeWire(encoded);
    ASSERT_TRUE(std::holds_alternative<Packet>(result)) << std::get<DecodeError>(result).what;
    EXPECT_TRUE(std::get<Packet>(result) == packet);
  }
  EXPECT_EQ(ErrorOf(Carrier::kSubscribe, "0B 80 80 80 80 01"), kMalformed);  // five bytes
}

TEST(PropertiesTest, ValueRanges) {
  struct Case {
    Carrier carrier;
    std::string_view hex;
    int expected;  // -1: decodes
  };
  const Case cases[] = {
      // 0 or 1 only.
      {Carrier::kPublish, "01 00", -1},
      {Carrier::kPublish, "01 02", kProtocol},
      {Carrier::kWill, "01 FF", kProtocol},
      {Carrier::kConnect, "17 01", -1},
      {Carrier::kConnect, "17 02", kProtocol},
      {Carrier::kConnect, "19 00", -1},
      {Carrier::kConnect, "19 02", kProtocol},
      {Carrier::kConnack, "24 00", -1},
      {Carrier::kConnack, "24 02", kProtocol},  // Maximum QoS 2 is never sent (3.2.2.3.4)
      {Carrier::kConnack, "25 01", -1},
      {Carrier::kConnack, "25 02", kProtocol},
      {Carrier::kConnack, "28 01", -1},
      {Carrier::kConnack, "28 80", kProtocol},
      {Carrier::kConnack, "29 00", -1},
      {Carrier::kConnack, "29 02", kProtocol},
      {Carrier::kConnack, "2A 01", -1},
      {Carrier::kConnack, "2A 03", kProtocol},
      // Not 0.
      {Carrier::kConnect, "21 00 00", kProtocol},
      {Carrier::kConnack, "21 00 00", kProtocol},
      {Carrier::kConnack, "21 FF FF", -1},
      {Carrier::kConnect, "27 00 00 00 00", kProtocol},
      {Carrier::kConnack, "27 00 00 00 00", kProtocol},
      {Carrier::kConnect, "27 FF FF FF FF", -1},
      {Carrier::kPublish, "0B 00", kProtocol},
      {Carrier::kSubscribe, "0B 00", kProtocol},
      {Carrier::kPublish, "0B 01 0B 00", kProtocol},
      // Any value.
      {Carrier::kPublish, "02 00 00 00 00", -1},
      {Carrier::kConnack, "13 00 00", -1},
      {Carrier::kConnect, "22 FF FF", -1},
      {Carrier::kPublish, "23 00 00", -1},  // Topic Alias 0 is the broker's to refuse
      {Carrier::kWill, "18 FF FF FF FF", -1},
      {Carrier::kPublish, "03 00 00", -1},  // empty strings
      {Carrier::kConnack, "12 00 00", -1},
      {Carrier::kPublish, "09 00 00", -1},  // empty binary
      {Carrier::kPublish, "26 00 00 00 00", -1},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrorOf(c.carrier, c.hex), c.expected) << NameOf(c.carrier) << ": " << c.hex;
  }
}

TEST(PropertiesTest, StringsMustBeUtf8AndBinaryNeedNotBe) {
  // C3 28 is an invalid two-byte sequence; 00 is U+0000.
  for (const PropertyCase& c : PropertyCases()) {
    const std::string id = std::string(c.hex.substr(0, 2));
    const Carrier carrier = c.allowed.front();
    if (id == "03" || id == "08" || id == "12" || id == "15" || id == "1A" || id == "1C" ||
        id == "1F") {
      EXPECT_EQ(ErrorOf(carrier, id + " 00 02 C3 28"), kMalformed) << c.name;
      EXPECT_EQ(ErrorOf(carrier, id + " 00 01 00"), kMalformed) << c.name;
    } else if (id == "09" || id == "16") {
      EXPECT_EQ(ErrorOf(carrier, id + " 00 02 C3 28"), -1) << c.name;
      EXPECT_EQ(ErrorOf(carrier, id + " 00 01 00"), -1) << c.name;
    }
  }
  EXPECT_EQ(ErrorOf(Carrier::kPublish, "26 00 02 C3 28 00 00"), kMalformed);  // bad key
  EXPECT_EQ(ErrorOf(Carrier::kPublish, "26 00 00 00 01 00"), kMalformed);     // bad value
}

TEST(PropertiesTest, UnknownIdentifierIsMalformed) {
  std::vector<int> known;
  for (const PropertyCase& c : PropertyCases()) {
    known.push_back(static_cast<uint8_t>(Hex(c.hex)[0]));
  }
  for (int id = 0; id < 0x80; ++id) {
    if (std::find(known.begin(), known.end(), id) != known.end()) continue;
    // The identifier, then bytes that would do for any value layout.
    const std::string props = static_cast<char>(id) + Hex("00 00 00 00");
    const DecodeResult result = DecodeWire(WireWith(Carrier::kPublish, props));
    ASSERT_TRUE(std::holds_alternative<DecodeError>(result)) << std::hex << id;
    EXPECT_EQ(std::get<DecodeError>(result).reason_code, kMalformed) << std::hex << id;
  }
  EXPECT_EQ(ErrorOf(Carrier::kPublish, "80 01 00"), kMalformed);  // identifier 128
  EXPECT_EQ(ErrorOf(Carrier::kPublish, "80"), kMalformed);        // identifier cut short
}

TEST(PropertiesTest, TruncatedPropertyIsMalformed) {
  for (const PropertyCase& c : PropertyCases()) {
    const std::string full = Hex(c.hex);
    for (size_t n = 1; n < full.size(); ++n) {
      EXPECT_EQ(ErrorOf(c.allowed.front(), ToHex(full.substr(0, n))), kMalformed)
          << c.name << " cut to " << n << " bytes";
    }
  }
}

TEST(PropertiesTest, PropertyLengthPastThePacketIsMalformed) {
  for (const Carrier carrier : kAllCarriers) {
    // A property length of 5 with only 2 bytes of properties (and whatever follows them).
    std::string wire = WireWith(carrier, Hex("26 00"));
    const Layout layout = LayoutOf(carrier);
    const size_t length_at = wire.size() - Hex(layout.after).size() - 3;
    ASSERT_EQ(wire[length_at], 2);
    wire[length_at] = 0x7F;
    EXPECT_EQ(std::get<DecodeError>(DecodeWire(wire)).reason_code, kMalformed) << NameOf(carrier);
  }
}

TEST(PropertiesTest, WillAndConnectPropertiesAreSeparateBlocks) {
  // Session Expiry Interval in the CONNECT block, Will Delay Interval in the will block.
  const std::string wire =
      Hex("10 1E 00 04 4D 51 54 54 05 06 00 00 05 11 00 00 00 0A 00 01 63 05 18 00 00 00 05 "
          "00 01 74 00 00");
  const DecodeResult result = DecodeWire(wire);
  ASSERT_TRUE(std::holds_alternative<Packet>(result)) << std::get<DecodeError>(result).what;
  const Connect& connect = std::get<Connect>(std::get<Packet>(result));
  EXPECT_EQ(connect.properties, With(&Properties::session_expiry_interval, 10));
  ASSERT_TRUE(connect.will);
  EXPECT_EQ(connect.will->properties, With(&Properties::will_delay_interval, 5));
  // Each block is checked against its own list: the will's Will Delay Interval in the CONNECT
  // block is refused.
  EXPECT_EQ(std::get<DecodeError>(
                DecodeWire(Hex("10 1E 00 04 4D 51 54 54 05 06 00 00 05 18 00 00 00 0A 00 01 63 "
                               "05 18 00 00 00 05 00 01 74 00 00")))
                .reason_code,
            kMalformed);
}

}  // namespace
}  // namespace meshmq::codec
