// Connection I/O, dispatch and life cycle.
//
// Rules enforced here (MQTT 3.1.1):
// - The first packet must be CONNECT (MQTT-3.1.0-1); a second CONNECT is a protocol violation
//   (MQTT-3.1.0-2). Any other violation or malformed packet closes the connection (MQTT-4.8.0-1)
//   without an answer.
// - A client silent for 1.5x its Keep Alive is disconnected (MQTT-3.1.2-24); its will is
//   published because the loss was not a DISCONNECT (MQTT-3.1.2-8).
// - Packets only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) are violations from a
//   client.
#include "node/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/broker.h"
#include "node/worker.h"

namespace meshmq {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Bytes read from one socket per loop iteration, so one busy client can't starve the others.
constexpr size_t kMaxReadPerIteration = 1 << 20;
// An empty buffer larger than this is given back, so idle connections stay small.
constexpr size_t kMaxIdleBufferCapacity = 64 * 1024;
constexpr int kMaxRejectionLogsPerSecond = 20;

}  // namespace

Connection::Connection(Broker* broker, Worker* worker, int fd, uint64_t id, int64_t now_ms)
    : broker_(broker),
      worker_(worker),
      fd_(fd),
      id_(id),
      accepted_ms_(now_ms),
      last_received_ms_(now_ms) {}

Connection::~Connection() { close(fd_); }

SessionOwner Connection::owner() const { return SessionOwner{worker_, id_}; }

std::string Connection::PeerName() const {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (getpeername(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    if (address.ss_family == AF_INET) {
      auto* in = reinterpret_cast<const sockaddr_in*>(&address);
      inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
      port = ntohs(in->sin_port);
    } else if (address.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address);
      inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
      port = ntohs(in6->sin6_port);
    }
  }
  return absl::StrCat(host, ":", port);
}

