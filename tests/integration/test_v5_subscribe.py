"""MQTT 5 SUBSCRIBE / UNSUBSCRIBE: subscription options (QoS, No Local, Retain As Published,
Retain Handling), Subscription Identifiers, per-filter SUBACK / UNSUBACK reason codes
(MQTT 5.0 sections 3.8-3.11)."""

import unittest

from meshmq_harness import (RC, BrokerTestCase, P, SysWatcher, meshmq_only, publish_v5,
                            puback_v5, sub_options, subscribe, suback, subscribe_v5,
                            unsubscribe_v5)


def sub_id(n):
    return [(P.SUBSCRIPTION_IDENTIFIER, n)]


class V5Helpers:

    def subscribe_ok(self, c, mid, filters, properties=()):
        c.send(subscribe_v5(mid, filters, properties))
        c.expect_v5("SUBACK", mid=mid, codes=[opts & 0x03 for _, opts in filters])

    def publish_qos1(self, pub, topic, payload, mid, retain=False):
        pub.send(publish_v5(topic, payload, qos=1, mid=mid, retain=retain))
        pub.expect_v5("PUBACK", mid=mid)


class SubscribeOptionsTest(V5Helpers, BrokerTestCase):

    def test_no_local(self):
        t = self.topic()
        me, other = self.raw_v5(), self.raw_v5()
        self.subscribe_ok(me, 1, [(t, sub_options(1, no_local=True))])
        self.subscribe_ok(other, 1, [(t, sub_options(1))])
        self.publish_qos1(me, t, b"mine", 1)
        other.expect_publish_v5(t, b"mine", qos=1)
        self.publish_qos1(self.raw_v5(), t, b"theirs", 1)
        got = me.collect_publishes(b"theirs", v5=True)
        self.assertEqual([m["payload"] for m in got], [b"theirs"])

    def test_without_no_local_publisher_gets_its_own_message(self):
        t = self.topic()
        me = self.raw_v5()
        self.subscribe_ok(me, 1, [(t, sub_options(0))])
        me.send(publish_v5(t, b"echo"))
        me.expect(publish_v5(t, b"echo"))

    def test_retain_as_published(self):
        t = self.topic()
        keep, clear = self.raw_v5(), self.raw_v5()
        self.subscribe_ok(keep, 1, [(t, sub_options(0, retain_as_published=True))])
        self.subscribe_ok(clear, 1, [(t, sub_options(0))])
        pub = self.raw_v5()
        self.publish_qos1(pub, t, b"retained", 1, retain=True)
        self.publish_qos1(pub, t, b"plain", 2)
        keep.expect(publish_v5(t, b"retained", retain=True))
        keep.expect(publish_v5(t, b"plain"))
        clear.expect(publish_v5(t, b"retained"))
        clear.expect(publish_v5(t, b"plain"))
        self.publish_qos1(pub, t, b"", 3, retain=True)  # clean up

    def _retained(self, t, payload=b"kept"):
        pub = self.raw_v5()
        self.publish_qos1(pub, t, payload, 1, retain=True)
        self.addCleanup(lambda: self.publish_qos1(pub, t, b"", 2, retain=True))

    def test_retain_handling_0_sends_retained_on_every_subscribe(self):
        t = self.topic()
        self._retained(t)
        c = self.raw_v5()
        for mid in (1, 2):
            self.subscribe_ok(c, mid, [(t, sub_options(0, retain_handling=0))])
            c.expect(publish_v5(t, b"kept", retain=True))  # always RETAIN=1 at subscribe
        c.expect_nothing_before_ping()

    def test_retain_handling_1_only_for_a_new_subscription(self):
        t = self.topic()
        self._retained(t)
        c = self.raw_v5()
        self.subscribe_ok(c, 1, [(t, sub_options(0, retain_handling=1))])
        c.expect(publish_v5(t, b"kept", retain=True))
        self.subscribe_ok(c, 2, [(t, sub_options(0, retain_handling=1))])
        c.expect_nothing_before_ping()

    def test_retain_handling_2_never(self):
        t = self.topic()
        self._retained(t)
        c = self.raw_v5()
        self.subscribe_ok(c, 1, [(t, sub_options(0, retain_handling=2))])
        c.expect_nothing_before_ping()
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"live"))
        c.expect(publish_v5(t, b"live"))  # live messages still flow

    def test_retained_at_subscribe_keeps_retain_flag_without_rap(self):
        t = self.topic()
        self._retained(t)
        c = self.raw_v5()
        self.subscribe_ok(c, 1, [(t, sub_options(1, retain_as_published=False))])
        c.expect_publish_v5(t, b"kept", qos=1, retain=True)

    @meshmq_only("Mosquitto 2.0.11 keeps the old No Local on a re-subscribe (MQTT-3.8.4-3)")
    def test_resubscribe_replaces_options(self):
        t = self.topic()
        c = self.raw_v5()
        self.subscribe_ok(c, 1, [(t, sub_options(0))])
        self.subscribe_ok(c, 2, [(t, sub_options(1, no_local=True))])
        pub = self.raw_v5()
        self.publish_qos1(pub, t, b"once", 1)
        msg = c.expect_publish_v5(t, b"once", qos=1)
        c.send(puback_v5(msg["mid"]))
        c.send(publish_v5(t, b"own"))  # No Local now applies
        c.expect_nothing_before_ping()

    def test_reserved_option_bits_malformed(self):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.topic(), 0xC1)]))  # MQTT-3.8.3-5
        c.expect_disconnect_v5(RC.MALFORMED)
        self.assert_broker_serves()

    @meshmq_only("Mosquitto 2.0.11 sends 0x81")
    def test_retain_handling_3_protocol_error(self):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.topic(), sub_options(0, retain_handling=3))]))
        c.expect_disconnect_v5(RC.PROTOCOL_ERROR)  # section 3.8.3.1


