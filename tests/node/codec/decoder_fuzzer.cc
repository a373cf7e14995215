// libFuzzer target for the codec: every input is framed and decoded at every protocol level, and
// whatever decodes (MQTT 5 properties and AUTH included) must re-encode to exactly EncodedSize
// bytes that decode to the same packet. Built only with
// -DMESHMQ_FUZZ=ON and clang (see tests/CMakeLists.txt); run as
//   build-fuzz/tests/decoder_fuzzer -max_total_time=120 corpus/
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "node/codec/codec.h"

using meshmq::codec::Connect;
using meshmq::codec::Decode;
using meshmq::codec::DecodeResult;
using meshmq::codec::Encode;
using meshmq::codec::EncodedPublishSize;
using meshmq::codec::EncodedSize;
using meshmq::codec::Frame;
using meshmq::codec::Packet;
using meshmq::codec::ParseFrame;
using meshmq::codec::ProtocolVersion;
using meshmq::codec::Publish;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (true) {
    Frame frame = ParseFrame(rest, 1 << 16);
    if (frame.status != Frame::Status::kComplete) break;
    std::string_view body = rest.substr(frame.header_size, frame.remaining_length);
    for (ProtocolVersion version :
         {ProtocolVersion::kV31, ProtocolVersion::kV311, ProtocolVersion::kV5}) {
      DecodeResult result = Decode(frame.first_byte, body, version);
      const Packet* packet = std::get_if<Packet>(&result);
      if (packet == nullptr) continue;
      ProtocolVersion wire_version = version;
      if (const auto* connect = std::get_if<Connect>(packet)) wire_version = connect->version;
      std::string encoded;
      Encode(*packet, wire_version, &encoded);
      Frame again = ParseFrame(encoded, SIZE_MAX);
      if (again.status != Frame::Status::kComplete || again.total_size() != encoded.size() ||
          EncodedSize(*packet, wire_version) != encoded.size()) {
        abort();
      }
      if (const auto* publish = std::get_if<Publish>(packet)) {
        if (EncodedPublishSize(publish->topic, publish->payload.size(), publish->qos,
                               publish->properties.get(), nullptr,
                               wire_version) != encoded.size()) {
          abort();
        }
      }
      DecodeResult round_trip = Decode(
          again.first_byte, std::string_view(encoded).substr(again.header_size), wire_version);
      if (!std::holds_alternative<Packet>(round_trip) ||
          !(std::get<Packet>(round_trip) == *packet)) {
        abort();
      }
    }
    rest.remove_prefix(frame.total_size());
  }
  return 0;
}
