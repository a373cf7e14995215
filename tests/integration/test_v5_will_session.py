"""MQTT 5 sessions and wills: Session Expiry Interval (incl. changing it on DISCONNECT,
0xFFFFFFFF), Clean Start, Session Present, Will Delay Interval, will properties, DISCONNECT
with Will Message (MQTT 5.0 sections 3.1.2.4, 3.1.2.11.2, 3.1.3.2, 3.14.2, 4.1)."""

import time
import unittest

from meshmq_harness import (RC, BrokerTestCase, P, SysWatcher, connack, connect,
                            disconnect_v5, meshmq_only, puback_v5, publish_v5, subscribe, suback,
                            subscribe_v5, unique_id)


def expiry(seconds):
    return [(P.SESSION_EXPIRY_INTERVAL, seconds)]


class V5Helpers:

    def watcher(self, topic, qos=1):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(topic, qos)]))
        c.expect_v5("SUBACK", codes=[qos])
        return c

    def publish_qos1(self, topic, payload):
        pub = self.raw_v5()
        pub.send(publish_v5(topic, payload, qos=1, mid=1))
        pub.expect_v5("PUBACK", mid=1)

    def left(self, c, how="disconnect"):
        """Ends a connection: a clean DISCONNECT, or a network failure (RST)."""
        if how == "disconnect":
            c.send(disconnect_v5())
            c.expect_closed()
        else:
            c.abort()


class SessionExpiryTest(V5Helpers, BrokerTestCase):

    def _subscribed(self, client_id, topic, **connect_kwargs):
        c = self.raw_v5(client_id, **connect_kwargs)
        c.send(subscribe_v5(1, [(topic, 1)]))
        c.expect_v5("SUBACK", codes=[1])
        return c

    def test_absent_expiry_ends_session_with_the_connection(self):
        t, client_id = self.topic(), unique_id()
        self.left(self._subscribed(client_id, t))
        c = self.raw_v5(client_id, clean_start=False, session_present=0,
                        properties=expiry(60))
        self.publish_qos1(t, b"nobody-home")
        c.expect_nothing_before_ping()

    def test_expiry_keeps_session_and_queues_while_away(self):
        t, client_id = self.topic(), unique_id()
        for how in ("disconnect", "abort"):
            with self.subTest(how):
                self.left(self._subscribed(client_id, t, properties=expiry(60)), how)
                self.publish_qos1(t, b"while-away-" + how.encode())
                c = self.raw_v5(client_id, clean_start=False, session_present=1,
                                properties=expiry(60))
                msg = c.expect_publish_v5(t, b"while-away-" + how.encode(), qos=1)
                c.send(puback_v5(msg["mid"]))
                c.send(disconnect_v5())
                c.expect_closed()

    def test_clean_start_discards_the_session(self):
        t, client_id = self.topic(), unique_id()
        self.left(self._subscribed(client_id, t, properties=expiry(60)))
        self.publish_qos1(t, b"queued")
        c = self.raw_v5(client_id, clean_start=True, session_present=0, properties=expiry(60))
        c.expect_nothing_before_ping()  # neither the queued message...
        self.publish_qos1(t, b"later")
        c.expect_nothing_before_ping()  # ...nor the subscription survived

    def test_never_expiring_session(self):
        t, client_id = self.topic(), unique_id()
        self.left(self._subscribed(client_id, t, properties=expiry(0xFFFFFFFF)), "abort")
        c = self.raw_v5(client_id, clean_start=False, session_present=1)
        c.send(disconnect_v5(0, expiry(0)))  # ends it: no leftovers for other tests
        c.expect_closed()

    def test_disconnect_shortens_expiry_to_zero(self):
        t, client_id = self.topic(), unique_id()
        c = self._subscribed(client_id, t, properties=expiry(60))
        c.send(disconnect_v5(0, expiry(0)))
        c.expect_closed()
        self.raw_v5(client_id, clean_start=False, session_present=0)

    def test_disconnect_lengthens_expiry(self):
        t, client_id = self.topic(), unique_id()
        c = self._subscribed(client_id, t, properties=expiry(1))
        c.send(disconnect_v5(0, expiry(60)))
        c.expect_closed()
        time.sleep(2.5)  # the original 1 s interval (and some clock slack) has to pass
        c = self.raw_v5(client_id, clean_start=False, session_present=1)
        c.send(disconnect_v5())

    def test_disconnect_expiry_from_zero_to_nonzero_is_protocol_error(self):
        c = self.raw_v5()  # expiry absent == 0
        c.send(disconnect_v5(0, expiry(30)))
        c.expect_disconnect_v5(RC.PROTOCOL_ERROR)  # MQTT-3.14.2-2

    def test_311_and_5_share_sessions(self):
        t = self.topic()
        # 3.1.1 clean session 0 == never expires: a v5 client resumes it.
        client_id = unique_id()
        c = self.raw()
        c.send(connect(client_id, clean=False))
        c.expect(connack(0, 0))
        c.send(subscribe(1, [(t, 1)]))
        c.expect(suback(1, [1]))
        c.abort()
        self.publish_qos1(t, b"for-v5")
        v5 = self.raw_v5(client_id, clean_start=False, session_present=1,
                         properties=expiry(60))
        v5.send(puback_v5(v5.expect_publish_v5(t, b"for-v5", qos=1)["mid"]))
        # A v5 session with an expiry is resumed by 3.1.1 clean session 0.
        self.left(v5)
        self.publish_qos1(t, b"for-311")
        c = self.raw()
        c.send(connect(client_id, clean=False))
        c.expect(connack(1, 0))
        c.expect_publish(t, b"for-311", qos=1, dup=False)


