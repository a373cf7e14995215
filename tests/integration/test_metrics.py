"""Prometheus metrics, /healthz and /readyz (--http_listen; README "Operations: metrics and
health"), against real meshmqd nodes and real clients.

Each node's HTTP listener is on 127.0.0.1 port 0 (the harness passes --http_listen); its port is
read from the "listening on http HOST:PORT" log line (Broker.http_port). /metrics is parsed with
the small text-format parser below, which also checks the format: every sample belongs to a
family announced by HELP and TYPE, counters end in _total, label values are properly escaped.
Values are compared as deltas from a scrape taken first, and polled for with a deadline: the
broker counts what a client did a moment after the client's call returns.
"""

import re
import socket
import unittest
import urllib.error
import urllib.request

from meshmq_harness import (HOST, TIMEOUT, Broker, BrokerTestCase, ClusterTestCase, RawClient,
                            connack, connect, meshmq_only, unique_id, wait_for)

# ---------------------------------------------------------------------------------------------
# The Prometheus text format, version 0.0.4
# ---------------------------------------------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(%s)(\{(.*)\})? (\S+)$" % _NAME)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class Metrics:
    """One scrape: samples by (name, frozenset of label pairs), and each family's type."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        self.helps = {}
        family = None
        for number, line in enumerate(text.split("\n"), 1):
            if line == "":
                continue
            where = "line %d: %r" % (number, line)
            if line.startswith("# HELP "):
                name, _, help_text = line[len("# HELP "):].partition(" ")
                if name in self.helps:
                    raise AssertionError("family %s announced twice, %s" % (name, where))
                self.helps[name] = help_text
                continue
            if line.startswith("# TYPE "):
                name, _, kind = line[len("# TYPE "):].partition(" ")
                if name not in self.helps or name in self.types:
                    raise AssertionError("TYPE without its HELP just before, %s" % where)
                if kind not in ("counter", "gauge", "histogram"):
                    raise AssertionError("unknown type, %s" % where)
                if kind == "counter" and not name.endswith("_total"):
                    raise AssertionError("counter name without _total, %s" % where)
                self.types[name] = kind
                family = name
                continue
            if line.startswith("#"):
                raise AssertionError("unexpected comment, %s" % where)
            match = _SAMPLE.match(line)
            if not match:
                raise AssertionError("not a sample, %s" % where)
            name, _, label_text, value = match.groups()
            allowed = {family}
            if self.types.get(family) == "histogram":
                allowed = {family + "_bucket", family + "_sum", family + "_count"}
            if name not in allowed:
                raise AssertionError("sample outside its family %s, %s" % (family, where))
            labels = self._labels(label_text or "", where)
            key = (name, frozenset(labels.items()))
            if key in self.samples:
                raise AssertionError("sample twice, %s" % where)
            self.samples[key] = float(value)  # float() reads +Inf and NaN as Prometheus writes them

    @staticmethod
    def _labels(text, where):
        labels = {}
        pos = 0
        while pos < len(text):
            match = _LABEL.match(text, pos)
            if not match:
                raise AssertionError("bad labels, %s" % where)
            value = re.sub(r"\\.", lambda m: _ESCAPES[m.group(0)], match.group(2))
            labels[match.group(1)] = value
            pos = match.end()
        return labels

    def get(self, name, **labels):
        """The sample's value; fails if there is none."""
        key = (name, frozenset((k, str(v)) for k, v in labels.items()))
        if key not in self.samples:
            raise AssertionError("no sample %s%r in the scrape" % (name, labels))
        return self.samples[key]

    def label_values(self, name, label):
        return {dict(labels).get(label) for (n, labels) in self.samples if n == name}


