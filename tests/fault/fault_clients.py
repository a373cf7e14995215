"""Client programs for the fault-injection suite, run inside the client network namespace.

The test process lives in the root namespace and cannot enter another one itself (Python 3.11
has no os.setns), so every client is a subprocess started as
`ip netns exec <client ns> /usr/bin/python3 fault_clients.py ROLE ...`.

Long-running workers (paho-mqtt 1.6, MQTT 3.1.1, clean session 0, a fixed client id) behave like
a client behind a load balancer: they connect to one of --hosts and, on any disconnect, refusal
or CONNACK error, move on to the next one (round-robin), until a stop file appears or SIGTERM
arrives. Each writes a JSON-lines history, one line per event, flushed as it is written, so the
test can read it while the worker runs and nothing is lost when a broker dies:

  publisher   publishes "<id>:<seq>" (seq 1, 2, ...) on --topic at --qos and --rate, at most
              --window unacknowledged; logs "acked" when PUBACK (QoS 1) / PUBCOMP (QoS 2)
              arrives. paho keeps un-acked messages across connect() to another host and resends
              them on the next CONNACK (PUBLISH with DUP, or PUBREL for QoS 2 past PUBREC).
  subscriber  subscribes (QoS 2) on its first successful connect only; later connects rely on
              the broker's session. Logs every CONNACK (node, session present), SUBACK, message
              (as paho's on_message sees it: for QoS 2 that is once per PUBLISH/PUBREL exchange,
              so a broker that delivers a message twice shows up twice) and disconnect.

One-shot tools (raw sockets, no paho, print one JSON line on stdout):

  probe        CONNECT with a fresh clean session; result "ok", "rc<N>" (CONNACK refused),
               "refused" (TCP), "closed" or "timeout"; with --until, repeat until that result
               or --timeout (exit 0 if reached, 1 if not).
  retain-pub   publish one retained message at QoS 1 and wait for its PUBACK.
  retain-read  subscribe to --filter on a fresh clean session and collect the retained messages,
               up to a sentinel (a non-retained message this tool publishes on a topic under the
               filter after its SUBACK, so it arrives after every retained one).
"""

import argparse
import json
import os
import secrets
import signal
import socket
import struct
import sys
import time

# ---------------------------------------------------------------------------------------------
# History files
# ---------------------------------------------------------------------------------------------


class History:
    """A JSON-lines log; line-buffered, so each event reaches the file as it is written."""

    def __init__(self, path):
        self._f = open(path, "a", buffering=1, encoding="utf-8")

    def log(self, ev, **fields):
        fields["ev"] = ev
        fields["t"] = round(time.time(), 6)
        self._f.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def close(self):
        self._f.close()


def parse_hosts(text):
    hosts = []
    for item in text.split(","):
        host, _, port = item.rpartition(":")
        hosts.append((host, int(port)))
    return hosts


# ---------------------------------------------------------------------------------------------
# Workers (paho-mqtt)
# ---------------------------------------------------------------------------------------------


def keep_pubrel_resends(mqtt, client):
    """Works around a paho-mqtt 1.6.1 bug (Debian 12's): every reconnect resets the state of
    the messages in flight, and a QoS 2 message waiting for PUBCOMP becomes "resend PUBREL" on
    the first reset, but "publish again" (as a new PUBLISH, DUP 0) on the next. So a publisher
    whose reconnect is refused once (CONNACK 3 from a node cut off from the cluster) and then
    accepted elsewhere sends, as new, a message the broker acknowledged with PUBREC and released
    with PUBREL: MQTT 4.3.3 makes that a new message, and subscribers get it twice. Seen in paho's
    packet log: PUBREC, PUBREL sent, connection closed, CONNACK 3, CONNACK 0, "PUBLISH (d0, q2,
    ..." with the same packet id. The fix keeps "resend PUBREL" across resets."""
    reset_out = client._messages_reconnect_reset_out

    def reset_keeping_pubrel_resends():
        with client._out_message_mutex:
            pubrels = [m for m in client._out_messages.values()
                       if m.state == mqtt.mqtt_ms_resend_pubrel]
        reset_out()
        with client._out_message_mutex:
            for m in pubrels:
                m.state = mqtt.mqtt_ms_resend_pubrel

    client._messages_reconnect_reset_out = reset_keeping_pubrel_resends


