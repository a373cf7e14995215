// CONNECT (MQTT 3.1.1 section 3.1) and its answer, CONNACK (3.2).
//
// - An unsupported protocol level gets CONNACK 0x01 and the connection is closed (MQTT-3.1.2-2).
//   Level 5 is decoded by the codec but refused here the same way until MQTT 5 is served.
// - An empty client id is given a generated one if Clean Session is 1 (MQTT-3.1.3-6); with Clean
//   Session 0 it gets 0x02, identifier rejected (MQTT-3.1.3-8).
// - A username that fails the password file gets 0x04; a client without credentials where
//   anonymous access is off, or whose will topic the ACL forbids, gets 0x05 (as Mosquitto does).
// - A CONNECT with a live client's id takes the session over: the old connection is closed
//   and its will published (MQTT-3.1.4-2).
// - CONNACK carries Session Present (MQTT-3.2.2-1..3); then in-flight messages are resent
//   with DUP=1 (MQTT-4.4.0-1) and queued ones follow.
#include <cstdio>

#include "node/broker.h"
#include "node/connection.h"
#include "node/topic.h"
#include "node/worker.h"

namespace meshmq {

void Connection::RefuseConnect(uint8_t return_code, std::string_view why) {
  codec::Connack connack;
  connack.return_code = return_code;
  Send(connack);
  Close(why, false);
}

void Connection::HandleConnect(codec::Connect& connect) {
  if (connect.version == codec::ProtocolVersion::kV5) {
    // MQTT 5 is not served yet: answer as a 3.1.1 server that does not know level 5, which
    // MQTT 5 clients understand (and paho, for one, then falls back on request).
    RefuseConnect(codec::connack::kUnacceptableProtocolVersion, "MQTT 5 is not supported yet");
    return;
  }
  version_ = connect.version;
  const BrokerConfig& config = broker_->config();

  if (connect.will && !IsValidTopicName(connect.will->topic)) {
    ProtocolViolation("invalid will topic");
    return;
  }
  if (connect.client_id.empty()) {
    if (!connect.clean_session) {
      RefuseConnect(codec::connack::kIdentifierRejected,
                    "empty client id needs clean session");
      return;
    }
    connect.client_id = broker_->GenerateClientId();
  }

  std::shared_ptr<const AuthConfig> auth = broker_->auth();
  if (connect.username && auth->passwords) {
    if (!connect.password || !auth->passwords->Check(*connect.username, *connect.password)) {
      broker_->counters().auth_failures.Increment();
      RefuseConnect(codec::connack::kBadUsernameOrPassword, "bad username or password");
      return;
    }
  } else if (!config.allow_anonymous) {
    broker_->counters().auth_failures.Increment();
    RefuseConnect(codec::connack::kNotAuthorized, "anonymous clients are not allowed");
    return;
  }
  if (connect.will && auth->acl &&
      !auth->acl->CheckTopic(connect.username, connect.client_id, connect.will->topic,
                             auth::AclFile::Access::kWrite)) {
    broker_->counters().publish_denied.Increment();
    RefuseConnect(codec::connack::kNotAuthorized, "will topic not allowed by the ACL");
    return;
  }

  username_ = std::move(connect.username);
  keep_alive_ = connect.keep_alive;
  if (connect.will) will_ = std::make_unique<codec::Will>(std::move(*connect.will));

  SessionStore::AttachResult attach =
      broker_->sessions().Attach(connect.client_id, connect.clean_session, owner(), username_);
  if (attach.taken_over) {
    broker_->counters().takeovers.Increment();
    attach.taken_over->worker->Kick(attach.taken_over->connection_id);
  }
  if (attach.discarded) broker_->DiscardSession(attach.discarded);
  session_ = std::move(attach.session);
  state_ = State::kConnected;

  codec::Connack connack;
  connack.session_present = attach.session_present;
  Send(connack);
  for (const Outgoing& outgoing : session_->InflightForResend()) WriteOutgoing(outgoing);
  DeliverPending();

  if (config.log_connections) {
    std::fprintf(stderr, "meshmqd: %s connected from %s (clean session %d, keepalive %u)\n",
                 client_id().c_str(), PeerName().c_str(), static_cast<int>(connect.clean_session),
                 keep_alive_);
  }
}

}  // namespace meshmq
