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

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/broker.h"
#include "node/event_loop.h"
#include "node/log.h"
#include "node/persistence.h"
#include "node/worker.h"
#include "storage/store.h"

namespace meshmq {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Bytes read from one socket per loop iteration, so one busy client can't starve the others.
constexpr size_t kMaxReadPerIteration = 1 << 20;
// An empty buffer larger than this is given back, so idle connections stay small.
constexpr size_t kMaxIdleBufferCapacity = 64 * 1024;
constexpr int kMaxRejectionLogsPerSecond = 20;

// What a connected client's Close says about why it ended, for meshmq_disconnects_total: the
// MQTT 5 reason code the server gives (every server-side close of a connected client has one),
// else the client's own DISCONNECT or a lost connection.
DisconnectReason DisconnectReasonFor(int disconnect_reason, bool disconnect_received) {
  if (disconnect_reason == Connection::kNoDisconnect) {
    return disconnect_received ? DisconnectReason::kClientDisconnect
                               : DisconnectReason::kConnectionLost;
  }
  switch (disconnect_reason) {
    case codec::reason::kKeepAliveTimeout:
      return DisconnectReason::kKeepaliveTimeout;
    case codec::reason::kSessionTakenOver:
      return DisconnectReason::kSessionTakenOver;
    case codec::reason::kServerShuttingDown:
      return DisconnectReason::kServerShutdown;
    case codec::reason::kUseAnotherServer:
      return DisconnectReason::kNotServing;
    case codec::reason::kPacketTooLarge:
      return DisconnectReason::kPacketTooLarge;
    case codec::reason::kQuotaExceeded:
      return DisconnectReason::kClusterRefused;
    case codec::reason::kUnspecifiedError:
      return DisconnectReason::kServerError;
    case codec::reason::kAdministrativeAction:
      return DisconnectReason::kAdministrativeAction;
    default:
      return DisconnectReason::kProtocolError;
  }
}

}  // namespace

Connection::Connection(Broker* broker, Worker* worker, int fd, uint64_t id, int64_t now_ms,
                       bool over_quota)
    : broker_(broker),
      worker_(worker),
      fd_(fd),
      id_(id),
      accepted_ms_(now_ms),
      last_received_ms_(now_ms),
      over_quota_(over_quota) {}

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

bool Connection::HoldForCluster(uint8_t first_byte, std::string_view body) {
  ClusterHooks* cluster = broker_->cluster();
  if (cluster == nullptr || (first_byte >> 4) != 3 || state_ != State::kConnected) return false;
  // The topic is the PUBLISH's first field; an empty one (an MQTT 5 topic alias) or a malformed
  // one holds on any takeover: HandlePublish judges it later.
  std::string_view topic;
  if (body.size() >= 2) {
    const size_t length = (static_cast<uint8_t>(body[0]) << 8) | static_cast<uint8_t>(body[1]);
    if (body.size() >= 2 + length) topic = body.substr(2, length);
  }
  const bool held = cluster->HoldPublish(
      topic, [worker = worker_, id = id_] { worker->ResumeInput(id); });
  if (!held) return false;
  input_held_ = true;
  worker_->SetReading(this, false);
  return true;
}

void Connection::ResumeInput() {
  if (!input_held_ || state_ == State::kClosing) return;
  input_held_ = false;
  worker_->SetReading(this, true);
  if (!in_.empty()) {
    const size_t used = ProcessInput(in_);
    in_.erase(0, used);
  }
}

