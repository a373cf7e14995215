// PUBLISH and its acknowledgements (MQTT 3.1.1 sections 3.3 to 3.7, 4.3; MQTT 5 the same
// sections plus 3.3.2.3 for the properties).
//
// - A topic name with '+' or '#' is a violation (MQTT-3.3.2-2); the connection is closed (MQTT 5:
//   DISCONNECT 0x90 first).
// - Clients may not publish to $SYS topics: the message is dropped, as is a publish the ACL
//   denies. 3.1.1 clients still get a plain acknowledgement, so they are not told what exists
//   (Mosquitto does the same); MQTT 5 clients get reason 0x87 Not authorized.
// - MQTT 5 acks say what happened: 0x10 when nobody was subscribed, 0x99 when the Payload
//   Format Indicator says UTF-8 and the payload is not (3.3.2.3.2).
// - QoS 1: PUBACK after routing. QoS 2 uses method B of 4.3.3: the message is routed once on
//   first receipt, its packet id remembered until PUBREL, and a repeated PUBLISH with that id
//   is only acknowledged again: exactly once to subscribers. QoS 2 messages awaiting PUBREL count
//   against the Receive Maximum the server announced; one more is DISCONNECT 0x93
//   (MQTT-3.3.4-9 of 5.0).
// - PUBREL is always answered with PUBCOMP (MQTT-4.3.3-2), even for an id we no longer know
//   (MQTT 5: with 0x92 Packet Identifier not found).
// - Topic Alias (3.3.2.3.4): 0 or above the Topic Alias Maximum we announced is 0x94; an empty
//   topic needs an alias the client set earlier on this connection (Protocol Error otherwise).
// - A client may not send Subscription Identifiers (MQTT-3.3.4-6 of 5.0), nor QoS above
//   --max_qos (0x9B), nor RETAIN when retain is not available (0x9A).
// - Message Expiry Interval becomes a deadline on the message; the publisher's other forwarded
//   properties travel with it untouched, user properties in order (MQTT-3.3.2-17, -18 of 5.0).
// - An ack from the client frees a window slot (the --max_inflight window), so queued messages
//   flow again at the end of the loop iteration.
#include "node/broker.h"
#include "node/connection.h"
#include "node/event_loop.h"
#include "node/persistence.h"
#include "node/qos2_key.h"
#include "node/topic.h"
#include "node/worker.h"

