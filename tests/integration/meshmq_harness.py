"""Shared harness for meshmq's integration tests.

Every test file drives a real broker process over 127.0.0.1 with real clients:
  * paho-mqtt (Debian's python3-paho-mqtt 1.6.1, so run the suite with /usr/bin/python3),
  * mosquitto_pub / mosquitto_sub subprocesses,
  * RawClient below, which sends and expects exact bytes (the Mosquitto broker-test style);
    MQTT 5 packets are built by connect_v5/publish_v5/... with properties from
    encode_properties([(P.X, value), ...]) and read back with parse_v5 (reason codes: RC).

Which broker runs:
  * default: meshmqd, from $MESHMQD (what ctest sets), else <repo>/build/node/meshmqd;
  * MESHMQ_REFERENCE=mosquitto: Mosquitto as the reference broker. meshmqd's flags are
    translated to a mosquitto.conf. Tests of deliberate meshmq-only behaviour are decorated
    with @meshmq_only(reason) and are skipped in this mode only.

Clusters: every meshmqd listens for peers on 127.0.0.1 port 0 (--cluster_listen) unless a test
says otherwise, so single-node tests never meet each other; Cluster starts several nodes that
peer with each other, and ClusterTestCase gives tests one (see both below).

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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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


def stable_free_port(exclude=()):
    """A free 127.0.0.1 port outside the kernel's ephemeral range, for a listener whose port must
    be known before it starts (a cluster node's, given to the others as a seed): ports bound to 0
    and outgoing connections take ephemeral ports, so they cannot take it in the meantime."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    ranges = [(a, b) for a, b in ((10000, low - 1), (high + 1, 65535)) if b - a >= 1000]
    if not ranges:
        return free_port()
    for _ in range(1000):
        a, b = ranges[secrets.randbelow(len(ranges))]
        port = a + secrets.randbelow(b - a + 1)
        if port in exclude:
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port outside the ephemeral range")


# meshmqd's cluster flags: ignored (with a single node) in the Mosquitto reference mode.
CLUSTER_FLAGS = ("cluster_listen", "peers", "peers_dns", "cluster_advertise",
                 "cluster_heartbeat_interval", "cluster_peer_timeout", "cluster_max_pending_bytes")


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
    if isinstance(value, (list, tuple)):  # absl list flags, e.g. --peers=a:1,b:2
        return ",".join(str(v) for v in value)
    return str(value)


class Broker:
    """One broker process (meshmqd, or mosquitto in reference mode) on 127.0.0.1.

    flags are meshmqd's flag names without dashes, e.g. Broker(allow_anonymous=False,
    password_file=path, max_inflight=3, sys_interval="1s"). kind=None follows the suite's mode;
    kind="mosquitto" forces a Mosquitto broker (for file-compatibility checks).
    data_dir: meshmqd's --data_dir (default: <its temp dir>/data, created here); pass another
    broker's data_dir to run a second meshmqd on the same store.
    node_id: meshmqd's --node_id (default: the broker's name). cluster_listen: its
    --cluster_listen (default 127.0.0.1:0, never the 0.0.0.0:7883 meshmqd would bind, so brokers
    do not meet by accident); cluster_port is the port it reported listening on.
    """

    _counter = 0

    def __init__(self, kind=None, data_dir=None, **flags):
        self.kind = kind or ("mosquitto" if IS_REFERENCE else "meshmqd")
        self.flags = dict(flags)
        if self.kind == "meshmqd":
            self.flags.setdefault("workers", 2)  # always exercise cross-worker delivery
        self.proc = None
        self.port = None
        self.returncode = None
        self.stderr = None
        self.previous_logs = []  # stderr of the processes before each restart()
        Broker._counter += 1
        self.name = "it%d-%d" % (os.getpid(), Broker._counter)
        self.node_id = self.flags.pop("node_id", None) or self.name
        self.cluster_listen_port = 0  # the default --cluster_listen's port; restart() keeps it
        self._cluster_port = None
        self.dir = tempfile.mkdtemp(prefix="meshmq-it-")
        self._own_data_dir = data_dir is None
        self.data_dir = os.path.join(self.dir, "data") if data_dir is None else data_dir
        self.listen_port = 0  # meshmqd's --mqtt_listen port; restart() keeps the previous one

    CLUSTER_LISTENING = re.compile(r"listening on cluster (\S+):(\d+)")
    HTTP_LISTENING = re.compile(r"listening on http (\S+):(\d+)")

    @property
    def http_port(self):
        """The port meshmqd said its HTTP listener (/metrics, /healthz, /readyz) is on
        ("listening on http HOST:PORT"), None if it has not (--http_listen=off, or Mosquitto).
        Printed before the MQTT line start() waits for, so known once start() returns."""
        if self.stderr is None or self.kind != "meshmqd":
            return None
        port = None
        for line in self.stderr.snapshot():  # the last one: a restart binds port 0 anew
            match = self.HTTP_LISTENING.search(line)
            if match:
                port = int(match.group(2))
        return port

    @property
    def cluster_port(self):
        """The port meshmqd said its cluster listener is on ("listening on cluster HOST:PORT"),
        None if it has not said so (yet), or for Mosquitto."""
        if self._cluster_port is None and self.stderr is not None and self.kind == "meshmqd":
            for line in self.stderr.snapshot():
                match = self.CLUSTER_LISTENING.search(line)
                if match:
                    self._cluster_port = int(match.group(2))
                    break
        return self._cluster_port

    # -- lifecycle ------------------------------------------------------------------------

    def _spawn(self, argv):
        """Starts the broker process, its stderr collected line by line."""
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=self.dir)
        _live_processes.add(self.proc)
        self.stderr = _LineCollector(self.proc.stderr)

    def start(self, timeout=10.0):
        if self.kind == "meshmqd":
            argv = self._meshmqd_argv()
            pattern = re.compile(r"listening on mqtt 127\.0\.0\.1:(\d+)")
        else:
            argv = self._mosquitto_argv()
            pattern = re.compile(r"mosquitto version \S+ running")
        self._spawn(argv)
        self._cluster_port = None
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
        if self._own_data_dir:
            os.makedirs(self.data_dir, exist_ok=True)
        argv = [meshmqd_path(), "--mqtt_listen=%s:%d" % (HOST, self.listen_port),
                "--data_dir=%s" % self.data_dir, "--node_id=%s" % self.node_id]
        if "cluster_listen" not in self.flags:
            argv.append("--cluster_listen=%s:%d" % (HOST, self.cluster_listen_port))
        if "admin_listen" not in self.flags:  # not the fixed default 9883: nodes run side by side
            argv.append("--admin_listen=%s:0" % HOST)
        if "http_listen" not in self.flags:  # nor the fixed default 18083 (/metrics)
            argv.append("--http_listen=%s:0" % HOST)
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
        if "max_keepalive" in flags:
            lines.append("max_keepalive %s" % flags.pop("max_keepalive"))
        if "retain_available" in flags:
            lines.append("retain_available %s" % _flag_value(flags.pop("retain_available")))
        if "sys_interval" in flags:
            seconds = _duration_seconds(flags.pop("sys_interval"))
            lines.append("sys_interval %d" % (0 if seconds == 0 else max(1, round(seconds))))
        # Tests depending on these are meshmq-only; the flags only shape meshmqd's class broker.
        for ignored in ("workers", "node_id", "data_dir", "max_output_buffer",
                        "max_subscriptions", "response_information") + CLUSTER_FLAGS:
            flags.pop(ignored, None)
        # Mosquitto has no configurable CONNECT timeout; tests that need it are meshmq-only.
        flags.pop("connect_timeout", None)
        max_connections = flags.pop("max_connections", None)
        per_listener = ["%s %s" % (key, flags.pop(key)) for key in ("max_topic_alias", "max_qos")
                        if key in flags]
        if flags:
            raise ValueError("no mosquitto translation for flags %s" % sorted(flags))
        lines.append("listener %d %s" % (self.port, HOST))
        if max_connections is not None:
            lines.append("max_connections %s" % max_connections)
        lines += per_listener
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        return [MOSQUITTO, "-c", conf]

    def restart(self, kill=True, timeout=10.0):
        """Stops meshmqd (SIGKILL, or SIGTERM and a graceful exit with kill=False) and starts
        it again with the same flags, data dir, node id and ports (MQTT and cluster), so clients
        and peers reconnect where they were. The old process's exit code is left in returncode
        (-9 after a kill), its log in previous_logs. A broker already stopped is just started."""
        if self.kind != "meshmqd":
            raise ValueError("restart() is for meshmqd (persistence); Mosquitto runs without")
        if kill:
            self.kill()
        else:
            self.terminate()
        self.returncode = self.proc.returncode
        self.stderr.join()
        self.previous_logs.append(self.stderr.text())
        self.listen_port = self.port
        if self.cluster_port is not None:
            self.cluster_listen_port = self.cluster_port
        return self.start(timeout)

    def start_expecting_failure(self, timeout=10.0):
        """Runs meshmqd where it should refuse to start. Returns (exit code, stderr text) once it
        exits, or (None, stderr text) if it reported its listener (or was still running at the
        deadline) instead; it is then killed."""
        argv = self._meshmqd_argv()
        pattern = re.compile(r"listening on mqtt 127\.0\.0\.1:(\d+)")
        self._spawn(argv)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                _live_processes.discard(self.proc)
                self.stderr.join()
                self.returncode = self.proc.returncode
                return self.returncode, self.stderr.text()
            if (any(pattern.search(line) for line in self.stderr.snapshot()) or
                    time.monotonic() > deadline):
                self.kill()
                self.stderr.join()
                return None, self.stderr.text()
            time.sleep(0.01)

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

    # What a sanitizer build (ASan, UBSan, TSan, LSan) prints when it finds something; a test
    # run against such a meshmqd fails on it, including reports made while shutting down.
    SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                         "WARNING: ThreadSanitizer")

    def sanitizer_reports(self):
        logs = list(getattr(self, "previous_logs", [])) + [self.stderr.text() if self.stderr else ""]
        return [line for text in logs for line in text.splitlines()
                if any(marker in line for marker in self.SANITIZER_REPORTS)]

    def stop(self):
        """Idempotent cleanup: stop the process and delete its directory. Raises if meshmqd's
        log holds a sanitizer report."""
        try:
            self.terminate()
        finally:
            self.kill()
            reports = self.sanitizer_reports() if self.kind == "meshmqd" else []
            if reports:
                log = os.path.join(tempfile.gettempdir(), "meshmq-sanitizer-%d.log" % os.getpid())
                with open(log, "a") as f:
                    f.write("\n".join(logs for logs in getattr(self, "previous_logs", [])))
                    f.write(self.stderr.text() if self.stderr else "")
            shutil.rmtree(self.dir, ignore_errors=True)
            if reports:
                self.stderr = None
                self.previous_logs = []
                raise AssertionError("meshmqd sanitizer report (full log in %s): %s" %
                                     (log, reports[0]))

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

    def collect(self, c, until_payload, v5=False, timeout=TIMEOUT):
        """RawClient.collect_publishes (acks QoS 1, completes QoS 2) that fails, rather than
        errors, when until_payload does not come, saying what did."""
        got = []
        try:
            c.collect_publishes(until_payload, timeout=timeout, v5=v5, got=got)
        except (ConnectionClosed, TimeoutError) as e:
            self.fail("no %r (with QoS 2 flows complete) after %d messages, the last %r: %s" % (
                until_payload, len(got), [m["payload"] for m in got[-5:]], e))
        return got

    def assert_same_sequence(self, got, expected):
        """Equal lists of payloads; on a mismatch says what is missing, duplicated or
        reordered rather than printing thousands of items."""
        mismatch = sequence_mismatch(got, expected)
        if mismatch:
            self.fail(mismatch)

    @property
    def port(self):
        return self.broker.port

    def topic(self, suffix=""):
        """A topic prefix unique to this test, so tests sharing a broker never interfere."""
        base = "t/" + self.id().rsplit(".", 1)[-1]
        return base + ("/" + suffix if suffix else "")

    def mosquitto_sub(self, *args):
        """mosquitto_sub against this class's broker; args as on its command line."""
        return CliProcess(self, [MOSQUITTO_SUB, "-h", HOST, "-p", str(self.port)] + list(args))

    def mosquitto_pub(self, *args):
        """Runs mosquitto_pub against this class's broker and asserts it succeeded."""
        result = run_tool([MOSQUITTO_PUB, "-h", HOST, "-p", str(self.port)] + list(args))
        self.assertEqual(result.returncode, 0, result.stderr.decode())

    def wait_subscribed(self, sub, topic):
        """mosquitto_sub prints nothing when it has subscribed: publish probes (QoS 1, so each
        is routed before the next) until one is printed."""
        def probe_seen():
            self.mosquitto_pub("-t", topic, "-m", "probe", "-q", "1")
            try:
                wait_for(lambda: any("probe" in line for line in sub.lines()), timeout=0.3)
                return True
            except AssertionError:
                return False
        wait_for(probe_seen, timeout=10, interval=0, message="mosquitto_sub never subscribed")

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

    def raw_v5(self, client_id=None, broker=None, reason=0, session_present=None,
               **connect_kwargs):
        """A raw MQTT 5 client that has sent connect_v5(...) and read a CONNACK with this
        reason code (and Session Present, when given); the parsed CONNACK is client.connack."""
        if client_id is None:
            client_id = unique_id()
        client = self.raw(broker)
        client.send(connect_v5(client_id, **connect_kwargs))
        fields = {"reason": reason}
        if session_present is not None:
            fields["session_present"] = session_present
        client.connack = client.expect_v5("CONNACK", **fields)
        client.client_id = client_id
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


