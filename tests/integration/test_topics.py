"""Topic names, filters and wildcards, '$' topics, and $SYS (MQTT 3.1.1 section 4.7)."""

import unittest

from meshmq_harness import (BrokerTestCase, SysWatcher, meshmq_only, publish, puback,
                            subscribe, suback, unique_id, wait_for)

# (filter, topics it must match) over the fixed topic set below; everything else must not match.
TOPICS = ["sport", "sport/", "sport/tennis", "sport/tennis/player1",
          "sport/tennis/player1/ranking", "Sport/tennis", "SPORT", "/finance", "finance",
          "a//b", "a/x/b", "a/b", "/", "$app/sport"]
MATCHES = {
    "sport/#": {"sport", "sport/", "sport/tennis", "sport/tennis/player1",
                "sport/tennis/player1/ranking"},
    "sport/tennis/+": {"sport/tennis/player1"},
    "sport/+": {"sport/", "sport/tennis"},
    "+": {"sport", "SPORT", "finance"},
    "+/+": {"sport/", "sport/tennis", "Sport/tennis", "/finance", "/", "a/b"},
    "/+": {"/finance", "/"},
    "+/tennis/#": {"sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking",
                   "Sport/tennis"},
    "a/+/b": {"a//b", "a/x/b"},
    "a//b": {"a//b"},
    "Sport/tennis": {"Sport/tennis"},
    "#": set(TOPICS) - {"$app/sport"},
    "$app/#": {"$app/sport"},
    "+/sport": set(),
}


class TopicMatchingTest(BrokerTestCase):
    """Runs in a broker of its own: the '#' subscriber sees every non-$ message."""

    def test_wildcard_matching_table(self):
        sentinel = "zz-sentinel-" + unique_id()
        subs = {}
        for flt in MATCHES:
            c = self.client()
            self.assertEqual(c.subscribe([(flt, 1), (sentinel, 1)]), [1, 1], flt)
            subs[flt] = c
        pub = self.client()
        for topic in TOPICS:
            pub.publish(topic, topic.encode(), qos=1)
        pub.publish(sentinel, b"end", qos=1)
        for flt, c in subs.items():
            with self.subTest(filter=flt):
                c.wait_message(sentinel)
                got = {m.topic for m in c.received() if m.topic != sentinel}
                self.assertEqual(got, MATCHES[flt])


