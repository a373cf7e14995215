"""$SYS topics (README "Operations: metrics and health"): what a real subscriber to $SYS/# gets
every --sys_interval, under $SYS/broker/ and again under $SYS/brokers/<node id>/, and the
cluster-wide totals under $SYS/cluster/ (every node's values summed, read on any node).

Values are read from fresh publications (not the retained copies a new subscriber gets first,
which can be one interval old), and polled for with a deadline.
"""

import unittest

from meshmq_harness import (TIMEOUT, Broker, BrokerTestCase, ClusterTestCase, meshmq_only,
                            unique_id, wait_for)

CLUSTER_TOPICS = ["nodes", "clients/connected", "clients/disconnected", "clients/total",
                  "messages/received", "messages/sent", "bytes/received", "bytes/sent",
                  "subscriptions/count", "retained messages/count"]


def latest_int(watcher, topic):
    """The last value of `topic` the watcher got (None before any)."""
    messages = watcher.received(topic)
    return int(messages[-1].payload) if messages else None


def wait_value(watcher, topic, predicate, describe, timeout=3 * TIMEOUT):
    """Waits until the latest value of `topic` satisfies predicate; returns it."""
    wait_for(lambda: latest_int(watcher, topic) is not None and
             predicate(latest_int(watcher, topic)), timeout,
             message="%s: %s (last %r)" % (topic, describe, latest_int(watcher, topic)))
    return latest_int(watcher, topic)

TOPICS = ["version", "uptime", "clients/connected", "clients/disconnected", "clients/total",
          "messages/received", "messages/sent", "subscriptions/count",
          "retained messages/count", "bytes/received", "bytes/sent", "counters/store_errors"]


@meshmq_only("meshmq's $SYS/brokers/<node>/ copies and client totals")
class SysTopicsTest(BrokerTestCase):
    broker_flags = {"sys_interval": "1s"}

    def setUp(self):
        super().setUp()
        self.watcher = self.client()
        self.assertEqual(self.watcher.subscribe("$SYS/#", 0), [0])

    def fresh(self, topic, after=None):
        """The payload of the first non-retained publication of topic after index `after` of
        what the watcher got (default: from now on)."""
        seen = len(self.watcher.received(topic)) if after is None else after
        message = wait_for(
            lambda: next((m for m in self.watcher.received(topic)[seen:] if not m.retain), None),
            TIMEOUT, message="no fresh " + topic)
        return message.payload.decode()

    def fresh_int(self, topic):
        return int(self.fresh(topic))

    def test_every_topic_is_published_per_broker_and_per_node(self):
        node = self.broker.node_id
        for name in TOPICS:
            for prefix in ("$SYS/broker/", "$SYS/brokers/%s/" % node):
                with self.subTest(topic=prefix + name):
                    self.assertTrue(self.fresh(prefix + name, after=0))
        self.assertEqual(self.fresh("$SYS/broker/version"),
                         self.fresh("$SYS/brokers/%s/version" % node))
        self.assertRegex(self.fresh("$SYS/brokers/%s/uptime" % node), r"^\d+ seconds$")

    def test_clients_total_counts_offline_persistent_sessions(self):
        """A persistent session whose client left counts in clients/disconnected and
        clients/total, not in clients/connected; total = connected + disconnected."""
        disconnected = self.fresh_int("$SYS/broker/clients/disconnected")
        c = self.client(client_id=unique_id("away"), clean_session=False)
        c.subscribe(self.topic(), 1)
        c.disconnect()
        wait_for(lambda: self.fresh_int("$SYS/broker/clients/disconnected") >= disconnected + 1,
                 3 * TIMEOUT, message="clients/disconnected did not count the offline session")
        # One publication round, read after it was complete (the last topic of the round).
        base = len(self.watcher.received("$SYS/broker/counters/cluster_wills_published"))
        self.fresh("$SYS/broker/counters/cluster_wills_published", after=base)
        latest = {name: int(self.watcher.received("$SYS/broker/clients/" + name)[-1].payload)
                  for name in ("connected", "disconnected", "total")}
        self.assertEqual(latest["total"], latest["connected"] + latest["disconnected"], latest)
        self.assertGreaterEqual(latest["connected"], 1)  # the watcher

    def test_message_and_subscription_counts_move(self):
        node = self.broker.node_id
        received = self.fresh_int("$SYS/brokers/%s/messages/received" % node)
        subscriptions = self.fresh_int("$SYS/broker/subscriptions/count")
        sub = self.client()
        sub.subscribe([(self.topic("a"), 1), ("$share/g/" + self.topic("b"), 1)])
        pub = self.client()
        for i in range(3):
            pub.publish(self.topic("a"), b"%d" % i, qos=1)
        sub.wait_count(3)
        wait_for(lambda: self.fresh_int("$SYS/brokers/%s/messages/received" % node) >=
                 received + 3, 3 * TIMEOUT, message="messages/received did not move")
        # Shared subscriptions count too.
        wait_for(lambda: self.fresh_int("$SYS/broker/subscriptions/count") >= subscriptions + 2,
                 3 * TIMEOUT, message="subscriptions/count did not count both")

    def test_a_node_alone_publishes_its_own_values_as_the_cluster_totals(self):
        node = self.broker.node_id
        for name in CLUSTER_TOPICS:
            with self.subTest(topic=name):
                self.assertTrue(self.fresh("$SYS/cluster/" + name, after=0))
        self.assertEqual(self.fresh_int("$SYS/cluster/nodes"), 1)
        # The same counts as the node's own (read once both settled: clients of earlier tests
        # may still be going).
        for name in ("clients/connected", "subscriptions/count", "retained messages/count"):
            wait_for(lambda: self.fresh_int("$SYS/cluster/" + name) ==
                     self.fresh_int("$SYS/brokers/%s/%s" % (node, name)), 3 * TIMEOUT,
                     message="$SYS/cluster/%s is not the node's own" % name)

    def test_without_a_cluster_listener_too(self):
        broker = Broker(cluster_listen="", sys_interval="1s")
        self.addCleanup(broker.stop)
        broker.start()
        watcher = self.client(broker=broker)
        watcher.subscribe("$SYS/cluster/#", 0)
        wait_value(watcher, "$SYS/cluster/nodes", lambda v: v == 1, "not 1")
        wait_value(watcher, "$SYS/cluster/clients/connected", lambda v: v == 1,
                   "not the watcher alone")


