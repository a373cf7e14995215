"""Shared harness for meshmq's integration tests.

Every test file drives a real broker process over 127.0.0.1 with real clients:
  * paho-mqtt (Debian's python3-paho-mqtt 1.6.1, so run the suite with /usr/bin/python3),
  * mosquitto_pub / mosquitto_sub subprocesses,
  * RawClient below, which sends and expects exact bytes (the Mosquitto broker-test style).

Which broker runs:
  * default: meshmqd, from $MESHMQD (what ctest sets), else <repo>/build/node/meshmqd;
  * MESHMQ_REFERENCE=mosquitto: Mosquitto as the reference broker. meshmqd's flags are
    translated to a mosquitto.conf. Tests of deliberate meshmq-only behaviour are decorated
    with @meshmq_only(reason) and are skipped in this mode only.

Nothing sleeps "long enough": positive checks poll with wait_for() under a deadline. Negative
checks ("X never arrives") publish a sentinel after X from the same publisher and assert that
the sentinel arrives alone; where no sentinel can pass (a full in-flight window), a PINGREQ
round trip plus a short quiet window (RawClient.expect_nothing_before_ping) is used.

Run one file:  cd tests/integration && MESHMQD=../../build/node/meshmqd \
                   /usr/bin/python3 -m unittest -v test_connect
Reference:     MESHMQ_REFERENCE=mosquitto /usr/bin/python3 -m unittest -v test_connect
"""

import atexit
import base64
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
TIMEOUT = 5.0  # default deadline for anything that should happen "promptly"
REFERENCE = os.environ.get("MESHMQ_REFERENCE", "").strip().lower()
if REFERENCE not in ("", "mosquitto"):
    raise RuntimeError("MESHMQ_REFERENCE must be unset or 'mosquitto', got %r" % REFERENCE)
IS_REFERENCE = REFERENCE == "mosquitto"

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"


def meshmqd_path():
    path = os.environ.get("MESHMQD") or os.path.join(_REPO, "build", "node", "meshmqd")
    if not os.access(path, os.X_OK):
        raise RuntimeError(
            "meshmqd not found at %s: set MESHMQD=/path/to/meshmqd, or run against the "
            "reference broker with MESHMQ_REFERENCE=mosquitto" % path)
    return path


def meshmq_only(reason):
    """Skips a test or class only when the reference broker (Mosquitto) is under test."""
    return unittest.skipIf(IS_REFERENCE, "meshmq-only: " + reason)


