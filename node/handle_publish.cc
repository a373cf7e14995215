// PUBLISH and its acknowledgements (MQTT 3.1.1 sections 3.3 to 3.7, 4.3).
//
// - A topic name with '+' or '#' is a violation (MQTT-3.3.2-2); the connection is closed.
// - Clients may not publish to $SYS topics: the message is acknowledged and dropped, as is a
//   publish the ACL denies, so the client is not told what exists (Mosquitto does the same).
// - QoS 1: PUBACK after routing. QoS 2 uses method B of 4.3.3: the message is routed once on
//   first receipt, its packet id remembered until PUBREL, and a repeated PUBLISH with that id
//   is only acknowledged again: exactly once to subscribers.
// - PUBREL is always answered with PUBCOMP (MQTT-4.3.3-2), even for an id we no longer know.
// - An ack from the client frees a window slot (the --max_inflight window), so queued messages
//   flow again at the end of the loop iteration.
#include "node/broker.h"
#include "node/connection.h"
#include "node/topic.h"
#include "node/worker.h"

namespace meshmq {
namespace {

bool IsSysTopic(std::string_view topic) {
  return topic.substr(0, 5) == "$SYS/" || topic == "$SYS";
}

}  // namespace

void Connection::HandlePublish(codec::Publish& publish) {
  if (!IsValidTopicName(publish.topic)) {
    ProtocolViolation("PUBLISH topic name contains a wildcard");
    return;
  }
  worker_->mutable_stats().messages_received.fetch_add(1, std::memory_order_relaxed);

  bool allowed = !IsSysTopic(publish.topic);
  if (allowed) {
    std::shared_ptr<const AuthConfig> auth = broker_->auth_if_acl();
    if (auth && auth->acl && !auth->acl->CheckTopic(username_, client_id(), publish.topic,
                                            auth::AclFile::Access::kWrite)) {
      allowed = false;
    }
  }
  if (!allowed) broker_->counters().publish_denied.Increment();

  // QoS 2 duplicates (same packet id before PUBREL) are acknowledged but not routed again.
  bool route = allowed;
  if (publish.qos == 2 && !session_->RememberInboundQos2(publish.packet_id)) route = false;

  if (route) {
    auto message = std::make_shared<Message>();
    message->topic = std::move(publish.topic);
    message->payload = std::move(publish.payload);
    message->qos = publish.qos;
    message->retain = publish.retain;
    message->properties = std::move(publish.properties);
    broker_->Publish(message);
  }
  if (publish.qos == 1) {
    Send(codec::Ack{codec::PacketType::kPuback, publish.packet_id});
  } else if (publish.qos == 2) {
    Send(codec::Ack{codec::PacketType::kPubrec, publish.packet_id});
  }
}

void Connection::HandleAck(const codec::Ack& ack) {
  switch (ack.type) {
    case codec::PacketType::kPuback:
      if (session_->OnPuback(ack.packet_id)) worker_->RequestFlush(id_);
      break;
    case codec::PacketType::kPubrec:
      session_->OnPubrec(ack.packet_id);
      Send(codec::Ack{codec::PacketType::kPubrel, ack.packet_id});
      break;
    case codec::PacketType::kPubcomp:
      if (session_->OnPubcomp(ack.packet_id)) worker_->RequestFlush(id_);
      break;
    case codec::PacketType::kPubrel:
      session_->ForgetInboundQos2(ack.packet_id);
      Send(codec::Ack{codec::PacketType::kPubcomp, ack.packet_id});
      break;
    default:
      ProtocolViolation("unexpected acknowledgement type");
      break;
  }
}

}  // namespace meshmq