# ---------------------------------------------------------------------------------------------
# Clusters
# ---------------------------------------------------------------------------------------------


class Cluster:
    """Several meshmqd nodes on 127.0.0.1 that act as one broker.

    Node i is a Broker (cluster[i]) with node id <name>-n<i>, its own data dir, a cluster port
    chosen before any node starts (so each can be given the others as --peers seeds) and kept
    across restarts, and flags: DEFAULT_FLAGS (fast heartbeats, so a lost peer is noticed in
    about a second; $SYS every second), then the flags given here, then node_flags[i]. Each
    node's --peers are all the others, or the nodes listed in seeds[i] (indices; [] for none).

    Membership is read from the nodes' logs: "meshmqd: cluster: peer <id> up|down". A node says
    "up" once its link to the peer is up and it holds the peer's routes and retained messages, so
    wait_formed() (every running node says "up" for every other) means any node can route to any
    other. Stopping, killing, freezing, starting or restarting a node marks the others' logs, so
    that the next wait_peer_down()/wait_formed() only counts what they say about it after that.

    Cluster(3).start().wait_formed(); ...; cluster.stop() (which raises on sanitizer reports).
    """

    DEFAULT_FLAGS = {"cluster_heartbeat_interval": "100ms", "cluster_peer_timeout": "1s",
                     "sys_interval": "1s"}
    FORM_TIMEOUT = 15.0
    PEER_LINE = re.compile(r"meshmqd: cluster: peer (\S+) (up|down)\s*$")
    _counter = 0

    def __init__(self, n=3, name=None, node_flags=None, seeds=None, **flags):
        if IS_REFERENCE:
            raise unittest.SkipTest("a cluster needs meshmqd")
        Cluster._counter += 1
        self.name = name or "cl%d-%d" % (os.getpid(), Cluster._counter)
        self.flags = dict(self.DEFAULT_FLAGS, **flags)
        self.nodes = []
        self._state = []  # per node: "new", "running", "stopped" or "frozen"
        self._marks = {}  # (observer, peer) -> lines of observer's log written before the mark
        ports = []
        for _ in range(n):
            ports.append(stable_free_port(exclude=ports))
        for i, port in enumerate(ports):
            peers = [j for j in range(n) if j != i] if seeds is None else seeds.get(i, [])
            self._new_node(port, ["%s:%d" % (HOST, ports[j]) for j in peers],
                           (node_flags or {}).get(i, {}))

    def _new_node(self, port, seeds, flags):
        index = len(self.nodes)
        node_flags = dict(self.flags, **flags)
        if seeds and "peers" not in node_flags:
            node_flags["peers"] = seeds
        node_flags["node_id"] = "%s-n%d" % (self.name, index)
        node_flags["cluster_listen"] = "%s:%d" % (HOST, port)
        node = Broker(**node_flags)
        node.cluster_address = node_flags["cluster_listen"]
        self.nodes.append(node)
        self._state.append("new")
        return node

    def __getitem__(self, index):
        return self.nodes[index]

    def __len__(self):
        return len(self.nodes)

    def __iter__(self):
        return iter(self.nodes)

    def index(self, node):
        return node if isinstance(node, int) else self.nodes.index(node)

    @property
    def peer_timeout(self):
        """--cluster_peer_timeout in seconds."""
        return _duration_seconds(self.flags.get("cluster_peer_timeout", "3s"))

    def running(self):
        """Indices of the nodes that should be running (not stopped or frozen)."""
        return [i for i, state in enumerate(self._state) if state == "running"]

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout=10.0):
        """Starts every node not started yet (each up to its MQTT listener); returns self."""
        for i, node in enumerate(self.nodes):
            if self._state[i] == "new":
                node.start(timeout)
                self._state[i] = "running"
        return self

    def add_node(self, timeout=10.0, **flags):
        """Starts one more node, seeded with the running nodes only (they learn of it when it
        dials them); returns its Broker. wait_formed() waits for it to be up everywhere."""
        port = stable_free_port(exclude=[int(n.cluster_address.rsplit(":", 1)[1])
                                         for n in self.nodes])
        seeds = [self.nodes[i].cluster_address for i in self.running()]
        node = self._new_node(port, seeds, flags)
        self._mark(len(self.nodes) - 1)
        node.start(timeout)
        self._state[-1] = "running"
        return node

    def stop_node(self, node, timeout=10.0):
        """SIGTERM; returns the exit code (None if it had to be killed). Data dir and ports are
        kept for start_node()."""
        i = self.index(node)
        self._thaw_if_frozen(i)
        self._mark(i)
        self._state[i] = "stopped"
        return self.nodes[i].terminate(timeout)

    def kill_node(self, node):
        """SIGKILL: a crash, as far as the peers can tell."""
        i = self.index(node)
        self._mark(i)
        self._state[i] = "stopped"  # SIGKILL ends a frozen process too
        self.nodes[i].kill()

    def start_node(self, node, timeout=10.0):
        """Starts a stopped node again with its flags, data dir, node id and ports."""
        i = self.index(node)
        if self._state[i] != "stopped":
            raise ValueError("node %d is %s, not stopped" % (i, self._state[i]))
        self._mark(i)  # what the others said about its previous run no longer counts
        self.nodes[i].restart(kill=True, timeout=timeout)  # already stopped: only starts it
        self._state[i] = "running"
        return self.nodes[i]

    def restart_node(self, node, kill=False, timeout=10.0):
        """SIGTERM (or SIGKILL with kill=True), then start again on the same data dir and ports.
        The old exit code is left in cluster[i].returncode."""
        if kill:
            self.kill_node(node)
        else:
            self.stop_node(node)
        return self.start_node(node, timeout)

    def freeze(self, node):
        """SIGSTOP: the node holds its connections open but answers nothing."""
        i = self.index(node)
        self._mark(i)
        self._state[i] = "frozen"
        self.nodes[i].signal(signal.SIGSTOP)

    def thaw(self, node):
        """SIGCONT after freeze(). No mark: a freeze shorter than the peer timeout may pass
        unnoticed, so wait_peer_down() first for wait_formed() to wait for the peers taking the
        node back."""
        self._thaw_if_frozen(self.index(node))

    def _thaw_if_frozen(self, i):
        if self._state[i] == "frozen":
            if self.nodes[i].running():
                self.nodes[i].signal(signal.SIGCONT)
            self._state[i] = "running"

    def stop(self):
        """Idempotent cleanup: stops every node and deletes its directory. Raises, once all are
        stopped, if a node's log holds a sanitizer report."""
        errors = []
        for i, node in enumerate(self.nodes):
            self._thaw_if_frozen(i)
            self._state[i] = "stopped"
            try:
                node.stop()
            except AssertionError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    # -- membership, from the logs ----------------------------------------------------------

    def _mark(self, i):
        """From now on, only what the other nodes log after this counts about node i."""
        for j, observer in enumerate(self.nodes):
            if j != i and observer.stderr is not None:
                self._marks[(j, i)] = (observer.stderr, len(observer.stderr.snapshot()))

    def peer_view(self, observer, peer):
        """What node `observer` last said about node `peer` since the last mark: "up", "down"
        or None."""
        j, i = self.index(observer), self.index(peer)
        node = self.nodes[j]
        if node.stderr is None:
            return None
        lines = node.stderr.snapshot()
        collector, start = self._marks.get((j, i), (None, 0))
        if collector is not node.stderr:
            start = 0  # the observer restarted since the mark: its whole (new) log counts
        view = None
        for line in lines[start:]:
            match = self.PEER_LINE.search(line)
            if match and match.group(1) == self.nodes[i].node_id:
                view = match.group(2)
        return view

    def _missing(self, want, pairs):
        return ["%s says %s is %s" % (self.nodes[j].node_id, self.nodes[i].node_id,
                                      self.peer_view(j, i) or "unknown")
                for j, i in pairs if self.peer_view(j, i) != want]

    def _fail_with_logs(self, what, missing):
        tails = "\n".join("--- %s (%s):\n%s" % (node.node_id, self._state[i], node.log_tail(15))
                          for i, node in enumerate(self.nodes))
        raise AssertionError("%s: %s\n%s" % (what, "; ".join(missing), tails))

    def formed(self):
        """True when every running node says every other running node is up."""
        nodes = self.running()
        return not self._missing("up", [(j, i) for j in nodes for i in nodes if i != j])

    def wait_formed(self, timeout=None):
        """Waits until every running node says "peer X up" for every other running node (after
        the last stop/restart/freeze of X); fails naming the pairs that are not."""
        timeout = self.FORM_TIMEOUT if timeout is None else timeout
        nodes = self.running()
        pairs = [(j, i) for j in nodes for i in nodes if i != j]
        try:
            wait_for(lambda: not self._missing("up", pairs), timeout, interval=0.02)
        except AssertionError:
            self._fail_with_logs("cluster not formed within %.0fs" % timeout,
                                 self._missing("up", pairs))
        self._check_running()
        return self

    def wait_peer_down(self, node, timeout=None):
        """Waits until every other running node says "peer X down" for node X (after it was
        stopped/frozen). The default deadline is --cluster_peer_timeout plus TIMEOUT."""
        i = self.index(node)
        if timeout is None:
            timeout = self.peer_timeout + TIMEOUT
        pairs = [(j, i) for j in self.running() if j != i]
        try:
            wait_for(lambda: not self._missing("down", pairs), timeout, interval=0.02)
        except AssertionError:
            self._fail_with_logs("%s not marked down within %.1fs" % (
                self.nodes[i].node_id, timeout), self._missing("down", pairs))

    def _check_running(self):
        dead = self.dead()
        if dead:
            self._fail_with_logs("node exited", ["%s exited with %s" % (
                self.nodes[i].node_id, self.nodes[i].proc.returncode) for i in dead])

    def dead(self):
        """Indices of nodes that should be running or frozen but have exited."""
        return [i for i, state in enumerate(self._state)
                if state in ("running", "frozen") and not self.nodes[i].running()]


