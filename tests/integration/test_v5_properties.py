"""MQTT 5 PUBLISH: properties passed through, Message Expiry Interval, PUBACK / PUBREC /
PUBCOMP / PUBREL reason codes, and the DISCONNECT a bad PUBLISH gets (MQTT 5.0 sections
2.2.2.2, 3.3-3.7, 4.13)."""

import time
import unittest

from meshmq_harness import (RC, BrokerTestCase, P, SysWatcher, disconnect_v5, meshmq_only,
                            packet, publish, publish_v5, puback_v5, pubcomp_v5, pubrec_v5,
                            pubrel_v5, subscribe, suback, subscribe_v5, unique_id,
                            unsubscribe_v5)

# Order and duplicates matter (MQTT-3.3.2-18); non-ASCII and empty values too.
USER_PROPERTIES = [("b", "2"), ("a", "1"), ("b", "2"), ("ключ", "значение"), ("empty", "")]
APPLICATION_PROPERTIES = [
    (P.USER_PROPERTY, USER_PROPERTIES[0]), (P.PAYLOAD_FORMAT_INDICATOR, 1),
    (P.USER_PROPERTY, USER_PROPERTIES[1]), (P.CONTENT_TYPE, "application/json; charset=utf-8"),
    (P.RESPONSE_TOPIC, "replies/client-1"), (P.USER_PROPERTY, USER_PROPERTIES[2]),
    (P.CORRELATION_DATA, b"\x00\x01\xfe\xff"), (P.USER_PROPERTY, USER_PROPERTIES[3]),
    (P.USER_PROPERTY, USER_PROPERTIES[4]),
]


class V5Helpers:

    def v5_subscriber(self, topic, qos=1, client_id=None, **connect_kwargs):
        c = self.raw_v5(client_id, **connect_kwargs)
        c.send(subscribe_v5(1, [(topic, qos)]))
        c.expect_v5("SUBACK", mid=1, codes=[qos])
        return c

    def assert_application_properties(self, props):
        self.assertEqual(props.user(), USER_PROPERTIES)
        self.assertEqual(props.get(P.PAYLOAD_FORMAT_INDICATOR), 1)
        self.assertEqual(props.get(P.CONTENT_TYPE), "application/json; charset=utf-8")
        self.assertEqual(props.get(P.RESPONSE_TOPIC), "replies/client-1")
        self.assertEqual(props.get(P.CORRELATION_DATA), b"\x00\x01\xfe\xff")


