// CONNECT and its answer, CONNACK (MQTT 3.1.1 sections 3.1, 3.2; MQTT 5 sections 3.1, 3.2).
//
// - An unsupported protocol level gets CONNACK 0x01 and the connection is closed (MQTT-3.1.2-2).
// - A malformed or invalid MQTT 5 CONNECT is answered with CONNACK 0x81 / 0x82 before the close
//   (MQTT 5 4.13.1); a 3.1.1 one is just closed (MQTT-4.8.0-1).
// - An empty client id is given a generated one: in 3.1.1 only with Clean Session 1
//   (MQTT-3.1.3-6; otherwise 0x02, MQTT-3.1.3-8), in MQTT 5 always, returned as Assigned Client
//   Identifier (MQTT-3.1.3-7 of 5.0).
// - A username that fails the password file gets 0x04 / 0x86; a client without credentials where
//   anonymous access is off, or whose will topic the ACL forbids, gets 0x05 / 0x87 (as Mosquitto
//   does). An MQTT 5 Authentication Method gets 0x8C: no enhanced authentication is offered.
// - A will the server cannot honour gets 0x9A (retain not available) or 0x9B (QoS above
//   --max_qos) in MQTT 5 (MQTT-3.2.2-12, -13 of 5.0); a 3.1.1 client is closed.
// - A CONNECT with a live client's id takes the session over: the old connection is closed,
//   with DISCONNECT 0x8E if it speaks MQTT 5, and its will published (MQTT-3.1.4-2).
// - Session Expiry Interval and Clean Start decide the session's life (MQTT 5 3.1.2.4,
//   3.1.2.11.2); CONNACK carries Session Present (MQTT-3.2.2-1..3); then in-flight messages are
//   resent with DUP=1 (MQTT-4.4.0-1) and queued ones follow.
// - MQTT 5 CONNACK reports the limits that apply (3.2.2.3): Receive Maximum, Maximum Packet
//   Size, Topic Alias Maximum, Maximum QoS and Retain Available when not full, Server Keep Alive
//   when --max_keepalive overrides the client's, Response Information only when asked for
//   (MQTT-3.1.2-28 of 5.0).
// - A connection beyond --max_connections is refused here: 0x97 quota exceeded (MQTT 5), 0x03
//   server unavailable (3.1.1).
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "node/broker.h"
#include "node/cluster_hooks.h"
#include "node/connection.h"
#include "node/log.h"
#include "node/persistence.h"
#include "node/topic.h"
#include "node/worker.h"