class SubscriptionIdentifierTest(V5Helpers, BrokerTestCase):

    def test_identifier_delivered_with_matching_messages(self):
        t = self.topic()
        for ident in (1, 7, 268435455):  # up to the largest Variable Byte Integer
            with self.subTest(ident=ident):
                c = self.raw_v5()
                self.subscribe_ok(c, 1, [(t, 0)], sub_id(ident))
                c.send(publish_v5(t, b"x"))
                c.expect(publish_v5(t, b"x", properties=sub_id(ident)))

    def test_identifier_applies_to_every_filter_of_the_subscribe(self):
        a, b = self.topic("a"), self.topic("b")
        c = self.raw_v5()
        self.subscribe_ok(c, 1, [(a, 0), (b, 0)], sub_id(5))
        for t in (a, b):
            c.send(publish_v5(t, b"x"))
            c.expect(publish_v5(t, b"x", properties=sub_id(5)))

    def test_no_identifier_without_one_in_subscribe(self):
        t = self.topic()
        c = self.raw_v5()
        self.subscribe_ok(c, 1, [(t, 0)])
        c.send(publish_v5(t, b"x"))
        c.expect(publish_v5(t, b"x"))

    def test_resubscribe_replaces_identifier(self):
        t = self.topic()
        c = self.raw_v5()
        self.subscribe_ok(c, 1, [(t, 0)], sub_id(1))
        self.subscribe_ok(c, 2, [(t, 0)], sub_id(2))
        c.send(publish_v5(t, b"x"))
        c.expect(publish_v5(t, b"x", properties=sub_id(2)))
        self.subscribe_ok(c, 3, [(t, 0)])
        c.send(publish_v5(t, b"y"))
        c.expect(publish_v5(t, b"y"))

    @meshmq_only("Mosquitto 2.0.11 sends one copy per matching subscription")
    def test_overlapping_subscriptions_one_copy_with_every_identifier(self):
        t = self.topic("a")
        c = self.raw_v5()
        self.subscribe_ok(c, 1, [(self.topic("#"), 1)], sub_id(1))
        self.subscribe_ok(c, 2, [(t, 2)], sub_id(2))
        self.subscribe_ok(c, 3, [(self.topic("+"), 0)])  # no identifier
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"x", qos=2, mid=1))
        pub.expect_v5("PUBREC", mid=1)
        msg = c.expect_publish_v5(t, b"x", qos=2)  # the highest granted QoS
        self.assertEqual(sorted(msg["props"].all(P.SUBSCRIPTION_IDENTIFIER)), [1, 2])
        c.expect_nothing_before_ping()

    @meshmq_only("Mosquitto 2.0.11 sends 0x81")
    def test_identifier_zero_protocol_error(self):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.topic(), 0)], sub_id(0)))
        c.expect_disconnect_v5(RC.PROTOCOL_ERROR)  # section 3.8.2.1.2

    @meshmq_only("Mosquitto 2.0.11 closes without a DISCONNECT")
    def test_duplicate_identifier_protocol_error(self):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.topic(), 0)], sub_id(1) + sub_id(2)))
        c.expect_disconnect_v5(RC.PROTOCOL_ERROR)