class PublishPropertiesTest(V5Helpers, BrokerTestCase):

    def test_application_properties_passed_through(self):
        t = self.topic()
        subs = [self.v5_subscriber(t, qos) for qos in (0, 1)]
        pub = self.raw_v5()
        pub.send(publish_v5(t, b'{"x": 1}', qos=1, mid=1, properties=APPLICATION_PROPERTIES))
        pub.expect_v5("PUBACK", mid=1, reason=RC.SUCCESS)
        for qos, sub in zip((0, 1), subs):
            with self.subTest(subscriber_qos=qos):
                msg = sub.expect_publish_v5(t, b'{"x": 1}', qos=qos)
                self.assert_application_properties(msg["props"])
                # Nothing the publisher did not send and the subscriber did not ask for.
                self.assertEqual(sorted(set(msg["props"].ids())),
                                 sorted({i for i, _ in APPLICATION_PROPERTIES}))

    def test_message_without_properties_gets_none(self):
        t = self.topic()
        sub = self.v5_subscriber(t, 0)
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"bare"))
        sub.expect(publish_v5(t, b"bare"))  # exact bytes: property length 0

    def test_311_subscriber_gets_the_message_without_properties(self):
        t = self.topic()
        sub = self.raw_connected()
        sub.send(subscribe(1, [(t, 1)]))
        sub.expect(suback(1, [1]))
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"from-v5", qos=1, mid=1, properties=APPLICATION_PROPERTIES +
                            [(P.MESSAGE_EXPIRY_INTERVAL, 60)]))
        pub.expect_v5("PUBACK", mid=1, reason=RC.SUCCESS)
        sub.expect_publish(t, b"from-v5", qos=1)  # exact 3.1.1 bytes

    def test_v5_subscriber_gets_311_message_without_properties(self):
        t = self.topic()
        sub = self.v5_subscriber(t, 1)
        pub = self.raw_connected()
        pub.send(publish(t, b"from-311", qos=1, mid=1))
        msg = sub.expect_publish_v5(t, b"from-311", qos=1)
        self.assertEqual(msg["props"], [])

    def test_puback_reason_codes(self):
        t = self.topic()
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"nobody", qos=1, mid=1))
        pub.expect_v5("PUBACK", mid=1, reason=RC.NO_MATCHING_SUBSCRIBERS)
        self.v5_subscriber(t, 1)
        pub.send(publish_v5(t, b"somebody", qos=1, mid=2))
        pub.expect_v5("PUBACK", mid=2, reason=RC.SUCCESS)

    @meshmq_only("Mosquitto 2.0.11 answers PUBREC 0x00 without subscribers")
    def test_pubrec_no_matching_subscribers(self):
        pub = self.raw_v5()
        pub.send(publish_v5(self.topic(), b"nobody", qos=2, mid=1))
        pub.expect_v5("PUBREC", mid=1, reason=RC.NO_MATCHING_SUBSCRIBERS)
        pub.send(pubrel_v5(1))
        pub.expect_v5("PUBCOMP", mid=1, reason=RC.SUCCESS)

    def test_retained_message_without_subscribers_is_stored(self):
        t = self.topic()
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"kept", qos=1, mid=1, retain=True,
                            properties=[(P.CONTENT_TYPE, "text/plain")]))
        pub.expect_v5("PUBACK", mid=1, reason=RC.NO_MATCHING_SUBSCRIBERS)
        sub = self.raw_v5()
        sub.send(subscribe_v5(1, [(t, 1)]))
        sub.expect_v5("SUBACK", codes=[1])
        msg = sub.expect_publish_v5(t, b"kept", retain=True, qos=1)
        self.assertEqual(msg["props"].get(P.CONTENT_TYPE), "text/plain")
        pub.send(publish_v5(t, b"", qos=1, mid=2, retain=True))  # clean up
        pub.expect_v5("PUBACK", mid=2)

    def test_publish_to_sys_not_authorized(self):
        pub = self.raw_v5()
        pub.send(publish_v5("$SYS/broker/fake", b"x", qos=1, mid=1))
        pub.expect_v5("PUBACK", mid=1, reason=RC.NOT_AUTHORIZED)
        pub.ping()

    @meshmq_only("Mosquitto 2.0.11 does not validate payloads against the indicator")
    def test_payload_format_invalid_dropped(self):
        t = self.topic()
        sub = self.v5_subscriber(t, 1)
        pub = self.raw_v5()
        utf8 = [(P.PAYLOAD_FORMAT_INDICATOR, 1)]
        pub.send(publish_v5(t, b"\xff\xfe not utf-8", qos=1, mid=1, properties=utf8))
        pub.expect_v5("PUBACK", mid=1, reason=RC.PAYLOAD_FORMAT_INVALID)
        pub.send(publish_v5(t, b"\xc3\xa9\xed\xa0\x80", qos=2, mid=2, properties=utf8))  # surrogate
        pub.expect_v5("PUBREC", mid=2, reason=RC.PAYLOAD_FORMAT_INVALID)
        pub.send(publish_v5(t, b"\xff binary is fine unflagged", qos=1, mid=3))
        pub.expect_v5("PUBACK", mid=3, reason=RC.SUCCESS)
        pub.send(publish_v5(t, "valid: é".encode(), qos=1, mid=4, properties=utf8))
        pub.expect_v5("PUBACK", mid=4, reason=RC.SUCCESS)
        got = [m["payload"] for m in sub.collect_publishes("valid: é".encode(), v5=True)]
        self.assertEqual(got, [b"\xff binary is fine unflagged", "valid: é".encode()])

    def test_repeated_qos2_before_pubrel_not_routed_again(self):
        t = self.topic()
        sub = self.v5_subscriber(t, 2)
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"once", qos=2, mid=7))
        pub.expect_v5("PUBREC", mid=7, reason=RC.SUCCESS)
        pub.send(publish_v5(t, b"once", qos=2, mid=7, dup=True))
        pub.expect_v5("PUBREC", mid=7, reason=RC.SUCCESS)
        pub.send(pubrel_v5(7))
        pub.expect_v5("PUBCOMP", mid=7, reason=RC.SUCCESS)
        pub.send(publish_v5(t, b"sentinel", qos=1, mid=8))
        pub.expect_v5("PUBACK", mid=8)
        got = [m["payload"] for m in sub.collect_publishes(b"sentinel", v5=True)]
        self.assertEqual(got, [b"once", b"sentinel"])

    @meshmq_only("Mosquitto 2.0.11 answers an unknown PUBREL with PUBCOMP 0x00")
    def test_pubrel_for_unknown_packet_id(self):
        c = self.raw_v5()
        c.send(pubrel_v5(0x4242))
        c.expect_v5("PUBCOMP", mid=0x4242, reason=RC.PACKET_ID_NOT_FOUND)

    @meshmq_only("Mosquitto 2.0.11 answers an unknown PUBREC with PUBREL 0x00")
    def test_pubrec_for_unknown_packet_id(self):
        c = self.raw_v5()
        c.send(pubrec_v5(0x4243))
        c.expect_v5("PUBREL", mid=0x4243, reason=RC.PACKET_ID_NOT_FOUND)

    def test_acks_with_reason_codes_and_properties_accepted(self):
        # A subscriber may answer with a failure code and properties (section 3.4.2).
        t = self.topic()
        sub = self.v5_subscriber(t, 2)
        pub = self.raw_v5()
        for mid, qos in ((1, 1), (2, 2)):
            pub.send(publish_v5(t, b"m%d" % qos, qos=qos, mid=mid))
            pub.expect_v5("PUBACK" if qos == 1 else "PUBREC", mid=mid)
            if qos == 2:
                pub.send(pubrel_v5(mid))
                pub.expect_v5("PUBCOMP", mid=mid)
        reason_props = [(P.REASON_STRING, "not today"), (P.USER_PROPERTY, ("k", "v"))]
        m1 = sub.expect_publish_v5(t, b"m1", qos=1)
        sub.send(puback_v5(m1["mid"], 0x80, reason_props))
        m2 = sub.expect_publish_v5(t, b"m2", qos=2)
        sub.send(pubrec_v5(m2["mid"], 0x80, reason_props))  # ends the QoS 2 flow
        sub.expect_nothing_before_ping()
        pub.send(publish_v5(t, b"after", qos=1, mid=3))
        pub.expect_v5("PUBACK", mid=3)
        sub.expect_publish_v5(t, b"after", qos=1)