void Connection::OnReadable() {
  // The worker's (one per thread): a static thread_local array would be carved out of every
  // thread's stack, civetweb's 100 KiB ones (node/http) included, where 64 KiB does not fit.
  char* const buffer = worker_->read_buffer(kReadChunk);
  size_t total = 0;
  while (state_ != State::kClosing && !pending_connect_ && !input_held_ &&
         total < kMaxReadPerIteration) {
    ssize_t n = read(fd_, buffer, kReadChunk);
    if (n > 0) {
      total += static_cast<size_t>(n);
      Worker::Stats::Add(worker_->mutable_stats().bytes_read, static_cast<uint64_t>(n));
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
      if (static_cast<size_t>(n) < kReadChunk) break;
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
  while (state_ != State::kClosing && !pending_connect_ && !input_held_ && used < data.size()) {
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
      Close(why, true, codec::reason::kPacketTooLarge);
      break;
    }
    const std::string_view body = rest.substr(frame.header_size, frame.remaining_length);
    if (HoldForCluster(frame.first_byte, body)) break;  // this packet again on ResumeInput
    HandlePacket(frame.first_byte, body);
    used += frame.total_size();
  }
  return used;
}

void Connection::ProtocolViolation(std::string_view what, uint8_t reason_code) {
  broker_->counters().packets_malformed.Increment();
  LogRejection(what);
  Close(what, true, reason_code);
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
  Log(LogLevel::kInfo, "meshmqd: closing %s (%s): %.*s",
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
    if (type == codec::PacketType::kConnect) {
      RejectBadConnect(body, error->reason_code, error->what);
      return;
    }
    ProtocolViolation(error->what, error->reason_code);
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
          HandleDisconnect(p);
        } else if constexpr (std::is_same_v<T, codec::Auth>) {
          // MQTT 5 4.12: AUTH continues an exchange the CONNECT started with an Authentication
          // Method; a CONNECT that names one is refused (no method is offered), so none exists.
          ProtocolViolation("AUTH without an authentication exchange");
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

void Connection::SendAck(codec::PacketType type, uint16_t packet_id, uint8_t reason_code,
                         std::string_view why) {
  codec::Ack ack{type, packet_id, reason_code};
  // MQTT-3.1.2-29: no Reason String on acks for a client that asked for no problem information.
  if (v5_ && reason_code >= 0x80 && !why.empty() && v5_->problem_information) {
    ack.properties.Mutable().reason_string.emplace(why);
  }
  Send(ack);
}

void Connection::SendDurableAck(codec::PacketType type, uint16_t packet_id, uint8_t reason_code,
                                std::string_view why, uint64_t submits_before) {
  HoldOutputIfStoredSince(submits_before, out_.size());
  SendAck(type, packet_id, reason_code, why);
}

void Connection::HoldOutputUntil(uint64_t ticket) { HoldOutputFrom(out_.size(), ticket); }

void Connection::HoldOutputIfStoredSince(uint64_t submits_before, size_t offset) {
  // Counted by submits, not by ticket: a submit can join the group of an earlier one on this
  // thread (another connection's), and the ticket does not move. The thread's ticket covers it.
  if (Persistence::ThreadSubmits() != submits_before) {
    HoldOutputFrom(offset, Persistence::ThreadTicket());
  }
}

void Connection::HoldOutputFrom(size_t offset, uint64_t ticket) {
  Persistence* persistence = broker_->persistence();
  if (persistence == nullptr || ticket <= persistence->durable_ticket()) return;
  AddHold(offset, ticket, 0);
  if (!awaiting_durable_) {
    awaiting_durable_ = true;
    worker_->AwaitDurable(id_);
  }
}

void Connection::AddHold(size_t offset, uint64_t ticket, uint64_t cluster_wait) {
  if (!held_output_.empty()) {
    const HeldOutput& back = held_output_.back();
    // Output after a mark that waits for as much is held by that mark already.
    if (back.ticket >= ticket && back.cluster_wait >= cluster_wait) return;
    ticket = std::max(ticket, back.ticket);
    cluster_wait = std::max(cluster_wait, back.cluster_wait);
  }
  held_output_.push_back(HeldOutput{std::max(offset, out_offset_), ticket, cluster_wait});
}

bool Connection::ReleaseDurableOutput(uint64_t durable) {
  // Only the worker's OnDurable calls this: it has just taken the connection off its list.
  awaiting_durable_ = ReleaseHeldOutput(durable);
  return awaiting_durable_;
}

bool Connection::ReleaseHeldOutput(uint64_t durable) {
  bool released = false;
  const uint64_t cluster_done = cluster_waits_done();
  while (!held_output_.empty() && held_output_.front().ticket <= durable &&
         held_output_.front().cluster_wait <= cluster_done) {
    held_output_.pop_front();
    released = true;
  }
  if (released) ScheduleWrite();
  return !held_output_.empty() && held_output_.front().ticket > durable;
}

uint64_t Connection::StartClusterWait() {
  if (!cluster_waits_) cluster_waits_ = std::make_unique<ClusterWaits>();
  return ++cluster_waits_->issued;
}

std::function<void(bool)> Connection::ClusterWaitCallback(uint64_t seq) {
  return [worker = worker_, id = id_, seq](bool ok) {
    worker->Post([worker, id, seq, ok] { worker->OnClusterWaitDone(id, seq, ok); });
  };
}

void Connection::HoldForRouteBarrier() {
  ClusterHooks* cluster = broker_->cluster();
  if (cluster == nullptr) return;
  const uint64_t seq = StartClusterWait();
  HoldOutputForCluster(out_.size(), seq);
  cluster->Barrier([done = ClusterWaitCallback(seq)] { done(true); });
}

void Connection::HoldOutputForCluster(size_t offset, uint64_t seq) {
  if (seq > cluster_waits_done()) AddHold(offset, 0, seq);
}

void Connection::OnClusterWaitDone(uint64_t seq, bool ok) {
  if (state_ == State::kClosing) return;
  if (!ok) {
    // Not every node that should have the message took it: no ack, so the client sends it
    // again (MQTT-4.4.0-1), by which time the peer may have caught up. A QoS 2 one is then
    // routed again, not dropped as a duplicate.
    if (auto it = cluster_waits_->qos2_ids.find(seq); it != cluster_waits_->qos2_ids.end()) {
      session_->ForgetInboundQos2(it->second);
      cluster_waits_->qos2_ids.erase(it);
    }
    Close("a peer node did not take the message (its link was down, or full: "
          "--cluster_max_pending_bytes)",
          false,
          codec::reason::kQuotaExceeded);
    return;
  }
  ClusterWaits& waits = *cluster_waits_;
  JournalQos2AfterWait(seq);
  if (seq != waits.done + 1) {
    waits.done_early.insert(seq);
    return;
  }
  waits.done = seq;
  while (!waits.done_early.empty() && waits.done_early.erase(waits.done + 1) > 0) ++waits.done;
  Persistence* persistence = broker_->persistence();
  const uint64_t durable =
      persistence == nullptr ? UINT64_MAX : persistence->durable_ticket();
  if (ReleaseHeldOutput(durable) && !awaiting_durable_) {
    awaiting_durable_ = true;
    worker_->AwaitDurable(id_);
  }
}

void Connection::JournalQos2AfterWait(uint64_t seq) {
  auto it = cluster_waits_->qos2_ids.find(seq);
  if (it == cluster_waits_->qos2_ids.end()) return;
  const uint16_t packet_id = it->second;
  cluster_waits_->qos2_ids.erase(it);
  const uint64_t submits_before = Persistence::ThreadSubmits();
  session_->JournalInboundQos2(packet_id);
  if (Persistence::ThreadSubmits() == submits_before) return;
  const uint64_t ticket = Persistence::ThreadTicket();
  // The PUBREC waits for the write too: held output from this wait on waits for `ticket` as
  // well (the marks stay ordered, both values growing).
  for (HeldOutput& held : held_output_) {
    if (held.cluster_wait >= seq) held.ticket = std::max(held.ticket, ticket);
  }
}

size_t Connection::outbound_window() const {
  const size_t window = broker_->config().max_inflight;
  return v5_ ? std::min<size_t>(window, v5_->client_receive_maximum) : window;
}

void Connection::WriteOutgoing(const Outgoing& outgoing) {
  if (outgoing.kind == Outgoing::Kind::kPubrel) {
    codec::Encode(codec::Ack{codec::PacketType::kPubrel, outgoing.packet_id}, version_, &out_);
    ScheduleWrite();
    return;
  }
  const QueuedMessage& queued = outgoing.queued;
  const Message& m = *queued.message;
  if (v5_ == nullptr) {
    codec::EncodePublish(m.topic, m.payload, queued.qos, queued.retain, outgoing.dup,
                         outgoing.packet_id, nullptr, nullptr, version_, &out_);
  } else {
    // What this hop adds to the publisher's properties (MQTT 5 3.3.2.3).
    std::optional<codec::Properties> extra;
    if (m.expires_at_ms != 0) {
      extra.emplace().message_expiry_interval =
          std::max<uint32_t>(1, m.remaining_expiry_seconds(MonotonicMillis()));
    }
    if (queued.extras && !queued.extras->subscription_ids.empty()) {
      if (!extra) extra.emplace();
      extra->subscription_identifiers = queued.extras->subscription_ids;
    }
    // Topic aliases towards the client (3.3.2.3.4): the first topics sent get one each, up to
    // the client's Topic Alias Maximum; later sends of those topics carry only the alias.
    std::string_view topic = m.topic;
    bool new_alias = false;
    if (v5_->client_topic_alias_maximum > 0) {
      uint16_t alias = 0;
      auto it = v5_->outbound_aliases.find(m.topic);
      if (it != v5_->outbound_aliases.end()) {
        alias = it->second;
        topic = {};
      } else if (v5_->outbound_aliases.size() < v5_->client_topic_alias_maximum) {
        alias = static_cast<uint16_t>(v5_->outbound_aliases.size() + 1);
        new_alias = true;
      }
      if (alias != 0) {
        if (!extra) extra.emplace();
        extra->topic_alias = alias;
      }
    }
    const codec::Properties* extra_properties = extra ? &*extra : nullptr;
    // MQTT-3.1.2-24: never send a packet larger than the client's Maximum Packet Size; the
    // message is dropped for this client (3.1.2.11.4).
    if (v5_->client_maximum_packet_size != 0 &&
        codec::EncodedPublishSize(topic, m.payload.size(), queued.qos, m.properties.get(),
                                  extra_properties, version_) > v5_->client_maximum_packet_size) {
      broker_->counters().messages_dropped_packet_size.Increment();
      if (queued.qos > 0) {
        session_->DropInflight(outgoing.packet_id);
        worker_->RequestFlush(id_);  // the window slot is free again
      }
      return;
    }
    if (new_alias) v5_->outbound_aliases.emplace(m.topic, extra->topic_alias.value());
    codec::EncodePublish(topic, m.payload, queued.qos, queued.retain, outgoing.dup,
                         outgoing.packet_id, m.properties.get(), extra_properties, version_, &out_);
  }
  Worker::Stats& stats = worker_->mutable_stats();
  Worker::Stats::Add(stats.messages_sent, 1);
  Worker::Stats::Add(stats.sent_by_qos[queued.qos], 1);
  Worker::Stats::Add(stats.sent_payload_bytes_by_qos[queued.qos], m.payload.size());
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
  const uint64_t submits_before = Persistence::ThreadSubmits();
  const size_t offset = out_.size();
  const size_t expired =
      session_->TakeSendable(owner(), outbound_window(), MonotonicMillis(), &batch);
  if (expired > 0) broker_->counters().messages_expired.Increment(expired);
  for (const Outgoing& outgoing : batch) WriteOutgoing(outgoing);
  batch.clear();
  HoldOutputIfStoredSince(submits_before, offset);
}

void Connection::FlushOutput() {
  write_marked_ = false;
  // Held output stays until the store catches up (ReleaseDurableOutput schedules the write).
  const size_t limit = held_output_.empty() ? out_.size() : held_output_.front().offset;
  while (out_offset_ < limit) {
    ssize_t n = send(fd_, out_.data() + out_offset_, limit - out_offset_, MSG_NOSIGNAL);
    if (n > 0) {
      out_offset_ += static_cast<size_t>(n);
      Worker::Stats::Add(worker_->mutable_stats().bytes_written, static_cast<uint64_t>(n));
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
    held_output_.clear();
    return;
  }
  if (limit < out_.size()) {  // the rest is held
    if (write_armed_) {
      write_armed_ = false;
      worker_->SetWritable(this, false);
    }
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
    Close("keepalive timeout", true, codec::reason::kKeepAliveTimeout);
  }
}

MessagePtr Connection::WillMessage() const {
  auto message = std::make_shared<Message>();
  message->topic = will_->topic;
  message->payload = will_->payload;
  message->qos = will_->qos;
  message->retain = will_->retain;
  message->id = broker_->NewMessageId();
  codec::Properties properties = *will_->properties;
  properties.will_delay_interval.reset();
  if (properties.message_expiry_interval) {
    message->expires_at_ms =
        MonotonicMillis() + int64_t{1000} * *properties.message_expiry_interval;
    properties.message_expiry_interval.reset();
  }
  if (!properties.empty()) {
    message->properties = std::make_unique<const codec::Properties>(std::move(properties));
  }
  return message;
}

void Connection::HandleWillOnClose() {
  const uint32_t delay = will_->properties->will_delay_interval.value_or(0);
  MessagePtr will = WillMessage();
  will_.reset();
  if (delay == 0) {
    broker_->PublishWill(will);
    return;
  }
  // A connection that was taken over by one resuming the same session is "a new Network
  // Connection to this Session": the delayed will is not sent (MQTT 5 3.1.3.2.2).
  const bool resumed_elsewhere =
      !session_->IsOwner(owner()) && session_->online() && !session_->discarded();
  if (resumed_elsewhere) return;
  const uint32_t expiry = session_->discarded() ? 0 : session_->expiry_interval();
  if (expiry == 0) {  // the session ends now, and with it the delay
    broker_->PublishWill(will);
    return;
  }
  // Published when the delay passes or the session ends, whichever comes first.
  const uint32_t wait = std::min(delay, expiry);
  broker_->ScheduleWill(client_id(), std::move(will), MonotonicMillis() + int64_t{1000} * wait);
}

void Connection::Close(std::string_view reason, bool publish_will, int disconnect_reason) {
  if (state_ == State::kClosing) return;
  const bool was_connected = state_ == State::kConnected;
  state_ = State::kClosing;
  if (was_connected) {
    const DisconnectReason why = DisconnectReasonFor(disconnect_reason, disconnect_received_);
    worker_->mutable_stats().disconnects[static_cast<int>(why)].fetch_add(
        1, std::memory_order_relaxed);
  }
  // MQTT 5 4.13.2: say why before closing. Never before CONNACK (MQTT-3.14.0-1).
  if (was_connected && v5_ && disconnect_reason != kNoDisconnect) {
    codec::Disconnect disconnect;
    disconnect.reason_code = static_cast<uint8_t>(disconnect_reason);
    const size_t limit = v5_->client_maximum_packet_size;
    if (reason.size() < 1024 && (limit == 0 || reason.size() + 16 < limit)) {
      disconnect.properties.Mutable().reason_string.emplace(reason);
    }
    Send(disconnect);
  }
  if (was_connected && publish_will && will_) {
    if (disconnect_reason == codec::reason::kServerShuttingDown) {
      will_->properties.Mutable()
          .will_delay_interval.reset();  // nothing would be left to send it later
    }
    HandleWillOnClose();
  }
  // Whatever became of the will, this node dealt with it: the peers' copies go.
  if (will_copied_ && session_ && broker_->cluster() != nullptr) {
    broker_->cluster()->WillChanged(client_id(), nullptr, 0);
  }
  if (broker_->config().log_connections && LogEnabled(LogLevel::kInfo)) {
    Log(LogLevel::kInfo, "meshmqd: %s (%s) disconnected: %.*s",
        session_ ? client_id().c_str() : "-", PeerName().c_str(),
        static_cast<int>(reason.size()), reason.data());
  }
  if (session_) {
    // Shared-subscription messages this member did not acknowledge go to another member
    // (MQTT 5 4.8.2), unless a new connection took the session over and will resend them.
    if (session_->IsOwner(owner())) {
      std::vector<QueuedMessage> shared = session_->TakeSharedUnacknowledged();
      if (!shared.empty()) broker_->RedeliverShared(std::move(shared), session_);
    }
    if (std::shared_ptr<Session> ended =
            broker_->sessions().Detach(session_, owner(), MonotonicMillis())) {
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