def http_get(port, path):
    """(status, headers, body text) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen("http://%s:%d%s" % (HOST, port, path), timeout=TIMEOUT) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def scrape(broker):
    status, headers, body = http_get(broker.http_port, "/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d: %s" % (status, body))
    return Metrics(body)


def wait_metric(broker, predicate, message, timeout=TIMEOUT):
    """Scrapes until predicate(metrics) holds; returns that scrape."""
    last = []

    def check():
        last[:] = [scrape(broker)]
        return predicate(last[0])
    try:
        wait_for(check, timeout, interval=0.05)
    except AssertionError:
        raise AssertionError(message) from None
    return last[0]


FAMILIES = {
    "meshmq_build_info": "gauge", "meshmq_uptime_seconds": "gauge",
    "meshmq_connections": "gauge", "meshmq_clients_connected": "gauge",
    "meshmq_connects_total": "counter", "meshmq_disconnects_total": "counter",
    "meshmq_messages_received_total": "counter", "meshmq_messages_sent_total": "counter",
    "meshmq_payload_bytes_received_total": "counter",
    "meshmq_payload_bytes_sent_total": "counter",
    "meshmq_bytes_received_total": "counter", "meshmq_bytes_sent_total": "counter",
    "meshmq_messages_dropped_total": "counter", "meshmq_sessions": "gauge",
    "meshmq_queued_messages": "gauge", "meshmq_inflight_messages": "gauge",
    "meshmq_retained_messages": "gauge", "meshmq_subscriptions": "gauge",
    "meshmq_store_write_seconds": "histogram", "meshmq_store_ok": "gauge",
    # Every $SYS/broker/counters/ entry, as meshmq_<name>_total.
    "meshmq_packets_malformed_total": "counter", "meshmq_store_write_groups_total": "counter",
    "meshmq_messages_dropped_queue_full_total": "counter",
    "meshmq_cluster_forward_dropped_total": "counter",
    # Per peer (none on a node alone, but the families are there).
    "meshmq_cluster_members": "gauge", "meshmq_cluster_peer_up": "gauge",
    "meshmq_cluster_peer_link_up": "gauge", "meshmq_cluster_peer_pending_bytes": "gauge",
    "meshmq_cluster_peer_queued_frames": "gauge", "meshmq_cluster_peer_lag_seconds": "gauge",
}


@meshmq_only("meshmqd's HTTP listener")
class MetricsTest(BrokerTestCase):
    # A small queue, to see queue_full drops; $SYS every second for the counters' topics.
    broker_flags = {"max_queued_messages": 2, "sys_interval": "1s"}

    def test_metrics_page_is_prometheus_text_format(self):
        status, headers, body = http_get(self.port_http, "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        m = Metrics(body)  # raises on anything malformed
        for name, kind in FAMILIES.items():
            with self.subTest(family=name):
                self.assertEqual(m.types.get(name), kind)
                self.assertTrue(m.helps[name])
        self.assertTrue(all(name.startswith("meshmq_") for name in m.types))
        self.assertEqual(m.label_values("meshmq_messages_received_total", "qos"), {"0", "1", "2"})
        self.assertLessEqual({"client_disconnect", "connection_lost", "keepalive_timeout",
                              "session_taken_over", "protocol_error", "server_shutdown"},
                             m.label_values("meshmq_disconnects_total", "reason"))
        self.assertLessEqual({"queue_full", "output_buffer", "packet_size", "expired",
                              "cluster_forward_dropped"},
                             m.label_values("meshmq_messages_dropped_total", "reason"))
        self.assertEqual(m.get("meshmq_store_ok"), 1)

    @property
    def port_http(self):
        self.assertIsNotNone(self.broker.http_port, "meshmqd printed no 'listening on http'")
        return self.broker.http_port

    def test_connects_and_disconnects_by_reason(self):
        before = scrape(self.broker)
        a = self.client()
        b = self.client()
        wait_metric(self.broker, lambda m:
                    m.get("meshmq_connects_total") >= before.get("meshmq_connects_total") + 2 and
                    m.get("meshmq_clients_connected") >= 2 and m.get("meshmq_connections") >= 2,
                    "two connects not counted")
        a.disconnect()
        wait_metric(self.broker, lambda m:
                    m.get("meshmq_disconnects_total", reason="client_disconnect") >=
                    before.get("meshmq_disconnects_total", reason="client_disconnect") + 1,
                    "a DISCONNECT not counted as client_disconnect")
        raw = self.raw_connected()
        raw.abort()  # no DISCONNECT: the connection is lost
        wait_metric(self.broker, lambda m:
                    m.get("meshmq_disconnects_total", reason="connection_lost") >=
                    before.get("meshmq_disconnects_total", reason="connection_lost") + 1,
                    "an aborted connection not counted as connection_lost")
        # A takeover: a second connection with b's client id.
        self.client(client_id=b.client_id)
        wait_metric(self.broker, lambda m:
                    m.get("meshmq_disconnects_total", reason="session_taken_over") >=
                    before.get("meshmq_disconnects_total", reason="session_taken_over") + 1,
                    "a takeover not counted as session_taken_over")

    def test_messages_and_bytes_by_qos(self):
        t = self.topic()
        sub = self.subscriber(t + "/#", qos=2)
        pub = self.client()
        before = scrape(self.broker)
        payload = b"x" * 100
        for qos, count in ((0, 3), (1, 2), (2, 1)):
            for i in range(count):
                pub.publish("%s/%d" % (t, qos), payload, qos=qos)
        sub.wait_count(6)

        def moved(m):
            for qos, count in ((0, 3), (1, 2), (2, 1)):
                for name, per_message in (("meshmq_messages_received_total", 1),
                                          ("meshmq_messages_sent_total", 1),
                                          ("meshmq_payload_bytes_received_total", len(payload)),
                                          ("meshmq_payload_bytes_sent_total", len(payload))):
                    if m.get(name, qos=qos) < before.get(name, qos=qos) + count * per_message:
                        return False
            return True
        m = wait_metric(self.broker, moved, "per-QoS message and payload counters did not move")
        # The packets themselves, headers and acks included, are more than their payloads.
        self.assertGreater(m.get("meshmq_bytes_received_total"),
                           before.get("meshmq_bytes_received_total") + 6 * len(payload))
        self.assertGreater(m.get("meshmq_bytes_sent_total"),
                           before.get("meshmq_bytes_sent_total") + 6 * len(payload))

    def test_queue_full_drops_and_offline_session_gauges(self):
        """An offline persistent session with --max_queued_messages=2 gets 5 QoS 1 messages:
        3 are dropped (queue_full), 2 wait (queued), and the session counts as offline."""
        t = self.topic()
        client_id = unique_id("offline")
        c = self.client(client_id=client_id, clean_session=False)
        c.subscribe(t, 1)
        c.disconnect()
        before = wait_metric(self.broker, lambda m: m.get("meshmq_sessions", state="offline") >= 1,
                             "the persistent session is not counted offline")
        pub = self.client()
        for i in range(5):
            pub.publish(t, b"m%d" % i, qos=1)
        m = wait_metric(self.broker, lambda m:
                        m.get("meshmq_messages_dropped_total", reason="queue_full") >=
                        before.get("meshmq_messages_dropped_total", reason="queue_full") + 3,
                        "queue_full drops not counted")
        self.assertGreaterEqual(m.get("meshmq_messages_dropped_queue_full_total"),
                                before.get("meshmq_messages_dropped_queue_full_total") + 3)
        self.assertGreaterEqual(m.get("meshmq_queued_messages"), 2)
        # The client comes back and takes them: the queue empties.
        back = self.client(client_id=client_id, clean_session=False)
        back.wait_count(2)
        wait_metric(self.broker, lambda after:
                    after.get("meshmq_queued_messages") <= m.get("meshmq_queued_messages") - 2,
                    "the queue the client took is still counted")

    def test_subscriptions_and_retained_gauges(self):
        t = self.topic()
        before = scrape(self.broker)
        c = self.client()
        c.subscribe([(t + "/a", 0), (t + "/b/+", 1), ("$share/g/" + t + "/s", 1)])
        pub = self.client()
        pub.publish(t + "/r1", b"1", qos=1, retain=True)
        pub.publish(t + "/r2", b"2", qos=1, retain=True)
        m = wait_metric(self.broker, lambda m:
                        m.get("meshmq_subscriptions", type="ordinary") >=
                        before.get("meshmq_subscriptions", type="ordinary") + 2 and
                        m.get("meshmq_subscriptions", type="shared") >=
                        before.get("meshmq_subscriptions", type="shared") + 1 and
                        m.get("meshmq_retained_messages") >=
                        before.get("meshmq_retained_messages") + 2,
                        "subscription and retained gauges did not rise")
        pub.publish(t + "/r1", b"", qos=1, retain=True)  # deletes it
        c.unsubscribe([t + "/a"])
        wait_metric(self.broker, lambda after:
                    after.get("meshmq_retained_messages") <=
                    m.get("meshmq_retained_messages") - 1 and
                    after.get("meshmq_subscriptions", type="ordinary") <=
                    m.get("meshmq_subscriptions", type="ordinary") - 1,
                    "retained and subscription gauges did not fall")

    def test_store_write_latency_histogram(self):
        before = scrape(self.broker)
        c = self.client(client_id=unique_id("store"), clean_session=False)  # written to the store
        c.subscribe(self.topic(), 1)
        m = wait_metric(self.broker, lambda m:
                        m.get("meshmq_store_write_seconds_count") >
                        before.get("meshmq_store_write_seconds_count"),
                        "no store write observed")
        buckets = sorted(((float(dict(labels)["le"]), value)
                          for (name, labels), value in m.samples.items()
                          if name == "meshmq_store_write_seconds_bucket"))
        self.assertEqual(buckets[-1][0], float("inf"))
        self.assertEqual(buckets[-1][1], m.get("meshmq_store_write_seconds_count"))
        counts = [value for _, value in buckets]
        self.assertEqual(counts, sorted(counts), "buckets are not cumulative")
        self.assertGreater(m.get("meshmq_store_write_seconds_sum"), 0)
        self.assertGreaterEqual(m.get("meshmq_store_write_groups_total"),
                                m.get("meshmq_store_write_seconds_count"))

    def test_healthz_and_readyz_on_a_node_alone(self):
        self.assertEqual(http_get(self.port_http, "/healthz")[::2], (200, "ok\n"))
        self.assertEqual(http_get(self.port_http, "/readyz")[::2], (200, "ok\n"))
        self.assertEqual(http_get(self.port_http, "/nothing")[0], 404)


@meshmq_only("meshmqd's HTTP listener")
class HttpListenerTest(unittest.TestCase):
    def broker(self, **flags):
        b = Broker(**flags)
        self.addCleanup(b.stop)
        return b

    def test_off_disables_the_listener(self):
        b = self.broker(http_listen="off").start()
        self.assertIsNone(b.http_port)
        self.assertNotIn("listening on http", b.stderr.text())

    def test_not_ready_while_a_known_peer_is_not_linked(self):
        """Just started, a node is not ready while a peer it was given is not linked (it would
        take subscriptions that peer does not know of); after the settle time (3 peer timeouts
        and 2 s) it is, since that peer may be gone for good."""
        with socket.socket() as unused:  # a port nobody listens on: the seed never answers
            unused.bind((HOST, 0))
            seed = "%s:%d" % (HOST, unused.getsockname()[1])
        b = self.broker(cluster_listen="%s:0" % HOST, peers=seed,
                        cluster_peer_timeout="1s").start()
        code, _, body = http_get(b.http_port, "/readyz")
        self.assertEqual(code, 503, body)
        self.assertIn("linking with " + seed, body)
        self.assertEqual(http_get(b.http_port, "/healthz")[0], 200)
        wait_for(lambda: http_get(b.http_port, "/readyz")[0] == 200, TIMEOUT,
                 message="still not ready after the settle time")

    def test_a_taken_port_stops_the_node_naming_it(self):
        first = self.broker().start()
        listen = "%s:%d" % (HOST, first.http_port)
        code, log = self.broker(http_listen=listen).start_expecting_failure()
        self.assertEqual(code, 1, log)
        self.assertIn(listen, log)


@meshmq_only("a cluster of meshmqd nodes")
class ClusterMetricsTest(ClusterTestCase):
    cluster_size = 0

    def test_readyz_follows_quorum_and_peers_are_reported(self):
        """Three nodes: each is ready and reports its two peers up. With A and C frozen, B is
        in the minority: /readyz 503 with the reason, /healthz still 200, its peers down in
        /metrics. Thawed, B is ready again."""
        cluster = self.start_cluster(3)
        a, b, c = cluster[0], cluster[1], cluster[2]
        for node in (a, b, c):
            wait_for(lambda: http_get(node.http_port, "/readyz")[0] == 200, TIMEOUT,
                     message="%s not ready in a formed cluster" % node.node_id)
        m = wait_metric(b, lambda m: m.get("meshmq_cluster_peer_up", peer=a.node_id) == 1 and
                        m.get("meshmq_cluster_peer_up", peer=c.node_id) == 1,
                        "B does not report A and C up")
        self.assertEqual(m.get("meshmq_cluster_members"), 3)
        self.assertEqual(m.get("meshmq_cluster_serving"), 1)
        for peer in (a, c):
            self.assertEqual(m.get("meshmq_cluster_peer_link_up", peer=peer.node_id,
                                   direction="outbound"), 1)
            self.assertGreaterEqual(m.get("meshmq_cluster_peer_pending_bytes",
                                          peer=peer.node_id), 0)
            self.assertGreaterEqual(m.get("meshmq_cluster_peer_lag_seconds",
                                          peer=peer.node_id), 0)
        self.assertGreater(m.get("meshmq_cluster_frames_sent_total"), 0)

        cluster.freeze(a)
        cluster.freeze(c)
        deadline = cluster.peer_timeout + 2 * TIMEOUT
        status = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(
            http_get(b.http_port, "/readyz")), deadline, message="B still ready in the minority")
        self.assertRegex(status[2], r"^(not serving|waiting for most of the cluster).*\n$")
        self.assertEqual(http_get(b.http_port, "/healthz")[0], 200)
        m = wait_metric(b, lambda m: m.get("meshmq_cluster_peer_up", peer=a.node_id) == 0 and
                        m.get("meshmq_cluster_peer_up", peer=c.node_id) == 0,
                        "B still reports its frozen peers up", timeout=deadline)
        self.assertEqual(m.get("meshmq_cluster_serving"), 0)
        # A client refused by the minority node is not counted as connected.
        refused = RawClient(b.port)
        self.addCleanup(refused.close)
        refused.send(connect(unique_id("minority")))
        refused.expect(connack(0, 3))

        cluster.thaw(a)
        cluster.thaw(c)
        wait_for(lambda: http_get(b.http_port, "/readyz")[0] == 200, deadline,
                 message="B not ready again with its peers back")


if __name__ == "__main__":
    unittest.main()