@meshmq_only("runs a cluster of meshmqd nodes")
class ClusterTestCase(BrokerTestCase):
    """Tests against a Cluster. cluster_size > 0: one cluster of that many nodes (with
    cluster_flags) shared by the tests of the class, for tests that leave the nodes running;
    cluster_size = 0: each test that needs one calls start_cluster(n, **flags), for tests that
    stop, kill, freeze or add nodes. Either way self.cluster is the cluster, stopped (and
    checked for sanitizer reports) at the end; a node that exited unexpectedly fails the test.

    The BrokerTestCase helpers take node=i (an index, or a Broker) for the node to connect to:
    self.client(node=1), self.raw_v5(node=2), self.sys(1) (a SysWatcher on node 1),
    self.mosquitto_pub(..., node=2)."""

    cluster_size = 3
    cluster_flags = {}
    cluster = None

    @classmethod
    def setUpClass(cls):
        super(BrokerTestCase, cls).setUpClass()  # no single class-wide broker
        cls.broker = None
        if cls.cluster_size:
            cluster = Cluster(cls.cluster_size, **cls.cluster_flags)
            cls.addClassCleanup(cluster.stop)
            cls.cluster = cluster
            cluster.start().wait_formed()

    def setUp(self):
        self._clusters = []
        self.addCleanup(self._stop_clusters)  # after _check_broker_alive (cleanups are LIFO)
        super().setUp()

    def _stop_clusters(self):
        errors = []
        for cluster in self._clusters:
            try:
                cluster.stop()
            except AssertionError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def start_cluster(self, n=3, formed=True, **flags):
        """This test's own cluster (self.cluster), started and, unless formed=False, formed."""
        cluster = Cluster(n, **flags)
        self._clusters.append(cluster)
        self.cluster = cluster
        cluster.start()
        if formed:
            cluster.wait_formed()
        return cluster

    def _check_broker_alive(self):
        if self.cluster is not None and self.cluster.dead():
            self.cluster._check_running()

    # -- helpers bound to a node ------------------------------------------------------------

    def node(self, node=0):
        return node if isinstance(node, Broker) else self.cluster[node]

    @property
    def port(self):
        return self.cluster[0].port

    def client(self, node=0, broker=None, **kwargs):
        return super().client(broker=broker or self.node(node), **kwargs)

    def raw(self, node=0, broker=None, **kwargs):
        return super().raw(broker=broker or self.node(node), **kwargs)

    def raw_connected(self, client_id=None, node=0, broker=None, **connect_kwargs):
        return super().raw_connected(client_id, broker=broker or self.node(node),
                                     **connect_kwargs)

    def raw_v5(self, client_id=None, node=0, broker=None, **kwargs):
        return super().raw_v5(client_id, broker=broker or self.node(node), **kwargs)

    def sys(self, node=0):
        """A SysWatcher on that node ($SYS is each node's own)."""
        return SysWatcher(self, broker=self.node(node))

    def mosquitto_sub(self, *args, node=0):
        return CliProcess(self, [MOSQUITTO_SUB, "-h", HOST, "-p", str(self.node(node).port)] +
                          list(args))

    def mosquitto_pub(self, *args, node=0):
        result = run_tool([MOSQUITTO_PUB, "-h", HOST, "-p", str(self.node(node).port)] +
                          list(args))
        self.assertEqual(result.returncode, 0, result.stderr.decode())


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


