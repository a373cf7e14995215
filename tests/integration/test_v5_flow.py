"""MQTT 5 flow control: Topic Alias both ways, Receive Maximum both ways, and the client's
Maximum Packet Size (MQTT 5.0 sections 3.1.2.11, 3.3.2.3.4, 4.9)."""

import unittest

from meshmq_harness import (RC, BrokerTestCase, P, SysWatcher, disconnect_v5, meshmq_only,
                            puback_v5, pubcomp_v5, publish_v5, pubrec_v5, pubrel_v5,
                            subscribe_v5, unique_id)


def alias(n):
    return [(P.TOPIC_ALIAS, n)]


class V5Helpers:

    def v5_subscriber(self, topic, qos=1, **connect_kwargs):
        c = self.raw_v5(**connect_kwargs)
        c.send(subscribe_v5(1, [(topic, qos)]))
        c.expect_v5("SUBACK", mid=1, codes=[qos])
        return c

    def publish_qos1(self, pub, topic, payload, mid, properties=()):
        pub.send(publish_v5(topic, payload, qos=1, mid=mid, properties=properties))
        pub.expect_v5("PUBACK", mid=mid)


class TopicAliasTest(V5Helpers, BrokerTestCase):

    broker_flags = {"max_topic_alias": 3, "sys_interval": "1s"}

    def test_connack_topic_alias_maximum(self):
        self.assertEqual(self.raw_v5().connack["props"].get(P.TOPIC_ALIAS_MAXIMUM), 3)

    def test_client_sets_uses_and_remaps_an_alias(self):
        t1, t2 = self.topic("one"), self.topic("two")
        sub = self.v5_subscriber(self.topic("#"), 0)
        pub = self.raw_v5()
        pub.send(publish_v5(t1, b"a", properties=alias(1)))
        pub.send(publish_v5("", b"b", properties=alias(1)))
        pub.send(publish_v5(t2, b"c", properties=alias(1)))  # remapped
        pub.send(publish_v5("", b"d", properties=alias(1)))
        pub.send(publish_v5(t1, b"e"))  # a full topic name needs no alias
        # The subscriber asked for no aliases: full topic names, no Topic Alias property.
        for topic, payload in ((t1, b"a"), (t1, b"b"), (t2, b"c"), (t2, b"d"), (t1, b"e")):
            sub.expect(publish_v5(topic, payload))

    def test_alias_above_maximum_invalid(self):
        c = self.raw_v5()
        c.send(publish_v5(self.topic(), b"x", properties=alias(4)))
        c.expect_disconnect_v5(RC.TOPIC_ALIAS_INVALID)
        self.assert_broker_serves()

    @meshmq_only("Mosquitto 2.0.11 sends 0x81 for alias 0")
    def test_alias_zero_invalid(self):
        c = self.raw_v5()
        c.send(publish_v5(self.topic(), b"x", properties=alias(0)))
        c.expect_disconnect_v5(RC.TOPIC_ALIAS_INVALID)

    def test_unknown_alias_with_empty_topic_and_aliases_end_with_the_connection(self):
        # Section 3.3.4: an empty topic with an alias that has no mapping is a Protocol Error.
        c = self.raw_v5()
        c.send(publish_v5("", b"x", properties=alias(2)))
        c.expect_disconnect_v5(RC.PROTOCOL_ERROR)
        client_id = unique_id()
        c = self.raw_v5(client_id)
        c.send(publish_v5(self.topic(), b"x", qos=1, mid=1, properties=alias(2)))
        c.expect_v5("PUBACK", mid=1)
        c.send(disconnect_v5())
        c.expect_closed()
        c = self.raw_v5(client_id)  # MQTT-3.3.2-7: no mapping survives the connection
        c.send(publish_v5("", b"x", properties=alias(2)))
        c.expect_disconnect_v5(RC.PROTOCOL_ERROR)

    @meshmq_only("meshmq's $SYS/broker/counters/topic_alias_invalid")
    def test_invalid_alias_counted(self):
        sys = SysWatcher(self)
        before = sys.counter_now("topic_alias_invalid")
        c = self.raw_v5()
        c.send(publish_v5(self.topic(), b"x", properties=alias(99)))
        c.expect_disconnect_v5(RC.TOPIC_ALIAS_INVALID)
        sys.wait_counter_at_least("topic_alias_invalid", before + 1)

    @meshmq_only("Mosquitto 2.0.11 never sends topic aliases to clients")
    def test_server_assigns_aliases_up_to_the_clients_maximum(self):
        t1, t2, t3 = self.topic("one"), self.topic("two"), self.topic("three")
        sub = self.v5_subscriber(self.topic("#"), 0, properties=[(P.TOPIC_ALIAS_MAXIMUM, 2)])
        plain = self.v5_subscriber(self.topic("#"), 0)
        pub = self.raw_v5()
        sequence = [(t1, b"1"), (t2, b"2"), (t3, b"3"), (t1, b"4"), (t2, b"5"), (t3, b"6")]
        for topic, payload in sequence:
            pub.send(publish_v5(topic, payload))
        expected = [publish_v5(t1, b"1", properties=alias(1)),  # first send: topic + alias
                    publish_v5(t2, b"2", properties=alias(2)),
                    publish_v5(t3, b"3"),                        # no alias left: full topic
                    publish_v5("", b"4", properties=alias(1)),  # later: alias only
                    publish_v5("", b"5", properties=alias(2)),
                    publish_v5(t3, b"6")]
        for pkt in expected:
            sub.expect(pkt)
        for topic, payload in sequence:
            plain.expect(publish_v5(topic, payload))
        # A new connection starts without aliases.
        sub.send(disconnect_v5())
        sub.expect_closed()
        again = self.v5_subscriber(self.topic("#"), 0, properties=[(P.TOPIC_ALIAS_MAXIMUM, 2)])
        pub.send(publish_v5(t2, b"7"))
        again.expect(publish_v5(t2, b"7", properties=alias(1)))

    @meshmq_only("Mosquitto 2.0.11 never sends topic aliases to clients")
    def test_server_aliases_on_qos1_deliveries(self):
        t = self.topic()
        sub = self.v5_subscriber(t, 1, properties=[(P.TOPIC_ALIAS_MAXIMUM, 1)])
        pub = self.raw_v5()
        for i, payload in enumerate((b"a", b"b")):
            self.publish_qos1(pub, t, payload, i + 1)
            msg = sub.expect_v5("PUBLISH", payload=payload, qos=1)
            self.assertEqual(msg["topic"], t if i == 0 else "")
            self.assertEqual(msg["props"].get(P.TOPIC_ALIAS), 1)
            sub.send(puback_v5(msg["mid"]))