class WillTest(V5Helpers, BrokerTestCase):

    broker_flags = {"sys_interval": "1s"}

    WILL_PROPERTIES = [
        (P.USER_PROPERTY, ("z", "last")), (P.PAYLOAD_FORMAT_INDICATOR, 1),
        (P.USER_PROPERTY, ("a", "first")), (P.CONTENT_TYPE, "text/plain"),
        (P.RESPONSE_TOPIC, "status/replies"), (P.CORRELATION_DATA, b"\x00corr"),
        (P.MESSAGE_EXPIRY_INTERVAL, 600), (P.USER_PROPERTY, ("z", "last")),
    ]

    def with_will(self, topic, payload, delay=None, session_expiry=None, client_id=None,
                  will_properties=()):
        props = list(will_properties)
        if delay is not None:
            props.append((P.WILL_DELAY_INTERVAL, delay))
        return self.raw_v5(client_id, will_topic=topic, will_payload=payload, will_qos=1,
                           will_properties=props,
                           properties=expiry(session_expiry) if session_expiry else [])

    def test_will_properties_travel_with_the_will(self):
        t = self.topic()
        watcher = self.watcher(t)
        c = self.with_will(t, "gone".encode(), will_properties=self.WILL_PROPERTIES)
        c.abort()
        msg = watcher.expect_publish_v5(t, b"gone", qos=1)
        props = msg["props"]
        self.assertEqual(props.user(), [("z", "last"), ("a", "first"), ("z", "last")])
        self.assertEqual(props.get(P.PAYLOAD_FORMAT_INDICATOR), 1)
        self.assertEqual(props.get(P.CONTENT_TYPE), "text/plain")
        self.assertEqual(props.get(P.RESPONSE_TOPIC), "status/replies")
        self.assertEqual(props.get(P.CORRELATION_DATA), b"\x00corr")
        self.assertTrue(590 <= props.get(P.MESSAGE_EXPIRY_INTERVAL) <= 600, props)
        self.assertNotIn(P.WILL_DELAY_INTERVAL, props.ids())

    def test_will_delay(self):
        t = self.topic()
        watcher = self.watcher(t)
        c = self.with_will(t, b"late", delay=1, session_expiry=30)
        c.abort()
        lost = time.monotonic()
        watcher.expect_publish_v5(t, b"late", qos=1)
        self.assertGreaterEqual(time.monotonic() - lost, 0.9, "will not delayed")

    def test_will_cancelled_by_reconnecting_in_time(self):
        t = self.topic()
        watcher = self.watcher(t)
        client_id = unique_id()
        c = self.with_will(t, b"cancelled", delay=1, session_expiry=30, client_id=client_id)
        clock = self.with_will(t, b"clock", delay=2, session_expiry=30)  # due after the other
        c.abort()
        clock.abort()
        back = self.raw_v5(client_id, clean_start=False, session_present=1,
                           properties=expiry(30))
        got = [m["payload"] for m in watcher.collect_publishes(b"clock", v5=True)]
        self.assertEqual(got, [b"clock"])
        back.send(disconnect_v5(0, expiry(0)))

    def test_will_published_when_session_ends_before_the_delay(self):
        t = self.topic()
        watcher = self.watcher(t)
        client_id = unique_id()
        c = self.with_will(t, b"session-over", delay=30, session_expiry=1, client_id=client_id)
        c.abort()
        lost = time.monotonic()
        watcher.expect_publish_v5(t, b"session-over", qos=1, timeout=5)
        self.assertGreaterEqual(time.monotonic() - lost, 0.9, "session ended too early")
        self.raw_v5(client_id, clean_start=False, session_present=0)  # and it is gone

    @meshmq_only("Mosquitto 2.0.11 waits for the delay although the session has ended")
    def test_will_delay_with_no_session_expiry_publishes_at_once(self):
        t = self.topic()
        watcher = self.watcher(t)
        c = self.with_will(t, b"now", delay=30)  # the session ends with the connection
        c.abort()
        watcher.expect_publish_v5(t, b"now", qos=1, timeout=3)

    def test_disconnect_with_will_message_publishes_it(self):
        t = self.topic()
        watcher = self.watcher(t)
        c = self.with_will(t, b"on-purpose")
        c.send(disconnect_v5(RC.DISCONNECT_WITH_WILL))
        c.expect_closed()
        watcher.expect_publish_v5(t, b"on-purpose", qos=1)

    def test_normal_disconnect_discards_will(self):
        t = self.topic()
        watcher = self.watcher(t)
        c = self.with_will(t, b"never")
        c.send(disconnect_v5())
        c.expect_closed()
        self.publish_qos1(t, b"sentinel")
        got = [m["payload"] for m in watcher.collect_publishes(b"sentinel", v5=True)]
        self.assertEqual(got, [b"sentinel"])

    def test_311_subscriber_gets_a_v5_will(self):
        t = self.topic()
        watcher = self.raw_connected()
        watcher.send(subscribe(1, [(t, 1)]))
        watcher.expect(suback(1, [1]))
        c = self.with_will(t, b"bye", will_properties=self.WILL_PROPERTIES)
        c.abort()
        watcher.expect_publish(t, b"bye", qos=1)  # exact 3.1.1 bytes, no properties

    @meshmq_only("meshmq's $SYS/broker/counters/wills_delayed and sessions_expired")
    def test_delayed_will_and_expired_session_counted(self):
        sys = SysWatcher(self)
        wills, sessions = sys.counter_now("wills_delayed"), sys.counter_now("sessions_expired")
        t = self.topic()
        watcher = self.watcher(t)
        c = self.with_will(t, b"counted", delay=1, session_expiry=1)
        c.abort()
        watcher.expect_publish_v5(t, b"counted", qos=1)
        sys.wait_counter_at_least("wills_delayed", wills + 1)
        sys.wait_counter_at_least("sessions_expired", sessions + 1)


if __name__ == "__main__":
    unittest.main()