def sequence_mismatch(got, expected):
    """None if the payload lists are equal, else a short account: how many are missing or
    duplicated (the first few) and where the lists first differ."""
    if got == expected:
        return None
    missing = [p for p in expected if p not in set(got)]
    seen, dups = set(), []
    for p in got:
        if p in seen:
            dups.append(p)
        seen.add(p)
    first_diff = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                      min(len(got), len(expected)))
    return ("got %d messages, expected %d: %d missing (first %r), %d duplicated (first %r), "
            "first difference at index %d" % (len(got), len(expected), len(missing), missing[:3],
                                               len(dups), dups[:3], first_diff))


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
# MQTT 5: properties, packet builders and a parser (MQTT 5.0 sections 2.2.2, 3.1-3.15)
# ---------------------------------------------------------------------------------------------


class P:
    """MQTT 5 property identifiers (section 2.2.2.2)."""
    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


class RC:
    """MQTT 5 reason codes (section 2.4) used by the tests."""
    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    UNSPECIFIED = 0x80
    MALFORMED = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_ID_NOT_VALID = 0x85
    BAD_USERNAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_ID_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    QUOTA_EXCEEDED = 0x97
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E


# Wire type of each property: byte, u16, u32, varint, str (UTF-8), bin, pair (string pair).
_PROP_TYPES = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte", 0x18: "u32",
    0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16", 0x22: "u16", 0x23: "u16",
    0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32", 0x28: "byte", 0x29: "byte",
    0x2A: "byte",
}