namespace meshmq {
namespace {

// The 3.1.1 CONNACK return code closest to an MQTT 5 reason code (MQTT 5 has more of them).
uint8_t ReturnCodeFor(uint8_t reason_code) {
  switch (reason_code) {
    case codec::reason::kUnsupportedProtocolVersion:
      return codec::connack::kUnacceptableProtocolVersion;
    case codec::reason::kClientIdentifierNotValid:
      return codec::connack::kIdentifierRejected;
    case codec::reason::kBadUserNameOrPassword:
      return codec::connack::kBadUsernameOrPassword;
    case codec::reason::kNotAuthorized:
    case codec::reason::kBadAuthenticationMethod:
      return codec::connack::kNotAuthorized;
    default:
      return codec::connack::kServerUnavailable;
  }
}

// True if `body` is the start of an MQTT 5 CONNECT: protocol name "MQTT", level 5.
bool LooksLikeV5Connect(std::string_view body) {
  return body.size() >= 7 && body.substr(0, 6) == std::string_view("\0\4MQTT", 6) && body[6] == 5;
}

}  // namespace

void Connection::RefuseConnect(uint8_t reason_code, std::string_view why) {
  codec::Connack connack;
  connack.return_code = v5() ? reason_code : ReturnCodeFor(reason_code);
  if (v5() && !why.empty()) connack.properties.Mutable().reason_string.emplace(why);
  Send(connack);
  Close(why, false);
}

void Connection::RejectBadConnect(std::string_view body, uint8_t reason_code,
                                  std::string_view why) {
  if (reason_code == codec::reason::kUnsupportedProtocolVersion) {
    // The client's level is unknown, so answer in the 3.1.1 format every level understands.
    version_ = codec::ProtocolVersion::kV311;
    RefuseConnect(reason_code, why);
    return;
  }
  broker_->counters().packets_malformed.Increment();
  LogRejection(why);
  if (LooksLikeV5Connect(body)) {
    version_ = codec::ProtocolVersion::kV5;
    RefuseConnect(reason_code, why);
    return;
  }
  Close(why, false);
}

codec::Connack Connection::AcceptedConnack(const codec::Connect& connect, bool assigned_client_id) {
  const BrokerConfig& config = broker_->config();
  codec::Connack connack;
  if (!v5()) return connack;
  codec::Properties& p = connack.properties.Mutable();
  p.receive_maximum = static_cast<uint16_t>(config.max_inflight);
  p.maximum_packet_size = static_cast<uint32_t>(
      std::min<size_t>(config.max_packet_size, codec::kMaxRemainingLength + 5));
  if (config.max_topic_alias > 0) p.topic_alias_maximum = config.max_topic_alias;
  if (config.max_qos < 2) p.maximum_qos = config.max_qos;
  if (!config.retain_available) p.retain_available = 0;
  if (keep_alive_ != connect.keep_alive) p.server_keep_alive = keep_alive_;
  if (assigned_client_id) p.assigned_client_identifier = connect.client_id;
  if (connect.properties->request_response_information.value_or(0) == 1 &&
      !config.response_information.empty()) {
    p.response_information = absl::StrCat(config.response_information, "/", connect.client_id);
  }
  return connack;
}

void Connection::HandleConnect(codec::Connect& connect) {
  version_ = connect.version;
  const BrokerConfig& config = broker_->config();
  if (over_quota_) {
    broker_->counters().connections_refused_max.Increment();
    RefuseConnect(codec::reason::kQuotaExceeded, "too many connections (--max_connections)");
    return;
  }
  if (broker_->cluster() != nullptr && !broker_->cluster()->Serving()) {
    // Cut off from most of the cluster (or leaving): the client's session may be live on the
    // other side; it is to connect there (cluster/README.md, partitions).
    broker_->counters().connections_refused_unavailable.Increment();
    RefuseConnect(codec::reason::kServerUnavailable,
                  "this node is not serving: it cannot reach most of the cluster");
    return;
  }
  if (connect.will && !IsValidTopicName(connect.will->topic)) {
    if (v5()) {
      broker_->counters().packets_malformed.Increment();
      RefuseConnect(codec::reason::kTopicNameInvalid, "invalid will topic");
    } else {
      ProtocolViolation("invalid will topic");
    }
    return;
  }
  if (connect.will &&
      (connect.will->qos > config.max_qos || (connect.will->retain && !config.retain_available))) {
    const bool qos = connect.will->qos > config.max_qos;
    if (!v5()) {
      ProtocolViolation(qos ? "will QoS above --max_qos" : "retained will not available");
      return;
    }
    RefuseConnect(qos ? codec::reason::kQosNotSupported : codec::reason::kRetainNotSupported,
                  qos ? "will QoS above the server's Maximum QoS" : "retain is not available");
    return;
  }
  if (v5() && connect.properties->authentication_method) {
    broker_->counters().auth_failures.Increment();
    RefuseConnect(codec::reason::kBadAuthenticationMethod,
                  "no enhanced authentication method is offered");
    return;
  }
  bool assigned_client_id = false;
  if (connect.client_id.empty()) {
    if (!connect.clean_session && !v5()) {
      RefuseConnect(codec::reason::kClientIdentifierNotValid,
                    "empty client id needs clean session");
      return;
    }
    connect.client_id = broker_->GenerateClientId();
    assigned_client_id = true;
  }

  std::shared_ptr<const AuthConfig> auth = broker_->auth();
  if (connect.username && auth->passwords) {
    if (!connect.password || !auth->passwords->Check(*connect.username, *connect.password)) {
      broker_->counters().auth_failures.Increment();
      RefuseConnect(codec::reason::kBadUserNameOrPassword, "bad username or password");
      return;
    }
  } else if (!config.allow_anonymous) {
    broker_->counters().auth_failures.Increment();
    RefuseConnect(codec::reason::kNotAuthorized, "anonymous clients are not allowed");
    return;
  }
  if (connect.will && auth->acl &&
      !auth->acl->CheckTopic(connect.username, connect.client_id, connect.will->topic,
                             auth::AclFile::Access::kWrite)) {
    broker_->counters().publish_denied.Increment();
    RefuseConnect(codec::reason::kNotAuthorized, "will topic not allowed by the ACL");
    return;
  }

  keep_alive_ = connect.keep_alive;
  if (config.max_keepalive > 0 && (keep_alive_ == 0 || keep_alive_ > config.max_keepalive)) {
    if (!v5()) {
      // MQTT 3.1.1 cannot tell the client another value, so refuse, as Mosquitto does.
      RefuseConnect(codec::reason::kClientIdentifierNotValid, "keepalive above --max_keepalive");
      return;
    }
    keep_alive_ = config.max_keepalive;  // sent back as Server Keep Alive
  }

  // One session model for every level: 3.1.1 Clean Session 1 is Clean Start with expiry 0, and
  // Clean Session 0 a session that expires after --session_expiry offline (Mosquitto's
  // persistent_client_expiration), so abandoned client ids do not pile up in memory and on disk.
  uint32_t expiry = connect.clean_session ? 0 : config.session_expiry;
  if (v5()) {
    v5_ = std::make_unique<V5State>();
    const codec::Properties& p = *connect.properties;
    expiry = p.session_expiry_interval.value_or(0);
    v5_->session_expiry_interval = expiry;
    v5_->client_receive_maximum = p.receive_maximum.value_or(65535);
    v5_->client_maximum_packet_size = p.maximum_packet_size.value_or(0);
    v5_->client_topic_alias_maximum = p.topic_alias_maximum.value_or(0);
    v5_->problem_information = p.request_problem_information.value_or(1) == 1;
  }
  username_ = std::move(connect.username);
  if (connect.will) will_ = std::make_unique<codec::Will>(std::move(*connect.will));

  // Client ids are unique across the cluster: whatever another node has of this one ends there,
  // and its session moves here unless this is a clean start. Until the peers answer, the
  // connection reads nothing more (packets already received wait in in_).
  if (ClusterHooks* cluster = broker_->cluster()) {
    const bool asked = cluster->TakeSession(
        connect.client_id, connect.clean_session,
        [broker = broker_, worker = worker_,
         id = id_](std::optional<storage::LoadedSession> moved) {
          auto shared = std::make_shared<std::optional<storage::LoadedSession>>(std::move(moved));
          if (!worker->Post(
                  [worker, id, shared] { worker->OnSessionTaken(id, std::move(*shared)); }) &&
              *shared) {
            broker->ImportSession(**shared);  // this node is stopping: keep the session anyway
          }
        });
    if (asked) {
      pending_connect_ = std::make_unique<PendingConnect>(
          PendingConnect{std::move(connect), assigned_client_id, expiry});
      worker_->SetReading(this, false);
      return;
    }
  }
  FinishConnect(connect, assigned_client_id, expiry, std::nullopt);
}

void Connection::ResumeConnect(std::optional<storage::LoadedSession> moved) {
  if (state_ == State::kClosing || !pending_connect_) {
    // The client went meanwhile; the session its old node gave up lives here now, offline.
    if (moved) broker_->ImportSession(*moved);
    return;
  }
  std::unique_ptr<PendingConnect> pending = std::move(pending_connect_);
  worker_->SetReading(this, true);
  FinishConnect(pending->connect, pending->assigned_client_id, pending->expiry, std::move(moved));
  // What the client sent while the peers were asked.
  if (!in_.empty() && state_ == State::kConnected) {
    const size_t used = ProcessInput(in_);
    in_.erase(0, used);
  }
}

void Connection::FinishConnect(codec::Connect& connect, bool assigned_client_id, uint32_t expiry,
                               std::optional<storage::LoadedSession> moved) {
  const uint64_t submits_before = Persistence::ThreadSubmits();
  const BrokerConfig& config = broker_->config();
  if (broker_->cluster() != nullptr) broker_->DropMovedStandIn(connect.client_id);
  if (moved && !connect.clean_session) broker_->ImportSession(*moved);

  SessionStore::AttachResult attach = broker_->sessions().Attach(
      connect.client_id, connect.clean_session, expiry, owner(), username_);
  if (attach.taken_over) {
    broker_->counters().takeovers.Increment();
    attach.taken_over->worker->Kick(attach.taken_over->connection_id);
  }
  if (attach.discarded) broker_->DiscardSession(attach.discarded);
  // A will still waiting out its delay: cancelled by this connection to the same session, or
  // due now if this connection ended that session (MQTT 5 3.1.3.2.2).
  if (MessagePtr pending_will = broker_->CancelWill(connect.client_id)) {
    if (!attach.session_present) broker_->PublishWill(pending_will);
  }
  session_ = std::move(attach.session);
  // The claim this CONNECT made on the client id (ClusterNode::TakeSession), kept with the
  // session's record so that it outlives a restart of this node.
  if (ClusterHooks* cluster = broker_->cluster()) session_->set_claim(cluster->ClaimOf(client_id()));
  state_ = State::kConnected;
  worker_->mutable_stats().connects.fetch_add(1, std::memory_order_relaxed);
  if (will_ != nullptr && broker_->cluster() != nullptr) {
    // CONNACK (below) waits until the peers that would publish the will if this node died have
    // their copy.
    const uint64_t seq = StartClusterWait();
    HoldOutputForCluster(out_.size(), seq);
    broker_->cluster()->WillChanged(client_id(), WillMessage(),
                                    will_->properties->will_delay_interval.value_or(0),
                                    [done = ClusterWaitCallback(seq)] { done(true); });
    will_copied_ = true;
  }

  codec::Connack connack = AcceptedConnack(connect, assigned_client_id);
  connack.session_present = attach.session_present;
  // What CONNACK tells the client (a session kept or ended, Session Present) must survive a
  // crash right after it: it leaves once the session's records are durable.
  HoldOutputIfStoredSince(submits_before, out_.size());
  // A session that moved here brought its subscriptions: every peer must route to this node
  // before the client can count on them (as for a SUBACK).
  if (moved && !connect.clean_session) HoldForRouteBarrier();
  Send(connack);
  for (const Outgoing& outgoing : session_->InflightForResend()) WriteOutgoing(outgoing);
  DeliverPending();

  if (config.log_connections && LogEnabled(LogLevel::kInfo)) {
    Log(LogLevel::kInfo,
        "meshmqd: %s connected from %s (MQTT %s, clean start %d, session expiry %u, "
        "keepalive %u)",
        client_id().c_str(), PeerName().c_str(), v5() ? "5" : "3.1.1",
        static_cast<int>(connect.clean_session), expiry, keep_alive_);
  }
}

}  // namespace meshmq