def wait_for(predicate, timeout=TIMEOUT, interval=0.01, message=None):
    """Polls predicate until it returns a truthy value, which is returned; fails on deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or "condition not met within %.1fs" % timeout)
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

_live_processes = set()


def _kill_leftovers():
    for proc in list(_live_processes):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


atexit.register(_kill_leftovers)


class _LineCollector:
    """Drains a pipe on a thread (so the child never blocks) and keeps its lines."""

    def __init__(self, pipe):
        self.lines = []
        self._cond = threading.Condition()
        self.closed = False
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self._thread.start()

    def _run(self, pipe):
        for raw in iter(pipe.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        pipe.close()

    def snapshot(self):
        with self._cond:
            return list(self.lines)

    def text(self):
        return "\n".join(self.snapshot())

    def join(self, timeout=TIMEOUT):
        self._thread.join(timeout)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _duration_seconds(value):
    """'500ms' / '2s' / '1m' / plain number of seconds -> float seconds."""
    text = str(value).strip()
    match = re.fullmatch(r"([0-9.]+)(ms|s|m|h)?", text)
    if not match:
        raise ValueError("bad duration %r" % value)
    number = float(match.group(1))
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def _flag_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Broker:
    """One broker process (meshmqd, or mosquitto in reference mode) on 127.0.0.1.

    flags are meshmqd's flag names without dashes, e.g. Broker(allow_anonymous=False,
    password_file=path, max_inflight=3, sys_interval="1s"). kind=None follows the suite's mode;
    kind="mosquitto" forces a Mosquitto broker (for file-compatibility checks).
    """

    _counter = 0

    def __init__(self, kind=None, **flags):
        self.kind = kind or ("mosquitto" if IS_REFERENCE else "meshmqd")
        self.flags = dict(flags)
        if self.kind == "meshmqd":
            self.flags.setdefault("workers", 2)  # always exercise cross-worker delivery
        self.proc = None
        self.port = None
        self.returncode = None
        self.stderr = None
        Broker._counter += 1
        self.name = "it%d-%d" % (os.getpid(), Broker._counter)
        self.dir = tempfile.mkdtemp(prefix="meshmq-it-")

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout=10.0):
        if self.kind == "meshmqd":
            argv = self._meshmqd_argv()
            pattern = re.compile(r"listening on mqtt 127\.0\.0\.1:(\d+)")
        else:
            argv = self._mosquitto_argv()
            pattern = re.compile(r"mosquitto version \S+ running")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=self.dir)
        _live_processes.add(self.proc)
        self.stderr = _LineCollector(self.proc.stderr)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stderr.snapshot():
                match = pattern.search(line)
                if match:
                    # The line is printed once the socket listens. No probe connection:
                    # Mosquitto 2.0.11 miscounts a socket closed before CONNECT and would then
                    # admit one client too many under max_connections.
                    if self.kind == "meshmqd":
                        self.port = int(match.group(1))
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s during start-up:\n%s" %
                                   (argv[0], self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("%s did not report its listener within %.0fs:\n%s" %
                                   (argv[0], timeout, self.log_tail()))
            time.sleep(0.01)

    def _meshmqd_argv(self):
        data_dir = os.path.join(self.dir, "data")
        os.makedirs(data_dir, exist_ok=True)
        argv = [meshmqd_path(), "--mqtt_listen=%s:0" % HOST, "--data_dir=%s" % data_dir,
                "--node_id=%s" % self.name]
        for key, value in self.flags.items():
            argv.append("--%s=%s" % (key, _flag_value(value)))
        return argv

    def _mosquitto_argv(self):
        """Translates meshmqd flags into the equivalent mosquitto.conf."""
        self.port = free_port()
        flags = dict(self.flags)
        lines = ["per_listener_settings false", "persistence false", "log_dest stderr",
                 # As root, mosquitto would switch to user "mosquitto" and lose our temp files.
                 "user %s" % pwd.getpwuid(os.getuid()).pw_name,
                 "log_type error", "log_type warning", "log_type notice", "log_type information",
                 "connection_messages true",
                 "allow_anonymous %s" % _flag_value(flags.pop("allow_anonymous", True))]
        for key in ("password_file", "acl_file", "max_packet_size", "max_queued_messages"):
            if key in flags:
                lines.append("%s %s" % (key, flags.pop(key)))
        if "max_inflight" in flags:
            lines.append("max_inflight_messages %s" % flags.pop("max_inflight"))
        if "sys_interval" in flags:
            seconds = _duration_seconds(flags.pop("sys_interval"))
            lines.append("sys_interval %d" % (0 if seconds == 0 else max(1, round(seconds))))
        for ignored in ("workers", "node_id", "data_dir"):
            flags.pop(ignored, None)
        # Mosquitto has no configurable CONNECT timeout; tests that need it are meshmq-only.
        flags.pop("connect_timeout", None)
        max_connections = flags.pop("max_connections", None)
        if flags:
            raise ValueError("no mosquitto translation for flags %s" % sorted(flags))
        lines.append("listener %d %s" % (self.port, HOST))
        if max_connections is not None:
            lines.append("max_connections %s" % max_connections)
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        return [MOSQUITTO, "-c", conf]

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum):
        self.proc.send_signal(signum)

    def terminate(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self.returncode = self.proc.returncode
        _live_processes.discard(self.proc)
        self.stderr.join()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            _live_processes.discard(self.proc)

    def stop(self):
        """Idempotent cleanup: stop the process and delete its directory."""
        try:
            self.terminate()
        finally:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines=40):
        if self.stderr is None:
            return ""
        return "\n".join(self.stderr.snapshot()[-lines:])

    def path(self, name):
        """A path inside the broker's private temp directory (for password/ACL files)."""
        return os.path.join(self.dir, name)