def encode_properties(props=()):
    """Property Length + properties, from (identifier, value) pairs in the order given, so tests
    can also build duplicates or properties in the wrong packet. A USER_PROPERTY value is a
    (name, value) pair; identifier None inserts its value (bytes) verbatim."""
    out = b""
    for ident, value in props:
        if ident is None:
            out += value
            continue
        kind = _PROP_TYPES[ident]
        out += encode_remaining_length(ident)
        if kind == "byte":
            out += bytes([value])
        elif kind == "u16":
            out += struct.pack("!H", value)
        elif kind == "u32":
            out += struct.pack("!I", value)
        elif kind == "varint":
            out += encode_remaining_length(value)
        elif kind == "pair":
            out += _str(value[0]) + _str(value[1])
        else:  # str and bin share the encoding: 2-byte length + bytes
            out += _str(value)
    return encode_remaining_length(len(out)) + out


class Props(list):
    """Decoded properties: (identifier, value) pairs in wire order; strings decoded, binary
    data as bytes, user properties as (name, value) tuples."""

    def get(self, ident, default=None):
        for i, value in self:
            if i == ident:
                return value
        return default

    def all(self, ident):
        return [value for i, value in self if i == ident]

    def ids(self):
        return [i for i, _ in self]

    def user(self):
        return self.all(P.USER_PROPERTY)


