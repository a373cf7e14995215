"""meshmqctl against real nodes: the admin service (proto/admin.proto) and its CLI.

Every command runs the real meshmqctl binary ($MESHMQCTL, else <repo>/build/node/admin/meshmqctl)
against a node's --admin_listen (port 0 here; the harness gives every meshmqd that), and checks
its table and its --json output. The answers must cover the whole cluster from whichever node is
asked: clients, sessions and subscriptions of other nodes, kick and drop taking effect for a real
client on another node, a retained delete seen on every node, a drain that hands the node's
sessions to its peers and ends the process. Errors (bad token, unknown client, unreachable node)
are one line on stderr and a non-zero exit.

Clusters run with the harness's fast heartbeats (Cluster.DEFAULT_FLAGS). Nodes are 0, 1, 2.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import paho.mqtt.client as mqtt

from meshmq_harness import (Broker, ClusterTestCase, HOST, TIMEOUT, free_port, meshmq_only,
                            unique_id, wait_for)

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ADMIN_LINE = re.compile(r"listening on admin 127\.0\.0\.1:(\d+)")
A, B, C = 0, 1, 2


def meshmqctl_path():
    path = os.environ.get("MESHMQCTL") or os.path.join(_REPO, "build", "node", "admin",
                                                       "meshmqctl")
    if not os.access(path, os.X_OK):
        raise RuntimeError("meshmqctl not found at %s: set MESHMQCTL=/path/to/meshmqctl" % path)
    return path


def admin_address(broker):
    """The node's admin listener, from its "listening on admin HOST:PORT" line."""
    for line in broker.stderr.snapshot():
        match = ADMIN_LINE.search(line)
        if match:
            return "%s:%s" % (HOST, match.group(1))
    raise AssertionError("%s did not report an admin listener:\n%s" % (broker.node_id,
                                                                       broker.log_tail()))


def write_token(directory, token):
    path = os.path.join(directory, "admin-token")
    with open(path, "w") as f:
        f.write(token + "\n")
    return path


class Ctl:
    """Runs meshmqctl against a node and checks how it ends."""

    def __init__(self, test, token_file):
        self.test = test
        self.token_file = token_file

    def run(self, *args, server=None, node=A, token_file=None, json_out=False, timeout=30):
        argv = [meshmqctl_path(), "--server=%s" % (server or admin_address(self.test.node(node)))]
        token_file = self.token_file if token_file is None else token_file
        if token_file:
            argv.append("--token_file=%s" % token_file)
        if json_out:
            argv.append("--json")
        argv += list(args)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args, **kwargs):
        """stdout of a command that must succeed."""
        result = self.run(*args, **kwargs)
        self.test.assertEqual(result.returncode, 0, "meshmqctl %s failed: %s%s" % (
            " ".join(args), result.stderr, result.stdout))
        return result.stdout

    def json(self, *args, **kwargs):
        return json.loads(self.ok(*args, json_out=True, **kwargs))

    def fails(self, *args, expect_code=1, **kwargs):
        """The one stderr line of a command that must fail (exit code `expect_code`)."""
        result = self.run(*args, **kwargs)
        self.test.assertEqual(result.returncode, expect_code, "meshmqctl %s: exit %d, stdout %r, "
                              "stderr %r" % (" ".join(args), result.returncode, result.stdout,
                                             result.stderr))
        self.test.assertEqual(result.stdout, "")
        lines = result.stderr.splitlines()
        self.test.assertEqual(len(lines), 1, "not one error line: %r" % result.stderr)
        self.test.assertTrue(lines[0].startswith("meshmqctl: "), lines[0])
        return lines[0]


