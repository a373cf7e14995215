// The on-disk layout of meshmqd's RocksDB store, in one place. Changing any of it (a key format,
// a column family's meaning, a record's field numbers in a way protobuf cannot read) means a new
// kSchemaVersion; a node refuses to open a data dir written with a version it does not know.
//
// One column family per kind of record. Values are the protobuf records of proto/storage.proto.
// Keys start with the identity they belong to (a topic, a client id), so that the cluster can
// replicate, hand off or delete one session or one retained topic as a key range, record by
// record. Client ids never contain U+0000 (MQTT-1.5.3-2), so '\0' ends the client id in a key and
// [client_id + '\0', client_id + '\1') is exactly one session's range.
//
//   column family  key                                          value
//   meta           "schema_version"                             decimal ASCII, e.g. "1"
//   retained       topic name (UTF-8 as published)              StoredMessage
//   sessions       client id                                    SessionRecord
//   queued         client id '\0' seq (uint64, big-endian)      QueuedRecord
//   inflight       client id '\0' seq (uint64, big-endian)      InflightRecord
//   inbound_qos2   client id '\0' packet id (uint16, big-endian) empty
//
// `seq` numbers a session's messages in the order they were queued; big-endian so that RocksDB's
// byte order is queue order. A message in flight has both a queued and an inflight record under
// the same seq; acknowledging it deletes both.
#ifndef MESHMQ_STORAGE_SCHEMA_H_
#define MESHMQ_STORAGE_SCHEMA_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace meshmq::storage {

inline constexpr int kSchemaVersion = 1;
inline constexpr std::string_view kSchemaVersionKey = "schema_version";

inline constexpr std::string_view kMetaFamily = "meta";
inline constexpr std::string_view kRetainedFamily = "retained";
inline constexpr std::string_view kSessionsFamily = "sessions";
inline constexpr std::string_view kQueuedFamily = "queued";
inline constexpr std::string_view kInflightFamily = "inflight";
inline constexpr std::string_view kInboundQos2Family = "inbound_qos2";

// client_id '\0' seq, big-endian.
std::string MessageKey(std::string_view client_id, uint64_t seq);
// client_id '\0' packet_id, big-endian.
std::string InboundQos2Key(std::string_view client_id, uint16_t packet_id);
// The range [begin, end) of every key of `client_id` in queued, inflight and inbound_qos2.
std::string SessionRangeBegin(std::string_view client_id);
std::string SessionRangeEnd(std::string_view client_id);
// Splits a queued/inflight or inbound_qos2 key; false if it is not one.
bool ParseMessageKey(std::string_view key, std::string* client_id, uint64_t* seq);
bool ParseInboundQos2Key(std::string_view key, std::string* client_id, uint16_t* packet_id);

}  // namespace meshmq::storage

#endif  // MESHMQ_STORAGE_SCHEMA_H_