def _read_varint(buf, i):
    value, multiplier = 0, 1
    for _ in range(4):
        byte = buf[i]
        i += 1
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            return value, i
    raise AssertionError("malformed variable byte integer in %s" % bytes(buf).hex(" "))


def decode_properties(buf, i=0):
    """Reads a Property Length and the properties after it; returns (Props, next index).
    Fails on anything a conforming server cannot send (unknown identifier, overrun)."""
    length, i = _read_varint(buf, i)
    end = i + length
    if end > len(buf):
        raise AssertionError("property length %d overruns the packet" % length)
    props = Props()
    while i < end:
        ident, i = _read_varint(buf, i)
        kind = _PROP_TYPES.get(ident)
        if kind is None:
            raise AssertionError("unknown property identifier 0x%02x" % ident)
        if kind == "byte":
            value, i = buf[i], i + 1
        elif kind == "u16":
            value, i = struct.unpack("!H", buf[i:i + 2])[0], i + 2
        elif kind == "u32":
            value, i = struct.unpack("!I", buf[i:i + 4])[0], i + 4
        elif kind == "varint":
            value, i = _read_varint(buf, i)
        else:
            strings = []
            for _ in range(2 if kind == "pair" else 1):
                n = struct.unpack("!H", buf[i:i + 2])[0]
                strings.append(bytes(buf[i + 2:i + 2 + n]))
                i += 2 + n
            if kind == "bin":
                value = strings[0]
            else:
                value = tuple(s.decode("utf-8") for s in strings)
                value = value if kind == "pair" else value[0]
        props.append((ident, value))
    if i != end:
        raise AssertionError("property overruns the property length")
    return props, i


def connect_v5(client_id, clean_start=True, keepalive=60, properties=(), username=None,
               password=None, will_topic=None, will_payload=b"", will_qos=0, will_retain=False,
               will_properties=(), flags=None):
    """An MQTT 5 CONNECT (section 3.1). flags overrides the Connect Flags byte."""
    f = 0x02 if clean_start else 0
    payload = _str(client_id)
    if will_topic is not None:
        f |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += encode_properties(will_properties) + _str(will_topic) + _str(will_payload)
    if username is not None:
        f |= 0x80
        payload += _str(username)
    if password is not None:
        f |= 0x40
        payload += _str(password)
    if flags is not None:
        f = flags
    body = (_str("MQTT") + bytes([5, f]) + struct.pack("!H", keepalive) +
            encode_properties(properties) + payload)
    return packet(0x10, body)


def publish_v5(topic, payload=b"", qos=0, mid=None, retain=False, dup=False, properties=()):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    first = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = _str(topic)
    if qos > 0:
        body += struct.pack("!H", mid)
    return packet(first, body + encode_properties(properties) + payload)


def _ack_v5(first, mid, reason, properties):
    # Section 3.4.2.1: reason 0 without properties may be (and here is) left off.
    body = struct.pack("!H", mid)
    if reason or properties:
        body += bytes([reason]) + (encode_properties(properties) if properties else b"")
    return packet(first, body)


def puback_v5(mid, reason=0, properties=()):
    return _ack_v5(0x40, mid, reason, properties)


def pubrec_v5(mid, reason=0, properties=()):
    return _ack_v5(0x50, mid, reason, properties)


def pubrel_v5(mid, reason=0, properties=()):
    return _ack_v5(0x62, mid, reason, properties)


def pubcomp_v5(mid, reason=0, properties=()):
    return _ack_v5(0x70, mid, reason, properties)


def sub_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    """The Subscription Options byte (section 3.8.3.1)."""
    return (qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) |
            (retain_handling << 4))