class BadPublishTest(BrokerTestCase):
    """A bad PUBLISH from a v5 client: DISCONNECT with a reason code, then close; the broker
    keeps serving everyone else."""

    def _expect_disconnect_for(self, pkt, reason):
        c = self.raw_v5()
        c.send(pkt)
        c.expect_disconnect_v5(reason)

    def test_property_not_valid_in_publish_is_malformed(self):
        t = self.topic()
        for name, props in (("Session Expiry Interval", [(P.SESSION_EXPIRY_INTERVAL, 1)]),
                            ("Receive Maximum", [(P.RECEIVE_MAXIMUM, 1)]),
                            ("Will Delay Interval", [(P.WILL_DELAY_INTERVAL, 1)]),
                            ("unknown identifier 0x7f", [(None, b"\x7f\x00")])):
            with self.subTest(name):
                self._expect_disconnect_for(publish_v5(t, b"x", qos=1, mid=1, properties=props),
                                            RC.MALFORMED)
        self.assert_broker_serves()

    def test_property_length_overrun_is_malformed(self):
        # Property Length 5 but only 2 bytes of packet follow.
        self._expect_disconnect_for(packet(0x32, b"\x00\x03a/b\x00\x01\x05\x01\x01"),
                                    RC.MALFORMED)
        self.assert_broker_serves()

    @meshmq_only("Mosquitto 2.0.11 closes without a DISCONNECT")
    def test_duplicate_property_is_protocol_error(self):
        t = self.topic()
        for name, prop in (("Payload Format Indicator", (P.PAYLOAD_FORMAT_INDICATOR, 0)),
                           ("Message Expiry Interval", (P.MESSAGE_EXPIRY_INTERVAL, 9)),
                           ("Content Type", (P.CONTENT_TYPE, "a")),
                           ("Response Topic", (P.RESPONSE_TOPIC, "r")),
                           ("Correlation Data", (P.CORRELATION_DATA, b"c")),
                           ("Topic Alias", (P.TOPIC_ALIAS, 1))):
            with self.subTest(name):
                self._expect_disconnect_for(
                    publish_v5(t, b"x", qos=1, mid=1, properties=[prop, prop]),
                    RC.PROTOCOL_ERROR)
        self.assert_broker_serves()

    @meshmq_only("Mosquitto 2.0.11 accepts it (MQTT-3.3.4-6)")
    def test_subscription_identifier_from_client_is_protocol_error(self):
        self._expect_disconnect_for(
            publish_v5(self.topic(), b"x", properties=[(P.SUBSCRIPTION_IDENTIFIER, 1)]),
            RC.PROTOCOL_ERROR)

    @meshmq_only("Mosquitto 2.0.11 sends 0x82")
    def test_wildcard_in_topic_name_invalid(self):
        for topic in (self.topic("+"), self.topic("#")):
            with self.subTest(topic):
                self._expect_disconnect_for(publish_v5(topic, b"x"), RC.TOPIC_NAME_INVALID)

    def test_empty_topic_without_alias_is_protocol_error(self):
        self._expect_disconnect_for(publish_v5("", b"x", qos=1, mid=1), RC.PROTOCOL_ERROR)
        self.assert_broker_serves()