class ReasonCodesTest(V5Helpers, BrokerTestCase):

    def test_suback_granted_qos_per_filter(self):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.topic("a"), 0), (self.topic("b"), 1),
                                (self.topic("c"), 2)]))
        c.expect_v5("SUBACK", mid=1, codes=[0, 1, 2])

    @meshmq_only("Mosquitto 2.0.11 disconnects on an invalid filter")
    def test_suback_topic_filter_invalid_per_filter(self):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.topic("ok"), 1), (self.topic("#/x"), 1),
                                (self.topic("a+"), 0), (self.topic("b"), 2)]))
        c.expect_v5("SUBACK", mid=1, codes=[1, RC.TOPIC_FILTER_INVALID,
                                            RC.TOPIC_FILTER_INVALID, 2])
        c.ping()

    def test_unsuback_reason_codes(self):
        c = self.raw_v5()
        self.subscribe_ok(c, 1, [(self.topic("a"), 1), (self.topic("b"), 0)])
        c.send(unsubscribe_v5(2, [self.topic("a"), self.topic("never"), self.topic("b")]))
        c.expect_v5("UNSUBACK", mid=2, codes=[RC.SUCCESS, RC.NO_SUBSCRIPTION_EXISTED,
                                              RC.SUCCESS])
        c.send(unsubscribe_v5(3, [self.topic("a")]))
        c.expect_v5("UNSUBACK", mid=3, codes=[RC.NO_SUBSCRIPTION_EXISTED])
        c.send(publish_v5(self.topic("a"), b"gone"))
        c.expect_nothing_before_ping()

    @meshmq_only("Mosquitto 2.0.11 disconnects on an invalid filter")
    def test_unsuback_topic_filter_invalid(self):
        c = self.raw_v5()
        c.send(unsubscribe_v5(1, [self.topic("#/x"), self.topic("ok")]))
        c.expect_v5("UNSUBACK", mid=1, codes=[RC.TOPIC_FILTER_INVALID,
                                              RC.NO_SUBSCRIPTION_EXISTED])


class AclTest(V5Helpers, BrokerTestCase):

    @classmethod
    def prepare_broker(cls, broker):
        with open(broker.path("acl"), "w") as f:
            f.write("topic readwrite open/#\n")
        broker.flags["acl_file"] = broker.path("acl")

    @meshmq_only("Mosquitto 2.0.11 grants the filter and filters at delivery")
    def test_suback_not_authorized(self):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [("open/a", 1), ("closed/a", 1)]))
        c.expect_v5("SUBACK", mid=1, codes=[1, RC.NOT_AUTHORIZED])

    def test_puback_not_authorized_and_message_dropped(self):
        sub = self.raw_v5()
        self.subscribe_ok(sub, 1, [("open/#", 1)])
        pub = self.raw_v5()
        pub.send(publish_v5("closed/a", b"denied", qos=1, mid=1))
        pub.expect_v5("PUBACK", mid=1, reason=RC.NOT_AUTHORIZED)
        self.publish_qos1(pub, "open/a", b"allowed", 2)
        got = sub.collect_publishes(b"allowed", v5=True)
        self.assertEqual([m["payload"] for m in got], [b"allowed"])


@meshmq_only("--max_subscriptions is meshmq's")
class MaxSubscriptionsTest(V5Helpers, BrokerTestCase):

    broker_flags = {"max_subscriptions": 2, "sys_interval": "1s"}

    def test_subscriptions_beyond_limit_refused_quota_exceeded(self):
        sys = SysWatcher(self)
        before = sys.counter_now("subscriptions_refused_max")
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.topic("a"), 1), (self.topic("b"), 1),
                                (self.topic("c"), 1)]))
        c.expect_v5("SUBACK", mid=1, codes=[1, 1, RC.QUOTA_EXCEEDED])
        c311 = self.raw_connected()
        c311.send(subscribe(1, [(self.topic("a"), 1), (self.topic("b"), 1),
                                (self.topic("c"), 1)]))
        c311.expect(suback(1, [1, 1, 0x80]))
        sys.wait_counter_at_least("subscriptions_refused_max", before + 2)
        # Unsubscribing frees a slot.
        c.send(unsubscribe_v5(2, [self.topic("a")]))
        c.expect_v5("UNSUBACK", mid=2, codes=[0])
        c.send(subscribe_v5(3, [(self.topic("c"), 0)]))
        c.expect_v5("SUBACK", mid=3, codes=[0])


if __name__ == "__main__":
    unittest.main()
