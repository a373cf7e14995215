"""MQTT 5 CONNECT / CONNACK: limits reported as CONNACK properties, Assigned Client Identifier,
Maximum QoS, Retain Available, Server Keep Alive, request flags, validation of CONNECT
properties, enhanced authentication refused, and the DISCONNECTs the server sends before it
closes a connection (MQTT 5.0 sections 2.2.2, 3.1, 3.2, 3.14, 3.15, 4.12, 4.13)."""

import signal
import time
import unittest

from meshmq_harness import (RC, Broker, BrokerTestCase, P, RawClient, auth_v5, connack, connect,
                            connect_v5, disconnect_v5, encode_properties, meshmq_only, packet,
                            publish, publish_v5, subscribe, subscribe_v5, unique_id,
                            unsubscribe_v5)


def assert_no_duplicate_properties(test, props):
    ids = [i for i in props.ids() if i != P.USER_PROPERTY]
    test.assertEqual(len(ids), len(set(ids)), "duplicate properties in %r" % props)


class ConnackPropertiesTest(BrokerTestCase):

    broker_flags = {"max_inflight": 7, "max_packet_size": 4096, "max_topic_alias": 5}

    def test_connack_reports_limits(self):
        c = self.raw_v5(session_present=0)
        props = c.connack["props"]
        self.assertEqual(props.get(P.RECEIVE_MAXIMUM), 7)
        self.assertEqual(props.get(P.MAXIMUM_PACKET_SIZE), 4096)
        self.assertEqual(props.get(P.TOPIC_ALIAS_MAXIMUM), 5)
        # Defaults are not announced (sections 3.2.2.3.4, 3.2.2.3.5), nor unrequested extras.
        for absent in (P.MAXIMUM_QOS, P.RETAIN_AVAILABLE, P.ASSIGNED_CLIENT_IDENTIFIER,
                       P.SERVER_KEEP_ALIVE, P.RESPONSE_INFORMATION, P.AUTHENTICATION_METHOD):
            self.assertNotIn(absent, props.ids())
        assert_no_duplicate_properties(self, props)

    def test_311_client_gets_a_311_connack(self):
        c = self.raw()
        c.send(connect(unique_id()))
        c.expect(connack(0, 0))  # no property bytes leak into a 3.1.1 CONNACK

    def test_unknown_protocol_level_refused_with_311_rc1(self):
        c = self.raw()
        c.send(connect(unique_id(), proto_level=6))
        c.expect(connack(0, 1))
        c.expect_closed()

    def test_assigned_client_identifier_is_the_session_identity(self):
        first = self.raw_v5("", properties=[(P.SESSION_EXPIRY_INTERVAL, 60)])
        assigned = first.connack["props"].get(P.ASSIGNED_CLIENT_IDENTIFIER)
        self.assertTrue(assigned, "no Assigned Client Identifier for an empty client id")
        other = self.raw_v5("")
        self.assertNotEqual(other.connack["props"].get(P.ASSIGNED_CLIENT_IDENTIFIER), assigned)
        t = self.topic()
        first.send(subscribe_v5(1, [(t, 1)]))
        first.expect_v5("SUBACK", codes=[1])
        first.send(disconnect_v5())
        first.expect_closed()
        # The assigned id names the session: resuming it finds the subscription.
        again = self.raw_v5(assigned, clean_start=False, session_present=1,
                            properties=[(P.SESSION_EXPIRY_INTERVAL, 60)])
        self.assertNotIn(P.ASSIGNED_CLIENT_IDENTIFIER, again.connack["props"].ids())
        other.send(publish_v5(t, b"to-assigned", qos=1, mid=1))
        other.expect_v5("PUBACK", mid=1, reason=RC.SUCCESS)
        again.expect_publish_v5(t, b"to-assigned", qos=1)

    def test_response_information_not_sent_when_not_offered(self):
        c = self.raw_v5(properties=[(P.REQUEST_RESPONSE_INFORMATION, 1)])
        self.assertNotIn(P.RESPONSE_INFORMATION, c.connack["props"].ids())

    def test_request_problem_information_zero_keeps_acks_bare(self):
        # Section 3.1.2.11.7: no Reason String / User Property except on PUBLISH, CONNACK,
        # DISCONNECT.
        c = self.raw_v5(properties=[(P.REQUEST_PROBLEM_INFORMATION, 0)])
        c.send(publish_v5(self.topic("nobody"), b"x", qos=1, mid=1))
        ack = c.expect_v5("PUBACK", mid=1, reason=RC.NO_MATCHING_SUBSCRIBERS)
        self.assertEqual(ack["props"], [])
        c.send(unsubscribe_v5(2, [self.topic("never")]))
        ack = c.expect_v5("UNSUBACK", mid=2, codes=[RC.NO_SUBSCRIPTION_EXISTED])
        self.assertEqual(ack["props"], [])

    @meshmq_only("Mosquitto 2.0.11 acknowledges a $SYS publish with 0x00")
    def test_request_problem_information_decides_reason_strings_on_acks(self):
        for asked, expect_reason_string in ((1, True), (0, False)):
            with self.subTest(request_problem_information=asked):
                c = self.raw_v5(properties=[(P.REQUEST_PROBLEM_INFORMATION, asked)])
                c.send(publish_v5("$SYS/not-yours", b"x", qos=1, mid=1))
                ack = c.expect_v5("PUBACK", mid=1, reason=RC.NOT_AUTHORIZED)
                self.assertEqual(P.REASON_STRING in ack["props"].ids(), expect_reason_string)

    def test_authentication_method_refused_bad_authentication_method(self):
        c = self.raw_v5(reason=RC.BAD_AUTHENTICATION_METHOD,
                        properties=[(P.AUTHENTICATION_METHOD, "SCRAM-SHA-256"),
                                    (P.AUTHENTICATION_DATA, b"client-first")])
        c.expect_closed()
        self.assert_broker_serves()

    @meshmq_only("Mosquitto 2.0.11 closes without a DISCONNECT")
    def test_auth_packet_without_enhanced_auth_is_protocol_error(self):
        c = self.raw_v5()
        c.send(auth_v5(0x18, [(P.AUTHENTICATION_METHOD, "SCRAM-SHA-256")]))
        c.expect_disconnect_v5(RC.PROTOCOL_ERROR)
        self.assert_broker_serves()

    def test_auth_packet_from_311_client_closes_it(self):
        c = self.raw_connected()
        c.send(auth_v5(0x18, [(P.AUTHENTICATION_METHOD, "SCRAM-SHA-256")]))
        c.expect_closed()  # no DISCONNECT exists in 3.1.1
        self.assert_broker_serves()

    @meshmq_only("Mosquitto 2.0.11 closes the old connection without a DISCONNECT")
    def test_session_taken_over_disconnect(self):
        client_id = unique_id()
        old = self.raw_v5(client_id)
        self.raw_v5(client_id)
        old.expect_disconnect_v5(RC.SESSION_TAKEN_OVER)

    def test_takeover_of_311_connection_just_closes_it(self):
        client_id = unique_id()
        old = self.raw_connected(client_id)
        self.raw_v5(client_id)
        old.expect_closed()

    @meshmq_only("Mosquitto 2.0.11 closes without a DISCONNECT")
    def test_keepalive_timeout_disconnect(self):
        c = self.raw_v5(keepalive=1)
        started = time.monotonic()
        c.expect_disconnect_v5(RC.KEEP_ALIVE_TIMEOUT)
        self.assertGreaterEqual(time.monotonic() - started, 1.0)