def subscribe_v5(mid, filters, properties=()):
    """filters: (filter, options byte) pairs (see sub_options; a bare QoS is a valid byte)."""
    body = struct.pack("!H", mid) + encode_properties(properties)
    for topic, options in filters:
        body += _str(topic) + bytes([options])
    return packet(0x82, body)


def unsubscribe_v5(mid, filters, properties=()):
    body = struct.pack("!H", mid) + encode_properties(properties)
    for topic in filters:
        body += _str(topic)
    return packet(0xA2, body)


def disconnect_v5(reason=0, properties=()):
    if not reason and not properties:
        return b"\xe0\x00"
    return packet(0xE0, bytes([reason]) + encode_properties(properties))


def auth_v5(reason=0, properties=()):
    return packet(0xF0, bytes([reason]) + encode_properties(properties))


_PACKET_TYPES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
                 6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
                 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}


def parse_v5(pkt):
    """Splits a complete MQTT 5 packet from the server into a dict with "type" (its name) and:
    CONNACK session_present, reason, props; PUBLISH topic, mid, qos, dup, retain, props,
    payload; PUBACK/PUBREC/PUBREL/PUBCOMP mid, reason, props; SUBACK/UNSUBACK mid, props,
    codes; DISCONNECT/AUTH reason, props. Omitted reason codes and properties read as 0 and
    empty (sections 3.4.2.1, 3.14.2.1). Fails if the packet is not exactly consumed."""
    first = pkt[0]
    kind = _PACKET_TYPES.get(first >> 4)
    _, i = _read_varint(pkt, 1)
    msg = {"type": kind, "raw": pkt, "props": Props()}
    if kind == "CONNACK":
        msg["session_present"], msg["reason"] = pkt[i], pkt[i + 1]
        msg["props"], i = decode_properties(pkt, i + 2)
    elif kind == "PUBLISH":
        tlen = struct.unpack("!H", pkt[i:i + 2])[0]
        msg["topic"] = pkt[i + 2:i + 2 + tlen].decode("utf-8", "replace")
        i += 2 + tlen
        msg.update(qos=(first >> 1) & 0x03, dup=bool(first & 0x08), retain=bool(first & 0x01),
                   mid=None)
        if msg["qos"]:
            msg["mid"] = struct.unpack("!H", pkt[i:i + 2])[0]
            i += 2
        msg["props"], i = decode_properties(pkt, i)
        msg["payload"], i = pkt[i:], len(pkt)
    elif kind in ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP"):
        msg["mid"], msg["reason"] = struct.unpack("!H", pkt[i:i + 2])[0], 0
        i += 2
        if i < len(pkt):
            msg["reason"], i = pkt[i], i + 1
        if i < len(pkt):
            msg["props"], i = decode_properties(pkt, i)
    elif kind in ("SUBACK", "UNSUBACK"):
        msg["mid"] = struct.unpack("!H", pkt[i:i + 2])[0]
        msg["props"], i = decode_properties(pkt, i + 2)
        msg["codes"], i = list(pkt[i:]), len(pkt)
    elif kind in ("DISCONNECT", "AUTH"):
        msg["reason"] = 0
        if i < len(pkt):
            msg["reason"], i = pkt[i], i + 1
        if i < len(pkt):
            msg["props"], i = decode_properties(pkt, i)
    if i != len(pkt):
        raise AssertionError("%s has %d unexpected trailing bytes: %s" %
                             (kind, len(pkt) - i, pkt.hex(" ")))
    return msg