def table_rows(text):
    """A meshmqctl table as a list of lists of cells (split on runs of 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


class AdminCase(ClusterTestCase):
    """One 3-node cluster with a token, shared by tests that leave its nodes running."""

    cluster_size = 3

    @classmethod
    def setUpClass(cls):
        cls.token_dir = tempfile.mkdtemp(prefix="meshmq-admin-")
        cls.addClassCleanup(shutil.rmtree, cls.token_dir, True)
        cls.token_file = write_token(cls.token_dir, "t0ken-" + unique_id())
        cls.cluster_flags = {"admin_token_file": cls.token_file}
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.ctl = Ctl(self, self.token_file)

    def node_id(self, i):
        return self.cluster[i].node_id

    def v5_client(self, node, client_id=None, **kwargs):
        return self.client(node=node, client_id=client_id or unique_id("adm"),
                           protocol=mqtt.MQTTv5, **kwargs)


@meshmq_only("meshmqctl is meshmq's")
class StatusTest(AdminCase):
    def test_status_covers_every_node(self):
        for asked in (A, C):
            text = self.ctl.ok("status", node=asked)
            rows = table_rows(text)
            self.assertEqual(rows[0][:4], ["NODE", "VERSION", "UPTIME", "SERVING"])
            self.assertEqual(rows[1][0], self.node_id(asked))  # the node asked comes first
            self.assertEqual(sorted(r[0] for r in rows[1:4]),
                             sorted(self.node_id(i) for i in range(3)))
            self.assertIn("cluster: healthy (3 of 3 nodes answered, 3 serving)", text)
        reply = self.ctl.json("status", node=B)
        self.assertEqual(reply["unreachable"], [])
        by_node = {n["node_id"]: n for n in reply["nodes"]}
        self.assertEqual(set(by_node), {self.node_id(i) for i in range(3)})
        for i in range(3):
            node = by_node[self.node_id(i)]
            self.assertTrue(node["serving"])
            self.assertTrue(node["clustered"])
            self.assertTrue(node["version"].startswith("meshmq "))
            listeners = {l["name"]: l["address"] for l in node["listeners"]}
            self.assertEqual(listeners["mqtt"], "%s:%d" % (HOST, self.cluster[i].port))
            self.assertEqual(listeners["cluster"], self.cluster[i].cluster_address)
            self.assertEqual(listeners["admin"], admin_address(self.cluster[i]))
            self.assertEqual(sorted(p["node_id"] for p in node["peers"] if p["up"]),
                             sorted(self.node_id(j) for j in range(3) if j != i))

    def test_cluster_members(self):
        rows = table_rows(self.ctl.ok("cluster", "members", node=B))
        self.assertEqual(rows[0], ["NODE", "ADDRESS", "STATE", "SERVING"])
        states = {r[0]: (r[1], r[2], r[3]) for r in rows[1:]}
        self.assertEqual(states[self.node_id(B)], (self.cluster[B].cluster_address, "self", "yes"))
        for i in (A, C):
            self.assertEqual(states[self.node_id(i)],
                             (self.cluster[i].cluster_address, "up", "yes"))
        reply = self.ctl.json("cluster", "members", node=A)
        self.assertEqual(sorted((m["node_id"], m["state"], m["serving"]) for m in reply["members"]),
                         sorted([(self.node_id(A), "self", True), (self.node_id(B), "up", True),
                                 (self.node_id(C), "up", True)]))

    def test_metrics_per_node(self):
        sub = self.client(node=C)
        sub.subscribe(self.topic("m"), 1)
        pub = self.client(node=A)
        pub.publish(self.topic("m"), b"x", qos=1)
        sub.wait_message(self.topic("m"))
        reply = self.ctl.json("metrics", node=B)
        by_node = {n["node_id"]: {c["name"]: int(c["value"]) for c in n["counters"]}
                   for n in reply["nodes"]}
        self.assertEqual(set(by_node), {self.node_id(i) for i in range(3)})
        self.assertGreaterEqual(by_node[self.node_id(A)]["messages_received"], 1)
        self.assertGreaterEqual(by_node[self.node_id(A)]["cluster_forwarded"], 1)
        self.assertGreaterEqual(by_node[self.node_id(C)]["cluster_received"], 1)
        self.assertIn("packets_malformed", by_node[self.node_id(B)])
        rows = table_rows(self.ctl.ok("metrics", node=B))
        self.assertEqual(rows[0][:2], ["COUNTER", self.node_id(B)])  # the node asked first
        self.assertEqual(sorted(rows[0][1:]), sorted(self.node_id(i) for i in range(3)))
        received = next(r for r in rows if r[0] == "messages_received")
        self.assertEqual(len(received), 4)

    def test_log_level_on_every_node(self):
        marks = [len(n.stderr.snapshot()) for n in self.cluster]
        reply = self.ctl.json("log-level", "debug", node=A)
        self.assertEqual(sorted(reply["node_ids"]), sorted(self.node_id(i) for i in range(3)))
        for i, node in enumerate(self.cluster):
            wait_for(lambda: "meshmqd: admin: log level debug" in node.stderr.snapshot()[marks[i]:],
                     message="%s did not take the log level" % node.node_id)
        # At debug, the node logs the admin calls it serves.
        self.ctl.ok("status", node=B)
        wait_for(lambda: any("admin: status from" in line
                             for line in self.cluster[B].stderr.snapshot()))
        self.assertIn("log level info on", self.ctl.ok("log-level", "info", node=C))
        line = self.ctl.fails("log-level", "loud", expect_code=2)
        self.assertIn("unknown log level 'loud'", line)


@meshmq_only("meshmqctl is meshmq's")
class ClientsTest(AdminCase):
    def test_clients_list_and_show_from_any_node(self):
        c1 = self.v5_client(B)
        c2 = self.client(node=C, client_id=unique_id("adm"), clean_session=False)
        c2.subscribe(self.topic("x"), 1)
        reply = self.ctl.json("clients", "list", node=A)
        by_id = {c["client_id"]: c for c in reply["clients"]}
        self.assertEqual(by_id[c1.client_id]["node_id"], self.node_id(B))
        self.assertEqual(by_id[c2.client_id]["node_id"], self.node_id(C))
        self.assertEqual(by_id[c2.client_id]["subscriptions"], 1)
        self.assertEqual(by_id[c2.client_id]["session_expiry"], 7200)  # --session_expiry 2h
        self.assertTrue(by_id[c1.client_id]["peer_address"].startswith("127.0.0.1:"))
        port = c1.c.socket().getsockname()[1]
        self.assertEqual(by_id[c1.client_id]["peer_address"], "127.0.0.1:%d" % port)

        rows = table_rows(self.ctl.ok("clients", "list", node=A))
        self.assertEqual(rows[0][:3], ["CLIENT ID", "NODE", "PEER"])
        row = next(r for r in rows if r[0] == c2.client_id)
        self.assertEqual(row[1], self.node_id(C))

        only_b = self.ctl.json("clients", "list", "--node", self.node_id(B), node=A)
        self.assertIn(c1.client_id, [c["client_id"] for c in only_b["clients"]])
        self.assertEqual({c["node_id"] for c in only_b["clients"]}, {self.node_id(B)})

        limited = self.ctl.json("clients", "list", "--limit", "1", node=A)
        self.assertEqual(len(limited["clients"]), 1)
        self.assertTrue(limited["truncated"])
        self.assertIn("raise --limit", self.ctl.ok("clients", "list", "--limit=1", node=A))

        text = self.ctl.ok("clients", "show", c2.client_id, node=B)
        self.assertIn("client id:       %s\n" % c2.client_id, text)
        self.assertIn("node:            %s\n" % self.node_id(C), text)
        shown = self.ctl.json("clients", "show", c1.client_id, node=C)
        self.assertEqual([c["client_id"] for c in shown["clients"]], [c1.client_id])

    def test_clients_list_shows_protocol_version_and_keepalive(self):
        """Each client's MQTT version and keepalive, as its connection has them, whichever node
        it is on and whichever node is asked."""
        v311 = self.client(node=B, client_id=unique_id("adm-311"), keepalive=45)
        v5 = self.v5_client(C, keepalive=30)
        v31 = self.client(node=A, client_id=unique_id("adm-31"), protocol=mqtt.MQTTv31,
                          keepalive=0)
        for asked in (A, B):
            by_id = {c["client_id"]: c for c in self.ctl.json("clients", "list",
                                                               node=asked)["clients"]}
            self.assertEqual((by_id[v311.client_id]["protocol"],
                              by_id[v311.client_id]["keepalive"]), ("3.1.1", 45))
            self.assertEqual((by_id[v5.client_id]["protocol"], by_id[v5.client_id]["keepalive"]),
                             ("5.0", 30))
            self.assertEqual((by_id[v31.client_id]["protocol"],
                              by_id[v31.client_id]["keepalive"]), ("3.1", 0))
        rows = table_rows(self.ctl.ok("clients", "list", node=C))
        self.assertEqual(rows[0][:5], ["CLIENT ID", "NODE", "PEER", "MQTT", "KEEPALIVE"])
        by_id = {r[0]: r for r in rows[1:]}
        self.assertEqual(by_id[v311.client_id][3:5], ["3.1.1", "45s"])
        self.assertEqual(by_id[v5.client_id][3:5], ["5.0", "30s"])
        self.assertEqual(by_id[v31.client_id][3:5], ["3.1", "none"])
        text = self.ctl.ok("clients", "show", v5.client_id, node=A)
        self.assertIn("mqtt:            5.0\n", text)
        self.assertIn("keepalive:       30s\n", text)

    def test_kick_disconnects_a_client_on_another_node(self):
        victim = self.v5_client(C, will=(self.topic("will"), b"gone", 1, False))
        watcher = self.client(node=B)
        watcher.subscribe(self.topic("will"), 1)
        out = self.ctl.ok("clients", "kick", victim.client_id, node=A)
        self.assertEqual(out, "kicked client %s from node %s\n" % (victim.client_id,
                                                                   self.node_id(C)))
        self.assertTrue(victim.disconnected.wait(TIMEOUT), "client not disconnected")
        self.assertEqual(victim.disconnect_reason, 0x98)  # administrative action
        watcher.wait_message(self.topic("will"), "gone")  # a kick is no clean disconnect
        wait_for(lambda: self.ctl.run("clients", "show", victim.client_id).returncode == 1)
        line = self.ctl.fails("clients", "kick", victim.client_id, node=B)
        self.assertIn("client %s is not connected" % victim.client_id, line)

    def test_kick_json(self):
        victim = self.client(node=A)
        reply = self.ctl.json("clients", "kick", victim.client_id, node=B)
        self.assertEqual(reply, {"node_id": self.node_id(A)})
        self.assertTrue(victim.disconnected.wait(TIMEOUT))

    def test_unknown_client_is_an_error(self):
        for args in (("clients", "show", "nobody-here"), ("clients", "kick", "nobody-here"),
                     ("sessions", "show", "nobody-here"), ("sessions", "drop", "nobody-here")):
            line = self.ctl.fails(*args, node=B)
            self.assertIn("nobody-here", line)


@meshmq_only("meshmqctl is meshmq's")
class SessionsTest(AdminCase):
    def test_sessions_list_show_and_drop(self):
        client_id = unique_id("adm-sess")
        c = self.client(node=B, client_id=client_id, clean_session=False)
        c.subscribe([(self.topic("q/#"), 1), (self.topic("z"), 0)])
        c.disconnect()
        pub = self.client(node=A)
        pub.publish(self.topic("q/1"), b"queued", qos=1)

        def shown():
            reply = self.ctl.json("sessions", "show", client_id, node=C)
            session = reply["sessions"][0]
            return session if int(session["queued"]) == 1 else None
        session = wait_for(shown, message="the queued message never showed")
        self.assertEqual(session["node_id"], self.node_id(B))
        self.assertFalse(session["connected"])
        self.assertEqual(session["subscription_count"], 2)
        self.assertEqual(sorted((s["filter"], s["qos"]) for s in session["subscriptions"]),
                         [(self.topic("q/#"), 1), (self.topic("z"), 0)])

        text = self.ctl.ok("sessions", "show", client_id, node=A)
        self.assertIn("connected:      no\n", text)
        self.assertIn("queued:         1\n", text)
        self.assertIn(self.topic("q/#"), text)

        listed = self.ctl.json("sessions", "list", node=A)
        mine = [s for s in listed["sessions"] if s["client_id"] == client_id]
        self.assertEqual([(s["node_id"], s["subscription_count"]) for s in mine],
                         [(self.node_id(B), 2)])
        self.assertEqual(mine[0]["subscriptions"], [])  # the list has counts only
        rows = table_rows(self.ctl.ok("sessions", "list", node=C))
        self.assertEqual(rows[0], ["CLIENT ID", "NODE", "CONNECTED", "EXPIRY", "SUBS", "QUEUED",
                                   "INFLIGHT"])
        self.assertIn([client_id, self.node_id(B), "no", "2h00m", "2", "1", "0"], rows)

        reply = self.ctl.json("sessions", "drop", client_id, node=C)
        self.assertEqual(reply["node_ids"], [self.node_id(B)])
        self.ctl.fails("sessions", "show", client_id, node=A)
        # The session is gone everywhere: the client starts afresh, and gets nothing queued.
        again = self.client(node=B, client_id=client_id, clean_session=False)
        self.assertEqual(again.session_present, 0)
        self.assertEqual(again.received(), [])

    def test_drop_closes_a_connected_client(self):
        client_id = unique_id("adm-drop")
        c = self.v5_client(C, client_id=client_id)
        out = self.ctl.ok("sessions", "drop", client_id, node=A)
        self.assertEqual(out, "dropped the session of %s on %s\n" % (client_id, self.node_id(C)))
        self.assertTrue(c.disconnected.wait(TIMEOUT))
        self.assertEqual(c.disconnect_reason, 0x98)


@meshmq_only("meshmqctl is meshmq's")
class SubscriptionsTest(AdminCase):
    def test_subscriptions_and_routes(self):
        c = self.v5_client(C)
        c.subscribe([(self.topic("+/x"), 1), ("$share/g1/" + self.topic("y"), 0)])
        other = self.client(node=A)
        other.subscribe(self.topic("+/x"), 0)

        reply = self.ctl.json("subscriptions", "list", "--client", c.client_id, node=B)
        self.assertEqual(sorted((s["node_id"], s["filter"], s["qos"])
                                for s in reply["subscriptions"]),
                         sorted([(self.node_id(C), self.topic("+/x"), 1),
                                 (self.node_id(C), "$share/g1/" + self.topic("y"), 0)]))
        # A topic: who gets a message published there.
        matching = self.ctl.json("subscriptions", "list", "--topic", self.topic("a/x"), node=B)
        self.assertEqual(sorted(s["client_id"] for s in matching["subscriptions"]),
                         sorted([c.client_id, other.client_id]))
        # A filter: exactly that one.
        exact = self.ctl.json("subscriptions", "list", "--topic", self.topic("+/x"), node=B)
        self.assertEqual(len(exact["subscriptions"]), 2)
        rows = table_rows(self.ctl.ok("subscriptions", "list", "--client", c.client_id, node=A))
        self.assertEqual(rows[0], ["CLIENT ID", "NODE", "FILTER", "QOS", "OPTIONS"])
        self.assertIn([c.client_id, self.node_id(C), self.topic("+/x"), "1"], rows)

        routes = self.ctl.json("routes", node=B)
        mine = sorted((r["filter"], r["group"], r["node_id"], r["subscribers"])
                      for r in routes["routes"] if r["filter"].startswith(self.topic()))
        self.assertEqual(mine, sorted([(self.topic("+/x"), "", self.node_id(A), 1),
                                       (self.topic("+/x"), "", self.node_id(C), 1),
                                       (self.topic("y"), "g1", self.node_id(C), 1)]))
        rows = table_rows(self.ctl.ok("routes", node=A))
        self.assertEqual(rows[0], ["FILTER", "GROUP", "NODE", "SUBSCRIBERS"])
        self.assertIn([self.topic("y"), "g1", self.node_id(C), "1"], rows)


@meshmq_only("meshmqctl is meshmq's")
class RetainedAndPublishTest(AdminCase):
    def test_retained_list_get_and_delete_everywhere(self):
        pub = self.client(node=A)
        pub.publish(self.topic("r/1"), b"one", qos=1, retain=True)
        pub.publish(self.topic("r/2"), b"two\nlines", qos=0, retain=True)
        for i in range(3):  # replicated to every node
            wait_for(lambda: len(self.ctl.json("retained", "list", self.topic("r/#"),
                                               node=i)["messages"]) == 2)
        reply = self.ctl.json("retained", "list", self.topic("r/#"), node=B)
        self.assertEqual([(m["topic"], base64.b64decode(m["payload"]), m["qos"])
                          for m in reply["messages"]],
                         [(self.topic("r/1"), b"one", 1), (self.topic("r/2"), b"two\nlines", 0)])
        rows = table_rows(self.ctl.ok("retained", "list", self.topic("r/#"), node=C))
        self.assertEqual(rows[0], ["TOPIC", "QOS", "BYTES", "PAYLOAD"])
        self.assertIn([self.topic("r/2"), "0", "9", "two\\x0alines"], rows)
        limited = self.ctl.json("retained", "list", self.topic("r/#"), "--limit", "1", node=C)
        self.assertEqual(len(limited["messages"]), 1)
        self.assertTrue(limited["truncated"])

        self.assertIn("payload:  one\n", self.ctl.ok("retained", "get", self.topic("r/1"), node=C))
        got = self.ctl.json("retained", "get", self.topic("r/1"), node=B)
        self.assertEqual(base64.b64decode(got["payload"]), b"one")

        self.assertEqual(self.ctl.ok("retained", "delete", self.topic("r/1"), node=B),
                         "deleted the retained message of %s\n" % self.topic("r/1"))
        for i in range(3):
            wait_for(lambda: self.ctl.run("retained", "get", self.topic("r/1"),
                                          node=i).returncode == 1,
                     message="retained message still on node %d" % i)
        line = self.ctl.fails("retained", "get", self.topic("r/1"), node=A)
        self.assertIn("no retained message", line)
        # A new subscriber anywhere gets only what is left.
        sub = self.client(node=C)
        sub.subscribe(self.topic("r/#"), 1)
        sub.wait_message(self.topic("r/2"))
        self.assertEqual(sub.received(self.topic("r/1")), [])
        self.ctl.fails("retained", "delete", self.topic("r/1"), node=C)

    def test_publish_reaches_subscribers_on_other_nodes(self):
        sub = self.client(node=C)
        sub.subscribe(self.topic("p"), 1)
        out = self.ctl.ok("publish", self.topic("p"), "hello from ctl", "--qos", "1", node=A)
        self.assertTrue(out.startswith("published to %s" % self.topic("p")), out)
        msg = sub.wait_message(self.topic("p"), "hello from ctl")
        self.assertEqual(msg.qos, 1)
        reply = self.ctl.json("publish", self.topic("p2"), "kept", "--retain", node=B)
        self.assertIn("receivers", reply)
        wait_for(lambda: self.ctl.run("retained", "get", self.topic("p2"), node=C).returncode == 0)
        line = self.ctl.fails("publish", "bad/+/topic", "x", node=A)
        self.assertIn("not a topic name", line)
        self.ctl.fails("publish", self.topic("p"), "x", "--qos", "3", expect_code=2)


@meshmq_only("meshmqctl is meshmq's")
class AccessTest(AdminCase):
    def test_bad_or_missing_token_is_refused(self):
        wrong = write_token(self.token_dir, "not-the-token")
        for token_file in (wrong, ""):
            for args in (("status",), ("clients", "list"), ("node", "drain")):
                line = self.ctl.fails(*args, token_file=token_file, node=B)
                self.assertIn("refused the call", line)
                self.assertIn("token", line)
        self.assertTrue(self.cluster[B].running())  # the drain was refused

    def test_unreachable_server(self):
        port = free_port()
        line = self.ctl.fails("status", server="%s:%d" % (HOST, port))
        self.assertIn("cannot reach %s:%d" % (HOST, port), line)

    def test_bad_command_line(self):
        self.assertIn("unknown command 'frobnicate'", self.ctl.fails("frobnicate", expect_code=2))
        self.assertIn("missing argument", self.ctl.fails("clients", "kick", expect_code=2))


@meshmq_only("meshmqctl is meshmq's")
class ClusterChangeTest(ClusterTestCase):
    """Commands that end or add nodes: a cluster per test."""

    cluster_size = 0

    def setUp(self):
        super().setUp()
        self.ctl = Ctl(self, None)  # loopback listeners, no token

    def test_node_drain_hands_sessions_over_and_exits(self):
        cluster = self.start_cluster(3)
        client_id = unique_id("adm-drain")
        c = self.client(node=A, client_id=client_id, clean_session=False)
        c.subscribe(self.topic("d"), 1)
        out = self.ctl.ok("node", "drain", node=A, timeout=60)
        self.assertRegex(out, r"^node %s handed \d+ sessions to its peers and stopped\n$" %
                         re.escape(cluster[A].node_id))
        cluster[A].proc.wait(TIMEOUT)  # it has stopped answering: it is exiting
        self.assertEqual(cluster.stop_node(A), 0)
        self.assertIn("meshmqd: admin: drain requested", cluster[A].stderr.text())
        # No session left behind on the drained node; the client's is on a peer.
        reply = self.ctl.json("sessions", "show", client_id, node=B)
        self.assertEqual(len(reply["sessions"]), 1)
        self.assertIn(reply["sessions"][0]["node_id"], (cluster[B].node_id, cluster[C].node_id))
        self.assertEqual([s["filter"] for s in reply["sessions"][0]["subscriptions"]],
                         [self.topic("d")])
        listed = self.ctl.json("sessions", "list", node=C)
        self.assertNotIn(cluster[A].node_id, [s["node_id"] for s in listed["sessions"]])
        again = self.client(node=B, client_id=client_id, clean_session=False)
        self.assertEqual(again.session_present, 1)

    def test_cluster_leave_of_another_node(self):
        cluster = self.start_cluster(3)
        out = self.ctl.ok("cluster", "leave", cluster[C].node_id, node=A, timeout=60)
        self.assertIn("node %s handed" % cluster[C].node_id, out)
        cluster[C].proc.wait(TIMEOUT)
        self.assertEqual(cluster.stop_node(C), 0)
        status = self.ctl.json("status", node=B)
        self.assertEqual(sorted(n["node_id"] for n in status["nodes"]),
                         sorted([cluster[A].node_id, cluster[B].node_id]))
        # It left: no longer a member, so no longer missed.
        self.assertEqual(status["unreachable"], [])
        members = self.ctl.json("cluster", "members", node=A)
        self.assertNotIn(cluster[C].node_id, [m["node_id"] for m in members["members"]])
        line = self.ctl.fails("cluster", "leave", cluster[C].node_id, node=A)
        self.assertIn("is not up, and no node counts it as a member", line)

    def test_cluster_leave_of_a_dead_node_removes_it_everywhere(self):
        """A node killed with SIGKILL cannot drain: `cluster leave` removes it from the members
        of every live node instead (force-leave), for good: a survivor restarted from its data
        dir does not count it again."""
        cluster = self.start_cluster(3)
        dead = cluster[C].node_id
        cluster.kill_node(C)
        cluster.wait_peer_down(C)
        for asked in (A, B):
            members = self.ctl.json("cluster", "members", node=asked)["members"]
            self.assertIn((dead, "down"), [(m["node_id"], m["state"]) for m in members])

        out = self.ctl.ok("cluster", "leave", dead, node=A)
        self.assertEqual(out, "node %s was not up: removed from the members of %s\n" % (
            dead, ", ".join([cluster[A].node_id, cluster[B].node_id])))
        survivors = sorted([cluster[A].node_id, cluster[B].node_id])
        for asked in (A, B):
            members = self.ctl.json("cluster", "members", node=asked)["members"]
            self.assertEqual(sorted(m["node_id"] for m in members), survivors, asked)
            self.assertEqual(self.ctl.json("status", node=asked)["unreachable"], [])
        self.assertIn("cluster: healthy (2 of 2 nodes answered, 2 serving)",
                      self.ctl.ok("status", node=B))
        self.assertIn("meshmqd: cluster: forgot member %s" % dead, cluster[B].stderr.text())
        # Once is enough: nobody counts it any more.
        line = self.ctl.fails("cluster", "leave", dead, node=B)
        self.assertIn("is not up, and no node counts it as a member", line)

        # Kept in the members file: B, killed and restarted, still does not count it.
        cluster.restart_node(B, kill=True)
        cluster.wait_formed()
        for asked in (A, B):
            members = self.ctl.json("cluster", "members", node=asked)["members"]
            self.assertEqual(sorted(m["node_id"] for m in members), survivors, asked)

    def test_a_removed_node_that_returns_joins_as_new(self):
        """The dead node removed by `cluster leave` comes back: it is a member again (a new
        joiner), and its stale copy of a session taken over while it was away is not
        resurrected: the client resuming on it gets the session that lived on, with what was
        queued meanwhile."""
        cluster = self.start_cluster(3)
        dead = cluster[C].node_id
        client_id = unique_id("adm-force")
        sub = self.client(node=C, client_id=client_id, clean_session=False)
        sub.subscribe(self.topic("f"), 1)
        sub.disconnect()
        pub = self.client(node=A)
        pub.publish(self.topic("f"), b"old", qos=1)  # acked: on C and on its replica
        cluster.kill_node(C)
        cluster.wait_peer_down(C)
        reply = self.ctl.json("cluster", "leave", dead, node=B)
        self.assertEqual(reply["node_id"], dead)
        self.assertTrue(reply["removed"])
        self.assertEqual(reply["sessions"], "0")
        self.assertEqual(sorted(reply["node_ids"]),
                         sorted([cluster[A].node_id, cluster[B].node_id]))
        self.assertEqual(reply["unreachable"], [])
        # The session it owned lives on (taken over), and is fed while the node is away.
        pub.publish(self.topic("f"), b"while-away", qos=1, timeout=3 * TIMEOUT)

        cluster.start_node(C)
        cluster.wait_formed()
        for asked in (A, B, C):
            members = self.ctl.json("cluster", "members", node=asked)["members"]
            self.assertEqual(sorted(m["node_id"] for m in members),
                             sorted(n.node_id for n in cluster), asked)
        back = self.client(node=C, client_id=client_id, clean_session=False)
        self.assertEqual(back.session_present, 1)
        back.wait_message(self.topic("f"), "while-away")
        self.assertEqual(back.payloads(self.topic("f")), [b"old", b"while-away"])

    def test_a_forgotten_node_no_longer_counts_for_the_quorum(self):
        """Three members, one dead and removed: of the two left, the one with the lowest node id
        (A) is a majority alone when the other dies too, as in a 2-node cluster, and takes the
        other's sessions over. Had the dead node still counted, A would be one of three: cut
        off, serving nobody and taking nothing over."""
        cluster = self.start_cluster(3)
        cluster.kill_node(C)
        cluster.wait_peer_down(C)
        self.ctl.ok("cluster", "leave", cluster[C].node_id, node=B)
        client_id = unique_id("adm-quorum")
        sub = self.client(node=B, client_id=client_id, clean_session=False)
        sub.subscribe(self.topic("q"), 1)
        sub.disconnect()
        pub = self.client(node=A)
        pub.publish(self.topic("q"), b"queued", qos=1)  # acked: on B and its replica, A
        cluster.kill_node(B)
        cluster.wait_peer_down(B)
        wait_for(lambda: "meshmqd: cluster: took over 1 sessions of %s" % cluster[B].node_id
                 in cluster[A].stderr.text(), cluster.peer_timeout + TIMEOUT,
                 message="A did not take B's session over")
        self.assertTrue(self.ctl.json("status", node=A)["nodes"][0]["serving"])
        back = self.client(node=A, client_id=client_id, clean_session=False)
        self.assertEqual(back.session_present, 1)
        back.wait_message(self.topic("q"), "queued")

    def test_cluster_join(self):
        # Nodes 0 and 1 form a cluster; node 2 runs alone until it is joined.
        cluster = self.start_cluster(3, formed=False, seeds={A: [], B: [A], C: []})
        wait_for(lambda: cluster.peer_view(A, B) == "up" and cluster.peer_view(B, A) == "up",
                 timeout=15)
        before = self.ctl.json("status", node=A)
        self.assertEqual(len(before["nodes"]), 2)
        reply = self.ctl.json("cluster", "join", cluster[C].cluster_address, node=A)
        self.assertEqual(reply["node_id"], cluster[C].node_id)
        cluster.wait_formed()
        wait_for(lambda: len(self.ctl.json("status", node=B)["nodes"]) == 3)
        # Joining a node that is already a member is harmless.
        out = self.ctl.ok("cluster", "join", cluster[C].cluster_address, node=B)
        self.assertEqual(out, "joined node %s at %s\n" % (cluster[C].node_id,
                                                          cluster[C].cluster_address))
        line = self.ctl.fails("cluster", "join", "%s:%d" % (HOST, free_port()), "--timeout=3s",
                              node=A)
        self.assertIn("no node linked up", line)


@meshmq_only("meshmqctl is meshmq's")
class LogLevelTest(ClusterTestCase):
    """`log-level` governs the node's own log, not only the admin's lines: connects logged at
    info (--log_connections) stop at `error` and come back at `info`, on every node; so do the
    cluster's lines (peers down and up at info, links up at debug)."""

    cluster_size = 0

    def connected_line(self, client_id):
        return "meshmqd: %s connected from " % client_id

    def logged(self, node, client_id):
        return any(self.connected_line(client_id) in line
                   for line in self.cluster[node].stderr.snapshot())

    def test_connection_lines_follow_the_log_level(self):
        cluster = self.start_cluster(2, log_connections=True)
        ctl = Ctl(self, None)
        # info, the default: logged.
        before = [self.client(node=i, client_id=unique_id("log-info")) for i in (A, B)]
        for i, c in zip((A, B), before):
            wait_for(lambda: self.logged(i, c.client_id), message="no connect line at info")

        reply = ctl.json("log-level", "error", node=A)
        self.assertEqual(sorted(reply["node_ids"]), sorted(n.node_id for n in cluster))
        quiet = []
        for i in (A, B):
            c = self.client(node=i, client_id=unique_id("log-quiet"))
            # A round trip on the same connection: its CONNECT was handled (and its line written,
            # or not) before the SUBACK.
            c.subscribe(self.topic("x"), 1)
            quiet.append(c)

        self.assertIn("log level info on", ctl.ok("log-level", "info", node=B))
        after = [self.client(node=i, client_id=unique_id("log-back")) for i in (A, B)]
        for i, c in zip((A, B), after):
            wait_for(lambda: self.logged(i, c.client_id), message="no connect line back at info")
        # The lines of the quiet clients would have been written before these.
        for i, c in zip((A, B), quiet):
            self.assertFalse(self.logged(i, c.client_id),
                             "%s logged a connect at level error" % cluster[i].node_id)
        # The changes themselves are always said.
        for node in cluster:
            text = node.stderr.text()
            self.assertIn("meshmqd: admin: log level error", text)
            self.assertIn("meshmqd: admin: log level info", text)

    def up_peers(self, ctl, nodes):
        """Per node of `nodes`, the peers it is up with, from `status` (read under the lock the
        "peer X up|down" line is written under: once it shows, the line is in the log or never
        will be)."""
        reply = ctl.json("status", node=nodes[0])
        by_id = {n["node_id"]: n for n in reply["nodes"]}
        return {i: {p["node_id"] for p in by_id[self.cluster[i].node_id]["peers"] if p["up"]}
                if self.cluster[i].node_id in by_id else None for i in nodes}

    @staticmethod
    def lines_before(node, start, text):
        """node's log lines from index start up to the first with text in it (as a one-item
        list's item, so that none is still an answer); None until that line is written."""
        lines = node.stderr.snapshot()
        for k in range(start, len(lines)):
            if text in lines[k]:
                return [lines[start:k]]
        return None

    def test_cluster_lines_follow_the_log_level(self):
        """Peers going down and coming back (info) are not logged at `warning`, and are again at
        `info`; links coming up are debug, not logged at `info`."""
        cluster = self.start_cluster(3)
        ctl = Ctl(self, None)
        c_id = cluster[C].node_id
        about_c = re.compile(r"meshmqd: cluster: (peer %s (up|down)\s*$|link (to|from) %s .*down)"
                             % (re.escape(c_id), re.escape(c_id)))

        ctl.ok("log-level", "warning", node=A)
        start = {}
        for i in (A, B):
            wait_for(lambda: "meshmqd: admin: log level warning" in cluster[i].stderr.text(),
                     message="%s did not take the level" % cluster[i].node_id)
            start[i] = len(cluster[i].stderr.snapshot())
        # C stops and comes back: A and B see it go and return, and say nothing of it.
        cluster.stop_node(C)
        wait_for(lambda: all(c_id not in up for up in self.up_peers(ctl, [A, B]).values()),
                 cluster.peer_timeout + TIMEOUT, message="A and B did not see C go")
        cluster.start_node(C)
        wait_for(lambda: all(up is not None and len(up) == 2
                             for up in self.up_peers(ctl, [A, B, C]).values()),
                 cluster.FORM_TIMEOUT, message="C did not come back")

        ctl.ok("log-level", "info", node=A)
        for i in (A, B):
            # Anything A or B wrote of C meanwhile is before the line saying the level changed.
            [window] = wait_for(lambda: self.lines_before(cluster[i], start[i],
                                                          "meshmqd: admin: log level info"),
                                message="%s did not take the level" % cluster[i].node_id)
            said = [line for line in window if about_c.search(line)]
            self.assertEqual(said, [], "%s logged C at level warning" % cluster[i].node_id)

        # At info, the same again is logged: C down on A and B, then up (the harness waits for
        # those very lines) ...
        cluster.stop_node(C)
        cluster.wait_peer_down(C)
        cluster.start_node(C)
        cluster.wait_formed()
        # ... but not the links coming up (debug), which come before "peer X up".
        for i in (A, B):
            self.assertNotRegex(cluster[i].stderr.text(),
                                r"meshmqd: cluster: link (to|from) %s \(.*\) up" % re.escape(c_id))


