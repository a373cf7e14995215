"""Keepalive, PINGREQ, CONNECT timeout and the last will (MQTT 3.1.1 sections 3.1.2.5,
3.1.2.10, 3.12, 3.13)."""

import time
import unittest

import paho.mqtt.client as mqtt

from meshmq_harness import (BrokerTestCase, SysWatcher, connack, connect,
                            disconnect, meshmq_only, pingreq, pingresp, publish, subscribe, suback,
                            unique_id)


class KeepaliveTest(BrokerTestCase):

    broker_flags = {"sys_interval": "1s"}

    def test_pingreq_gets_pingresp(self):
        c = self.raw_connected()
        for _ in range(3):
            c.send(pingreq())
            c.expect(pingresp())

    def test_silent_client_dropped_after_one_and_a_half_keepalives_and_will_published(self):
        will_topic = self.topic("will")
        watcher = self.subscriber(will_topic, qos=1)
        c = self.raw()
        started = time.monotonic()
        c.send(connect(unique_id(), keepalive=1, will_topic=will_topic,
                       will_payload=b"timed-out", will_qos=1))
        c.expect(connack(0, 0))
        c.expect_closed(timeout=5)  # MQTT-3.1.2-24: 1.5 x keepalive
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 1.0, "dropped before the keepalive even expired")
        msg = watcher.wait_message(will_topic, b"timed-out")
        self.assertEqual(msg.qos, 1)

    @meshmq_only("meshmq's $SYS/broker/counters/keepalive_timeouts")
    def test_keepalive_timeout_counted(self):
        sys = SysWatcher(self)
        before = sys.counter_now("keepalive_timeouts")
        c = self.raw()
        c.send(connect(unique_id(), keepalive=1))
        c.expect(connack(0, 0))
        c.expect_closed(timeout=5)
        sys.wait_counter_at_least("keepalive_timeouts", before + 1)

    def test_pinging_client_stays_connected(self):
        c = self.raw()
        c.send(connect(unique_id(), keepalive=1))
        c.expect(connack(0, 0))
        deadline = time.monotonic() + 3.0  # twice the 1.5 s limit
        while time.monotonic() < deadline:
            c.send(pingreq())
            c.expect(pingresp())
            # The next ping is due within the keepalive; wait for the broker, not a clock.
            try:
                c.read_packet(timeout=0.5)
                self.fail("unexpected packet from the broker")
            except TimeoutError:
                pass

    def test_other_traffic_counts_as_activity(self):
        t = self.topic()
        c = self.raw()
        c.send(connect(unique_id(), keepalive=1))
        c.expect(connack(0, 0))
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            c.send(publish(t, b"busy"))
            try:
                c.read_packet(timeout=0.5)
                self.fail("unexpected packet from the broker")
            except TimeoutError:
                pass
        c.ping()

    def test_keepalive_zero_is_never_dropped_for_silence(self):
        # keepalive 0 disables the mechanism; within the 3 s a keepalive of 1 would need,
        # the connection stays open.
        c = self.raw()
        c.send(connect(unique_id(), keepalive=0))
        c.expect(connack(0, 0))
        try:
            c.read_packet(timeout=3.0)
            self.fail("unexpected packet")
        except TimeoutError:
            pass
        c.ping()


@meshmq_only("Mosquitto has no configurable CONNECT timeout")
class ConnectTimeoutTest(BrokerTestCase):

    broker_flags = {"connect_timeout": "500ms", "sys_interval": "1s"}

    def test_socket_without_connect_closed_after_connect_timeout(self):
        sys = SysWatcher(self)
        before = sys.counter_now("connect_timeouts")
        c = self.raw()
        started = time.monotonic()
        c.expect_closed(timeout=5)
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.4)
        sys.wait_counter_at_least("connect_timeouts", before + 1)

    def test_partial_connect_closed_after_connect_timeout(self):
        c = self.raw()
        c.send(connect(unique_id())[:5])  # CONNECT started, never finished
        c.expect_closed(timeout=5)

    def test_connected_client_unaffected_by_connect_timeout(self):
        c = self.raw_connected()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            c.ping()
            try:
                c.read_packet(timeout=0.25)
                self.fail("unexpected packet")
            except TimeoutError:
                pass
        c.ping()


