"""SUBSCRIBE / SUBACK, UNSUBSCRIBE / UNSUBACK (MQTT 3.1.1 sections 3.8-3.11)."""

import unittest

from meshmq_harness import (BrokerTestCase, meshmq_only, publish, puback, subscribe, suback,
                            unsubscribe, unsuback)


class SubscribeTest(BrokerTestCase):

    def test_suback_grants_requested_qos(self):
        t = self.topic()
        c = self.raw_connected()
        c.send(subscribe(0x0A0B, [(t + "/a", 0), (t + "/+", 1), (t + "/#", 2)]))
        c.expect(suback(0x0A0B, [0, 1, 2]))

    @meshmq_only("Mosquitto 2.0 closes the connection on an invalid filter instead of 0x80")
    def test_invalid_filter_gets_0x80_in_multi_filter_subscribe(self):
        t = self.topic()
        c = self.raw_connected()
        c.send(subscribe(5, [(t + "/ok", 1), (t + "/#/b", 1), (t + "/x+", 0), (t + "/ok2", 2)]))
        c.expect(suback(5, [1, 0x80, 0x80, 2]))
        # The valid filters of the same packet are active; the connection stays usable.
        c.send(publish(t + "/ok", b"still-subscribed"))
        c.expect_publish(t + "/ok", b"still-subscribed")

    def test_unsubscribe_stops_delivery(self):
        t = self.topic()
        c = self.raw_connected()
        c.send(subscribe(1, [(t + "/x", 0), (t + "/sentinel", 0)]))
        c.expect(suback(1, [0, 0]))
        pub = self.client()
        pub.publish(t + "/x", b"before", qos=1)
        c.expect_publish(t + "/x", b"before")

        c.send(unsubscribe(2, [t + "/x"]))
        c.expect(unsuback(2))
        pub.publish(t + "/x", b"after", qos=1)
        pub.publish(t + "/sentinel", b"sentinel", qos=1)
        c.expect_publish(t + "/sentinel", b"sentinel")

    def test_unsubscribe_unknown_filter_still_acknowledged(self):
        c = self.raw_connected()
        c.send(unsubscribe(0x7777, [self.topic("never-subscribed")]))
        c.expect(unsuback(0x7777))  # MQTT-3.10.4-5

    def test_paho_unsubscribe_stops_delivery(self):
        t = self.topic()
        sub = self.client()
        sub.subscribe([(t + "/x", 1), (t + "/sentinel", 1)])
        sub.unsubscribe(t + "/x")
        pub = self.client()
        pub.publish(t + "/x", b"after", qos=1)
        pub.publish(t + "/sentinel", b"sentinel", qos=1)
        sub.wait_message(t + "/sentinel")
        self.assertEqual(sub.payloads(t + "/x"), [])

    @meshmq_only("Mosquitto 2.0.11 delivers overlapping matches once but not at the highest QoS")
    def test_overlapping_subscriptions_deliver_once_at_highest_qos(self):
        # MQTT-3.3.5-1: one copy, at the maximum QoS of all matching subscriptions.
        t = self.topic()
        c = self.raw_connected()
        c.send(subscribe(1, [(t + "/+", 0), (t + "/#", 2)]))
        c.expect(suback(1, [0, 2]))
        pub = self.client()
        pub.publish(t + "/x", b"overlap", qos=2)
        pub.publish(t + "/x", b"sentinel", qos=2)
        got = [(m["payload"], m["qos"]) for m in c.collect_publishes(b"sentinel")]
        self.assertEqual(got, [(b"overlap", 2), (b"sentinel", 2)])

    def test_overlapping_subscriptions_deliver_once(self):
        t = self.topic()
        c = self.raw_connected()
        c.send(subscribe(1, [(t + "/+", 1), (t + "/#", 1), (t + "/x", 1)]))
        c.expect(suback(1, [1, 1, 1]))
        pub = self.client()
        pub.publish(t + "/x", b"overlap", qos=1)
        pub.publish(t + "/x", b"sentinel", qos=1)
        got = [m["payload"] for m in c.collect_publishes(b"sentinel")]
        self.assertEqual(got, [b"overlap", b"sentinel"])

    def test_resubscribe_replaces_qos(self):
        # MQTT-3.8.4-3: a SUBSCRIBE for an existing filter replaces it (new QoS).
        t = self.topic()
        c = self.raw_connected()
        c.send(subscribe(1, [(t, 0)]))
        c.expect(suback(1, [0]))
        c.send(subscribe(2, [(t, 1)]))
        c.expect(suback(2, [1]))
        pub = self.client()
        pub.publish(t, b"at-1", qos=1)
        mid = c.expect_publish(t, b"at-1", qos=1)
        c.send(puback(mid))
        c.expect_nothing_before_ping()  # exactly one copy

    def test_paho_multi_filter_subscribe(self):
        t = self.topic()
        sub = self.client()
        self.assertEqual(sub.subscribe([(t + "/a", 0), (t + "/b", 1), (t + "/c", 2)]), [0, 1, 2])
        pub = self.client()
        for leaf in "abc":
            pub.publish(t + "/" + leaf, leaf.encode(), qos=2)
        msgs = sub.wait_count(3)
        self.assertEqual(sorted((m.topic, m.qos) for m in msgs),
                         [(t + "/a", 0), (t + "/b", 1), (t + "/c", 2)])


if __name__ == "__main__":
    unittest.main()