# ---------------------------------------------------------------------------------------------
# Test base classes
# ---------------------------------------------------------------------------------------------


class BrokerTestCase(unittest.TestCase):
    """One broker shared by the tests of a class. Subclasses set broker_flags, or override
    prepare_broker(broker) to write files (password, ACL) into the broker's dir first."""

    broker_flags = {}
    broker = None

    @classmethod
    def prepare_broker(cls, broker):
        pass

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.broker = Broker(**cls.broker_flags)
        cls.addClassCleanup(cls.broker.stop)
        cls.prepare_broker(cls.broker)
        cls.broker.start()

    def setUp(self):
        super().setUp()
        self.addCleanup(self._check_broker_alive)

    def _check_broker_alive(self):
        if self.broker is not None and self.broker.proc is not None and not self.broker.running():
            self.fail("broker exited unexpectedly (code %s); log tail:\n%s" %
                      (self.broker.proc.returncode, self.broker.log_tail()))

    # -- helpers bound to the class broker -------------------------------------------------

    @property
    def port(self):
        return self.broker.port

    def topic(self, suffix=""):
        """A topic prefix unique to this test, so tests sharing a broker never interfere."""
        base = "t/" + self.id().rsplit(".", 1)[-1]
        return base + ("/" + suffix if suffix else "")

    def raw(self, broker=None, **kwargs):
        client = RawClient((broker or self.broker).port, **kwargs)
        self.addCleanup(client.close)
        return client

    def raw_connected(self, client_id=None, broker=None, **connect_kwargs):
        """A raw client that has sent CONNECT and received CONNACK 20 02 00 00."""
        if client_id is None:
            client_id = unique_id()
        client = self.raw(broker)
        client.send(connect(client_id, **connect_kwargs))
        client.expect(connack(0, 0))
        return client

    def client(self, broker=None, connect=True, expect_rc=0, **kwargs):
        c = MqttClient((broker or self.broker).port, **kwargs)
        self.addCleanup(c.close)
        if connect:
            rc = c.connect()
            if expect_rc is not None:
                self.assertEqual(rc, expect_rc, "CONNACK return code for %s" % c.client_id)
        return c

    def subscriber(self, *filters, qos=1, **kwargs):
        c = self.client(**kwargs)
        granted = c.subscribe([(f, qos) for f in filters])
        self.assertEqual(granted, [qos] * len(filters))
        return c

    def assert_broker_serves(self, broker=None):
        """A fresh client can still connect, subscribe and get its own message back."""
        topic = "alive/" + unique_id()
        c = self.raw_connected(broker=broker)
        c.send(subscribe(1, [(topic, 1)]))
        c.expect(suback(1, [1]))
        c.send(publish(topic, b"ping", qos=1, mid=2))
        got = set()
        for _ in range(2):  # PUBACK and the delivery may come in either order
            got.add(c.read_packet())
        mid = None
        for pkt in got:
            if pkt[0] & 0xF0 == 0x30:
                mid = parse_publish(pkt)["mid"]
        self.assertIsNotNone(mid, "no delivery in %r" % got)
        self.assertEqual(got, {puback(2), publish(topic, b"ping", qos=1, mid=mid)})
        c.send(puback(mid))
        c.send(disconnect())
        c.close()


def connack_rc(port, client_id=None, **connect_kwargs):
    """Connects a throw-away raw client; returns the CONNACK return code, or None if the
    broker closed the connection without a CONNACK."""
    c = RawClient(port)
    try:
        c.send(connect(client_id or unique_id(), **connect_kwargs))
        pkt = c.read_packet()
        if pkt[:2] != b"\x20\x02":
            raise AssertionError("expected CONNACK, got %s" % pkt.hex(" "))
        if pkt[3] == 0:
            c.send(disconnect())
        return pkt[3]
    except ConnectionClosed:
        return None
    finally:
        c.close()


def unique_id(prefix="c"):
    return "%s-%s" % (prefix, secrets.token_hex(5))