@meshmq_only("Mosquitto 2.0.11 closes a bad CONNECT without a CONNACK")
class ConnectValidationTest(BrokerTestCase):
    """A bad v5 CONNECT gets a CONNACK with 0x81 (malformed: a property not valid in the packet,
    an unknown identifier, a length overrun; section 2.2.2.2) or 0x82 (protocol error: a
    duplicate property, a forbidden value), then the connection closes."""

    CASES = [
        ("duplicate Session Expiry Interval", RC.PROTOCOL_ERROR,
         dict(properties=[(P.SESSION_EXPIRY_INTERVAL, 10), (P.SESSION_EXPIRY_INTERVAL, 20)])),
        ("duplicate Receive Maximum", RC.PROTOCOL_ERROR,
         dict(properties=[(P.RECEIVE_MAXIMUM, 10), (P.RECEIVE_MAXIMUM, 10)])),
        ("Receive Maximum 0", RC.PROTOCOL_ERROR, dict(properties=[(P.RECEIVE_MAXIMUM, 0)])),
        ("Maximum Packet Size 0", RC.PROTOCOL_ERROR,
         dict(properties=[(P.MAXIMUM_PACKET_SIZE, 0)])),
        ("Request Problem Information 2", RC.PROTOCOL_ERROR,
         dict(properties=[(P.REQUEST_PROBLEM_INFORMATION, 2)])),
        ("Request Response Information 2", RC.PROTOCOL_ERROR,
         dict(properties=[(P.REQUEST_RESPONSE_INFORMATION, 2)])),
        ("duplicate will Will Delay Interval", RC.PROTOCOL_ERROR,
         dict(will_topic="w", will_properties=[(P.WILL_DELAY_INTERVAL, 1),
                                               (P.WILL_DELAY_INTERVAL, 1)])),
        ("Topic Alias in CONNECT", RC.MALFORMED, dict(properties=[(P.TOPIC_ALIAS, 1)])),
        ("Payload Format Indicator in CONNECT", RC.MALFORMED,
         dict(properties=[(P.PAYLOAD_FORMAT_INDICATOR, 1)])),
        ("Session Expiry Interval in will properties", RC.MALFORMED,
         dict(will_topic="w", will_properties=[(P.SESSION_EXPIRY_INTERVAL, 1)])),
        ("unknown property identifier", RC.MALFORMED, dict(properties=[(None, b"\x7f\x00")])),
        ("property overruns its length", RC.MALFORMED,
         dict(properties=[(None, b"\x11\x00")])),
    ]

    def test_bad_connect_properties(self):
        for name, reason, kwargs in self.CASES:
            with self.subTest(name):
                c = self.raw_v5(reason=reason, **kwargs)
                c.expect_closed()
        self.assert_broker_serves()

    def test_property_length_beyond_packet(self):
        c = self.raw()
        body = (b"\x00\x04MQTT\x05\x02\x00\x3c" + b"\x20" +  # 32 bytes of properties...
                encode_properties([(P.SESSION_EXPIRY_INTERVAL, 1)])[1:] + b"\x00\x01c")
        c.send(packet(0x10, body))  # ...but the packet ends long before
        c.expect_v5("CONNACK", reason=RC.MALFORMED)
        c.expect_closed()


