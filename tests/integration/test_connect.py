"""CONNECT / CONNACK (MQTT 3.1.1 section 3.1 and 3.2)."""

import unittest

import paho.mqtt.client as mqtt

from meshmq_harness import (BrokerTestCase, connack, connect, disconnect, meshmq_only, pingreq,
                            publish, sha512_password_line, subscribe, suback, unique_id)


class ConnectTest(BrokerTestCase):

    def test_v311_connect_accepted(self):
        c = self.raw()
        c.send(connect(unique_id(), proto_name="MQTT", proto_level=4))
        c.expect(connack(0, 0))
        c.ping()

    def test_v31_connect_accepted(self):
        c = self.raw()
        c.send(connect(unique_id(), proto_name="MQIsdp", proto_level=3))
        c.expect(connack(0, 0))
        c.ping()

    def test_paho_v31_and_v311_round_trip(self):
        for protocol in (mqtt.MQTTv31, mqtt.MQTTv311):
            with self.subTest(protocol=protocol):
                topic = self.topic(str(protocol))
                c = self.client(protocol=protocol)
                self.assertEqual(c.subscribe(topic, 1), [1])
                c.publish(topic, b"hello", qos=1)
                self.assertEqual(c.wait_message(topic).payload, b"hello")
                c.disconnect()

    def test_unknown_protocol_level_refused_with_rc1(self):
        # MQTT-3.1.2-2: CONNACK 0x01 (unacceptable protocol level), then disconnect.
        c = self.raw()
        c.send(connect(unique_id(), proto_name="MQTT", proto_level=6))
        c.expect(connack(0, 1))
        c.expect_closed()

    def test_wrong_protocol_name_closed(self):
        c = self.raw()
        c.send(connect(unique_id(), proto_name="MQTX", proto_level=4))
        c.expect_closed()

    def test_empty_client_id_with_clean_session_gets_generated_id(self):
        # MQTT-3.1.3-6: the server assigns a unique id. Two such clients must not take each
        # other over, which they would if both were registered under "".
        first = self.raw()
        first.send(connect("", clean=True))
        first.expect(connack(0, 0))
        second = self.raw()
        second.send(connect("", clean=True))
        second.expect(connack(0, 0))
        topic = self.topic()
        for mid, c in ((1, first), (2, second)):
            c.send(subscribe(mid, [(topic, 0)]))
            c.expect(suback(mid, [0]))
        first.send(publish(topic, b"both"))
        first.expect_publish(topic, b"both")
        second.expect_publish(topic, b"both")
        first.ping()
        second.ping()

    def test_empty_client_id_without_clean_session_refused_with_rc2(self):
        # MQTT-3.1.3-8: CONNACK 0x02 (identifier rejected), then close.
        c = self.raw()
        c.send(connect("", clean=False))
        c.expect(connack(0, 2))
        c.expect_closed()

    def test_session_present_flag(self):
        client_id = unique_id()
        c = self.raw()
        c.send(connect(client_id, clean=False))
        c.expect(connack(0, 0))  # no session yet
        c.send(disconnect())
        c.expect_closed()

        c = self.raw()
        c.send(connect(client_id, clean=False))
        c.expect(connack(1, 0))  # MQTT-3.2.2-2: stored session resumed
        c.send(disconnect())
        c.expect_closed()

        c = self.raw()
        c.send(connect(client_id, clean=True))
        c.expect(connack(0, 0))  # MQTT-3.2.2-1: clean session always 0
        c.send(disconnect())
        c.expect_closed()

        c = self.raw()
        c.send(connect(client_id, clean=False))
        c.expect(connack(0, 0))  # the clean session discarded the stored one
        c.send(disconnect())
        c.expect_closed()

    def test_paho_session_present(self):
        client_id = unique_id()
        c = self.client(client_id=client_id, clean_session=False)
        self.assertEqual(c.session_present, 0)
        c.disconnect()
        c = self.client(client_id=client_id, clean_session=False)
        self.assertEqual(c.session_present, 1)
        c.disconnect()
        c = self.client(client_id=client_id, clean_session=True)
        self.assertEqual(c.session_present, 0)

    def test_second_connect_closes_connection(self):
        # MQTT-3.1.0-2: a second CONNECT is a protocol violation.
        c = self.raw_connected()
        c.send(connect(unique_id()))
        c.expect_closed()
        self.assert_broker_serves()

    def test_first_packet_not_connect_closes_connection(self):
        # MQTT-3.1.0-1: the first packet must be CONNECT.
        c = self.raw()
        c.send(pingreq())
        c.expect_closed()

    def test_disconnect_closes_connection(self):
        c = self.raw_connected()
        c.send(disconnect())
        c.expect_closed()


class ConnectAuthTest(BrokerTestCase):
    """Refusals that need credentials: bad password (rc 4) and anonymous refused (rc 5)."""

    broker_flags = {"allow_anonymous": False}

    @classmethod
    def prepare_broker(cls, broker):
        path = broker.path("passwords")
        with open(path, "w") as f:
            f.write(sha512_password_line("alice", "wonderland") + "\n")
        broker.flags["password_file"] = path

    def test_good_password_accepted(self):
        c = self.raw()
        c.send(connect(unique_id(), username="alice", password="wonderland"))
        c.expect(connack(0, 0))
        c.ping()

    def test_bad_password_refused_and_closed(self):
        c = self.raw()
        c.send(connect(unique_id(), username="alice", password="looking-glass"))
        got = c.read_packet()
        # Mosquitto answers 5 (not authorised) here; 3.1.1 defines 4 for this case.
        self.assertIn(got, (connack(0, 4), connack(0, 5)))
        c.expect_closed()

    @meshmq_only("Mosquitto 2.0 answers a bad password with CONNACK rc 5, not 4")
    def test_bad_password_refused_with_rc4(self):
        for user, password in (("alice", "looking-glass"), ("nobody", "x")):
            with self.subTest(user=user):
                c = self.raw()
                c.send(connect(unique_id(), username=user, password=password))
                c.expect(connack(0, 4))
                c.expect_closed()

    def test_anonymous_refused_with_rc5(self):
        c = self.raw()
        c.send(connect(unique_id()))
        c.expect(connack(0, 5))
        c.expect_closed()

    def test_paho_anonymous_refused(self):
        c = self.client(expect_rc=None)
        self.assertEqual(c.connack[0] if c.connack else None, 5)


if __name__ == "__main__":
    unittest.main()
