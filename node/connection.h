// One client's network connection: reads bytes, frames and decodes packets, runs the protocol
// and buffers the replies. The packet handlers live in handle_*.cc, one file per area, as in
// Mosquitto; this file holds I/O, dispatch and the connection's life cycle.
//
// THREADING: owned by one Worker and touched only on its thread.
#ifndef MESHMQ_NODE_CONNECTION_H_
#define MESHMQ_NODE_CONNECTION_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "node/codec/codec.h"
#include "node/codec/packet.h"
#include "node/session.h"
#include "storage/store.h"

namespace meshmq {

class Broker;
class Worker;

class Connection {
 public:
  // `over_quota`: accepted beyond --max_connections only to be refused at CONNECT with a reason.
  Connection(Broker* broker, Worker* worker, int fd, uint64_t id, int64_t now_ms,
             bool over_quota = false);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint64_t id() const { return id_; }
  int fd() const { return fd_; }
  bool closing() const { return state_ == State::kClosing; }
  bool over_quota() const { return over_quota_; }
  // The MQTT version and the keepalive in force (after --max_keepalive), for the admin's client
  // list; meaningful once CONNECT was accepted.
  codec::ProtocolVersion version() const { return version_; }
  uint16_t keep_alive() const { return keep_alive_; }

  void OnReadable();
  void OnWritable();
  // Writes buffered output; arms EPOLLOUT if the socket cannot take it all.
  void FlushOutput();
  // Moves the session's queued messages into the output buffer, as the window allows.
  void DeliverPending();
  // Keepalive (MQTT-3.1.2-24) and CONNECT timeouts; `now_ms` from MonotonicMillis().
  void OnTick(int64_t now_ms);
  // Releases the output whose ticket is now durable (and whose cluster waits are done); returns
  // true if some still waits for the store.
  bool ReleaseDurableOutput(uint64_t durable);
  // The peers answered a paused CONNECT (cluster/): `moved` is the session another node had for
  // the client id, if it had one and the CONNECT resumes it.
  void ResumeConnect(std::optional<storage::LoadedSession> moved);
  // A held PUBLISH may go on (Worker::ResumeInput).
  void ResumeInput();
  // Cluster wait `seq` (StartClusterWait) completed: peers took the message (ok), or one
  // refused it at its flow-control limit, which closes the connection without its acks.
  void OnClusterWaitDone(uint64_t seq, bool ok);
  // Ends the connection. `publish_will`: the loss was abnormal (MQTT-3.1.2-8). An MQTT 5 client
  // that has its CONNACK is first told why with DISCONNECT `disconnect_reason` (a reason::k*
  // code, MQTT 5 3.14.2.1) and `reason` as Reason String; kNoDisconnect sends none (the client
  // sent DISCONNECT itself, or the socket is gone).
  static constexpr int kNoDisconnect = -1;
  void Close(std::string_view reason, bool publish_will, int disconnect_reason = kNoDisconnect);

 private:
  enum class State { kAwaitingConnect, kConnected, kClosing };

  // What an MQTT 5 CONNECT negotiated (3.1.2.11); null on 3.1 and 3.1.1 connections, which
  // then pay one pointer for it.
  struct V5State {
    uint16_t client_receive_maximum = 65535;
    uint32_t client_maximum_packet_size = 0;  // 0: no limit
    uint16_t client_topic_alias_maximum = 0;
    bool problem_information = true;           // Request Problem Information
    uint32_t session_expiry_interval = 0;      // as CONNECT set it (DISCONNECT may not raise 0)
    std::vector<std::string> inbound_aliases;  // [alias - 1] -> topic, set by the client
    absl::flat_hash_map<std::string, uint16_t> outbound_aliases;  // topic -> alias we chose
  };
  bool v5() const { return version_ == codec::ProtocolVersion::kV5; }

