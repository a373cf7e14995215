"""Malformed input closes only the offending connection (MQTT 3.1.1 section 4.8,
Mosquitto's test/broker/13-malformed-*)."""

import unittest

from meshmq_harness import (BrokerTestCase, SysWatcher, connect, meshmq_only, packet, publish,
                            subscribe, suback, unique_id, unsubscribe)

# Sent after a successful CONNECT/CONNACK. Each must make the broker close the connection.
AFTER_CONNECT = {
    "remaining length of 5 bytes": b"\x30\xff\xff\xff\xff\x01",
    "SUBSCRIBE with flags 0": subscribe(1, [("a", 0)], first_byte=0x80),
    "SUBSCRIBE with flags 3": subscribe(1, [("a", 0)], first_byte=0x83),
    "SUBSCRIBE without filters": packet(0x82, b"\x00\x01"),
    "SUBSCRIBE requesting QoS 3": subscribe(1, [("a", 3)]),
    "SUBSCRIBE with reserved bits in QoS byte": packet(0x82, b"\x00\x01\x00\x01a\x04"),
    "SUBSCRIBE with packet id 0": subscribe(0, [("a", 0)]),
    "UNSUBSCRIBE with flags 0": unsubscribe(1, ["a"], first_byte=0xA0),
    "UNSUBSCRIBE without filters": packet(0xA2, b"\x00\x01"),
    "PUBREL with flags 0": b"\x60\x02\x00\x01",
    "PUBLISH with QoS 3": b"\x36\x05\x00\x01a\x00\x01",
    "PUBLISH QoS 1 with packet id 0": publish("a", b"x", qos=1, mid=0),
    "PUBLISH with empty topic": publish("", b"x"),
    "PUBLISH topic length beyond packet": b"\x30\x04\x00\x09ab",
    "reserved packet type 0": b"\x00\x00",
    "reserved packet type 15": b"\xf0\x00",
    "CONNACK from a client": b"\x20\x02\x00\x00",
    "garbage bytes": b"\xde\xad\xbe\xef" * 8,
}

# Sent as the first bytes on a fresh connection.
BEFORE_CONNECT = {
    "HTTP request": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "CONNECT with 5-byte remaining length": b"\x10\xff\xff\xff\xff\x01",
    "CONNECT with reserved flag bit set": connect("r", flags=0x03),
    "CONNECT with password but no user name": connect("r", password="pw"),
    "CONNECT with will QoS 3": connect("r", will_topic="w", will_qos=3),
    "CONNECT with will retain but no will flag": connect("r", flags=0x22),
    "CONNECT with fixed-header flags set": b"\x11" + connect("r")[1:],
    "CONNECT truncated client id": packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x10ab"),
    "garbage bytes": b"\x01\x02\x03\x04\x05",
}


def send_quietly(client, data):
    try:
        client.send(data)
    except OSError:
        pass


class MalformedTest(BrokerTestCase):

    broker_flags = {"sys_interval": "1s"}

    def setUp(self):
        super().setUp()
        # A long-lived client that must be unaffected by everyone else's garbage.
        self.bystander = self.raw_connected()
        self.bystander_topic = self.topic("bystander")
        self.bystander.send(subscribe(1, [(self.bystander_topic, 0)]))
        self.bystander.expect(suback(1, [0]))

    def assert_bystander_ok(self):
        self.bystander.send(publish(self.bystander_topic, b"ok"))
        self.bystander.expect(publish(self.bystander_topic, b"ok"))

    def test_malformed_after_connect_closes_connection(self):
        for name, data in AFTER_CONNECT.items():
            with self.subTest(name):
                c = self.raw_connected()
                send_quietly(c, data)
                c.expect_closed()
                self.assert_bystander_ok()
        self.assert_broker_serves()

    def test_malformed_before_connect_closes_connection(self):
        for name, data in BEFORE_CONNECT.items():
            with self.subTest(name):
                c = self.raw()
                send_quietly(c, data)
                c.expect_closed()
                self.assert_bystander_ok()
        self.assert_broker_serves()

    def test_malformed_packet_split_across_writes(self):
        # The broker must parse across TCP segment boundaries and still reject it.
        c = self.raw_connected()
        for byte in subscribe(1, [("a", 0)], first_byte=0x80):
            send_quietly(c, bytes([byte]))
        c.expect_closed()
        self.assert_bystander_ok()

    def test_valid_packets_split_byte_by_byte_work(self):
        t = self.topic()
        c = self.raw()
        for chunk in (connect(unique_id()), subscribe(1, [(t, 0)]), publish(t, b"slow")):
            for byte in chunk:
                c.send(bytes([byte]))
        c.expect(b"\x20\x02\x00\x00")
        c.expect(suback(1, [0]))
        c.expect(publish(t, b"slow"))

    def test_many_packets_in_one_write_work(self):
        t = self.topic()
        c = self.raw()
        data = connect(unique_id()) + subscribe(1, [(t, 0)])
        data += b"".join(publish(t, b"n%d" % i) for i in range(50))
        c.send(data)
        c.expect(b"\x20\x02\x00\x00")
        c.expect(suback(1, [0]))
        for i in range(50):
            c.expect(publish(t, b"n%d" % i))

    def test_half_closed_mid_packet_is_cleaned_up(self):
        c = self.raw_connected()
        c.send(publish(self.topic(), b"x" * 100)[:20])
        c.close()
        self.assert_bystander_ok()
        self.assert_broker_serves()

    @meshmq_only("meshmq's $SYS/broker/counters/packets_malformed")
    def test_malformed_counted(self):
        sys = SysWatcher(self)
        before = sys.counter_now("packets_malformed")
        c = self.raw_connected()
        c.send(subscribe(1, [("a", 0)], first_byte=0x80))
        c.expect_closed()
        sys.wait_counter_at_least("packets_malformed", before + 1)


if __name__ == "__main__":
    unittest.main()
