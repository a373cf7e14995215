"""Sessions: clean session, persistent sessions, offline queues, redelivery, takeover
(MQTT 3.1.1 sections 3.1.2.4, 4.1, 4.4, MQTT-3.1.4-2)."""

import unittest

import paho.mqtt.client as mqtt

from meshmq_harness import (BrokerTestCase, connack, connect, disconnect, puback, pubcomp, publish,
                            pubrec, pubrel, subscribe, suback, unique_id)


class SessionTest(BrokerTestCase):

    def _persistent_raw(self, client_id, session_present):
        c = self.raw()
        c.send(connect(client_id, clean=False))
        c.expect(connack(session_present, 0))
        return c

    def test_clean_session_discards_subscriptions_and_messages(self):
        topic = self.topic()
        client_id = unique_id()
        c = self.raw()
        c.send(connect(client_id, clean=True))
        c.expect(connack(0, 0))
        c.send(subscribe(1, [(topic, 1)]))
        c.expect(suback(1, [1]))
        c.send(disconnect())
        c.expect_closed()

        pub = self.client()
        pub.publish(topic, b"while-away", qos=1)

        # Had the session survived, sessionPresent would be 1 and "while-away" would be
        # delivered right after CONNACK, before anything published later.
        c = self._persistent_raw(client_id, 0)
        c.send(subscribe(2, [(topic, 1)]))
        c.expect(suback(2, [1]))
        pub.publish(topic, b"sentinel", qos=1)
        c.expect_publish(topic, b"sentinel", qos=1)

    def test_clean_session_gets_nothing_from_subscription_of_previous_connection(self):
        topic = self.topic()
        client_id = unique_id()
        first = self.client(client_id=client_id, clean_session=True)
        first.subscribe(topic, 1)
        first.disconnect()
        second = self.client(client_id=client_id, clean_session=True)
        second.subscribe(self.topic("sentinel"), 1)
        pub = self.client()
        pub.publish(topic, b"old-subscription", qos=1)
        pub.publish(self.topic("sentinel"), b"sentinel", qos=1)
        second.wait_message(self.topic("sentinel"))
        self.assertEqual(second.payloads(topic), [])

    def test_persistent_session_keeps_subscription_and_queues_qos1_qos2_in_order(self):
        topic = self.topic()
        client_id = unique_id()
        sub = self.client(client_id=client_id, clean_session=False)
        self.assertEqual(sub.subscribe(topic, 2), [2])
        sub.disconnect()

        pub = self.client()
        sent = [(b"q0-a", 0), (b"q1-a", 1), (b"q2-a", 2), (b"q0-b", 0), (b"q1-b", 1),
                (b"q2-b", 2), (b"q1-c", 1)]
        for payload, qos in sent:
            pub.publish(topic, payload, qos=qos)

        # A raw client sees PUBLISH packets in arrival order (paho reports QoS 2 at PUBREL).
        c = self._persistent_raw(client_id, 1)
        pub.publish(topic, b"sentinel", qos=1)
        got = [(m["payload"], m["qos"]) for m in c.collect_publishes(b"sentinel")]
        expected = [(p, q) for p, q in sent if q > 0] + [(b"sentinel", 1)]
        self.assertEqual(got, expected)  # QoS 0 not queued, QoS 1/2 in publish order

    def test_persistent_session_raw_queue_delivered_after_connack(self):
        topic = self.topic()
        client_id = unique_id()
        c = self._persistent_raw(client_id, 0)
        c.send(subscribe(1, [(topic, 1)]))
        c.expect(suback(1, [1]))
        c.send(disconnect())
        c.expect_closed()

        pub = self.client()
        for i in range(3):
            pub.publish(topic, b"m%d" % i, qos=1)

        c = self._persistent_raw(client_id, 1)
        for i in range(3):
            mid = c.expect_publish(topic, b"m%d" % i, qos=1)
            c.send(puback(mid))
        c.expect_nothing_before_ping()

    def test_unacked_qos1_redelivered_with_dup_after_reconnect(self):
        topic = self.topic()
        client_id = unique_id()
        c = self._persistent_raw(client_id, 0)
        c.send(subscribe(1, [(topic, 1)]))
        c.expect(suback(1, [1]))
        pub = self.client()
        pub.publish(topic, b"ack-me", qos=1)
        mid = c.expect_publish(topic, b"ack-me", qos=1, dup=False)
        c.close()  # no PUBACK

        c = self._persistent_raw(client_id, 1)
        # MQTT-4.4.0-1: resend with the original packet identifier and DUP set.
        c.expect(publish(topic, b"ack-me", qos=1, mid=mid, dup=True))
        c.send(puback(mid))
        c.send(disconnect())
        c.expect_closed()

        # Acknowledged now: a further reconnect must not redeliver it.
        c = self._persistent_raw(client_id, 1)
        pub.publish(topic, b"sentinel", qos=1)
        c.expect_publish(topic, b"sentinel", qos=1)

    def test_unacked_qos2_publish_and_pubrel_redelivered_after_reconnect(self):
        topic = self.topic()
        client_id = unique_id()
        c = self._persistent_raw(client_id, 0)
        c.send(subscribe(1, [(topic, 2)]))
        c.expect(suback(1, [2]))
        pub = self.client()
        pub.publish(topic, b"exactly-once", qos=2)
        mid = c.expect_publish(topic, b"exactly-once", qos=2)
        c.close()  # no PUBREC

        c = self._persistent_raw(client_id, 1)
        c.expect(publish(topic, b"exactly-once", qos=2, mid=mid, dup=True))
        c.send(pubrec(mid))
        c.expect(pubrel(mid))
        c.close()  # no PUBCOMP

        c = self._persistent_raw(client_id, 1)
        c.expect(pubrel(mid))  # the PUBLISH is not sent again once PUBREC was received
        c.send(pubcomp(mid))
        c.expect_nothing_before_ping()

    def test_takeover_closes_old_connection_and_publishes_its_will(self):
        client_id = unique_id()
        will_topic = self.topic("will")
        watcher = self.subscriber(will_topic, qos=1)
        old = self.raw()
        old.send(connect(client_id, will_topic=will_topic, will_payload=b"taken-over",
                         will_qos=1))
        old.expect(connack(0, 0))
        new = self.raw()
        new.send(connect(client_id))
        new.expect(connack(0, 0))
        old.expect_closed()  # MQTT-3.1.4-2
        new.ping()
        msg = watcher.wait_message(will_topic, b"taken-over")
        self.assertEqual(msg.qos, 1)

    def test_takeover_of_persistent_session_keeps_it(self):
        topic = self.topic()
        client_id = unique_id()
        old = self._persistent_raw(client_id, 0)
        old.send(subscribe(1, [(topic, 1)]))
        old.expect(suback(1, [1]))
        new = self._persistent_raw(client_id, 1)
        old.expect_closed()
        pub = self.client()
        pub.publish(topic, b"to-new", qos=1)
        mid = new.expect_publish(topic, b"to-new", qos=1)
        new.send(puback(mid))

    def test_paho_persistent_session_v31(self):
        topic = self.topic()
        client_id = unique_id()
        sub = self.client(client_id=client_id, clean_session=False, protocol=mqtt.MQTTv31)
        sub.subscribe(topic, 1)
        sub.disconnect()
        pub = self.client(protocol=mqtt.MQTTv31)
        pub.publish(topic, b"offline-v31", qos=1)
        sub = self.client(client_id=client_id, clean_session=False, protocol=mqtt.MQTTv31)
        self.assertEqual(sub.wait_message(topic).payload, b"offline-v31")


if __name__ == "__main__":
    unittest.main()