  SessionOwner owner() const;
  // Only for log lines: looked up when needed rather than kept per connection.
  std::string PeerName() const;
  const std::string& client_id() const { return session_->client_id(); }
  // Handles every complete packet at the front of `data`; returns how many bytes it used.
  size_t ProcessInput(std::string_view data);
  void HandlePacket(uint8_t first_byte, std::string_view body);
  // Malformed input or a protocol violation: counted, logged, connection closed (MQTT-4.8.0-1),
  // after a DISCONNECT with `reason_code` for MQTT 5 clients (4.13).
  void ProtocolViolation(std::string_view what,
                         uint8_t reason_code = codec::reason::kProtocolError);
  void LogRejection(std::string_view what);
  // Output is written once at the end of the loop iteration, however many packets were added.
  void ScheduleWrite();
  void Send(const codec::Packet& packet);
  void WriteOutgoing(const Outgoing& outgoing);
  // Sends an acknowledgement, with a Reason String for failures if the client wants them.
  // PUBACK or PUBREC for a message the client published: held until what handling it wrote to
  // the store (this thread's latest ticket) is durable, if handling it wrote anything (this
  // thread submitted anything since `submits_before`). Output stays in order, so acks keep the
  // order of their PUBLISH packets (MQTT-4.6.0-2, -3).
  void SendDurableAck(codec::PacketType type, uint16_t packet_id, uint8_t reason_code,
                      std::string_view why, uint64_t submits_before);
  // Output appended from now on waits until the store made `ticket` durable, if it has not yet.
  void HoldOutputUntil(uint64_t ticket);
  // Holds what follows if this thread submitted anything to the store since `submits_before`
  // (Persistence::ThreadSubmits() taken before a session change): e.g. a PUBLISH whose packet id
  // must be on disk before the client can see it, so a restart resends it with DUP=1.
  void HoldOutputIfStoredSince(uint64_t submits_before, size_t offset);
  void HoldOutputFrom(size_t offset, uint64_t ticket);
  // Waiting on peers (cluster/): output can also be held until a cluster wait is done. Each
  // wait has a number on this connection; they complete in any order, and output is released
  // in order once every wait up to its own is done.
  uint64_t StartClusterWait();
  // The callback to give the cluster: completes wait `seq` on this connection's worker.
  std::function<void(bool)> ClusterWaitCallback(uint64_t seq);
  // Output appended from `offset` on waits for cluster wait `seq`.
  void HoldOutputForCluster(size_t offset, uint64_t seq);
  void AddHold(size_t offset, uint64_t ticket, uint64_t cluster_wait);
  // Releases what no longer waits; true if the front still waits for the store.
  bool ReleaseHeldOutput(uint64_t durable);
  // In a cluster, holds what follows (SUBACK, UNSUBACK) until every up peer knows the route
  // changes made so far: no message published anywhere after the ack can miss the client.
  void HoldForRouteBarrier();
  uint64_t cluster_waits_done() const { return cluster_waits_ ? cluster_waits_->done : 0; }
  void SendAck(codec::PacketType type, uint16_t packet_id, uint8_t reason_code,
               std::string_view why = {});
  // Window for outbound QoS 1/2: --max_inflight, or less if the client's Receive Maximum is.
  size_t outbound_window() const;
  // The connection's will as a message ready to publish.
  MessagePtr WillMessage() const;
  // Publishes or schedules the will when the connection is lost (MQTT-3.1.2-8, MQTT 5 3.1.3.2.2).
  void HandleWillOnClose();
  size_t output_pending() const { return out_.size() - out_offset_; }

  // handle_connect.cc
  void HandleConnect(codec::Connect& connect);
  // Refuses the CONNECT with `reason_code` (MQTT 5, reason::k*); 3.1.1 clients get the
  // matching 3.1.1 return code. Closes the connection.
  void RefuseConnect(uint8_t reason_code, std::string_view why);
  // A malformed or invalid CONNECT: an MQTT 5 one gets CONNACK with the reason (MQTT 5 4.13.1).
  void RejectBadConnect(std::string_view body, uint8_t reason_code, std::string_view why);
  // The rest of CONNECT, once no other node has the client id: attach (after importing `moved`,
  // a session from another node), CONNACK, resend what was in flight.
  void FinishConnect(codec::Connect& connect, bool assigned_client_id, uint32_t expiry,
                     std::optional<storage::LoadedSession> moved);
  codec::Connack AcceptedConnack(const codec::Connect& connect, bool assigned_client_id);
  // handle_publish.cc
  void HandlePublish(codec::Publish& publish);
  // Topic Alias (MQTT 5 3.3.2.3.4): fills in or records publish.topic. False: connection closed.
  bool ResolveTopicAlias(codec::Publish& publish);
  // MQTT 5 checks of an inbound PUBLISH; false if the connection was closed.
  bool AcceptV5Publish(const codec::Publish& publish);
  void HandleAck(const codec::Ack& ack);
  void HandleDisconnect(const codec::Disconnect& disconnect);
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
  bool will_copied_ = false;           // peers hold a copy of the will (ClusterHooks)
  std::unique_ptr<V5State> v5_;
  // A CONNECT waiting for the cluster's answer (ResumeConnect); input is not processed meanwhile.
  struct PendingConnect {
    codec::Connect connect;
    bool assigned_client_id = false;
    uint32_t expiry = 0;
  };
  std::unique_ptr<PendingConnect> pending_connect_;
  // A PUBLISH waits for the cluster (ClusterHooks::HoldPublish): input is not processed, and
  // reading stops, until ResumeInput.
  bool input_held_ = false;
  bool disconnect_received_ = false;  // the client sent DISCONNECT (for the disconnect metric)
  // True if the PUBLISH packet `body` (with `first_byte`) must wait for the cluster; then input
  // is held.
  bool HoldForCluster(uint8_t first_byte, std::string_view body);
  std::shared_ptr<Session> session_;
  const bool over_quota_;

  std::string in_;  // only the start of a packet that has not fully arrived yet
  std::string out_;
  // Output that must not reach the client before the store made durable what it reflects: bytes
  // of out_ from `offset` on wait for `ticket`. Rising offsets and tickets.
  struct HeldOutput {
    size_t offset = 0;
    uint64_t ticket = 0;
    uint64_t cluster_wait = 0;  // 0: none
  };
  std::deque<HeldOutput> held_output_;
  // Allocated on the first cluster wait: a node on its own never pays for it.
  struct ClusterWaits {
    uint64_t issued = 0;
    uint64_t done = 0;                         // every wait <= done is complete
    absl::flat_hash_set<uint64_t> done_early;  // complete, above `done`
    // Inbound QoS 2 packet ids whose routing the wait is for: stored once it completes.
    absl::flat_hash_map<uint64_t, uint16_t> qos2_ids;
  };
  // Wait `seq` completed: stores its QoS 2 packet id, if any, and holds the acks behind it until
  // that is durable.
  void JournalQos2AfterWait(uint64_t seq);
  std::unique_ptr<ClusterWaits> cluster_waits_;
  bool awaiting_durable_ = false;  // registered with the worker's OnDurable
  size_t out_offset_ = 0;
  bool write_armed_ = false;
  bool write_marked_ = false;
};

}  // namespace meshmq

#endif  // MESHMQ_NODE_CONNECTION_H_