class TopicTest(BrokerTestCase):

    broker_flags = {"sys_interval": "1s"}

    def test_topics_are_case_sensitive(self):
        t = self.topic()
        sub = self.client()
        sub.subscribe(t + "/Case/Topic", 1)
        pub = self.client()
        pub.publish(t + "/case/topic", b"lower", qos=1)
        pub.publish(t + "/CASE/TOPIC", b"upper", qos=1)
        pub.publish(t + "/Case/Topic", b"exact", qos=1)
        sub.wait_message(t + "/Case/Topic", b"exact")
        self.assertEqual([m.payload for m in sub.received()], [b"exact"])

    def test_dollar_topics_not_matched_by_hash_or_leading_plus(self):
        # MQTT-4.7.2-1: '#' and '+/...' do not match topics starting with '$'.
        sentinel = self.topic("sentinel")
        app = "$" + unique_id("app")
        hash_sub = self.client()
        hash_sub.subscribe([("#", 1)])
        plus_sub = self.client()
        plus_sub.subscribe([("+/x", 1), (sentinel, 1)])
        dollar_sub = self.client()
        dollar_sub.subscribe([(app + "/#", 1), (app + "/+", 1)])
        pub = self.client()
        pub.publish(app + "/x", b"dollar", qos=1)
        pub.publish(sentinel, b"sentinel", qos=1)
        self.assertEqual(dollar_sub.wait_message(app + "/x").payload, b"dollar")
        hash_sub.wait_message(sentinel)
        plus_sub.wait_message(sentinel)
        self.assertEqual([m.topic for m in hash_sub.received() if m.topic.startswith("$")], [])
        self.assertEqual(plus_sub.received(app + "/x"), [])

    def test_sys_topics_matched_by_sys_filter_not_by_hash(self):
        sys_sub = self.client()
        sys_sub.subscribe("$SYS/#", 0)
        sys_sub.wait_message("$SYS/broker/version")
        # Retained $SYS messages would arrive right after SUBACK, before the sentinel.
        hash_sub = self.client()
        hash_sub.subscribe("#", 0)
        sentinel = self.topic("sentinel")
        self.client().publish(sentinel, b"s", qos=1)
        hash_sub.wait_message(sentinel)
        self.assertEqual([m.topic for m in hash_sub.received() if m.topic.startswith("$")], [])

    def test_standard_sys_topics_published(self):
        sys = SysWatcher(self)
        for name in ("version", "uptime", "clients/connected", "messages/received",
                     "messages/sent"):
            with self.subTest(topic=name):
                sys.client.wait_message("$SYS/broker/" + name, timeout=5)
        version = sys.latest("$SYS/broker/version")
        self.assertTrue(version, "empty $SYS/broker/version")
        # clients/connected counts live clients: it rises when more connect. The base is a fresh
        # publication, not the retained one a new watcher gets first: that can be a second old,
        # from while clients of an earlier test were still connected.
        topic = "$SYS/broker/clients/connected"
        seen = len(sys.client.received(topic))
        base = int(wait_for(
            lambda: next((m for m in sys.client.received(topic)[seen:] if not m.retain), None),
            timeout=5, message="no fresh " + topic).payload)
        extra = [self.client() for _ in range(3)]
        wait_for(lambda: int(sys.latest("$SYS/broker/clients/connected")) >= base + 3,
                 timeout=5, message="clients/connected did not rise by 3")
        self.assertTrue(extra)

    @meshmq_only("meshmq's $SYS/broker/counters/* topics")
    def test_counter_topics_published(self):
        sys = SysWatcher(self)
        names = ["packets_malformed", "packets_too_large", "connections_refused_max",
                 "messages_dropped_queue_full", "messages_dropped_output_buffer",
                 "connect_timeouts", "keepalive_timeouts", "publish_denied", "subscribe_denied",
                 "auth_failures", "takeovers", "wills_published"]
        for name in names:
            with self.subTest(counter=name):
                self.assertGreaterEqual(sys.counter_now(name), 0)

    def test_client_publish_to_sys_is_dropped(self):
        fake = "$SYS/broker/" + unique_id("fake")
        sentinel = self.topic("sentinel")
        sys_sub = self.client()
        sys_sub.subscribe([("$SYS/#", 1), (sentinel, 1)])
        pub = self.raw_connected()
        pub.send(publish(fake, b"spoofed", qos=1, mid=1))
        pub.expect(puback(1))
        pub.send(publish(sentinel, b"sentinel", qos=1, mid=2))
        pub.expect(puback(2))
        sys_sub.wait_message(sentinel)
        self.assertEqual(sys_sub.received(fake), [])

    def test_publish_with_wildcard_topic_closes_connection(self):
        # MQTT-3.3.2-2: topic names must not contain wildcards.
        for bad in ("+", "#", "a/+/b", "a/#", "+/x"):
            with self.subTest(topic=bad):
                c = self.raw_connected()
                c.send(publish(self.topic() + "/" + bad, b"x", qos=0))
                c.expect_closed()
        self.assert_broker_serves()

    def test_wildcard_publish_not_delivered(self):
        t = self.topic()
        sub = self.client()
        sub.subscribe([("#", 0)])
        c = self.raw_connected()
        c.send(publish(t + "/+", b"wild", qos=1, mid=1))
        c.expect_closed()
        self.client().publish(t + "/sentinel", b"s", qos=1)
        sub.wait_message(t + "/sentinel")
        self.assertEqual([m for m in sub.received() if m.payload == b"wild"], [])

    def test_invalid_utf8_topic_closes_connection(self):
        # MQTT-1.5.3-1: ill-formed UTF-8 (here a lone continuation byte and an overlong NUL).
        for bad in (b"a/\xff\xfe", b"a/\x80", b"a/\xc0\x80", b"a/\xed\xa0\x80"):
            with self.subTest(topic=bad):
                c = self.raw_connected()
                c.send(publish(self.topic().encode() + b"/" + bad, b"x"))
                c.expect_closed()
        self.assert_broker_serves()

    def test_nul_in_topic_closes_connection(self):
        # MQTT-1.5.3-2: U+0000 is not allowed in a topic name.
        c = self.raw_connected()
        c.send(publish(self.topic().encode() + b"/a\x00b", b"x"))
        c.expect_closed()
        self.assert_broker_serves()

    def test_nul_in_subscribe_filter_closes_connection(self):
        c = self.raw_connected()
        c.send(subscribe(1, [(self.topic().encode() + b"/\x00", 0)]))
        c.expect_closed()
        self.assert_broker_serves()

    def test_utf8_topics_delivered_intact(self):
        t = self.topic("caf\u00e9/\u6e29\u5ea6/\U0001F600")
        c = self.raw_connected()
        c.send(subscribe(1, [(t, 0)]))
        c.expect(suback(1, [0]))
        c.send(publish(t, "\u00fcnicode".encode()))
        c.expect_publish(t, "\u00fcnicode".encode())


if __name__ == "__main__":
    unittest.main()
