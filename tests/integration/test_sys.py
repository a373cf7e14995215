"""$SYS topics (README "Operations: metrics and health"): what a real subscriber to $SYS/# gets
every --sys_interval, under $SYS/broker/ and again under $SYS/brokers/<node id>/.

Values are read from fresh publications (not the retained copies a new subscriber gets first,
which can be one interval old), and polled for with a deadline.
"""

import unittest

from meshmq_harness import TIMEOUT, BrokerTestCase, meshmq_only, unique_id, wait_for

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


if __name__ == "__main__":
    unittest.main()