class Worker:
    """A paho client that moves round-robin over --hosts on every disconnect or refusal.

    One thread drives everything (connect, loop, publish), so no paho call races another."""

    RETRY_PAUSE = 0.05  # between two connection attempts, so an all-down cluster is no busy loop

    def __init__(self, args):
        import paho.mqtt.client as mqtt  # only the workers need paho
        self.mqtt = mqtt
        self.args = args
        self.hosts = parse_hosts(args.hosts)
        self.next_host = 0
        self.history = History(args.log)
        self.stopping = False
        self.connected = False  # CONNACK 0 received on the current connection
        self.node = None  # "ip:port" of the current (or last) connection
        self.connections = 0
        self.disconnect_logged = 0  # the connection whose disconnect is logged
        self.client = mqtt.Client(client_id=args.id, clean_session=False,
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        keep_pubrel_resends(mqtt, self.client)
        if args.paho_log:  # every packet paho sends and receives, on stderr (the .out file)
            import logging
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                                format="%(created).3f %(message)s")
            self.client.enable_logger()
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame):
        self.stopping = True

    def stop_requested(self):
        if self.args.stop_file and os.path.exists(self.args.stop_file):
            self.stopping = True
        return self.stopping

    # -- connection management -----------------------------------------------------------

    def _connect_next(self):
        host, port = self.hosts[self.next_host]
        self.next_host = (self.next_host + 1) % len(self.hosts)
        self.node = "%s:%d" % (host, port)
        self.connections += 1
        try:
            # connect() keeps the Client's session state (un-acked messages) and only re-points
            # it at another host; the CONNACK is handled by the loop.
            self.client.connect(host, port, keepalive=self.args.keepalive)
        except OSError as e:
            self.history.log("connect_failed", node=self.node, error=type(e).__name__)
            time.sleep(self.RETRY_PAUSE)
            return False
        return True

    def _on_connect(self, client, userdata, flags, rc):
        sp = int(flags.get("session present", 0))
        self.history.log("connack", node=self.node, rc=rc, sp=sp, conn=self.connections)
        if rc == 0:
            self.connected = True
            self.on_session(sp)

    def _on_disconnect(self, client, userdata, rc):
        # paho may report one lost connection twice (read error, then the closed socket).
        if self.disconnect_logged != self.connections:
            self.disconnect_logged = self.connections
            self.history.log("disconnect", node=self.node, rc=rc, conn=self.connections)
        self.connected = False

    def run(self):
        self.history.log("start", id=self.args.id, hosts=self.args.hosts, pid=os.getpid())
        while not self.stop_requested():
            if self.client.socket() is None:
                if not self._connect_next():
                    continue
            # A short loop timeout keeps the publish schedule and the stop check responsive.
            rc = self.client.loop(timeout=0.005)
            if rc != self.mqtt.MQTT_ERR_SUCCESS and self.client.socket() is not None:
                self.client.disconnect()
            if self.client.socket() is None:
                self.connected = False
                time.sleep(self.RETRY_PAUSE)
                continue
            self.tick()
        self.finish()
        self.history.close()
        return 0

    # -- role hooks ----------------------------------------------------------------------

    def on_session(self, session_present):
        pass

    def tick(self):
        pass

    def finish(self):
        if self.client.socket() is not None:
            self.client.disconnect()
            self.client.loop(timeout=0.1)