class NoTopicAliasTest(BrokerTestCase):

    broker_flags = {"max_topic_alias": 0}

    def test_no_maximum_announced_and_every_alias_invalid(self):
        c = self.raw_v5()
        self.assertNotIn(P.TOPIC_ALIAS_MAXIMUM, c.connack["props"].ids())
        c.send(publish_v5(self.topic(), b"x", properties=alias(1)))
        c.expect_disconnect_v5(RC.TOPIC_ALIAS_INVALID)


class ReceiveMaximumTest(V5Helpers, BrokerTestCase):

    broker_flags = {"max_inflight": 4, "sys_interval": "1s"}

    def _fill(self, topic, qos, count):
        pub = self.raw_v5()
        for i in range(count):
            payload = b"m%d" % i
            pub.send(publish_v5(topic, payload, qos=qos, mid=i + 1))
            if qos == 1:
                pub.expect_v5("PUBACK", mid=i + 1)
            else:
                pub.expect_v5("PUBREC", mid=i + 1)
                pub.send(pubrel_v5(i + 1))
                pub.expect_v5("PUBCOMP", mid=i + 1)
        return pub

    def test_client_receive_maximum_caps_qos1_in_flight(self):
        t = self.topic()
        sub = self.v5_subscriber(t, 1, properties=[(P.RECEIVE_MAXIMUM, 2)])
        self._fill(t, 1, 5)
        window = [sub.expect_publish_v5(t, b"m%d" % i, qos=1)["mid"] for i in range(2)]
        sub.expect_nothing_before_ping()
        sub.send(puback_v5(window[0]))
        sub.expect_publish_v5(t, b"m2", qos=1)

    def test_qos2_slot_freed_by_pubcomp_not_pubrec(self):
        t = self.topic()
        sub = self.v5_subscriber(t, 2, properties=[(P.RECEIVE_MAXIMUM, 1)])
        self._fill(t, 2, 3)
        mid = sub.expect_publish_v5(t, b"m0", qos=2)["mid"]
        sub.send(pubrec_v5(mid))
        sub.expect_v5("PUBREL", mid=mid, reason=0)
        sub.expect_nothing_before_ping()  # still in flight until PUBCOMP (section 4.9)
        sub.send(pubcomp_v5(mid))
        sub.expect_publish_v5(t, b"m1", qos=2)

    @meshmq_only("Mosquitto 2.0.11 uses the client's Receive Maximum alone")
    def test_window_is_min_of_server_and_client(self):
        t = self.topic()
        sub = self.v5_subscriber(t, 1, properties=[(P.RECEIVE_MAXIMUM, 10)])
        self._fill(t, 1, 6)
        window = [sub.expect_publish_v5(t, b"m%d" % i, qos=1)["mid"] for i in range(4)]
        sub.expect_nothing_before_ping()
        sub.send(puback_v5(window[0]))
        sub.expect_publish_v5(t, b"m4", qos=1)

    @meshmq_only("Mosquitto 2.0.11 answers PUBREC 0x97 instead of disconnecting")
    def test_inbound_receive_maximum_exceeded(self):
        sys = SysWatcher(self)
        before = sys.counter_now("receive_maximum_exceeded")
        c = self.raw_v5()
        self.assertEqual(c.connack["props"].get(P.RECEIVE_MAXIMUM), 4)
        for mid in range(1, 5):  # four QoS 2 awaiting PUBREL: the server's Receive Maximum
            c.send(publish_v5(self.topic(), b"x", qos=2, mid=mid))
            c.expect_v5("PUBREC", mid=mid)
        c.send(publish_v5(self.topic(), b"x", qos=2, mid=5))
        c.expect_disconnect_v5(RC.RECEIVE_MAXIMUM_EXCEEDED)
        sys.wait_counter_at_least("receive_maximum_exceeded", before + 1)

    def test_inbound_window_reopens_after_pubrel(self):
        c = self.raw_v5()
        for mid in range(1, 5):
            c.send(publish_v5(self.topic(), b"x", qos=2, mid=mid))
            c.expect_v5("PUBREC", mid=mid)
        c.send(pubrel_v5(1))
        c.expect_v5("PUBCOMP", mid=1, reason=0)
        c.send(publish_v5(self.topic(), b"x", qos=2, mid=5))
        c.expect_v5("PUBREC", mid=5)