# ---------------------------------------------------------------------------------------------
# Packet builders: exact MQTT 3.1 / 3.1.1 bytes
# ---------------------------------------------------------------------------------------------


def encode_remaining_length(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def _str(value):
    if isinstance(value, str):
        value = value.encode("utf-8")
    return struct.pack("!H", len(value)) + value


def packet(first_byte, body=b""):
    return bytes([first_byte]) + encode_remaining_length(len(body)) + body


def connect(client_id, clean=True, keepalive=60, username=None, password=None, will_topic=None,
            will_payload=b"", will_qos=0, will_retain=False, proto_name="MQTT", proto_level=4,
            flags=None):
    """CONNECT. proto_name="MQIsdp", proto_level=3 for MQTT 3.1. flags overrides the byte."""
    f = 0
    if clean:
        f |= 0x02
    payload = _str(client_id)
    if will_topic is not None:
        f |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += _str(will_topic) + _str(will_payload)
    if username is not None:
        f |= 0x80
        payload += _str(username)
    if password is not None:
        f |= 0x40
        payload += _str(password)
    if flags is not None:
        f = flags
    body = _str(proto_name) + bytes([proto_level, f]) + struct.pack("!H", keepalive) + payload
    return packet(0x10, body)


def connack(session_present=0, rc=0):
    return bytes([0x20, 0x02, session_present, rc])


def publish(topic, payload=b"", qos=0, mid=None, retain=False, dup=False):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    first = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = _str(topic)
    if qos > 0:
        body += struct.pack("!H", mid)
    return packet(first, body + payload)


def puback(mid):
    return bytes([0x40, 0x02]) + struct.pack("!H", mid)


def pubrec(mid):
    return bytes([0x50, 0x02]) + struct.pack("!H", mid)


def pubrel(mid):
    return bytes([0x62, 0x02]) + struct.pack("!H", mid)


def pubcomp(mid):
    return bytes([0x70, 0x02]) + struct.pack("!H", mid)


def subscribe(mid, filters, first_byte=0x82):
    body = struct.pack("!H", mid)
    for topic, qos in filters:
        body += _str(topic) + bytes([qos])
    return packet(first_byte, body)


def suback(mid, codes):
    return packet(0x90, struct.pack("!H", mid) + bytes(codes))


def unsubscribe(mid, filters, first_byte=0xA2):
    body = struct.pack("!H", mid)
    for topic in filters:
        body += _str(topic)
    return packet(first_byte, body)


def unsuback(mid):
    return bytes([0xB0, 0x02]) + struct.pack("!H", mid)


def pingreq():
    return b"\xc0\x00"


def pingresp():
    return b"\xd0\x00"


def disconnect():
    return b"\xe0\x00"


def parse_publish(pkt):
    """Splits a complete PUBLISH packet (as returned by RawClient.read_packet)."""
    first = pkt[0]
    if first & 0xF0 != 0x30:
        raise AssertionError("expected PUBLISH, got %s" % pkt.hex(" "))
    i = 1
    while pkt[i] & 0x80:
        i += 1
    i += 1
    tlen = struct.unpack("!H", pkt[i:i + 2])[0]
    topic = pkt[i + 2:i + 2 + tlen]
    i += 2 + tlen
    qos = (first >> 1) & 0x03
    mid = None
    if qos:
        mid = struct.unpack("!H", pkt[i:i + 2])[0]
        i += 2
    return {"topic": topic.decode("utf-8", "replace"), "payload": pkt[i:], "qos": qos, "mid": mid,
            "dup": bool(first & 0x08), "retain": bool(first & 0x01)}


# ---------------------------------------------------------------------------------------------
# Raw socket client
# ---------------------------------------------------------------------------------------------


class ConnectionClosed(Exception):
    pass


class RawClient:
    """A TCP connection that sends bytes and reads whole MQTT packets with deadlines."""

    def __init__(self, port, timeout=TIMEOUT):
        self.timeout = timeout
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete packet within deadline; have %s" % self.buf.hex(" "))
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, ConnectionAbortedError):
                data = b""
            if not data:
                raise ConnectionClosed("connection closed; unread %s" % self.buf.hex(" "))
            self.buf += data

    def read_packet(self, timeout=None):
        """Returns the next complete packet (fixed header included) as bytes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._fill(2, deadline)
        length, multiplier, i = 0, 1, 1
        while True:
            self._fill(i + 1, deadline)
            byte = self.buf[i]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if not byte & 0x80:
                break
            if i > 4:
                raise AssertionError("broker sent a malformed remaining length")
        self._fill(i + length, deadline)
        pkt, self.buf = self.buf[:i + length], self.buf[i + length:]
        return pkt

    def expect(self, expected, timeout=None):
        try:
            got = self.read_packet(timeout)
        except (ConnectionClosed, TimeoutError) as e:
            raise AssertionError("expected %s, but %s" % (expected.hex(" "), e)) from None
        if got != expected:
            raise AssertionError("expected %s\n     got %s" % (expected.hex(" "), got.hex(" ")))
        return got

    def expect_publish(self, topic, payload, qos=0, retain=False, dup=False, timeout=None):
        """Reads a PUBLISH and checks its exact bytes (the broker chooses the packet id)."""
        try:
            got = self.read_packet(timeout)
        except (ConnectionClosed, TimeoutError) as e:
            raise AssertionError("expected PUBLISH %r %r, but %s" % (topic, payload, e)) from None
        mid = parse_publish(got)["mid"] if got[0] & 0xF0 == 0x30 else None
        expected = publish(topic, payload, qos=qos, mid=mid, retain=retain, dup=dup)
        if got != expected:
            raise AssertionError("expected %s\n     got %s" % (expected.hex(" "), got.hex(" ")))
        return mid

    def expect_closed(self, timeout=None):
        """Asserts the broker closes the connection without sending anything further."""
        try:
            got = self.read_packet(timeout)
        except ConnectionClosed:
            return
        except TimeoutError:
            raise AssertionError("connection still open after %.1fs" %
                                 (self.timeout if timeout is None else timeout)) from None
        raise AssertionError("expected the connection to close, got packet %s" % got.hex(" "))

    def is_closed(self, timeout=0.05):
        """Non-failing probe: True if the peer has closed (discarding any pending packets)."""
        try:
            while True:
                self.read_packet(timeout)
        except ConnectionClosed:
            return True
        except TimeoutError:
            return False

    def ping(self):
        """Round trip: proves the connection is open and the broker has processed what we sent."""
        self.send(pingreq())
        self.expect(pingresp())

    def expect_nothing_before_ping(self, quiet=0.2):
        """Asserts no packet arrives before a PINGRESP, then for a short quiet window."""
        self.send(pingreq())
        got = self.read_packet()
        if got != pingresp():
            raise AssertionError("expected nothing but PINGRESP, got %s" % got.hex(" "))
        try:
            got = self.read_packet(quiet)
        except TimeoutError:
            return
        raise AssertionError("unexpected packet %s" % got.hex(" "))

    def collect_publishes(self, until_payload, timeout=None):
        """Reads PUBLISHes in arrival order, completing every QoS 1/2 flow, until one carries
        until_payload and all QoS 2 flows are complete. Returns the parsed PUBLISHes (dicts
        from parse_publish) in arrival order."""
        got, open_qos2, done = [], set(), False
        while not done or open_qos2:
            pkt = self.read_packet(timeout)
            if pkt[0] & 0xF0 == 0x60:  # PUBREL for a QoS 2 message we PUBREC'd
                mid = struct.unpack("!H", pkt[2:4])[0]
                if pkt != pubrel(mid) or mid not in open_qos2:
                    raise AssertionError("unexpected %s" % pkt.hex(" "))
                open_qos2.discard(mid)
                self.send(pubcomp(mid))
                continue
            msg = parse_publish(pkt)
            got.append(msg)
            if msg["qos"] == 1:
                self.send(puback(msg["mid"]))
            elif msg["qos"] == 2:
                open_qos2.add(msg["mid"])
                self.send(pubrec(msg["mid"]))
            if msg["payload"] == until_payload:
                done = True
        return got

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with RST instead of FIN: a hard network failure from the broker's view."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


# ---------------------------------------------------------------------------------------------
# paho-mqtt client
# ---------------------------------------------------------------------------------------------


class MqttClient:
    """A paho client on its own network thread; records CONNACK, SUBACKs and messages.

    It never reconnects by itself: when the connection drops, the loop stops and
    disconnected is set, so takeover tests do not ping-pong.
    """

    def __init__(self, port, client_id=None, clean_session=True, protocol=mqtt.MQTTv311,
                 username=None, password=None, keepalive=60, will=None):
        self.port = port
        self.keepalive = keepalive
        self.client_id = unique_id("p") if client_id is None else client_id
        self.c = mqtt.Client(client_id=self.client_id, clean_session=clean_session,
                             protocol=protocol)
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            topic, payload, qos, retain = will
            self.c.will_set(topic, payload, qos, retain)
        self._lock = threading.Lock()
        self.messages = []
        self.connack = None  # (rc, session_present)
        self.subacks = {}
        self.unsubacks = set()
        self.disconnected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self._started = False

    def _on_connect(self, client, userdata, flags, rc):
        self.connack = (rc, flags.get("session present", 0))

    def _on_disconnect(self, client, userdata, rc):
        self.disconnected.set()
        client.loop_stop()  # from the network thread: ends the loop instead of reconnecting

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.messages.append(msg)

    def _on_subscribe(self, client, userdata, mid, granted):
        self.subacks[mid] = list(granted)

    def _on_unsubscribe(self, client, userdata, mid):
        self.unsubacks.add(mid)

    def connect(self, timeout=TIMEOUT):
        """Connects and returns the CONNACK return code (None if closed without CONNACK)."""
        self.c.connect(HOST, self.port, self.keepalive)
        self.c.loop_start()
        self._started = True
        wait_for(lambda: self.connack is not None or self.disconnected.is_set(), timeout,
                 message="no CONNACK for %s" % self.client_id)
        return None if self.connack is None else self.connack[0]

    @property
    def session_present(self):
        return self.connack[1]

    def subscribe(self, filters, qos=0, timeout=TIMEOUT):
        """filters: a topic string or a list of (filter, qos). Returns the granted list."""
        if isinstance(filters, str):
            filters = [(filters, qos)]
        rc, mid = self.c.subscribe(filters)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("subscribe failed locally: %s" % mqtt.error_string(rc))
        wait_for(lambda: mid in self.subacks or self.disconnected.is_set(), timeout,
                 message="no SUBACK")
        if mid not in self.subacks:
            raise AssertionError("connection closed instead of SUBACK")
        return self.subacks[mid]

    def unsubscribe(self, topics, timeout=TIMEOUT):
        rc, mid = self.c.unsubscribe(topics)
        wait_for(lambda: mid in self.unsubacks, timeout, message="no UNSUBACK")

    def publish(self, topic, payload=b"", qos=0, retain=False, timeout=TIMEOUT):
        """Publishes and waits until the flow completes (PUBACK / PUBCOMP, or sent for QoS 0)."""
        info = self.c.publish(topic, payload, qos, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("publish failed locally: %s" % mqtt.error_string(info.rc))
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise AssertionError("publish of %r at QoS %d not completed" % (topic, qos))
        return info

    def received(self, topic=None):
        with self._lock:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def payloads(self, topic=None):
        return [m.payload for m in self.received(topic)]

    def wait_message(self, topic=None, payload=None, timeout=TIMEOUT):
        """Waits for a message matching topic/payload (when given) and returns it."""
        def find():
            for m in self.received(topic):
                if payload is None or m.payload == (payload.encode() if isinstance(payload, str)
                                                    else payload):
                    return m
            return None
        return wait_for(find, timeout,
                        message="%s: no message %r %r; got %r" % (
                            self.client_id, topic, payload,
                            [(m.topic, m.payload) for m in self.received()]))

    def wait_count(self, n, topic=None, timeout=TIMEOUT):
        wait_for(lambda: len(self.received(topic)) >= n, timeout,
                 message="%s: expected %d messages, got %r" % (
                     self.client_id, n, [(m.topic, m.payload) for m in self.received(topic)]))
        return self.received(topic)

    def clear(self):
        with self._lock:
            self.messages = []

    def disconnect(self):
        """Clean DISCONNECT, then wait for the network loop to finish."""
        if self._started and not self.disconnected.is_set():
            self.c.disconnect()
            self.disconnected.wait(TIMEOUT)
        self.close()

    def close(self):
        if self._started:
            if not self.disconnected.is_set():
                self.c.disconnect()
                self.disconnected.wait(TIMEOUT)
            self.c.loop_stop()
            self._started = False
        try:
            self.c.socket() and self.c.socket().close()
        except OSError:
            pass


class SysWatcher:
    """Follows $SYS/broker/# on a client and keeps the latest payload per topic."""

    def __init__(self, test, broker=None, **client_kwargs):
        self.client = test.client(broker=broker, **client_kwargs)
        granted = self.client.subscribe("$SYS/broker/#", 0)
        test.assertEqual(granted, [0])

    def latest(self, topic):
        for m in reversed(self.client.received(topic)):
            return m.payload.decode()
        return None

    def counter(self, name):
        value = self.latest("$SYS/broker/counters/" + name)
        return None if value is None else int(value)

    def wait_counter_at_least(self, name, minimum, timeout=TIMEOUT):
        def reached():
            value = self.counter(name)
            return value is not None and value >= minimum
        wait_for(reached, timeout, message="$SYS/broker/counters/%s did not reach %d (last %r)" %
                 (name, minimum, self.counter(name)))

    def counter_now(self, name, timeout=TIMEOUT):
        wait_for(lambda: self.counter(name) is not None, timeout,
                 message="no $SYS/broker/counters/" + name)
        return self.counter(name)