namespace meshmq {
bool Connection::ResolveTopicAlias(codec::Publish& publish) {
  const uint16_t alias = *publish.properties->topic_alias;
  if (alias == 0 || alias > broker_->config().max_topic_alias) {
    broker_->counters().topic_alias_invalid.Increment();
    ProtocolViolation("Topic Alias 0 or above the Topic Alias Maximum",
                      codec::reason::kTopicAliasInvalid);
    return false;
  }
  std::vector<std::string>& aliases = v5_->inbound_aliases;
  if (publish.topic.empty()) {
    if (alias > aliases.size() || aliases[alias - 1].empty()) {
      broker_->counters().topic_alias_invalid.Increment();
      ProtocolViolation("empty topic with a Topic Alias that was never set");
      return false;
    }
    publish.topic = aliases[alias - 1];
  } else {
    if (aliases.size() < alias) aliases.resize(alias);
    aliases[alias - 1] = publish.topic;
  }
  publish.properties.Mutable().topic_alias.reset();
  return true;
}

bool Connection::AcceptV5Publish(const codec::Publish& publish) {
  const BrokerConfig& config = broker_->config();
  if (!publish.properties->subscription_identifiers.empty()) {
    ProtocolViolation("PUBLISH from a client carries a Subscription Identifier");
    return false;
  }
  if (publish.qos > config.max_qos) {
    ProtocolViolation("QoS above the server's Maximum QoS", codec::reason::kQosNotSupported);
    return false;
  }
  if (publish.retain && !config.retain_available) {
    ProtocolViolation("retain is not available", codec::reason::kRetainNotSupported);
    return false;
  }
  return true;
}

void Connection::HandlePublish(codec::Publish& publish) {
  const BrokerConfig& config = broker_->config();
  const uint64_t submits_before = Persistence::ThreadSubmits();
  if (v5_) {
    if (publish.properties->topic_alias && !ResolveTopicAlias(publish)) return;
    if (!AcceptV5Publish(publish)) return;
  } else if (publish.qos > config.max_qos || (publish.retain && !config.retain_available)) {
    ProtocolViolation(publish.qos > config.max_qos ? "QoS above --max_qos"
                                                   : "retain is not available");
    return;
  }
  if (!IsValidTopicName(publish.topic)) {
    ProtocolViolation("PUBLISH topic name contains a wildcard", codec::reason::kTopicNameInvalid);
    return;
  }
  Worker::Stats& stats = worker_->mutable_stats();
  Worker::Stats::Add(stats.messages_received, 1);
  Worker::Stats::Add(stats.received_by_qos[publish.qos], 1);
  Worker::Stats::Add(stats.received_payload_bytes_by_qos[publish.qos], publish.payload.size());

  uint8_t reason_code = codec::reason::kSuccess;
  std::string_view why;
  if (IsSysTopic(publish.topic)) {
    reason_code = codec::reason::kNotAuthorized;
    why = "clients may not publish to $SYS topics";
  } else if (std::shared_ptr<const AuthConfig> auth = broker_->auth_if_acl();
             auth && auth->acl &&
             !auth->acl->CheckTopic(username_, client_id(), publish.topic,
                                    auth::AclFile::Access::kWrite)) {
    reason_code = codec::reason::kNotAuthorized;
    why = "the ACL does not allow publishing to this topic";
  }
  if (reason_code != codec::reason::kSuccess) broker_->counters().publish_denied.Increment();
  if (reason_code == codec::reason::kSuccess &&
      publish.properties->payload_format_indicator.value_or(0) == 1 &&
      !codec::IsValidMqttUtf8(publish.payload)) {
    reason_code = codec::reason::kPayloadFormatInvalid;
    why = "Payload Format Indicator says UTF-8 but the payload is not";
  }

  // QoS 2 duplicates (same packet id before PUBREL) are acknowledged but not routed again.
  bool route = reason_code == codec::reason::kSuccess;
  if (publish.qos == 2) {
    if (v5_ && session_->inbound_qos2_count() >= config.max_inflight &&
        session_->RememberInboundQos2(publish.packet_id)) {
      session_->ForgetInboundQos2(publish.packet_id);
      broker_->counters().receive_maximum_exceeded.Increment();
      ProtocolViolation("more QoS 2 messages awaiting PUBREL than the Receive Maximum",
                        codec::reason::kReceiveMaximumExceeded);
      return;
    }
    if (!session_->RememberInboundQos2(publish.packet_id)) route = false;
    // A failed QoS 2 exchange ends at PUBREC (4.3.3 of 5.0): no PUBREL will come.
    if (reason_code >= 0x80) session_->ForgetInboundQos2(publish.packet_id);
  }

  if (route) {
    auto message = std::make_shared<Message>();
    message->topic = std::move(publish.topic);
    message->payload = std::move(publish.payload);
    message->qos = publish.qos;
    message->retain = publish.retain;
    message->id = broker_->NewMessageId();
    if (publish.qos == 2 && broker_->cluster() != nullptr) {
      message->qos2_key = Qos2Key(client_id(), publish.packet_id, message->topic, message->payload);
      // A resend whose packet id is not known here: its first try may have reached some
      // sessions (a peer refused it, or the node it went to died before storing the id).
      message->resent = publish.dup;
    }
    // The decoded properties move into the message as they are; no copy, and nothing at all
    // for a PUBLISH without properties (every 3.1.1 one).
    if (!publish.properties.empty()) {
      codec::Properties& p = publish.properties.Mutable();
      if (p.message_expiry_interval) {
        message->expires_at_ms = MonotonicMillis() + int64_t{1000} * *p.message_expiry_interval;
        p.message_expiry_interval.reset();
      }
      if (!p.empty()) message->properties = publish.properties.Release();
    }
    // In a cluster, QoS 1/2 is acknowledged once every peer that has subscribers for it took
    // it (into its store, where a persistent session receives it).
    uint64_t cluster_wait = 0;
    std::function<void(bool)> on_peers_accepted;
    if (publish.qos > 0 && broker_->cluster() != nullptr && broker_->cluster()->HasRemoteRoutes()) {
      cluster_wait = StartClusterWait();
      on_peers_accepted = ClusterWaitCallback(cluster_wait);
    }
    bool awaiting_peers = false;
    const size_t delivered =
        broker_->Publish(message, session_.get(), std::move(on_peers_accepted), &awaiting_peers);
    if (delivered == 0) reason_code = codec::reason::kNoMatchingSubscribers;
    if (publish.qos == 2) {
      // Stored after the routing's own writes, and in a cluster after every peer took it.
      if (awaiting_peers) {
        cluster_waits_->qos2_ids[cluster_wait] = publish.packet_id;
      } else {
        session_->JournalInboundQos2(publish.packet_id);
      }
    }
    if (awaiting_peers) {
      HoldOutputForCluster(out_.size(), cluster_wait);
    } else if (cluster_wait != 0) {
      OnClusterWaitDone(cluster_wait, true);  // no peer got it: nothing to wait for
    }
  }
  if (publish.qos == 1) {
    SendDurableAck(codec::PacketType::kPuback, publish.packet_id, reason_code, why, submits_before);
  } else if (publish.qos == 2) {
    SendDurableAck(codec::PacketType::kPubrec, publish.packet_id, reason_code, why, submits_before);
  }
}

void Connection::HandleAck(const codec::Ack& ack) {
  switch (ack.type) {
    case codec::PacketType::kPuback:
      if (session_->OnPuback(ack.packet_id)) worker_->RequestFlush(id_);
      break;
    case codec::PacketType::kPubrec: {
      const bool failed = ack.reason_code >= 0x80;
      // PUBREL only once "awaiting PUBCOMP" is stored: after a restart the client must get
      // PUBREL again, not the PUBLISH.
      const uint64_t submits_before = Persistence::ThreadSubmits();
      const bool known = session_->OnPubrec(ack.packet_id, failed);
      HoldOutputIfStoredSince(submits_before, out_.size());  // holds the PUBREL below
      if (failed) {                                         // the exchange ends here (4.3.3 of 5.0)
        if (known) worker_->RequestFlush(id_);
        break;
      }
      SendAck(codec::PacketType::kPubrel, ack.packet_id,
              known ? codec::reason::kSuccess : codec::reason::kPacketIdentifierNotFound);
      break;
    }
    case codec::PacketType::kPubcomp:
      if (session_->OnPubcomp(ack.packet_id)) worker_->RequestFlush(id_);
      break;
    case codec::PacketType::kPubrel: {
      const bool known = session_->ForgetInboundQos2(ack.packet_id);
      SendAck(codec::PacketType::kPubcomp, ack.packet_id,
              known ? codec::reason::kSuccess : codec::reason::kPacketIdentifierNotFound);
      break;
    }
    default:
      ProtocolViolation("unexpected acknowledgement type");
      break;
  }
}

void Connection::HandleDisconnect(const codec::Disconnect& disconnect) {
  if (v5_ && disconnect.properties->session_expiry_interval) {
    const uint32_t expiry = *disconnect.properties->session_expiry_interval;
    // MQTT-3.14.2-2 of 5.0: a session that was to end with the connection cannot be kept now.
    if (v5_->session_expiry_interval == 0 && expiry != 0) {
      ProtocolViolation("DISCONNECT sets a Session Expiry Interval after CONNECT set 0");
      return;
    }
    session_->set_expiry_interval(expiry);
  }
  disconnect_received_ = true;
  // MQTT-3.14.4-3: a DISCONNECT discards the will, unless MQTT 5's 0x04 asks for it.
  if (disconnect.reason_code == codec::reason::kDisconnectWithWill) {
    Close("client disconnected with its will", true);
    return;
  }
  will_.reset();
  Close("client disconnected", false);
}

}  // namespace meshmq
