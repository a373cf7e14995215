#include "storage/schema.h"

namespace meshmq::storage {
namespace {

void AppendBigEndian(std::string* out, uint64_t value, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xFF));
  }
}

uint64_t ReadBigEndian(std::string_view bytes) {
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<unsigned char>(c);
  return value;
}

// Splits `key` into the client id before its first '\0' and the `suffix_size` bytes after it.
// The client id cannot hold a '\0', so the first one is the separator even when the suffix holds
// zero bytes itself.
bool SplitKey(std::string_view key, size_t suffix_size, std::string* client_id,
              std::string_view* suffix) {
  size_t separator = key.find('\0');
  if (separator == std::string_view::npos || key.size() - separator - 1 != suffix_size) {
    return false;
  }
  client_id->assign(key.substr(0, separator));
  *suffix = key.substr(separator + 1);
  return true;
}

}  // namespace

std::string MessageKey(std::string_view client_id, uint64_t seq) {
  std::string key = SessionRangeBegin(client_id);
  AppendBigEndian(&key, seq, 8);
  return key;
}

std::string InboundQos2Key(std::string_view client_id, uint16_t packet_id) {
  std::string key = SessionRangeBegin(client_id);
  AppendBigEndian(&key, packet_id, 2);
  return key;
}

std::string SessionRangeBegin(std::string_view client_id) {
  std::string key(client_id);
  key.push_back('\0');
  return key;
}

std::string SessionRangeEnd(std::string_view client_id) {
  std::string key(client_id);
  key.push_back('\1');
  return key;
}

bool ParseMessageKey(std::string_view key, std::string* client_id, uint64_t* seq) {
  std::string_view suffix;
  if (!SplitKey(key, 8, client_id, &suffix)) return false;
  *seq = ReadBigEndian(suffix);
  return true;
}

bool ParseInboundQos2Key(std::string_view key, std::string* client_id, uint16_t* packet_id) {
  std::string_view suffix;
  if (!SplitKey(key, 2, client_id, &suffix)) return false;
  *packet_id = static_cast<uint16_t>(ReadBigEndian(suffix));
  return true;
}

}  // namespace meshmq::storage
