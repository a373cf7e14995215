"""PUBLISH at QoS 0/1/2 in both directions (MQTT 3.1.1 sections 3.3-3.7, 4.3)."""

import unittest

import paho.mqtt.client as mqtt

from meshmq_harness import (BrokerTestCase, parse_publish, puback, pubcomp, publish, pubrec,
                            pubrel, subscribe, suback)


class PublishQosTest(BrokerTestCase):

    def _raw_subscriber(self, topic, qos):
        c = self.raw_connected()
        c.send(subscribe(1, [(topic, qos)]))
        c.expect(suback(1, [qos]))
        return c

    def test_qos0_both_directions(self):
        topic = self.topic()
        sub = self._raw_subscriber(topic, 0)
        pub = self.raw_connected()
        pub.send(publish(topic, b"fire-and-forget", qos=0))
        sub.expect(publish(topic, b"fire-and-forget", qos=0))
        pub.expect_nothing_before_ping()  # no ack for QoS 0

    def test_qos1_inbound_puback_and_outbound_flow(self):
        topic = self.topic()
        sub = self._raw_subscriber(topic, 1)
        pub = self.raw_connected()
        pub.send(publish(topic, b"at-least-once", qos=1, mid=0x1234))
        pub.expect(puback(0x1234))
        mid = sub.expect_publish(topic, b"at-least-once", qos=1)
        self.assertNotEqual(mid, 0)  # MQTT-2.3.1-1: non-zero packet identifier
        sub.send(puback(mid))
        # Acknowledged: a second message flows and nothing is redelivered.
        pub.send(publish(topic, b"second", qos=1, mid=0x1235))
        pub.expect(puback(0x1235))
        mid2 = sub.expect_publish(topic, b"second", qos=1)
        sub.send(puback(mid2))
        sub.expect_nothing_before_ping()

    def test_qos2_inbound_flow(self):
        topic = self.topic()
        sub = self._raw_subscriber(topic, 2)
        pub = self.raw_connected()
        pub.send(publish(topic, b"exactly-once", qos=2, mid=0x0102))
        pub.expect(pubrec(0x0102))
        pub.send(pubrel(0x0102))
        pub.expect(pubcomp(0x0102))
        mid = sub.expect_publish(topic, b"exactly-once", qos=2)
        sub.send(pubrec(mid))
        sub.expect(pubrel(mid))
        sub.send(pubcomp(mid))
        sub.expect_nothing_before_ping()

    def test_qos2_outbound_flow_frees_packet_id(self):
        topic = self.topic()
        sub = self._raw_subscriber(topic, 2)
        pub = self.client()
        for i in range(3):
            pub.publish(topic, b"m%d" % i, qos=2)
            mid = sub.expect_publish(topic, b"m%d" % i, qos=2)
            sub.send(pubrec(mid))
            sub.expect(pubrel(mid))
            sub.send(pubcomp(mid))
        sub.expect_nothing_before_ping()

    def test_qos2_duplicate_publish_before_pubrel_delivered_once(self):
        topic = self.topic()
        sub = self._raw_subscriber(topic, 2)
        pub = self.raw_connected()
        pub.send(publish(topic, b"once", qos=2, mid=7))
        pub.expect(pubrec(7))
        pub.send(publish(topic, b"once", qos=2, mid=7, dup=True))  # lost PUBREC, resent
        pub.expect(pubrec(7))
        pub.send(pubrel(7))
        pub.expect(pubcomp(7))
        pub.send(publish(topic, b"sentinel", qos=2, mid=8))
        pub.expect(pubrec(8))
        pub.send(pubrel(8))
        pub.expect(pubcomp(8))
        got = [m["payload"] for m in sub.collect_publishes(b"sentinel")]
        self.assertEqual(got, [b"once", b"sentinel"])

    def test_qos2_same_packet_id_after_pubcomp_is_a_new_message(self):
        topic = self.topic()
        sub = self._raw_subscriber(topic, 2)
        pub = self.raw_connected()
        for payload in (b"first", b"second"):
            pub.send(publish(topic, payload, qos=2, mid=9))
            pub.expect(pubrec(9))
            pub.send(pubrel(9))
            pub.expect(pubcomp(9))
        got = [m["payload"] for m in sub.collect_publishes(b"second")]
        self.assertEqual(got, [b"first", b"second"])

    def test_delivery_qos_is_min_of_publish_and_granted(self):
        topic = self.topic()
        subs = {}
        for granted in (0, 1, 2):
            c = self.raw_connected()
            c.send(subscribe(1, [(topic, granted)]))
            c.expect(suback(1, [granted]))
            subs[granted] = c
        pub = self.raw_connected()
        for pub_qos in (0, 1, 2):
            payload = b"published-at-%d" % pub_qos
            pub.send(publish(topic, payload, qos=pub_qos, mid=pub_qos or None))
            if pub_qos == 1:
                pub.expect(puback(1))
            elif pub_qos == 2:
                pub.expect(pubrec(2))
                pub.send(pubrel(2))
                pub.expect(pubcomp(2))
            for granted, c in subs.items():
                with self.subTest(publish_qos=pub_qos, granted_qos=granted):
                    got = c.collect_publishes(payload)
                    self.assertEqual([(m["payload"], m["qos"]) for m in got],
                                     [(payload, min(pub_qos, granted))])
        for c in subs.values():
            c.expect_nothing_before_ping()

    def test_paho_all_qos_both_protocols(self):
        for protocol in (mqtt.MQTTv31, mqtt.MQTTv311):
            topic = self.topic(str(protocol))
            sub = self.client(protocol=protocol)
            self.assertEqual(sub.subscribe(topic, 2), [2])
            pub = self.client(protocol=protocol)
            for qos in (0, 1, 2):
                pub.publish(topic, b"qos%d" % qos, qos=qos)
            msgs = sub.wait_count(3, topic)
            with self.subTest(protocol=protocol):
                self.assertEqual(sorted((m.payload, m.qos) for m in msgs),
                                 [(b"qos0", 0), (b"qos1", 1), (b"qos2", 2)])

    def test_publisher_receives_own_message(self):
        # MQTT 3.1.1 has no "no local": a client subscribed to its own topic gets its message.
        topic = self.topic()
        c = self._raw_subscriber(topic, 1)
        c.send(publish(topic, b"echo", qos=1, mid=3))
        got = {c.read_packet(), c.read_packet()}
        delivered = [p for p in got if p[0] & 0xF0 == 0x30]
        self.assertEqual(len(delivered), 1, got)
        mid = parse_publish(delivered[0])["mid"]
        self.assertEqual(got, {puback(3), publish(topic, b"echo", qos=1, mid=mid)})


if __name__ == "__main__":
    unittest.main()