class Publisher(Worker):
    """Numbered messages, "<id>:<seq>", on one topic at one QoS."""

    def __init__(self, args):
        super().__init__(args)
        self.client.max_inflight_messages_set(args.window)
        self.client.on_publish = self._on_publish
        self.seq = 0
        self.unacked = {}  # paho mid -> seq, for what is published and not yet acknowledged
        self.next_send = None  # when the next message is due (monotonic)

    def _on_publish(self, client, userdata, mid):
        seq = self.unacked.pop(mid, None)
        if seq is not None:
            self.history.log("acked", seq=seq, node=self.node, conn=self.connections)

    def on_session(self, session_present):
        if self.unacked:
            # paho resends these (DUP PUBLISH, or PUBREL) right after this callback.
            self.history.log("resending", seqs=sorted(self.unacked.values()), node=self.node)

    def tick(self):
        if not self.connected:
            return
        now = time.monotonic()
        interval = 1.0 / self.args.rate
        if self.next_send is None or now - self.next_send > 1.0:
            self.next_send = now  # after an outage, resume the rate instead of a burst
        while now >= self.next_send and len(self.unacked) < self.args.window:
            self.seq += 1
            info = self.client.publish(self.args.topic, "%s:%d" % (self.args.id, self.seq),
                                       qos=self.args.qos)
            self.unacked[info.mid] = self.seq
            self.next_send += interval

    def finish(self):
        # Give what is in flight a moment to be acknowledged, so "acked" is final at exit.
        self.history.log("stopping", last_seq=self.seq)
        deadline = time.monotonic() + self.args.drain
        while self.unacked and time.monotonic() < deadline:
            if self.client.socket() is None:
                self._connect_next()
                continue
            self.client.loop(timeout=0.01)
        self.history.log("stopped", last_seq=self.seq, unacked=sorted(self.unacked.values()))
        super().finish()


class Subscriber(Worker):
    """A persistent session subscribed once, at QoS 2, to --topics."""

    def __init__(self, args):
        super().__init__(args)
        self.topics = args.topics.split(",")
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = False  # a SUBACK has been received, ever

    def on_session(self, session_present):
        if not self.subscribed:
            self.client.subscribe([(topic, 2) for topic in self.topics])

    def _on_subscribe(self, client, userdata, mid, granted_qos):
        self.subscribed = True
        self.history.log("suback", node=self.node, granted=list(granted_qos))

    def _on_message(self, client, userdata, msg):
        payload = msg.payload.decode("utf-8", "replace")
        pub, _, seq = payload.rpartition(":")
        self.history.log("msg", topic=msg.topic, pub=pub, seq=int(seq) if seq.isdigit() else -1,
                         qos=msg.qos, dup=int(msg.dup), retain=int(msg.retain), mid=msg.mid,
                         node=self.node, conn=self.connections)

    def finish(self):
        self.history.log("stopped")
        super().finish()


# ---------------------------------------------------------------------------------------------
# One-shot tools (raw MQTT 3.1.1 over a socket)
# ---------------------------------------------------------------------------------------------


class Closed(Exception):
    pass


def _remaining_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text):
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def _packet(first_byte, body):
    return bytes([first_byte]) + _remaining_length(len(body)) + body


def _connect_packet(client_id, keepalive=30):
    body = _str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive) + _str(client_id)
    return _packet(0x10, body)


def _publish_packet(topic, payload, qos, mid, retain):
    body = _str(topic) + (struct.pack("!H", mid) if qos else b"") + payload.encode("utf-8")
    return _packet(0x30 | (qos << 1) | int(retain), body)