class OtherPacketPropertiesTest(BrokerTestCase):
    """Properties on the other client packets: valid ones accepted, misplaced ones malformed
    (section 2.2.2.2), duplicates a protocol error."""

    REASON = [(P.REASON_STRING, "because"), (P.USER_PROPERTY, ("k", "v"))]

    def test_valid_properties_accepted_on_every_client_packet(self):
        t = self.topic()
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(t, 2)], [(P.USER_PROPERTY, ("k", "v"))]))
        c.expect_v5("SUBACK", mid=1, codes=[2])
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"x", qos=2, mid=2))
        pub.expect_v5("PUBREC", mid=2, reason=RC.SUCCESS)
        pub.send(pubrel_v5(2, 0, self.REASON))
        pub.expect_v5("PUBCOMP", mid=2, reason=RC.SUCCESS)
        msg = c.expect_publish_v5(t, b"x", qos=2)
        c.send(pubrec_v5(msg["mid"], 0, self.REASON))
        c.expect_v5("PUBREL", mid=msg["mid"], reason=RC.SUCCESS)
        c.send(pubcomp_v5(msg["mid"], 0, self.REASON))
        c.send(unsubscribe_v5(3, [t], [(P.USER_PROPERTY, ("k", "v"))]))
        c.expect_v5("UNSUBACK", mid=3, codes=[RC.SUCCESS])
        c.send(disconnect_v5(0, self.REASON))
        c.expect_closed()

    def test_property_not_valid_in_subscribe_or_unsubscribe_is_malformed(self):
        for name, pkt in (
                ("Topic Alias in SUBSCRIBE",
                 subscribe_v5(1, [(self.topic(), 0)], [(P.TOPIC_ALIAS, 1)])),
                ("Subscription Identifier in UNSUBSCRIBE",
                 unsubscribe_v5(1, [self.topic()], [(P.SUBSCRIPTION_IDENTIFIER, 1)]))):
            with self.subTest(name):
                c = self.raw_v5()
                c.send(pkt)
                c.expect_disconnect_v5(RC.MALFORMED)

    @meshmq_only("Mosquitto 2.0.11 closes without a DISCONNECT")
    def test_property_not_valid_in_ack_or_disconnect_is_malformed(self):
        for name, pkt in (("Content Type in PUBACK", puback_v5(1, 0, [(P.CONTENT_TYPE, "x")])),
                          ("Receive Maximum in DISCONNECT",
                           disconnect_v5(0, [(P.RECEIVE_MAXIMUM, 1)]))):
            with self.subTest(name):
                c = self.raw_v5()
                c.send(pkt)
                c.expect_disconnect_v5(RC.MALFORMED)

    @meshmq_only("Mosquitto 2.0.11 closes without a DISCONNECT")
    def test_duplicate_property_in_ack_is_protocol_error(self):
        c = self.raw_v5()
        c.send(puback_v5(1, 0, [(P.REASON_STRING, "a"), (P.REASON_STRING, "b")]))
        c.expect_disconnect_v5(RC.PROTOCOL_ERROR)


class PacketTooLargeTest(BrokerTestCase):

    broker_flags = {"max_packet_size": 1024}

    def test_oversize_publish_disconnected_packet_too_large(self):
        t = self.topic()
        bystander = self.raw_v5()
        bystander.send(subscribe_v5(1, [(t, 0)]))
        bystander.expect_v5("SUBACK", codes=[0])
        c = self.raw_v5()
        c.send(publish_v5(t, b"x" * 2000))
        c.expect_disconnect_v5(RC.PACKET_TOO_LARGE)
        bystander.send(publish_v5(t, b"small"))
        bystander.expect(publish_v5(t, b"small"))  # the oversize one was never delivered


