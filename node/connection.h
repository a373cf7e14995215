// One client's network connection: reads bytes, frames and decodes packets, runs the protocol
// and buffers the replies. The packet handlers live in handle_*.cc, one file per area, as in
// Mosquitto; this file holds I/O, dispatch and the connection's life cycle.
//
// THREADING: owned by one Worker and touched only on its thread.
#ifndef MESHMQ_NODE_CONNECTION_H_
#define MESHMQ_NODE_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "node/codec/codec.h"
#include "node/codec/packet.h"
#include "node/session.h"

namespace meshmq {

class Broker;
class Worker;

class Connection {
 public:
  Connection(Broker* broker, Worker* worker, int fd, uint64_t id, int64_t now_ms);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint64_t id() const { return id_; }
  int fd() const { return fd_; }
  bool closing() const { return state_ == State::kClosing; }

  void OnReadable();
  void OnWritable();
  // Writes buffered output; arms EPOLLOUT if the socket cannot take it all.
  void FlushOutput();
  // Moves the session's queued messages into the output buffer, as the window allows.
  void DeliverPending();
  // Keepalive (MQTT-3.1.2-24) and CONNECT timeouts; `now_ms` from MonotonicMillis().
  void OnTick(int64_t now_ms);
  // Ends the connection. `publish_will`: the loss was abnormal (MQTT-3.1.2-8).
  void Close(std::string_view reason, bool publish_will);

 private:
  enum class State { kAwaitingConnect, kConnected, kClosing };

  SessionOwner owner() const;
  // Only for log lines: looked up when needed rather than kept per connection.
  std::string PeerName() const;
  const std::string& client_id() const { return session_->client_id(); }
  // Handles every complete packet at the front of `data`; returns how many bytes it used.
  size_t ProcessInput(std::string_view data);
  void HandlePacket(uint8_t first_byte, std::string_view body);
  // Malformed input or a protocol violation: counted, logged, connection closed (MQTT-4.8.0-1).
  void ProtocolViolation(std::string_view what);
  void LogRejection(std::string_view what);
  // Output is written once at the end of the loop iteration, however many packets were added.
  void ScheduleWrite();
  void Send(const codec::Packet& packet);
  void WriteOutgoing(const Outgoing& outgoing);
  size_t output_pending() const { return out_.size() - out_offset_; }

  // handle_connect.cc
  void HandleConnect(codec::Connect& connect);
  void RefuseConnect(uint8_t return_code, std::string_view why);
  // handle_publish.cc
  void HandlePublish(codec::Publish& publish);
  void HandleAck(const codec::Ack& ack);
  // handle_subscribe.cc
  void HandleSubscribe(const codec::Subscribe& subscribe);
  void HandleUnsubscribe(const codec::Unsubscribe& unsubscribe);

  Broker* const broker_;
  Worker* const worker_;
  const int fd_;
  const uint64_t id_;

  State state_ = State::kAwaitingConnect;
  codec::ProtocolVersion version_ = codec::ProtocolVersion::kV311;
  int64_t accepted_ms_;
  int64_t last_received_ms_;
  uint16_t keep_alive_ = 0;
  std::optional<std::string> username_;
  std::unique_ptr<codec::Will> will_;  // a pointer: most clients have none
  std::shared_ptr<Session> session_;

  std::string in_;  // only the start of a packet that has not fully arrived yet
  std::string out_;
  size_t out_offset_ = 0;
  bool write_armed_ = false;
  bool write_marked_ = false;
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_CONNECTION_H_
