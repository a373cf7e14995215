// SUBSCRIBE and UNSUBSCRIBE (MQTT 3.1.1 sections 3.8 to 3.11; MQTT 5 the same sections).
//
// - Each filter gets its own SUBACK code: the granted QoS (the requested one, capped at
//   --max_qos) or a failure: 3.1.1 has only 0x80 (MQTT-3.8.4-5, 3.9.3); MQTT 5 says why (3.9.3):
//   0x8F invalid filter, 0x87 denied by the ACL, 0x97 --max_subscriptions reached.
// - A subscription with an existing filter replaces it (MQTT-3.8.4-3).
// - Retained messages matching a new subscription are sent with RETAIN=1 (MQTT-3.3.1-6), after
//   the SUBACK, at min(message QoS, granted QoS), as Retain Handling says (MQTT 5 3.8.3.1): 0
//   always, 1 only if the subscription is new, 2 never; never for a shared subscription (4.8.2).
//   Expired ones are dropped instead (3.3.2.3.3).
// - The Subscription Identifier of a SUBSCRIBE applies to each of its filters (3.8.2.1.2).
// - Shared subscriptions, "$share/{group}/{filter}" (4.8.2): No Local on one is a Protocol Error
//   (MQTT-3.8.3-4 of 5.0).
// - UNSUBACK is sent even if no filter matched a subscription (MQTT-3.10.4-5); MQTT 5 reports per
//   filter 0x00, 0x11 No subscription existed, or 0x8F (3.11.3).
#include <algorithm>
#include <vector>

#include "node/broker.h"
#include "node/connection.h"
#include "node/event_loop.h"
#include "node/persistence.h"
#include "node/subscription.h"
#include "node/topic.h"
#include "node/worker.h"

namespace meshmq {

void Connection::HandleSubscribe(const codec::Subscribe& subscribe) {
  const uint64_t submits_before = Persistence::ThreadSubmits();
  const BrokerConfig& config = broker_->config();
  std::shared_ptr<const AuthConfig> auth = broker_->auth();
  const uint32_t subscription_id = subscribe.properties->subscription_identifiers.empty()
                                       ? 0
                                       : subscribe.properties->subscription_identifiers.front();
  codec::Suback suback;
  suback.packet_id = subscribe.packet_id;
  // A failure code: MQTT 5 names the reason, 3.1.1 has one code for all.
  auto refuse = [&](uint8_t reason_code) {
    suback.return_codes.push_back(v5() ? reason_code : codec::kSubackFailure);
  };
  struct Granted {
    const std::string* filter;
    SubscriptionOptions options;
  };
  std::vector<Granted> retained_for;
  for (const codec::SubscribeTopic& topic : subscribe.topics) {
    SharedFilter shared;
    const FilterKind kind = ClassifyFilter(topic.filter, &shared);
    if (kind == FilterKind::kInvalidShared ||
        (kind == FilterKind::kOrdinary && !IsValidTopicFilter(topic.filter))) {
      refuse(codec::reason::kTopicFilterInvalid);
      continue;
    }
    if (kind == FilterKind::kShared && topic.no_local) {
      ProtocolViolation("No Local on a shared subscription");
      return;
    }
    const std::string_view acl_filter = kind == FilterKind::kShared ? shared.filter : topic.filter;
    if (auth->acl && !auth->acl->CheckSubscribe(username_, client_id(), acl_filter)) {
      broker_->counters().subscribe_denied.Increment();
      refuse(codec::reason::kNotAuthorized);
      continue;
    }
    SubscriptionOptions options;
    options.qos = std::min(topic.qos, config.max_qos);
    options.no_local = topic.no_local;
    options.retain_as_published = topic.retain_as_published;
    options.retain_handling = topic.retain_handling;
    options.subscription_id = subscription_id;
    const Session::AddResult added = broker_->Subscribe(session_, topic.filter, options);
    if (added == Session::AddResult::kDiscarded) {
      refuse(codec::reason::kUnspecifiedError);
      continue;
    }
    if (added == Session::AddResult::kLimitReached) {
      broker_->counters().subscriptions_refused_max.Increment();
      refuse(codec::reason::kQuotaExceeded);
      continue;
    }
    suback.return_codes.push_back(options.qos);
    const bool send_retained =
        kind == FilterKind::kOrdinary &&
        (options.retain_handling == 0 ||
         (options.retain_handling == 1 && added == Session::AddResult::kNew));
    if (send_retained) retained_for.push_back(Granted{&topic.filter, options});
  }
  HoldOutputIfStoredSince(submits_before, out_.size());  // a granted subscription survives a crash
  HoldForRouteBarrier();
  Send(suback);

  std::vector<MessagePtr> retained;
  const int64_t now_ms = MonotonicMillis();
  for (const Granted& granted : retained_for) {
    retained.clear();
    broker_->retained().Match(*granted.filter, &retained);
    for (const MessagePtr& message : retained) {
      if (message->expired(now_ms)) {
        if (broker_->retained().Remove(message)) broker_->counters().messages_expired.Increment();
        continue;
      }
      if (auth->acl && !auth->acl->CheckTopic(username_, client_id(), message->topic,
                                              auth::AclFile::Access::kRead)) {
        continue;
      }
      QueuedMessage queued{message, std::min(message->qos, granted.options.qos), true};
      if (granted.options.subscription_id != 0) {
        queued.extras = std::make_shared<const DeliveryExtras>(
            DeliveryExtras{{granted.options.subscription_id}, nullptr});
      }
      session_->Enqueue(std::move(queued), broker_->queue_limits(), &broker_->counters());
    }
  }
  if (!retained_for.empty()) worker_->RequestFlush(id_);
}

void Connection::HandleUnsubscribe(const codec::Unsubscribe& unsubscribe) {
  const uint64_t submits_before = Persistence::ThreadSubmits();
  codec::Unsuback unsuback;
  unsuback.packet_id = unsubscribe.packet_id;
  for (const std::string& filter : unsubscribe.filters) {
    SharedFilter shared;
    const FilterKind kind = ClassifyFilter(filter, &shared);
    if (kind == FilterKind::kInvalidShared ||
        (kind == FilterKind::kOrdinary && !IsValidTopicFilter(filter))) {
      unsuback.reason_codes.push_back(codec::reason::kTopicFilterInvalid);
      continue;
    }
    unsuback.reason_codes.push_back(broker_->Unsubscribe(session_, filter)
                                        ? codec::reason::kSuccess
                                        : codec::reason::kNoSubscriptionExisted);
  }
  HoldOutputIfStoredSince(submits_before, out_.size());  // so does a removed one
  HoldForRouteBarrier();
  Send(unsuback);
}

}  // namespace meshmq