class MessageExpiryTest(V5Helpers, BrokerTestCase):

    broker_flags = {"sys_interval": "1s"}

    def _offline_session(self, topic):
        client_id = unique_id()
        c = self.raw_v5(client_id, properties=[(P.SESSION_EXPIRY_INTERVAL, 60)])
        c.send(subscribe_v5(1, [(topic, 1)]))
        c.expect_v5("SUBACK", codes=[1])
        c.send(disconnect_v5())
        c.expect_closed()
        return client_id

    def _resume(self, client_id):
        return self.raw_v5(client_id, clean_start=False, session_present=1,
                           properties=[(P.SESSION_EXPIRY_INTERVAL, 60)])

    def test_queued_message_expires_and_remaining_interval_is_sent(self):
        t = self.topic()
        client_id = self._offline_session(t)
        pub = self.raw_v5()
        for mid, payload, props in ((1, b"short", [(P.MESSAGE_EXPIRY_INTERVAL, 1)]),
                                    (2, b"long", [(P.MESSAGE_EXPIRY_INTERVAL, 30)]),
                                    (3, b"forever", [])):
            pub.send(publish_v5(t, payload, qos=1, mid=mid, properties=props))
            pub.expect_v5("PUBACK", mid=mid)
        queued_at = time.monotonic()
        time.sleep(2.2)  # the interval itself has to pass: nothing to poll for
        c = self._resume(client_id)
        got = c.collect_publishes(b"forever", v5=True)
        waited = time.monotonic() - queued_at
        self.assertEqual([m["payload"] for m in got], [b"long", b"forever"])
        remaining = got[0]["props"].get(P.MESSAGE_EXPIRY_INTERVAL)
        # 30 minus the time waited (section 3.3.2.3.3), in whole seconds: at least 2 s passed.
        self.assertTrue(30 - int(waited) - 1 <= remaining <= 28, remaining)
        self.assertNotIn(P.MESSAGE_EXPIRY_INTERVAL, got[1]["props"].ids())

    @meshmq_only("meshmq's $SYS/broker/counters/messages_expired")
    def test_expired_message_counted(self):
        sys = SysWatcher(self)
        before = sys.counter_now("messages_expired")
        t = self.topic()
        client_id = self._offline_session(t)
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"short", qos=1, mid=1,
                            properties=[(P.MESSAGE_EXPIRY_INTERVAL, 1)]))
        pub.expect_v5("PUBACK", mid=1)
        time.sleep(1.5)
        c = self._resume(client_id)
        pub.send(publish_v5(t, b"sentinel", qos=1, mid=2))
        pub.expect_v5("PUBACK", mid=2)
        got = c.collect_publishes(b"sentinel", v5=True)
        self.assertEqual([m["payload"] for m in got], [b"sentinel"])
        sys.wait_counter_at_least("messages_expired", before + 1)

    @meshmq_only("Mosquitto 2.0.11 also loses the message queued behind the expired one")
    def test_message_waiting_behind_full_window_expires(self):
        t = self.topic()
        sub = self.v5_subscriber(t, 1, properties=[(P.RECEIVE_MAXIMUM, 1)])
        pub = self.raw_v5()
        pub.send(publish_v5(t, b"in-flight", qos=1, mid=1))
        pub.expect_v5("PUBACK", mid=1)
        first = sub.expect_publish_v5(t, b"in-flight", qos=1)
        pub.send(publish_v5(t, b"short", qos=1, mid=2, properties=[(P.MESSAGE_EXPIRY_INTERVAL, 1)]))
        pub.expect_v5("PUBACK", mid=2)
        pub.send(publish_v5(t, b"sentinel", qos=1, mid=3))
        pub.expect_v5("PUBACK", mid=3)
        sub.expect_nothing_before_ping()  # the window of 1 is full
        time.sleep(1.6)  # the interval itself has to pass
        sub.send(puback_v5(first["mid"]))
        got = sub.collect_publishes(b"sentinel", v5=True)
        self.assertEqual([m["payload"] for m in got], [b"sentinel"])

    def test_retained_message_expires(self):
        t = self.topic()
        pub = self.raw_v5()
        pub.send(publish_v5(t + "/short", b"s", qos=1, mid=1, retain=True,
                            properties=[(P.MESSAGE_EXPIRY_INTERVAL, 1)]))
        pub.expect_v5("PUBACK", mid=1)
        pub.send(publish_v5(t + "/long", b"l", qos=1, mid=2, retain=True,
                            properties=[(P.MESSAGE_EXPIRY_INTERVAL, 30)]))
        pub.expect_v5("PUBACK", mid=2)
        time.sleep(2.2)  # the interval itself has to pass
        sub = self.raw_v5()
        sub.send(subscribe_v5(1, [(t + "/#", 0)]))
        sub.expect_v5("SUBACK", codes=[0])
        msg = sub.expect_publish_v5(t + "/long", b"l", retain=True)
        self.assertTrue(1 <= msg["props"].get(P.MESSAGE_EXPIRY_INTERVAL) <= 28, msg["props"])
        sub.expect_nothing_before_ping()  # t/short has expired
        pub.send(publish_v5(t + "/long", b"", retain=True))  # clean up


if __name__ == "__main__":
    unittest.main()