def _fmt_fields(fields):
    return ", ".join("%s=%s" % (k, hex(v) if isinstance(v, int) and not isinstance(v, bool)
                                else repr(v)) for k, v in fields.items())


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

    def collect_publishes(self, until_payload, timeout=None, v5=False, got=None):
        """Reads PUBLISHes in arrival order, completing every QoS 1/2 flow, until one carries
        until_payload and all QoS 2 flows are complete. Returns the parsed PUBLISHes (dicts
        from parse_publish, or parse_v5 with v5=True) in arrival order, appended to `got` if
        given (so a caller still has them when this raises)."""
        got = [] if got is None else got
        open_qos2, done = set(), False
        while not done or open_qos2:
            pkt = self.read_packet(timeout)
            if pkt[0] & 0xF0 == 0x60:  # PUBREL for a QoS 2 message we PUBREC'd
                mid = struct.unpack("!H", pkt[2:4])[0]
                ok = parse_v5(pkt)["reason"] == 0 if v5 else pkt == pubrel(mid)
                if not ok or mid not in open_qos2:
                    raise AssertionError("unexpected %s" % pkt.hex(" "))
                open_qos2.discard(mid)
                self.send(pubcomp(mid))
                continue
            msg = parse_v5(pkt) if v5 else parse_publish(pkt)
            if msg.get("type", "PUBLISH") != "PUBLISH":
                raise AssertionError("expected PUBLISH, got %s" % pkt.hex(" "))
            got.append(msg)
            if msg["qos"] == 1:
                self.send(puback(msg["mid"]))
            elif msg["qos"] == 2:
                open_qos2.add(msg["mid"])
                self.send(pubrec(msg["mid"]))
            if msg["payload"] == until_payload:
                done = True
        return got

    # -- MQTT 5 ---------------------------------------------------------------------------

    def read_v5(self, timeout=None):
        """The next packet, parsed by parse_v5."""
        return parse_v5(self.read_packet(timeout))

    def expect_v5(self, kind, timeout=None, **fields):
        """Reads the next packet, checks its type name and the given parse_v5 fields (e.g.
        reason=0x10, codes=[1]); returns the parsed dict."""
        try:
            msg = self.read_v5(timeout)
        except (ConnectionClosed, TimeoutError) as e:
            raise AssertionError("expected %s %s, but %s" % (kind, _fmt_fields(fields), e)) \
                from None
        got = {k: msg.get(k) for k in fields}
        if msg["type"] != kind or got != fields:
            raise AssertionError("expected %s %s\n     got %s %s (%s)" % (
                kind, _fmt_fields(fields), msg["type"], _fmt_fields(got), msg["raw"].hex(" ")))
        return msg

    def expect_disconnect_v5(self, reason, timeout=None):
        """Expects a server DISCONNECT with this reason code, then the connection closing."""
        msg = self.expect_v5("DISCONNECT", timeout, reason=reason)
        self.expect_closed(timeout)
        return msg

    def expect_publish_v5(self, topic, payload, timeout=None, **fields):
        """Reads a PUBLISH with this topic and payload (and the given parse_v5 fields, e.g.
        qos=1, retain=False); returns the parsed dict."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        return self.expect_v5("PUBLISH", timeout, topic=topic, payload=payload, **fields)

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


def v5_props(packet_name, **values):
    """paho MQTT 5 Properties for packet_name ("CONNECT", "PUBLISH", "SUBSCRIBE", "WILLMESSAGE",
    "DISCONNECT"...), e.g. v5_props("PUBLISH", ResponseTopic="r", UserProperty=[("a", "1")])."""
    props = Properties(getattr(PacketTypes, packet_name))
    for name, value in values.items():
        setattr(props, name, value)
    return props


class MqttClient:
    """A paho client on its own network thread; records CONNACK, SUBACKs and messages.

    It never reconnects by itself: when the connection drops, the loop stops and
    disconnected is set, so takeover tests do not ping-pong.

    protocol=mqtt.MQTTv5 speaks MQTT 5: clean_session is then Clean Start, properties the
    CONNECT properties (v5_props), will may carry a fifth element (will properties); reason
    codes are recorded as ints (connack, subacks, unsubacks, disconnect_reason) and CONNACK's
    properties as connack_props; received messages keep paho's msg.properties.
    """

    def __init__(self, port, client_id=None, clean_session=True, protocol=mqtt.MQTTv311,
                 username=None, password=None, keepalive=60, will=None, properties=None):
        self.port = port
        self.keepalive = keepalive
        self.v5 = protocol == mqtt.MQTTv5
        self.clean_start = clean_session
        self.connect_properties = properties
        self.client_id = unique_id("p") if client_id is None else client_id
        self.c = mqtt.Client(client_id=self.client_id, protocol=protocol,
                             clean_session=None if self.v5 else clean_session)
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            self.c.will_set(*will)
        self._lock = threading.Lock()
        self.messages = []
        self.connack = None  # (rc, session_present)
        self.connack_props = None
        self.disconnect_reason = None
        self.subacks = {}
        self.unsubacks = set()
        self.disconnected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self._started = False

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack_props = properties
        self.connack = (_rc_int(rc), flags.get("session present", 0))

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnect_reason = _rc_int(rc)
        self.disconnected.set()
        client.loop_stop()  # from the network thread: ends the loop instead of reconnecting

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.messages.append(msg)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        self.subacks[mid] = [_rc_int(g) for g in granted]

    def _on_unsubscribe(self, client, userdata, mid, properties=None, reasons=None):
        self.unsubacks.add(mid)

    def connect(self, timeout=TIMEOUT):
        """Connects and returns the CONNACK return code (None if closed without CONNACK)."""
        if self.v5:
            self.c.connect(HOST, self.port, self.keepalive, clean_start=self.clean_start,
                           properties=self.connect_properties)
        else:
            self.c.connect(HOST, self.port, self.keepalive)
        self.c.loop_start()
        self._started = True
        wait_for(lambda: self.connack is not None or self.disconnected.is_set(), timeout,
                 message="no CONNACK for %s" % self.client_id)
        return None if self.connack is None else self.connack[0]

    @property
    def session_present(self):
        return self.connack[1]

    def subscribe(self, filters, qos=0, timeout=TIMEOUT, properties=None):
        """filters: a topic string or a list of (filter, qos) (MQTT 5: qos may be a paho
        SubscribeOptions). Returns the granted list (MQTT 5: the SUBACK reason codes)."""
        if isinstance(filters, str):
            filters = [(filters, qos)]
        rc, mid = self.c.subscribe(filters, properties=properties)
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

    def publish(self, topic, payload=b"", qos=0, retain=False, timeout=TIMEOUT, properties=None):
        """Publishes and waits until the flow completes (PUBACK / PUBCOMP, or sent for QoS 0).
        properties: MQTT 5 PUBLISH properties (v5_props("PUBLISH", ...))."""
        info = self.c.publish(topic, payload, qos, retain, properties=properties)
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


def _rc_int(rc):
    """paho gives MQTT 5 reason codes as ReasonCodes objects, 3.1.1 ones as ints."""
    return rc if isinstance(rc, int) else rc.value


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

    def fresh_counter(self, name, timeout=TIMEOUT):
        """The counter's value in the first periodic publication received after this call (not
        the retained copy a new watcher gets first, which can be one --sys_interval old): it
        includes everything the node counted before the call."""
        topic = "$SYS/broker/counters/" + name
        seen = len(self.client.received(topic))

        def fresh():
            return next((m for m in self.client.received(topic)[seen:] if not m.retain), None)
        return int(wait_for(fresh, timeout, message="no fresh $SYS/broker/counters/%s" %
                            name).payload)

    def counter_now(self, name, timeout=TIMEOUT):
        """The counter as the node has it now (fresh_counter): a baseline for an exact count
        later. The retained copy can miss what an earlier test on the same node just counted."""
        return self.fresh_counter(name, timeout)


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
