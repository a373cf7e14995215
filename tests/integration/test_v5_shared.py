"""Shared subscriptions $share/{group}/{filter} for MQTT 5 and 3.1.1 members: one member per
message, round-robin in subscription order, offline members skipped, in-flight and queued
QoS 1/2 messages of a member that leaves redelivered to another (MQTT 5.0 section 4.8.2)."""

import unittest

from meshmq_harness import (RC, BrokerTestCase, P, SysWatcher, disconnect_v5, meshmq_only,
                            parse_publish, puback, puback_v5, publish_v5, pubrel_v5, sub_options,
                            subscribe, suback, subscribe_v5, unique_id, unsubscribe_v5)


class Member:
    """A raw group member of either protocol version, reading and acking its deliveries."""

    def __init__(self, test, filter_, v5=True, qos=1, client_id=None, **connect_kwargs):
        self.v5 = v5
        self.client_id = client_id or unique_id()
        if v5:
            self.c = test.raw_v5(self.client_id, **connect_kwargs)
            self.c.send(subscribe_v5(1, [(filter_, qos)]))
            self.c.expect_v5("SUBACK", mid=1, codes=[qos])
        else:
            self.c = test.raw_connected(self.client_id, **connect_kwargs)
            self.c.send(subscribe(1, [(filter_, qos)]))
            self.c.expect(suback(1, [qos]))

    def expect(self, topic, payload, qos=1, ack=True):
        """Reads one delivery of payload; returns its parsed dict (props empty for 3.1.1)."""
        if self.v5:
            msg = self.c.expect_publish_v5(topic, payload, qos=qos)
        else:
            msg = {"mid": self.c.expect_publish(topic, payload, qos=qos), "props": []}
        if ack and qos == 1:
            self.c.send(puback_v5(msg["mid"]) if self.v5 else puback(msg["mid"]))
        return msg

    def payloads(self, until):
        return [m["payload"] for m in self.c.collect_publishes(until, v5=self.v5)]

    def collect(self, count):
        """The payloads of the next count deliveries (QoS 1 acked), in arrival order."""
        got = []
        for _ in range(count):
            msg = self.c.read_v5() if self.v5 else parse_publish(self.c.read_packet())
            if msg["qos"] == 1:
                self.c.send(puback_v5(msg["mid"]) if self.v5 else puback(msg["mid"]))
            got.append(msg["payload"])
        return got