# ---------------------------------------------------------------------------------------------
# Password files and command-line clients
# ---------------------------------------------------------------------------------------------


def sha512_password_line(user, password, salt=None):
    """A Mosquitto "$6$" entry: base64(sha512(password || salt)) with a base64 salt."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.sha512(password.encode("utf-8") + salt).digest()
    return "%s:$6$%s$%s" % (user, base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def passwd_tool():
    """meshmqd's passwd subcommand, or mosquitto_passwd in reference mode (same CLI)."""
    if IS_REFERENCE:
        return [MOSQUITTO_PASSWD]
    return [meshmqd_path(), "passwd"]


def run_tool(argv, stdin_text=None, timeout=10):
    return subprocess.run(argv, input=None if stdin_text is None else stdin_text.encode(),
                          stdin=None if stdin_text is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def mosquitto_passwd(path, user, password, create=False):
    argv = [MOSQUITTO_PASSWD] + (["-c"] if create else []) + ["-b", path, user, password]
    result = run_tool(argv)
    if result.returncode != 0:
        raise RuntimeError("mosquitto_passwd failed: %s" % result.stderr.decode())


class CliProcess:
    """A mosquitto_sub (or other) subprocess whose stdout lines are collected."""

    def __init__(self, test, argv):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        _live_processes.add(self.proc)
        self.out = _LineCollector(self.proc.stdout)
        self.err = _LineCollector(self.proc.stderr)
        test.addCleanup(self.stop)

    def lines(self):
        return self.out.snapshot()

    def wait_line(self, line, timeout=TIMEOUT):
        wait_for(lambda: line in self.lines(), timeout,
                 message="%s: no line %r; stdout %r stderr %r" % (
                     " ".join(self.argv), line, self.lines(), self.err.snapshot()))

    def wait_exit(self, timeout=TIMEOUT):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running; stdout %r stderr %r" % (
                " ".join(self.argv), self.lines(), self.err.snapshot()))
        self.out.join()
        self.err.join()
        _live_processes.discard(self.proc)
        return self.proc.returncode

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        _live_processes.discard(self.proc)
