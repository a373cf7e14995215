"""Resource limits: --max_packet_size, --max_connections, --max_inflight,
--max_queued_messages, --max_output_buffer."""

import socket
import unittest

from meshmq_harness import (IS_REFERENCE, BrokerTestCase, SysWatcher, connack, connack_rc,
                            connect, disconnect, meshmq_only, puback, pubcomp, publish, pubrec,
                            pubrel, subscribe, suback, unique_id, wait_for)


def send_quietly(client, data):
    """Sends, ignoring errors from a broker that already closed the socket."""
    try:
        client.send(data)
    except OSError:
        pass


class PacketSizeTest(BrokerTestCase):

    broker_flags = {"max_packet_size": 1024, "sys_interval": "1s"}

    def test_packet_under_limit_delivered(self):
        t = self.topic()
        c = self.raw_connected()
        c.send(subscribe(1, [(t, 0)]))
        c.expect(suback(1, [0]))
        c.send(publish(t, b"x" * 900))
        c.expect(publish(t, b"x" * 900))

    def test_oversize_publish_closes_only_that_connection(self):
        t = self.topic()
        bystander = self.raw_connected()
        bystander.send(subscribe(1, [(t, 0)]))
        bystander.expect(suback(1, [0]))
        big = self.raw_connected()
        send_quietly(big, publish(t, b"x" * 2000))
        big.expect_closed()
        # The oversize message was not delivered and the bystander still works.
        bystander.send(publish(t, b"small"))
        bystander.expect(publish(t, b"small"))
        self.assert_broker_serves()

    def test_oversize_subscribe_closes_connection(self):
        c = self.raw_connected()
        send_quietly(c, subscribe(1, [(self.topic() + "/" + "f" * 1100, 0)]))
        c.expect_closed()
        self.assert_broker_serves()

    def test_oversize_declared_length_closes_before_body_arrives(self):
        c = self.raw_connected()
        c.send(b"\x30\xff\xff\xff\x07")  # remaining length 16 MiB - 1, no body follows
        c.expect_closed()
        self.assert_broker_serves()

    @meshmq_only("meshmq's $SYS/broker/counters/packets_too_large")
    def test_oversize_counted(self):
        sys = SysWatcher(self)
        before = sys.counter_now("packets_too_large")
        c = self.raw_connected()
        send_quietly(c, publish(self.topic(), b"x" * 2000))
        c.expect_closed()
        sys.wait_counter_at_least("packets_too_large", before + 1)


@meshmq_only("Mosquitto's default has no 16 MiB limit")
class DefaultPacketSizeTest(BrokerTestCase):

    def test_default_limit_is_16_mib(self):
        c = self.raw_connected()
        # Declares 16 MiB + 1 byte of body; the broker must not wait for it.
        c.send(b"\x30" + bytes([0x81, 0x80, 0x80, 0x08]))
        c.expect_closed()
        self.assert_broker_serves()

    def test_large_packet_under_default_limit_delivered(self):
        t = self.topic()
        c = self.raw_connected()
        c.send(subscribe(1, [(t, 0)]))
        c.expect(suback(1, [0]))
        payload = b"p" * (1 << 20)
        c.send(publish(t, payload))
        c.expect(publish(t, payload), timeout=10)


class MaxConnectionsTest(BrokerTestCase):

    broker_flags = {"max_connections": 3}

    def test_connection_over_limit_closed_existing_keep_working(self):
        clients = [self.raw_connected() for _ in range(3)]
        extra = self.raw()
        send_quietly(extra, connect(unique_id()))
        if not IS_REFERENCE:
            # meshmqd says why: CONNACK 3, server unavailable (Mosquitto just closes).
            extra.expect(connack(0, 3))
        extra.expect_closed()
        for c in clients:
            c.ping()
        t = self.topic()
        clients[0].send(subscribe(1, [(t, 0)]))
        clients[0].expect(suback(1, [0]))
        clients[1].send(publish(t, b"still-served"))
        clients[0].expect(publish(t, b"still-served"))
        # Freeing a slot lets a new client in.
        clients[2].send(disconnect())
        clients[2].expect_closed()
        wait_for(lambda: connack_rc(self.port) == 0, message="slot not freed after DISCONNECT")


@meshmq_only("meshmq's $SYS/broker/counters/connections_refused_max")
class MaxConnectionsCounterTest(BrokerTestCase):

    broker_flags = {"max_connections": 2, "sys_interval": "1s"}

    def test_refused_connection_counted(self):
        sys = SysWatcher(self)  # connection 1 of 2
        before = sys.counter_now("connections_refused_max")
        self.raw_connected()  # connection 2 of 2
        extra = self.raw()
        send_quietly(extra, connect(unique_id()))
        extra.expect(connack(0, 3))
        extra.expect_closed()
        sys.wait_counter_at_least("connections_refused_max", before + 1)


