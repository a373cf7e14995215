// SUBSCRIBE and UNSUBSCRIBE (MQTT 3.1.1 sections 3.8 to 3.11).
//
// - Each filter gets its own SUBACK code: the granted QoS (the requested one; we support all
//   three) or 0x80 for an invalid filter or one the ACL denies (MQTT-3.8.4-5, 3.9.3).
// - A subscription with an existing filter replaces it (MQTT-3.8.4-3) and the retained
//   messages matching it are sent again.
// - Retained messages matching a new subscription are sent with RETAIN=1 (MQTT-3.3.1-6), after
//   the SUBACK, at min(message QoS, granted QoS).
// - UNSUBACK is sent even if no filter matched a subscription (MQTT-3.10.4-5).
#include <algorithm>
#include <vector>

#include "node/broker.h"
#include "node/connection.h"
#include "node/topic.h"
#include "node/worker.h"

namespace meshmq {

void Connection::HandleSubscribe(const codec::Subscribe& subscribe) {
  std::shared_ptr<const AuthConfig> auth = broker_->auth();
  codec::Suback suback;
  suback.packet_id = subscribe.packet_id;
  std::vector<std::pair<const std::string*, uint8_t>> granted;
  for (const codec::SubscribeTopic& topic : subscribe.topics) {
    if (!IsValidTopicFilter(topic.filter)) {
      suback.return_codes.push_back(codec::kSubackFailure);
      continue;
    }
    if (auth->acl && !auth->acl->CheckSubscribe(username_, client_id(), topic.filter)) {
      broker_->counters().subscribe_denied.Increment();
      suback.return_codes.push_back(codec::kSubackFailure);
      continue;
    }
    const uint8_t qos = std::min<uint8_t>(topic.qos, 2);
    bool added = session_->AddSubscription(topic.filter, qos, [&] {
      broker_->subscriptions().Insert(topic.filter, client_id(), SubscriberRef{session_, qos});
    });
    if (!added) {
      suback.return_codes.push_back(codec::kSubackFailure);
      continue;
    }
    suback.return_codes.push_back(qos);
    granted.emplace_back(&topic.filter, qos);
  }
  Send(suback);

  std::vector<MessagePtr> retained;
  for (const auto& [filter, qos] : granted) {
    retained.clear();
    broker_->retained().Match(*filter, &retained);
    for (const MessagePtr& message : retained) {
      if (auth->acl && !auth->acl->CheckTopic(username_, client_id(), message->topic,
                                              auth::AclFile::Access::kRead)) {
        continue;
      }
      session_->Enqueue(QueuedMessage{message, std::min(message->qos, qos), true},
                        broker_->queue_limits(), &broker_->counters());
    }
  }
  if (!granted.empty()) worker_->RequestFlush(id_);
}

void Connection::HandleUnsubscribe(const codec::Unsubscribe& unsubscribe) {
  for (const std::string& filter : unsubscribe.filters) {
    session_->RemoveSubscription(filter,
                                 [&] { broker_->subscriptions().Erase(filter, client_id()); });
  }
  codec::Unsuback unsuback;
  unsuback.packet_id = unsubscribe.packet_id;
  Send(unsuback);
}

}  // namespace meshmq