class WillTest(BrokerTestCase):

    broker_flags = {"sys_interval": "1s"}

    def _watch(self, *topics, qos=2):
        return self.subscriber(*topics, qos=qos)

    def test_will_published_when_socket_closes_without_disconnect(self):
        topic = self.topic("will")
        watcher = self.raw_connected()
        watcher.send(subscribe(1, [(topic, 2)]))
        watcher.expect(suback(1, [2]))
        c = self.raw()
        c.send(connect(unique_id(), will_topic=topic, will_payload=b"lost", will_qos=1))
        c.expect(connack(0, 0))
        c.close()
        watcher.expect_publish(topic, b"lost", qos=1, retain=False)

    def test_will_published_on_connection_reset(self):
        topic = self.topic("will")
        watcher = self._watch(topic)
        c = self.raw()
        c.send(connect(unique_id(), will_topic=topic, will_payload=b"reset", will_qos=0))
        c.expect(connack(0, 0))
        c.abort()
        msg = watcher.wait_message(topic, b"reset")
        self.assertEqual(msg.qos, 0)

    def test_will_qos2_retained_is_delivered_and_retained(self):
        topic = self.topic("will")
        watcher = self.raw_connected()
        watcher.send(subscribe(1, [(topic, 2)]))
        watcher.expect(suback(1, [2]))
        c = self.raw()
        c.send(connect(unique_id(), will_topic=topic, will_payload=b"gone-for-good",
                       will_qos=2, will_retain=True))
        c.expect(connack(0, 0))
        c.close()
        # Live delivery: QoS 2, RETAIN 0 (established subscription).
        got = watcher.collect_publishes(b"gone-for-good")
        self.assertEqual([(m["payload"], m["qos"], m["retain"]) for m in got],
                         [(b"gone-for-good", 2, False)])
        # And it was retained: a new subscriber gets it with RETAIN 1.
        later = self.raw_connected()
        later.send(subscribe(1, [(topic, 2)]))
        later.expect(suback(1, [2]))
        later.expect_publish(topic, b"gone-for-good", qos=2, retain=True)

    def test_will_not_published_after_disconnect(self):
        # MQTT-3.1.2-10 / 3.14.4-3: DISCONNECT discards the will.
        topic = self.topic("will")
        watcher = self._watch(topic)
        c = self.raw()
        c.send(connect(unique_id(), will_topic=topic, will_payload=b"must-not-appear"))
        c.expect(connack(0, 0))
        c.send(disconnect())
        c.expect_closed()
        self.client().publish(topic, b"sentinel", qos=2)
        watcher.wait_message(topic, b"sentinel")
        self.assertEqual(watcher.payloads(topic), [b"sentinel"])

    def test_will_not_published_after_disconnect_paho_v31(self):
        topic = self.topic("will")
        watcher = self._watch(topic)
        c = self.client(protocol=mqtt.MQTTv31, will=(topic, b"must-not-appear", 1, False))
        c.disconnect()
        self.client().publish(topic, b"sentinel", qos=2)
        watcher.wait_message(topic, b"sentinel")
        self.assertEqual(watcher.payloads(topic), [b"sentinel"])

    def test_will_v31_published_on_socket_close(self):
        topic = self.topic("will")
        watcher = self._watch(topic)
        c = self.raw()
        c.send(connect(unique_id(), proto_name="MQIsdp", proto_level=3, will_topic=topic,
                       will_payload=b"v31-lost", will_qos=2))
        c.expect(connack(0, 0))
        c.close()
        msg = watcher.wait_message(topic, b"v31-lost")
        self.assertEqual(msg.qos, 2)

    @meshmq_only("meshmq's $SYS/broker/counters/wills_published")
    def test_wills_published_counter(self):
        sys = SysWatcher(self)
        before = sys.counter_now("wills_published")
        topic = self.topic("will")
        c = self.raw()
        c.send(connect(unique_id(), will_topic=topic, will_payload=b"counted"))
        c.expect(connack(0, 0))
        c.close()
        sys.wait_counter_at_least("wills_published", before + 1)


if __name__ == "__main__":
    unittest.main()
