"""Retained messages (MQTT 3.1.1 section 3.3.1.3)."""

import unittest

import paho.mqtt.client as mqtt

from meshmq_harness import BrokerTestCase, parse_publish, puback, publish, subscribe, suback


class RetainedTest(BrokerTestCase):

    def _retain(self, topic, payload, qos=1):
        pub = self.raw_connected()
        pub.send(publish(topic, payload, qos=qos, mid=1 if qos else None, retain=True))
        if qos == 1:
            pub.expect(puback(1))
        else:
            pub.ping()
        pub.close()

    def _subscribe(self, filters, mid=1):
        c = self.raw_connected()
        c.send(subscribe(mid, filters))
        c.expect(suback(mid, [q for _, q in filters]))
        return c

    def test_retained_delivered_on_subscribe_with_retain_flag(self):
        t = self.topic("door")
        self._retain(t, b"open", qos=1)
        c = self._subscribe([(t, 1)])
        mid = c.expect_publish(t, b"open", qos=1, retain=True)  # MQTT-3.3.1-8
        c.send(puback(mid))
        c.expect_nothing_before_ping()

    def test_retained_delivered_through_wildcard_filters(self):
        base = self.topic()
        self._retain(base + "/house/kitchen/temp", b"21", qos=0)
        self._retain(base + "/house/hall/temp", b"19", qos=0)
        self._retain(base + "/garden/temp", b"12", qos=0)
        for flt, expected in (
                ("/house/+/temp", {"/house/kitchen/temp": b"21", "/house/hall/temp": b"19"}),
                ("/#", {"/house/kitchen/temp": b"21", "/house/hall/temp": b"19",
                        "/garden/temp": b"12"}),
                ("/+/temp", {"/garden/temp": b"12"})):
            with self.subTest(filter=flt):
                c = self._subscribe([(base + flt, 0)])
                got = {}
                for _ in expected:
                    pkt = c.read_packet()
                    msg = parse_publish(pkt)
                    self.assertTrue(msg["retain"], pkt.hex(" "))
                    self.assertEqual(pkt, publish(msg["topic"], msg["payload"], retain=True))
                    got[msg["topic"][len(base):]] = msg["payload"]
                self.assertEqual(got, expected)
                c.expect_nothing_before_ping()

    def test_retained_message_replaced_by_newer(self):
        t = self.topic()
        self._retain(t, b"v1")
        self._retain(t, b"v2")
        c = self._subscribe([(t, 0)])
        c.expect(publish(t, b"v2", retain=True))
        c.expect_nothing_before_ping()

    def test_empty_retained_payload_deletes(self):
        t = self.topic()
        self._retain(t, b"soon-gone")
        self._retain(t, b"")  # MQTT-3.3.1-10
        c = self._subscribe([(t, 0)])
        c.expect_nothing_before_ping()
        pub = self.raw_connected()
        pub.send(publish(t, b"live"))
        c.expect(publish(t, b"live"))

    def test_forwarded_to_existing_subscriber_with_retain_0(self):
        # MQTT-3.3.1-9: a retained PUBLISH sent because it matches an established
        # subscription carries RETAIN=0.
        t = self.topic()
        c = self._subscribe([(t, 1)])
        pub = self.raw_connected()
        pub.send(publish(t, b"live-retained", qos=1, mid=1, retain=True))
        pub.expect(puback(1))
        mid = c.expect_publish(t, b"live-retained", qos=1, retain=False)
        c.send(puback(mid))
        # ... and it was still stored: a later subscriber gets it with RETAIN=1.
        later = self._subscribe([(t, 1)])
        later.expect_publish(t, b"live-retained", qos=1, retain=True)

    def test_retained_delivery_qos_is_min_of_stored_and_granted(self):
        t = self.topic()
        self._retain(t, b"stored-at-1", qos=1)
        c0 = self._subscribe([(t, 0)])
        c0.expect(publish(t, b"stored-at-1", qos=0, retain=True))
        c2 = self._subscribe([(t, 2)])
        c2.expect_publish(t, b"stored-at-1", qos=1, retain=True)

    def test_retained_qos0_message_is_kept(self):
        # MQTT-3.3.1-7: a QoS 0 retained message replaces any earlier one and is stored.
        t = self.topic()
        self._retain(t, b"first", qos=1)
        self._retain(t, b"qos0", qos=0)
        c = self._subscribe([(t, 1)])
        c.expect(publish(t, b"qos0", qos=0, retain=True))

    def test_paho_retained_v31(self):
        t = self.topic()
        pub = self.client(protocol=mqtt.MQTTv31)
        pub.publish(t, b"kept", qos=1, retain=True)
        sub = self.client(protocol=mqtt.MQTTv31)
        sub.subscribe(t, 1)
        msg = sub.wait_message(t)
        self.assertEqual((msg.payload, msg.retain, msg.qos), (b"kept", 1, 1))


if __name__ == "__main__":
    unittest.main()