class MaximumPacketSizeTest(V5Helpers, BrokerTestCase):

    broker_flags = {"sys_interval": "1s"}

    def test_message_over_clients_maximum_not_sent_to_it(self):
        t = self.topic()
        small = self.v5_subscriber(t, 1, properties=[(P.MAXIMUM_PACKET_SIZE, 100)])
        big = self.v5_subscriber(t, 1)
        pub = self.raw_v5()
        self.publish_qos1(pub, t, b"x" * 200, 1)
        self.publish_qos1(pub, t, b"sentinel", 2)
        self.assertEqual([m["payload"] for m in small.collect_publishes(b"sentinel", v5=True)],
                         [b"sentinel"])
        self.assertEqual([m["payload"] for m in big.collect_publishes(b"sentinel", v5=True)],
                         [b"x" * 200, b"sentinel"])

    @meshmq_only("Mosquitto 2.0.11 leaves the fixed header byte out of the size")
    def test_limit_is_the_whole_packet_exactly(self):
        t = self.topic()
        limit = len(publish_v5(t, b"p" * 50))  # QoS 0 PUBLISH as the subscriber would get it
        sub = self.v5_subscriber(t, 0, properties=[(P.MAXIMUM_PACKET_SIZE, limit)])
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"p" * 50))
        pub.send(publish_v5(t, b"p" * 51))  # one byte over
        pub.send(publish_v5(t, b"p" * 40, properties=[(P.USER_PROPERTY, ("k", "v" * 10))]))
        pub.send(publish_v5(t, b"end"))
        sub.expect(publish_v5(t, b"p" * 50))
        sub.expect(publish_v5(t, b"end"))  # properties count towards the size too

    @meshmq_only("meshmq's $SYS/broker/counters/messages_dropped_packet_size")
    def test_dropped_message_counted(self):
        sys = SysWatcher(self)
        before = sys.counter_now("messages_dropped_packet_size")
        t = self.topic()
        sub = self.v5_subscriber(t, 1, properties=[(P.MAXIMUM_PACKET_SIZE, 64)])
        pub = self.raw_v5()
        self.publish_qos1(pub, t, b"x" * 100, 1)
        self.publish_qos1(pub, t, b"sentinel", 2)
        sub.collect_publishes(b"sentinel", v5=True)
        sys.wait_counter_at_least("messages_dropped_packet_size", before + 1)


if __name__ == "__main__":
    unittest.main()