@meshmq_only("meshmq's $SYS/cluster/ totals")
class ClusterSysTotalsTest(ClusterTestCase):
    """$SYS/cluster/ on a 3-node cluster (sys_interval 1s): what a subscriber on one node sees of
    the clients, subscriptions and messages of the others. A cluster per test, for exact
    counts."""

    cluster_size = 0

    def watch(self, node):
        watcher = self.client(node=node)
        watcher.subscribe([("$SYS/cluster/#", 0), ("$SYS/broker/#", 0)])
        return watcher

    def test_clients_on_other_nodes_are_counted_on_every_node(self):
        cluster = self.start_cluster(3)
        on_a = self.watch(0)
        wait_value(on_a, "$SYS/cluster/nodes", lambda v: v == 3, "not every node counted")
        wait_value(on_a, "$SYS/cluster/clients/connected", lambda v: v == 1,
                   "not the watcher alone")
        others = [self.client(node=1), self.client(node=1), self.client(node=2)]
        wait_value(on_a, "$SYS/cluster/clients/connected", lambda v: v == 4,
                   "the clients of B and C are not counted on A")
        wait_value(on_a, "$SYS/cluster/clients/total", lambda v: v == 4, "clients/total")
        # A's own count is its own.
        self.assertEqual(wait_value(on_a, "$SYS/broker/clients/connected", lambda v: True, ""), 1)
        # Read on C too: the same totals.
        on_c = self.watch(2)
        wait_value(on_c, "$SYS/cluster/clients/connected", lambda v: v == 5,
                   "C does not count the clients of A and B")

        others[0].disconnect()
        wait_value(on_a, "$SYS/cluster/clients/connected", lambda v: v == 4,
                   "a client gone from B still counted")

        # Subscriptions and messages add up too.
        subs = wait_value(on_a, "$SYS/cluster/subscriptions/count", lambda v: v == 4,
                          "not the watchers' 2 subscriptions each")
        others[2].subscribe([(self.topic("a"), 1), (self.topic("b"), 1)])
        wait_value(on_a, "$SYS/cluster/subscriptions/count", lambda v: v == subs + 2,
                   "C's subscriptions not counted")
        received = wait_value(on_a, "$SYS/cluster/messages/received", lambda v: True, "")
        for i in range(5):
            others[1].publish(self.topic("a"), b"%d" % i, qos=1)
        others[2].wait_count(5, self.topic("a"))
        wait_value(on_a, "$SYS/cluster/messages/received", lambda v: v >= received + 5,
                   "messages received on B not counted")

        # Retained messages are on every node: the count is one node's, not three.
        own = latest_int(on_a, "$SYS/broker/retained messages/count")
        others[1].publish(self.topic("r"), b"kept", qos=1, retain=True)
        own = wait_value(on_a, "$SYS/broker/retained messages/count", lambda v: v > own,
                         "the retained message did not reach A")
        wait_value(on_a, "$SYS/cluster/retained messages/count", lambda v: v == own,
                   "not the count of one node")

        # A node lost: the totals cover the other two.
        cluster.kill_node(2)
        wait_value(on_a, "$SYS/cluster/nodes", lambda v: v == 2, "the lost node still counted")
        wait_value(on_a, "$SYS/cluster/clients/connected", lambda v: v == 2,
                   "the lost node's clients still counted")


if __name__ == "__main__":
    unittest.main()