class MaxInflightTest(BrokerTestCase):

    broker_flags = {"max_inflight": 3}

    def _setup(self, qos, count):
        t = self.topic()
        sub = self.raw_connected()
        sub.send(subscribe(1, [(t, qos)]))
        sub.expect(suback(1, [qos]))
        pub = self.client()
        for i in range(count):
            pub.publish(t, b"m%d" % i, qos=qos)  # each routed before the next is sent
        return t, sub

    def test_unacked_qos1_capped_at_max_inflight(self):
        t, sub = self._setup(1, 8)
        mids = [sub.expect_publish(t, b"m%d" % i, qos=1) for i in range(3)]
        sub.expect_nothing_before_ping()  # the 4th waits for an ack
        sub.send(puback(mids[0]))
        sub.expect_publish(t, b"m3", qos=1)

    @meshmq_only("Mosquitto 2.0.11 sends several queued messages after a single PUBACK")
    def test_each_puback_releases_exactly_one(self):
        t, sub = self._setup(1, 8)
        window = [sub.expect_publish(t, b"m%d" % i, qos=1) for i in range(3)]
        sub.expect_nothing_before_ping()
        for i in range(3, 8):
            sub.send(puback(window.pop(0)))
            window.append(sub.expect_publish(t, b"m%d" % i, qos=1))
            sub.expect_nothing_before_ping()
        for mid in window:
            sub.send(puback(mid))
        sub.expect_nothing_before_ping()

    def test_unacked_qos2_capped_at_max_inflight(self):
        t, sub = self._setup(2, 6)
        mids = [sub.expect_publish(t, b"m%d" % i, qos=2) for i in range(3)]
        sub.expect_nothing_before_ping()
        sub.send(pubrec(mids[0]))
        sub.expect(pubrel(mids[0]))
        sub.send(pubcomp(mids[0]))
        sub.expect_publish(t, b"m3", qos=2)


class MaxQueuedTest(BrokerTestCase):

    broker_flags = {"max_queued_messages": 5, "sys_interval": "1s"}

    def _offline_then_publish(self, count):
        t = self.topic()
        client_id = unique_id()
        c = self.raw()
        c.send(connect(client_id, clean=False))
        c.expect(connack(0, 0))
        c.send(subscribe(1, [(t, 1)]))
        c.expect(suback(1, [1]))
        c.send(disconnect())
        c.expect_closed()
        pub = self.client()
        for i in range(count):
            pub.publish(t, b"m%d" % i, qos=1)
        c = self.raw()
        c.send(connect(client_id, clean=False))
        c.expect(connack(1, 0))
        pub.publish(t, b"sentinel", qos=1)
        got = [m["payload"] for m in c.collect_publishes(b"sentinel")]
        return got[:-1]

    def test_offline_queue_bounded(self):
        got = self._offline_then_publish(8)
        self.assertEqual(len(got), 5, got)
        self.assertEqual(got, sorted(got, key=lambda p: int(p[1:])))  # in order

    @meshmq_only("meshmq drops the oldest message and counts it in $SYS; Mosquitto drops "
                 "the newest")
    def test_offline_queue_overflow_drops_oldest_and_counts(self):
        sys = SysWatcher(self)
        before = sys.counter_now("messages_dropped_queue_full")
        got = self._offline_then_publish(8)
        self.assertEqual(got, [b"m3", b"m4", b"m5", b"m6", b"m7"])
        sys.wait_counter_at_least("messages_dropped_queue_full", before + 3)
        self.assertEqual(sys.counter("messages_dropped_queue_full"), before + 3)


class OutputBufferTest(BrokerTestCase):

    broker_flags = {"max_output_buffer": 65536, "sys_interval": "1s"}

    @meshmq_only("meshmq's --max_output_buffer and its $SYS counter")
    def test_reader_that_never_reads_loses_qos0_not_the_broker(self):
        t = self.topic()
        sys = SysWatcher(self)
        before = sys.counter_now("messages_dropped_output_buffer")
        stalled = self.raw_connected()
        stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.send(subscribe(1, [(t, 0)]))
        stalled.expect(suback(1, [0]))
        # Far more than the socket buffers and the 64 KiB output buffer can hold: the stalled
        # reader's backlog is capped and the excess dropped, counted.
        pub = self.raw_connected()
        chunk = b"x" * 60000
        for _ in range(400):
            pub.send(publish(t, chunk))
        pub.ping()  # the broker has handled every publish before answering
        sys.wait_counter_at_least("messages_dropped_output_buffer", before + 1)
        # Everyone else is still served.
        self.assert_broker_serves()


if __name__ == "__main__":
    unittest.main()
