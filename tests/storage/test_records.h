// Builders of storage records for the storage tests, so each test reads as what it stores.
#ifndef MESHMQ_TESTS_STORAGE_TEST_RECORDS_H_
#define MESHMQ_TESTS_STORAGE_TEST_RECORDS_H_

#include <cstdint>
#include <string>
#include <utility>

#include "proto/storage.pb.h"

namespace meshmq::storage::test {

inline StoredMessage Message(std::string topic, std::string payload, uint32_t qos = 1) {
  StoredMessage message;
  message.set_topic(std::move(topic));
  message.set_payload(std::move(payload));
  message.set_qos(qos);
  return message;
}

// A message on topic "t" queued at `qos`.
inline QueuedRecord Queued(std::string payload, uint32_t qos = 1) {
  QueuedRecord record;
  *record.mutable_message() = Message("t", std::move(payload), qos);
  record.set_qos(qos);
  return record;
}

}  // namespace meshmq::storage::test

#endif  // MESHMQ_TESTS_STORAGE_TEST_RECORDS_H_