@meshmq_only("meshmqctl is meshmq's")
class SingleNodeTest(ClusterTestCase):
    """A node without a cluster, and what a node refuses at start."""

    cluster_size = 0

    def start_node(self, **flags):
        broker = Broker(**flags)
        self.addCleanup(broker.stop)
        return broker

    def test_single_node_without_cluster(self):
        broker = self.start_node(cluster_listen="").start()
        ctl = Ctl(self, None)
        server = admin_address(broker)
        reply = ctl.json("status", server=server)
        self.assertEqual(len(reply["nodes"]), 1)
        self.assertFalse(reply["nodes"][0]["clustered"])
        self.assertEqual(reply["unreachable"], [])
        c = self.client(broker=broker)
        listed = ctl.json("clients", "list", server=server)
        self.assertEqual([x["client_id"] for x in listed["clients"]], [c.client_id])
        ctl.ok("clients", "kick", c.client_id, server=server)
        self.assertTrue(c.disconnected.wait(TIMEOUT))
        line = ctl.fails("cluster", "join", "127.0.0.1:1", server=server)
        self.assertIn("without a cluster", line)
        self.assertIn("cluster: healthy (1 of 1", ctl.ok("status", server=server))

    def test_open_listener_needs_a_token(self):
        broker = Broker(admin_listen="0.0.0.0:0")
        self.addCleanup(broker.stop)
        code, log = broker.start_expecting_failure()
        self.assertEqual(code, 2, log)
        self.assertIn("--admin_token_file", log)

    def test_token_on_an_open_listener(self):
        directory = tempfile.mkdtemp(prefix="meshmq-admin-")
        self.addCleanup(shutil.rmtree, directory, True)
        token = write_token(directory, "open-sesame")
        broker = self.start_node(admin_listen="0.0.0.0:0", admin_token_file=token).start()
        ports = [m.group(1) for m in (re.search(r"listening on admin 0\.0\.0\.0:(\d+)", line)
                                      for line in broker.stderr.snapshot()) if m]
        self.assertEqual(len(ports), 1, broker.log_tail())
        server = "%s:%s" % (HOST, ports[0])
        self.assertEqual(len(Ctl(self, token).json("status", server=server)["nodes"]), 1)
        self.assertIn("refused the call", Ctl(self, None).fails("status", server=server))

    @unittest.skipIf(shutil.which("openssl") is None, "needs the openssl command")
    def test_tls(self):
        directory = tempfile.mkdtemp(prefix="meshmq-admin-tls-")
        self.addCleanup(shutil.rmtree, directory, True)
        cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        broker = self.start_node(cluster_listen="", admin_tls_cert=cert,
                                 admin_tls_key=key).start()
        server = admin_address(broker)
        ctl = Ctl(self, None)
        reply = ctl.json("status", "--tls_ca=%s" % cert, server=server)
        self.assertEqual(reply["nodes"][0]["node_id"], broker.node_id)
        # Plain text to a TLS listener gets nowhere.
        self.assertIn("cannot reach", ctl.fails("status", server=server))


if __name__ == "__main__":
    unittest.main()