void Connection::OnReadable() {
  thread_local char buffer[kReadChunk];
  size_t total = 0;
  while (state_ != State::kClosing && total < kMaxReadPerIteration) {
    ssize_t n = read(fd_, buffer, sizeof(buffer));
    if (n > 0) {
      total += static_cast<size_t>(n);
      last_received_ms_ = MonotonicMillis();
      std::string_view data(buffer, static_cast<size_t>(n));
      if (in_.empty()) {
        // Usual case: packets are parsed straight from the read buffer, and only a trailing
        // partial packet is copied aside.
        size_t used = ProcessInput(data);
        if (state_ != State::kClosing) in_.assign(data.substr(used));
      } else {
        in_.append(data);
        size_t used = ProcessInput(in_);
        in_.erase(0, used);
      }
      if (in_.empty() && in_.capacity() > kMaxIdleBufferCapacity) std::string().swap(in_);
      if (static_cast<size_t>(n) < sizeof(buffer)) break;
      continue;
    }
    if (n == 0) {
      Close("connection closed by client", true);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    Close(absl::StrCat("read error: ", std::strerror(errno)), true);
    return;
  }
}

size_t Connection::ProcessInput(std::string_view data) {
  const size_t max_packet_size = broker_->config().max_packet_size;
  size_t used = 0;
  while (state_ != State::kClosing && used < data.size()) {
    std::string_view rest = data.substr(used);
    // Judge the first byte before waiting for a whole packet, so that a stranger (an HTTP
    // request, say) is turned away at once rather than at --connect_timeout.
    if (state_ == State::kAwaitingConnect && static_cast<uint8_t>(rest[0]) != 0x10) {
      ProtocolViolation("first packet is not CONNECT");
      break;
    }
    codec::Frame frame = codec::ParseFrame(rest, max_packet_size);
    if (frame.status == codec::Frame::Status::kIncomplete) break;
    if (frame.status == codec::Frame::Status::kMalformed) {
      ProtocolViolation("malformed remaining length");
      break;
    }
    if (frame.status == codec::Frame::Status::kTooLarge) {
      broker_->counters().packets_too_large.Increment();
      std::string why =
          absl::StrCat("packet of ", frame.total_size(), " bytes exceeds --max_packet_size");
      LogRejection(why);
      Close(why, true);
      break;
    }
    HandlePacket(frame.first_byte, rest.substr(frame.header_size, frame.remaining_length));
    used += frame.total_size();
  }
  return used;
}

void Connection::ProtocolViolation(std::string_view what) {
  broker_->counters().packets_malformed.Increment();
  LogRejection(what);
  Close(what, true);
}

void Connection::LogRejection(std::string_view what) {
  // Operators must be able to see why a client was thrown out, but a flood of bad input must
  // not become a flood of log lines: at most kMaxRejectionLogsPerSecond per worker.
  thread_local int64_t window_start_ms = 0;
  thread_local int logged_in_window = 0;
  const int64_t now_ms = MonotonicMillis();
  if (now_ms - window_start_ms >= 1000) {
    window_start_ms = now_ms;
    logged_in_window = 0;
  }
  if (++logged_in_window > kMaxRejectionLogsPerSecond) return;
  std::fprintf(stderr, "meshmqd: closing %s (%s): %.*s\n",
               session_ ? client_id().c_str() : "connection before CONNECT", PeerName().c_str(),
               static_cast<int>(what.size()), what.data());
}

void Connection::HandlePacket(uint8_t first_byte, std::string_view body) {
  const auto type = static_cast<codec::PacketType>(first_byte >> 4);
  if (state_ == State::kAwaitingConnect && type != codec::PacketType::kConnect) {
    ProtocolViolation("first packet is not CONNECT");
    return;
  }
  if (state_ == State::kConnected && type == codec::PacketType::kConnect) {
    ProtocolViolation("second CONNECT on a connection");
    return;
  }
  codec::DecodeResult result = codec::Decode(first_byte, body, version_);
  if (auto* error = std::get_if<codec::DecodeError>(&result)) {
    if (type == codec::PacketType::kConnect &&
        error->reason_code == codec::reason::kUnsupportedProtocolVersion) {
      RefuseConnect(codec::connack::kUnacceptableProtocolVersion, error->what);
      return;
    }
    ProtocolViolation(error->what);
    return;
  }
  codec::Packet& packet = std::get<codec::Packet>(result);
  std::visit(
      [this](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, codec::Connect>) {
          HandleConnect(p);
        } else if constexpr (std::is_same_v<T, codec::Publish>) {
          HandlePublish(p);
        } else if constexpr (std::is_same_v<T, codec::Ack>) {
          HandleAck(p);
        } else if constexpr (std::is_same_v<T, codec::Subscribe>) {
          HandleSubscribe(p);
        } else if constexpr (std::is_same_v<T, codec::Unsubscribe>) {
          HandleUnsubscribe(p);
        } else if constexpr (std::is_same_v<T, codec::Pingreq>) {
          Send(codec::Pingresp{});
        } else if constexpr (std::is_same_v<T, codec::Disconnect>) {
          will_.reset();  // MQTT-3.14.4-3: a DISCONNECT discards the will
          Close("client disconnected", false);
        } else {
          ProtocolViolation("client sent a packet only a server may send");
        }
      },
      packet);
}

void Connection::ScheduleWrite() {
  if (write_marked_) return;
  write_marked_ = true;
  worker_->MarkForWrite(this);
}

void Connection::Send(const codec::Packet& packet) {
  codec::Encode(packet, version_, &out_);
  ScheduleWrite();
}

void Connection::WriteOutgoing(const Outgoing& outgoing) {
  if (outgoing.kind == Outgoing::Kind::kPubrel) {
    codec::Encode(codec::Ack{codec::PacketType::kPubrel, outgoing.packet_id}, version_, &out_);
  } else {
    const Message& m = *outgoing.queued.message;
    codec::EncodePublish(m.topic, m.payload, outgoing.queued.qos, outgoing.queued.retain,
                         outgoing.dup, outgoing.packet_id, nullptr, version_, &out_);
    worker_->mutable_stats().messages_sent.fetch_add(1, std::memory_order_relaxed);
  }
  ScheduleWrite();
}