class MaxQosTest(BrokerTestCase):

    broker_flags = {"max_qos": 1}

    def test_connack_maximum_qos(self):
        c = self.raw_v5()
        self.assertEqual(c.connack["props"].get(P.MAXIMUM_QOS), 1)

    def test_subscribe_granted_at_most_max_qos(self):
        c = self.raw_v5()
        c.send(subscribe_v5(1, [(self.topic("a"), 2), (self.topic("b"), 0)]))
        c.expect_v5("SUBACK", mid=1, codes=[1, 0])
        c311 = self.raw_connected()
        c311.send(subscribe(1, [(self.topic("a"), 2)]))
        c311.expect(bytes([0x90, 0x03, 0x00, 0x01, 0x01]))

    def test_publish_above_max_qos_disconnected(self):
        c = self.raw_v5()
        c.send(publish_v5(self.topic(), b"x", qos=2, mid=1))
        c.expect_disconnect_v5(RC.QOS_NOT_SUPPORTED)

    def test_will_above_max_qos_refused(self):
        c = self.raw_v5(reason=RC.QOS_NOT_SUPPORTED, will_topic=self.topic("will"), will_qos=2)
        c.expect_closed()

    def test_311_publish_above_max_qos_closed(self):
        c = self.raw_connected()
        c.send(publish(self.topic(), b"x", qos=2, mid=1))
        c.expect_closed()
        self.assert_broker_serves()


class RetainUnavailableTest(BrokerTestCase):

    broker_flags = {"retain_available": False}

    def test_connack_retain_available_zero(self):
        c = self.raw_v5()
        self.assertEqual(c.connack["props"].get(P.RETAIN_AVAILABLE), 0)

    def test_retained_publish_disconnected(self):
        c = self.raw_v5()
        c.send(publish_v5(self.topic(), b"x", retain=True))
        c.expect_disconnect_v5(RC.RETAIN_NOT_SUPPORTED)

    def test_retained_will_refused(self):
        c = self.raw_v5(reason=RC.RETAIN_NOT_SUPPORTED, will_topic=self.topic("will"),
                        will_retain=True)
        c.expect_closed()

    def test_311_retained_publish_closed(self):
        c = self.raw_connected()
        c.send(publish(self.topic(), b"x", retain=True))
        c.expect_closed()
        self.assert_broker_serves()