class RawConnection:
    """A blocking MQTT 3.1.1 connection with a deadline on every read."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed()
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_packet(self):
        first = self._read(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._read(1)[0]
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, self._read(length)

    def connect(self, client_id):
        """Returns the CONNACK return code."""
        self.send(_connect_packet(client_id))
        first, body = self.read_packet()
        if first != 0x20 or len(body) != 2:
            raise Closed()
        return body[1]

    def close(self):
        try:
            self.send(b"\xe0\x00")  # DISCONNECT
        except OSError:
            pass
        self.sock.close()


def probe_once(host, port, timeout):
    try:
        conn = RawConnection(host, port, timeout)
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "timeout"
    try:
        rc = conn.connect("probe-" + secrets.token_hex(4))
        return "ok" if rc == 0 else "rc%d" % rc
    except Closed:
        return "closed"
    except OSError:
        return "timeout"
    finally:
        conn.close()


def cmd_probe(args):
    host, port = parse_hosts(args.host)[0]
    deadline = time.monotonic() + args.timeout
    attempts = 0
    while True:
        attempts += 1
        result = probe_once(host, port, min(2.0, args.timeout))
        reached = args.until is None or result == args.until
        if reached or time.monotonic() >= deadline:
            print(json.dumps({"result": result, "attempts": attempts}))
            return 0 if reached else 1
        time.sleep(0.05)


def _expect_ack(conn, first_byte, mid):
    while True:
        first, body = conn.read_packet()
        if first == first_byte and body[:2] == struct.pack("!H", mid):
            return


def cmd_retain_pub(args):
    host, port = parse_hosts(args.host)[0]
    conn = RawConnection(host, port, args.timeout)
    try:
        rc = conn.connect("retain-pub-" + secrets.token_hex(4))
        if rc != 0:
            print(json.dumps({"result": "rc%d" % rc}))
            return 1
        conn.send(_publish_packet(args.topic, args.payload, 1, 1, True))
        _expect_ack(conn, 0x40, 1)
        print(json.dumps({"result": "ok"}))
        return 0
    finally:
        conn.close()


def cmd_retain_read(args):
    host, port = parse_hosts(args.host)[0]
    conn = RawConnection(host, port, args.timeout)
    try:
        rc = conn.connect("retain-read-" + secrets.token_hex(4))
        if rc != 0:
            print(json.dumps({"result": "rc%d" % rc}))
            return 1
        conn.send(_packet(0x82, struct.pack("!H", 1) + _str(args.filter) + b"\x01"))
        _expect_ack(conn, 0x90, 1)
        sentinel = args.filter.rstrip("#").rstrip("/") + "/_sentinel/" + secrets.token_hex(4)
        conn.send(_publish_packet(sentinel, "sentinel", 1, 2, False))
        retained = {}
        while True:
            first, body = conn.read_packet()
            if first >> 4 != 3:
                continue  # PUBACK of the sentinel
            qos = (first >> 1) & 3
            topic_len = struct.unpack("!H", body[:2])[0]
            topic = body[2:2 + topic_len].decode("utf-8")
            offset = 2 + topic_len
            if qos:
                conn.send(_packet(0x40, body[offset:offset + 2]))  # PUBACK
                offset += 2
            if topic == sentinel:
                break
            if first & 1:
                retained[topic] = body[offset:].decode("utf-8", "replace")
        print(json.dumps({"result": "ok", "retained": retained}))
        return 0
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    roles = parser.add_subparsers(dest="role", required=True)

    def worker(name):
        p = roles.add_parser(name)
        p.add_argument("--id", required=True, help="MQTT client id")
        p.add_argument("--hosts", required=True, help="IP:PORT,... in the order to try")
        p.add_argument("--log", required=True, help="JSON-lines history file")
        p.add_argument("--stop-file", help="stop when this file exists (or on SIGTERM)")
        p.add_argument("--keepalive", type=int, default=3)
        p.add_argument("--paho-log", action="store_true", help="log paho's packets to stderr")
        return p

    pub = worker("publisher")
    pub.add_argument("--topic", required=True)
    pub.add_argument("--qos", type=int, choices=(1, 2), default=1)
    pub.add_argument("--rate", type=float, default=200.0, help="messages per second")
    pub.add_argument("--window", type=int, default=20, help="most messages un-acked at once")
    pub.add_argument("--drain", type=float, default=5.0,
                     help="seconds to wait for in-flight acks when stopping")
    sub = worker("subscriber")
    sub.add_argument("--topics", required=True, help="comma-separated topic filters")

    probe = roles.add_parser("probe")
    probe.add_argument("--host", required=True)
    probe.add_argument("--until", help="repeat until this result (e.g. ok, rc3)")
    probe.add_argument("--timeout", type=float, default=2.0)
    rpub = roles.add_parser("retain-pub")
    rpub.add_argument("--host", required=True)
    rpub.add_argument("--topic", required=True)
    rpub.add_argument("--payload", required=True)
    rpub.add_argument("--timeout", type=float, default=5.0)
    rread = roles.add_parser("retain-read")
    rread.add_argument("--host", required=True)
    rread.add_argument("--filter", required=True)
    rread.add_argument("--timeout", type=float, default=5.0)

    args = parser.parse_args(argv)
    if args.role == "publisher":
        return Publisher(args).run()
    if args.role == "subscriber":
        return Subscriber(args).run()
    return {"probe": cmd_probe, "retain-pub": cmd_retain_pub,
            "retain-read": cmd_retain_read}[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