void Connection::DeliverPending() {
  if (state_ != State::kConnected || !session_) return;
  // A reader that does not keep up gets no more QoS 0 messages until its buffer drains (they
  // are at most once: dropping them is allowed); QoS 1 and 2 wait in the session queue, whose
  // limit then decides what goes.
  if (output_pending() > broker_->config().max_output_buffer) {
    size_t dropped = session_->DropQueuedQos0(owner());
    if (dropped > 0) broker_->counters().messages_dropped_output_buffer.Increment(dropped);
    return;
  }
  thread_local std::vector<Outgoing> batch;
  batch.clear();
  session_->TakeSendable(owner(), broker_->config().max_inflight, &batch);
  for (const Outgoing& outgoing : batch) WriteOutgoing(outgoing);
  batch.clear();
}

void Connection::FlushOutput() {
  write_marked_ = false;
  while (out_offset_ < out_.size()) {
    ssize_t n = send(fd_, out_.data() + out_offset_, out_.size() - out_offset_, MSG_NOSIGNAL);
    if (n > 0) {
      out_offset_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!write_armed_) {
        write_armed_ = true;
        worker_->SetWritable(this, true);
      }
      return;
    }
    if (state_ != State::kClosing) {
      Close(absl::StrCat("write error: ", std::strerror(errno)), true);
    }
    out_.clear();
    out_offset_ = 0;
    return;
  }
  out_.clear();
  out_offset_ = 0;
  if (out_.capacity() > kMaxIdleBufferCapacity) std::string().swap(out_);
  if (write_armed_) {
    write_armed_ = false;
    worker_->SetWritable(this, false);
  }
}

void Connection::OnWritable() {
  FlushOutput();
  // The buffer drained: messages held back for a slow reader may flow again.
  if (output_pending() == 0) DeliverPending();
}

void Connection::OnTick(int64_t now_ms) {
  if (state_ == State::kAwaitingConnect) {
    if (now_ms - accepted_ms_ > absl::ToInt64Milliseconds(broker_->config().connect_timeout)) {
      broker_->counters().connect_timeouts.Increment();
      Close("no CONNECT within --connect_timeout", false);
    }
    return;
  }
  if (state_ == State::kConnected && keep_alive_ > 0 &&
      now_ms - last_received_ms_ > int64_t{1500} * keep_alive_) {
    broker_->counters().keepalive_timeouts.Increment();
    Close("keepalive timeout", true);
  }
}

void Connection::Close(std::string_view reason, bool publish_will) {
  if (state_ == State::kClosing) return;
  const bool was_connected = state_ == State::kConnected;
  state_ = State::kClosing;
  if (was_connected && publish_will && will_) {
    auto message = std::make_shared<Message>();
    message->topic = std::move(will_->topic);
    message->payload = std::move(will_->payload);
    message->qos = will_->qos;
    message->retain = will_->retain;
    will_.reset();
    broker_->counters().wills_published.Increment();
    broker_->Publish(message);
  }
  if (broker_->config().log_connections) {
    std::fprintf(stderr, "meshmqd: %s (%s) disconnected: %.*s\n",
                 session_ ? client_id().c_str() : "-", PeerName().c_str(),
                 static_cast<int>(reason.size()), reason.data());
  }
  if (session_) {
    if (std::shared_ptr<Session> ended = broker_->sessions().Detach(session_, owner())) {
      broker_->DiscardSession(ended);
    }
    session_.reset();
  }
  // Let already-queued output (a refusing CONNACK) reach the client before the fd goes.
  if (output_pending() > 0) FlushOutput();
  shutdown(fd_, SHUT_RDWR);
  worker_->ScheduleClose(this);
}

}  // namespace meshmq