class MaxKeepaliveTest(BrokerTestCase):

    broker_flags = {"max_keepalive": 10}  # Mosquitto accepts no lower value

    def test_server_keep_alive(self):
        for asked, told in ((60, 10), (0, 10), (11, 10), (10, None), (5, None)):
            with self.subTest(keepalive=asked):
                c = self.raw_v5(keepalive=asked)
                self.assertEqual(c.connack["props"].get(P.SERVER_KEEP_ALIVE), told)

    @meshmq_only("Mosquitto 2.0.11 applies max_keepalive to MQTT 5 clients only")
    def test_311_keepalive_over_limit_refused(self):
        for asked in (60, 0):
            with self.subTest(keepalive=asked):
                c = self.raw()
                c.send(connect(unique_id(), keepalive=asked))
                c.expect(connack(0, 2))
                c.expect_closed()
        self.raw_connected(keepalive=10)


@meshmq_only("Mosquitto refuses max_keepalive below 10 s")
class ServerKeepAliveEnforcedTest(BrokerTestCase):

    broker_flags = {"max_keepalive": 1}

    def test_client_held_to_server_keep_alive(self):
        started = time.monotonic()
        c = self.raw_v5(keepalive=60)
        self.assertEqual(c.connack["props"].get(P.SERVER_KEEP_ALIVE), 1)
        c.expect_disconnect_v5(RC.KEEP_ALIVE_TIMEOUT, timeout=4)  # 1.5 x 1 s, not 60 s
        self.assertGreaterEqual(time.monotonic() - started, 1.0)


@meshmq_only("Mosquitto closes connections over max_connections without a CONNACK")
class MaxConnectionsTest(BrokerTestCase):

    broker_flags = {"max_connections": 1}

    def test_over_limit_answered_at_connect(self):
        self.raw_v5()
        c = self.raw_v5(reason=RC.QUOTA_EXCEEDED)
        c.expect_closed()
        c311 = self.raw()
        c311.send(connect(unique_id()))
        c311.expect(connack(0, 3))  # server unavailable
        c311.expect_closed()


@meshmq_only("--response_information is meshmq's")
class ResponseInformationTest(BrokerTestCase):

    broker_flags = {"response_information": "response"}

    def test_response_information_when_requested(self):
        c = self.raw_v5("client-7", properties=[(P.REQUEST_RESPONSE_INFORMATION, 1)])
        self.assertEqual(c.connack["props"].get(P.RESPONSE_INFORMATION), "response/client-7")

    def test_response_information_uses_assigned_client_identifier(self):
        c = self.raw_v5("", properties=[(P.REQUEST_RESPONSE_INFORMATION, 1)])
        assigned = c.connack["props"].get(P.ASSIGNED_CLIENT_IDENTIFIER)
        self.assertEqual(c.connack["props"].get(P.RESPONSE_INFORMATION), "response/" + assigned)

    def test_no_response_information_unless_requested(self):  # MQTT-3.1.2-28
        for props in ([], [(P.REQUEST_RESPONSE_INFORMATION, 0)]):
            with self.subTest(props=props):
                c = self.raw_v5(properties=props)
                self.assertNotIn(P.RESPONSE_INFORMATION, c.connack["props"].ids())


@meshmq_only("Mosquitto 2.0.11 closes connections on SIGTERM without a DISCONNECT")
class ShutdownTest(unittest.TestCase):

    def test_sigterm_sends_server_shutting_down(self):
        broker = Broker()
        self.addCleanup(broker.stop)
        broker.start()
        v5 = RawClient(broker.port)
        self.addCleanup(v5.close)
        v5.send(connect_v5(unique_id()))
        v5.expect_v5("CONNACK", reason=0)
        v311 = RawClient(broker.port)
        self.addCleanup(v311.close)
        v311.send(connect(unique_id()))
        v311.expect(connack(0, 0))
        broker.signal(signal.SIGTERM)
        v5.expect_disconnect_v5(RC.SERVER_SHUTTING_DOWN)
        v311.expect_closed()
        self.assertEqual(broker.terminate(), 0)


if __name__ == "__main__":
    unittest.main()
