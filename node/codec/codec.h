// The MQTT codec: bytes in, packets or errors out, and packets to bytes. No sockets, no state
// beyond what the caller passes in, so every rule is unit-testable byte for byte and the decoder is
// a fuzz target. Malformed input is always an error value, never a crash or an exception.
#ifndef MESHMQ_NODE_CODEC_CODEC_H_
#define MESHMQ_NODE_CODEC_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "node/codec/packet.h"

namespace meshmq::codec {

// The largest Remaining Length the 4-byte variable-length encoding can express (MQTT-2.2.3).
inline constexpr size_t kMaxRemainingLength = 268'435'455;

// Why input was refused. `reason_code` is the MQTT 5 reason code (reason::k*), `what` a short
// human-readable explanation for logs and for the client's DISCONNECT reason string later.
struct DecodeError {
  uint8_t reason_code = reason::kMalformedPacket;
  std::string what;
};

// Where one packet sits at the front of a byte stream.
struct Frame {
  enum class Status {
    kIncomplete,  // need more bytes: the fixed header or the body is not all there yet
    kComplete,    // a whole packet is at the front of the buffer
    kMalformed,   // Remaining Length uses more than 4 bytes (MQTT-2.2.3)
    kTooLarge,    // header + body would exceed max_packet_size
  };
  Status status = Status::kIncomplete;
  uint8_t first_byte = 0;  // packet type (high nibble) and flags (low nibble)
  size_t header_size = 0;  // fixed header: 1 byte + 1..4 bytes of Remaining Length
  size_t remaining_length = 0;
  size_t total_size() const { return header_size + remaining_length; }
};

// Looks for a complete packet at the front of `data`. Never reads past data.size(). A packet
// larger than `max_packet_size` (whole packet, fixed header included) is kTooLarge as soon as
// its Remaining Length is known, so an oversize packet is refused before it is buffered.
Frame ParseFrame(std::string_view data, size_t max_packet_size);

using DecodeResult = std::variant<Packet, DecodeError>;

// Decodes one packet given its first byte and its body (the `remaining_length` bytes after the
// fixed header). `version` is the level negotiated by the connection's CONNECT and selects the
// wire format (for CONNECT itself the level is read from the packet). Validates everything the
// standard makes a MUST for the receiver: reserved flag bits, QoS 3, DUP on QoS 0, packet id 0,
// well-formed UTF-8 strings without U+0000 or surrogates, CONNECT flags, empty SUBSCRIBE and
// UNSUBSCRIBE, trailing bytes. A CONNECT with an unknown protocol level or name decodes to an
// error with reason::kUnsupportedProtocolVersion, so the caller can answer CONNACK code 1.
// Topic name and filter *syntax* (wildcards) is the broker's job, see node/topic.h.
DecodeResult Decode(uint8_t first_byte, std::string_view body, ProtocolVersion version);

// Appends the wire encoding of `packet` for protocol level `version` to `out`.
void Encode(const Packet& packet, ProtocolVersion version, std::string* out);

// The hot path of delivery: appends a PUBLISH built from its parts without first assembling a
// Publish struct, so one stored message is encoded for many subscribers without copies.
// `properties` are the message's own (as the publisher sent them, minus what the server owns),
// `extra` what the server adds for this one delivery (Topic Alias, Subscription Identifiers, the
// remaining Message Expiry Interval). Either may be null. Both are written into the one property
// block, `properties` first; the caller keeps them disjoint (no field set in both).
void EncodePublish(std::string_view topic, std::string_view payload, uint8_t qos, bool retain,
                   bool dup, uint16_t packet_id, const Properties* properties,
                   const Properties* extra, ProtocolVersion version, std::string* out);

// The number of bytes EncodePublish would append for the same arguments, so the server can
// honour a client's Maximum Packet Size (MQTT-3.1.2-24) before encoding anything.
size_t EncodedPublishSize(std::string_view topic, size_t payload_size, uint8_t qos,
                          const Properties* properties, const Properties* extra,
                          ProtocolVersion version);

// The number of bytes Encode would append.
size_t EncodedSize(const Packet& packet, ProtocolVersion version);

// A message's MQTT 5 properties as one property block (Variable Byte Integer length, then the
// properties), and back: how they are stored (storage/, proto/storage.proto). The decoder applies
// the rules of a PUBLISH's block; false if `block` is not one (or has bytes after it).
void EncodePropertyBlock(const Properties& properties, std::string* out);
bool DecodePublishPropertyBlock(std::string_view block, Properties* out);

// True if `s` is a well-formed UTF-8 string as MQTT requires (MQTT-1.5.3-1, -2): valid encoding,
// no surrogate code points, no U+0000.
bool IsValidMqttUtf8(std::string_view s);

}  // namespace meshmq::codec

#endif  // MESHMQ_NODE_CODEC_CODEC_H_