class SharedTest(BrokerTestCase):

    broker_flags = {"sys_interval": "1s"}

    def share(self, group="g"):
        return "$share/%s/%s" % (group, self.topic())

    def publisher(self):
        pub = self.raw_v5()
        pub.mid = 0

        def send(payload, qos=1, properties=()):
            pub.mid += 1
            pub.send(publish_v5(self.topic(), payload, qos=qos, mid=pub.mid,
                                properties=properties))
            pub.expect_v5("PUBACK", mid=pub.mid)  # routed before the next one is sent
        pub.publish = send
        return pub

    def test_round_robin_in_subscription_order_both_versions(self):
        t = self.topic()
        members = [Member(self, self.share(), v5=True), Member(self, self.share(), v5=False),
                   Member(self, self.share(), v5=True)]
        pub = self.publisher()
        user = [(P.USER_PROPERTY, ("k", "v"))]
        for i in range(6):
            pub.publish(b"m%d" % i, properties=user)
        for n, member in enumerate(members):
            for i in (n, n + 3):
                msg = member.expect(t, b"m%d" % i)
                if member.v5:  # the v5 members keep the properties, the 3.1.1 one has none
                    self.assertEqual(msg["props"].user(), [("k", "v")])
        for member in members:
            member.c.expect_nothing_before_ping()

    def test_paho_311_members_share_the_load(self):
        t = self.topic()
        members = [self.client() for _ in range(2)]
        for m in members:
            self.assertEqual(m.subscribe(self.share(), 1), [1])
        pub = self.publisher()
        for i in range(10):
            pub.publish(b"m%d" % i)
        wait = [m.wait_count(5, t) for m in members]
        got = sorted(p.payload for msgs in wait for p in msgs)
        self.assertEqual(got, sorted(b"m%d" % i for i in range(10)))

    def test_groups_and_ordinary_subscriptions_each_get_a_copy(self):
        t = self.topic()
        g1, g2 = Member(self, self.share("g1")), Member(self, self.share("g2"), v5=False)
        plain = Member(self, t)
        pub = self.publisher()
        pub.publish(b"x")
        for member in (g1, g2, plain):
            member.expect(t, b"x")

    def test_shared_and_ordinary_subscription_of_one_session_both_deliver(self):
        t = self.topic()
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.share(), 0), (t, 0)]))
        c.expect_v5("SUBACK", codes=[0, 0])
        self.publisher().publish(b"twice")
        c.expect(publish_v5(t, b"twice"))
        c.expect(publish_v5(t, b"twice"))
        c.expect_nothing_before_ping()

    def test_unsubscribed_member_gets_no_more(self):
        t = self.topic()
        a, b = Member(self, self.share()), Member(self, self.share())
        a.c.send(unsubscribe_v5(2, [self.share()]))
        a.c.expect_v5("UNSUBACK", mid=2, codes=[RC.SUCCESS])
        pub = self.publisher()
        for i in range(3):
            pub.publish(b"m%d" % i)
        for i in range(3):
            b.expect(t, b"m%d" % i)
        a.c.expect_nothing_before_ping()

    def test_subscription_identifier_on_shared_delivery(self):
        t = self.topic()
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.share(), 0)], [(P.SUBSCRIPTION_IDENTIFIER, 9)]))
        c.expect_v5("SUBACK", codes=[0])
        self.publisher().publish(b"x")
        c.expect(publish_v5(t, b"x", properties=[(P.SUBSCRIPTION_IDENTIFIER, 9)]))

    @meshmq_only("Mosquitto 2.0.11 keeps queueing for the offline member")
    def test_offline_members_skipped(self):
        t = self.topic()
        a = Member(self, self.share())
        b = Member(self, self.share(), properties=[(P.SESSION_EXPIRY_INTERVAL, 60)])
        c = Member(self, self.share(), v5=False)
        b.c.send(disconnect_v5())
        b.c.expect_closed()
        pub = self.publisher()
        for i in range(4):
            pub.publish(b"m%d" % i)
        a.expect(t, b"m0")
        c.expect(t, b"m1")
        a.expect(t, b"m2")
        c.expect(t, b"m3")
        back = self.raw_v5(b.client_id, clean_start=False, session_present=1,
                           properties=[(P.SESSION_EXPIRY_INTERVAL, 60)])
        back.expect_nothing_before_ping()  # nothing was queued for it
        b.c = back
        for i in range(4, 7):
            pub.publish(b"m%d" % i)
        a.expect(t, b"m4")  # the rotation continues from the first member...
        b.expect(t, b"m5")  # ...and includes the returning one again
        c.expect(t, b"m6")

    def test_all_members_offline_messages_queued_round_robin(self):
        t = self.topic()
        expiry = [(P.SESSION_EXPIRY_INTERVAL, 60)]
        members = [Member(self, self.share(), properties=expiry) for _ in range(2)]
        for m in members:
            m.c.send(disconnect_v5())
            m.c.expect_closed()
        pub = self.publisher()
        pub.publish(b"m0")
        pub.publish(b"m1")
        for i, m in enumerate(members):
            m.c = self.raw_v5(m.client_id, clean_start=False, session_present=1,
                              properties=expiry)
            m.expect(t, b"m%d" % i)
            m.c.expect_nothing_before_ping()

    @meshmq_only("Mosquitto 2.0.11 does not redeliver a leaving member's messages")
    def test_in_flight_and_queued_redelivered_to_another_member(self):
        t = self.topic()
        sys = SysWatcher(self)
        before = sys.counter_now("shared_redeliveries")
        leaving = Member(self, self.share(), properties=[(P.RECEIVE_MAXIMUM, 1)])
        staying = Member(self, self.share(), v5=False)
        pub = self.publisher()
        for i in range(3):
            pub.publish(b"m%d" % i)
        leaving.expect(t, b"m0", ack=False)  # in flight, never acked
        staying.expect(t, b"m1")
        leaving.c.expect_nothing_before_ping()  # m2 waits behind its full window
        leaving.c.abort()
        self.assertEqual(sorted(staying.collect(2)), [b"m0", b"m2"])
        staying.c.expect_nothing_before_ping()
        sys.wait_counter_at_least("shared_redeliveries", before + 2)

    @meshmq_only("Mosquitto 2.0.11 does not redeliver a leaving member's messages")
    def test_qos2_in_flight_redelivered_to_another_member(self):
        t = self.topic()
        leaving = Member(self, self.share(), v5=False, qos=2)
        staying = Member(self, self.share(), qos=2)
        pub = self.publisher()
        pub.send(publish_v5(t, b"exactly-once", qos=2, mid=1))
        pub.expect_v5("PUBREC", mid=1)
        pub.send(pubrel_v5(1))
        pub.expect_v5("PUBCOMP", mid=1)
        leaving.expect(t, b"exactly-once", qos=2)  # no PUBREC
        leaving.c.abort()
        self.assertEqual(staying.payloads(b"exactly-once"), [b"exactly-once"])

    @meshmq_only("Mosquitto 2.0.11 sends retained messages to shared subscriptions")
    def test_retained_not_sent_on_shared_subscribe(self):
        t = self.topic()
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"kept", qos=1, mid=1, retain=True))
        pub.expect_v5("PUBACK", mid=1)
        self.addCleanup(lambda: pub.send(publish_v5(t, b"", retain=True)))
        for v5 in (True, False):
            with self.subTest(v5=v5):
                member = Member(self, self.share(), v5=v5)
                member.c.expect_nothing_before_ping()

    @meshmq_only("Mosquitto 2.0.11 disconnects or accepts bad share names")
    def test_invalid_share_names_refused(self):
        bad = ["$share//" + self.topic(), "$share/g+/" + self.topic(),
               "$share/g#/" + self.topic(), "$share/g", "$share/g/", "$share/g/a/#/b"]
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(f, 1) for f in bad]))
        c.expect_v5("SUBACK", mid=1, codes=[RC.TOPIC_FILTER_INVALID] * len(bad))
        c311 = self.raw_connected()
        c311.send(subscribe(1, [(f, 1) for f in bad]))
        c311.expect(suback(1, [0x80] * len(bad)))

    @meshmq_only("Mosquitto 2.0.11 accepts it (MQTT-3.8.3-4)")
    def test_no_local_on_shared_subscription_protocol_error(self):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.share(), sub_options(1, no_local=True))]))
        c.expect_disconnect_v5(RC.PROTOCOL_ERROR)


if __name__ == "__main__":
    unittest.main()
