"""The cluster: several meshmqd nodes that act as one broker (cluster/README.md).

What a user sees, whichever node each client connects to: a publish reaches every matching
subscriber in the cluster exactly once, with the usual QoS downgrade, RETAIN handling, no-local
and subscription identifiers; one publisher's messages on one topic arrive in order everywhere;
once a client has its SUBACK (or UNSUBACK) on any node, the change holds for messages published
on every node; a shared group's messages go to one member wherever the members are; retained
messages are the same on every node and converge after concurrent writes; a client id is unique
cluster-wide (connecting elsewhere takes the session over, with its subscriptions, queued and
in-flight messages); a QoS 1/2 publisher is acknowledged once every node with subscribers has
the message; a node that stops, crashes, freezes or joins late is noticed within
--cluster_peer_timeout and catches up when it is back.

Nodes are 0, 1, 2 (A, B, C in the comments). Most classes share one 3-node cluster and keep to
their own topics and client ids; MembershipTest starts a cluster per test, since it stops, kills,
freezes and adds nodes. Clusters run with --cluster_heartbeat_interval=100ms and
--cluster_peer_timeout=1s (Cluster.DEFAULT_FLAGS) and $SYS every second.
"""

import threading
import time
import unittest

import paho.mqtt.client as mqtt

from meshmq_harness import (ClusterTestCase, ConnectionClosed, P, RC, TIMEOUT, connack, connect,
                            disconnect, disconnect_v5, parse_publish, parse_v5, pingreq, pingresp,
                            puback, puback_v5, pubcomp, publish, publish_v5, pubrec, pubrel,
                            sub_options, suback, subscribe, subscribe_v5,
                            unique_id, unsuback, unsubscribe, wait_for)

A, B, C = 0, 1, 2
# A lost peer is marked down within --cluster_peer_timeout; this covers a busy 2-core box.
DOWN_SLACK = 1.5


class Publisher:
    """A raw 3.1.1 client on one node that publishes and completes each QoS 1/2 flow."""

    def __init__(self, test, node, client_id=None):
        self.c = test.raw_connected(client_id, node=node)
        self.mid = 0

    def _next_mid(self):
        self.mid = self.mid % 65535 + 1
        return self.mid

    def publish(self, topic, payload, qos=0, retain=False, timeout=None):
        """Returns once the broker has the message: PUBACK, PUBCOMP, or (QoS 0) a ping round
        trip after it."""
        mid = self._next_mid() if qos else None
        self.c.send(publish(topic, payload, qos=qos, mid=mid, retain=retain))
        if qos == 1:
            self.c.expect(puback(mid), timeout)
        elif qos == 2:
            self.c.expect(pubrec(mid), timeout)
            self.c.send(pubrel(mid))
            self.c.expect(pubcomp(mid), timeout)
        else:
            self.c.ping()

    def publish_many(self, topic, payloads, qos=1, retain=False):
        """Sends every PUBLISH at once, then reads all the acks (QoS 0 or 1)."""
        mids = [self._next_mid() if qos else None for _ in payloads]
        self.c.send(b"".join(publish(topic, p, qos=qos, mid=mid, retain=retain)
                             for p, mid in zip(payloads, mids)))
        if qos == 0:
            self.c.ping()
            return
        acked = set()
        while len(acked) < len(mids):
            pkt = self.c.read_packet()
            if pkt[:2] != b"\x40\x02":
                raise AssertionError("expected PUBACK, got %s" % pkt.hex(" "))
            acked.add(int.from_bytes(pkt[2:4], "big"))
        if acked != set(mids):
            raise AssertionError("PUBACKs for %s, published %s" % (sorted(acked), sorted(mids)))


class ClusterCase(ClusterTestCase):
    """Helpers shared by the classes below."""

    def persistent(self, client_id, node, session_present):
        c = self.raw(node=node)
        c.send(connect(client_id, clean=False))
        c.expect(connack(session_present, 0))
        return c

    def receive_hopping(self, client_id, c, nodes, per_hop, ended):
        """Reads QoS 1 PUBLISHes on c (the persistent session client_id), PUBACKing each; after
        every per_hop of them the session hops to the next of nodes: DISCONNECT, read what was
        already on its way (unacknowledged: it comes again, with DUP), CONNECT there with
        session present. Stops once ended(payload) is true. Returns [(payload, dup)], in
        arrival order."""
        got = []

        def read(client, count):
            for _ in range(count):
                msg = parse_publish(client.read_packet())
                got.append((msg["payload"], msg["dup"]))
                client.send(puback(msg["mid"]))
                if ended(msg["payload"]):
                    return True
            return False

        for node in nodes:
            if read(c, per_hop):
                return got
            c.send(disconnect())
            try:
                while True:
                    msg = parse_publish(c.read_packet())
                    got.append((msg["payload"], msg["dup"]))
            except ConnectionClosed:
                pass
            c = self.persistent(client_id, node, 1)
        while not read(c, 1):
            pass
        return got

    def subscriber(self, node, filters, v5=False, client_id=None, **connect_kwargs):
        """A raw client on node subscribed to filters ((filter, QoS or v5 options) pairs)."""
        if v5:
            c = self.raw_v5(client_id, node=node, **connect_kwargs)
            c.send(subscribe_v5(1, filters))
            c.expect_v5("SUBACK", mid=1, codes=[o & 0x03 for _, o in filters])
        else:
            c = self.raw_connected(client_id, node=node, **connect_kwargs)
            c.send(subscribe(1, filters))
            c.expect(suback(1, [q for _, q in filters]))
        return c

    def payloads(self, c, until_payload, v5=False, timeout=TIMEOUT):
        return [m["payload"] for m in self.collect(c, until_payload, v5, timeout)]

    def persistent_subscriber(self, node, topic_filter, qos=1, stay=False):
        """A 3.1.1 persistent session on `node` subscribed to topic_filter; disconnected unless
        `stay` (then the connection is returned too)."""
        client_id = unique_id("ps")
        c = self.raw(node=node)
        c.send(connect(client_id, clean=False))
        c.expect(connack(0, 0))
        c.send(subscribe(1, [(topic_filter, qos)]))
        c.expect(suback(1, [qos]))
        if stay:
            return client_id, c
        c.send(disconnect())
        c.expect_closed()
        return client_id

    def poll(self, predicate, timeout, describe, interval=0.01):
        """wait_for(predicate), failing with describe() called at the deadline (so it tells
        the state at the end)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                self.fail(describe())
            time.sleep(interval)

    @property
    def down_deadline(self):
        """How soon after a peer is lost the others must say so."""
        return self.cluster.peer_timeout + DOWN_SLACK

    def retained_on(self, node, topic_filter):
        """What a new subscriber to topic_filter on that node gets: the retained messages the
        node holds, as (topic, payload, retain flag), read up to a PINGRESP."""
        c = self.raw_connected(node=node)
        c.send(subscribe(1, [(topic_filter, 0)]))
        c.expect(suback(1, [0]))
        c.send(pingreq())
        got = []
        while True:
            pkt = c.read_packet()
            if pkt == pingresp():
                break
            msg = parse_publish(pkt)
            got.append((msg["topic"], msg["payload"], msg["retain"]))
        c.send(disconnect())
        c.close()
        return got

    def wait_retained(self, node, topic_filter, expected, timeout=TIMEOUT):
        """Polls new subscribers on node until they get exactly `expected` (replication is not
        synchronous with the writer's PUBACK)."""
        last = []

        def matches():
            last[:] = self.retained_on(node, topic_filter)
            return last == expected
        self.poll(matches, timeout, lambda: "node %d: new subscribers to %r get %r, expected %r"
                  % (node, topic_filter, last, expected), interval=0.05)

class RoutingTest(ClusterCase):
    """Publishes routed between the nodes of one shared 3-node cluster."""

    def test_qos_downgrade_wildcards_and_retain_0_across_nodes(self):
        """A subscriber on B gets what is published on A through + and # filters, at the
        lower of the published and granted QoS, with RETAIN 0 (live messages), in MQTT 3.1.1
        and 5."""
        for v5 in (False, True):
            with self.subTest(v5=v5):
                t = self.topic("v5" if v5 else "v311")
                sub = self.subscriber(B, [(t + "/plus/+", 1), (t + "/hash/#", 2)], v5=v5)
                pub = Publisher(self, A)
                sent = [(t + "/plus/a", b"p0", 0, 0), (t + "/plus/b", b"p1", 1, 1),
                        (t + "/plus/c", b"p2", 2, 1),  # QoS 2 on a QoS 1 subscription
                        (t + "/hash/x/y", b"h2", 2, 2), (t + "/hash", b"h1", 1, 1),
                        (t + "/plus/r", b"retained", 1, 1)]
                for topic, payload, qos, _ in sent:
                    pub.publish(topic, payload, qos=qos, retain=payload == b"retained")
                self.addCleanup(pub.publish, t + "/plus/r", b"", 0, True)
                pub.publish(t + "/hash/end", b"end", qos=1)
                got = self.collect(sub, b"end", v5=v5)
                self.assertEqual(
                    sorted((m["topic"], m["payload"], m["qos"], m["retain"]) for m in got),
                    sorted([(topic, payload, delivered, False)
                            for topic, payload, _, delivered in sent] +
                           [(t + "/hash/end", b"end", 1, False)]))
                sub.expect_nothing_before_ping()

    def test_mosquitto_clients_on_different_nodes(self):
        """mosquitto_sub on C prints what mosquitto_pub sends to A."""
        t = self.topic()
        sub = self.mosquitto_sub("-t", t + "/#", "-q", "1", "-v", node=C)
        self.wait_subscribed(sub, t + "/probe")  # probes are published on A
        self.mosquitto_pub("-t", t + "/x", "-m", "across", "-q", "2", node=A)
        sub.wait_line(t + "/x across")

    def test_v5_properties_travel_across_nodes(self):
        """An MQTT 5 subscriber on B gets a message from A with the publisher's properties and
        its own subscription identifier."""
        t = self.topic()
        sub = self.raw_v5(node=B)
        sub.send(subscribe_v5(1, [(t, 1)], [(P.SUBSCRIPTION_IDENTIFIER, 7)]))
        sub.expect_v5("SUBACK", mid=1, codes=[1])
        pub = self.raw_v5(node=A)
        props = [(P.PAYLOAD_FORMAT_INDICATOR, 1), (P.CONTENT_TYPE, "text/plain"),
                 (P.RESPONSE_TOPIC, t + "/reply"), (P.CORRELATION_DATA, b"\x00\x01"),
                 (P.USER_PROPERTY, ("k", "v")), (P.USER_PROPERTY, ("k", "w"))]
        pub.send(publish_v5(t, b"with-props", qos=1, mid=1, properties=props))
        pub.expect_v5("PUBACK", mid=1)
        msg = sub.expect_publish_v5(t, b"with-props", qos=1, retain=False)
        sub.send(puback_v5(msg["mid"]))
        got = msg["props"]
        self.assertEqual(got.get(P.PAYLOAD_FORMAT_INDICATOR), 1)
        self.assertEqual(got.get(P.CONTENT_TYPE), "text/plain")
        self.assertEqual(got.get(P.RESPONSE_TOPIC), t + "/reply")
        self.assertEqual(got.get(P.CORRELATION_DATA), b"\x00\x01")
        self.assertEqual(got.user(), [("k", "v"), ("k", "w")])  # order kept (section 3.3.2.3.7)
        self.assertEqual(got.all(P.SUBSCRIPTION_IDENTIFIER), [7])

    def test_one_publisher_in_order_on_two_other_nodes(self):
        """500 QoS 1 and then 500 QoS 0 messages published back to back on A arrive complete
        and in order at subscribers on B and on C."""
        for qos in (1, 0):
            with self.subTest(qos=qos):
                t = self.topic("q%d" % qos)
                subs = [self.subscriber(node, [(t, qos)]) for node in (B, C)]
                pub = Publisher(self, A)
                payloads = [b"m%03d" % i for i in range(500)]
                pub.publish_many(t, payloads, qos=qos)
                for sub in subs:
                    self.assert_same_sequence(self.payloads(sub, payloads[-1]), payloads)

    def test_each_interested_peer_gets_one_copy(self):
        """Three subscribers on B with overlapping filters each get one copy of a message
        published on A (one per session, at the highest granted QoS, with every matching
        subscription identifier, as on a single node); A forwards it to B once and not at all
        to C, which has no subscriber ($SYS cluster_forwarded / cluster_received)."""
        t = self.topic()
        sys_a, sys_c = self.sys(A), self.sys(C)
        forwarded = sys_a.fresh_counter("cluster_forwarded")
        received_c = sys_c.fresh_counter("cluster_received")
        one = self.subscriber(B, [(t + "/+", 0), (t + "/#", 2)])
        two = self.raw_v5(node=B)
        two.send(subscribe_v5(1, [(t + "/#", 1)], [(P.SUBSCRIPTION_IDENTIFIER, 1)]))
        two.expect_v5("SUBACK", mid=1, codes=[1])
        two.send(subscribe_v5(2, [(t + "/x", 2)], [(P.SUBSCRIPTION_IDENTIFIER, 2)]))
        two.expect_v5("SUBACK", mid=2, codes=[2])
        three = self.client(node=B)
        self.assertEqual(three.subscribe(t + "/x", 1), [1])

        pub = Publisher(self, A)
        pub.publish(t + "/x", b"once", qos=2)
        pub.publish(t + "/x", b"sentinel", qos=2)
        got = self.collect(one, b"sentinel")
        self.assertEqual([(m["payload"], m["qos"]) for m in got],
                         [(b"once", 2), (b"sentinel", 2)])
        got = self.collect(two, b"sentinel", v5=True)
        self.assertEqual([(m["payload"], m["qos"]) for m in got],
                         [(b"once", 2), (b"sentinel", 2)])
        self.assertEqual(sorted(got[0]["props"].all(P.SUBSCRIPTION_IDENTIFIER)), [1, 2])
        three.wait_message(t + "/x", b"sentinel")
        self.assertEqual(three.payloads(), [b"once", b"sentinel"])

        # The PUBCOMPs came once B had both, so the counters already include them.
        self.assertEqual(sys_a.fresh_counter("cluster_forwarded") - forwarded, 2,
                         "messages A forwarded for 2 publishes with subscribers on B only")
        self.assertEqual(sys_c.fresh_counter("cluster_received") - received_c, 0,
                         "messages C received from its peers")

    def test_no_lost_window_after_suback(self):
        """A message published on any node right after a client's SUBACK on another node
        reaches it: 48 times, each node pair, QoS 1 then QoS 0, a new topic each time."""
        subs = [self.raw_connected(node=n) for n in (A, B, C)]
        pubs = [Publisher(self, n) for n in (A, B, C)]
        for i in range(48):
            sub_node, pub_node = i % 3, (i + 1 + (i // 3) % 2) % 3
            t = self.topic("%d" % i)
            sub = subs[sub_node]
            sub.send(subscribe(i + 1, [(t, 1)]))
            sub.expect(suback(i + 1, [1]))
            pubs[pub_node].publish(t, b"q1", qos=1)
            pubs[pub_node].publish(t, b"q0", qos=0)
            got = self.collect(sub, b"q0")
            self.assertEqual([(m["payload"], m["qos"]) for m in got], [(b"q1", 1), (b"q0", 0)],
                             "subscribed on node %d, published on node %d" % (sub_node, pub_node))

    def test_unsubscribe_holds_cluster_wide(self):
        """After its UNSUBACK on B, a client gets nothing more for that filter from A: a
        sentinel on a filter it keeps comes alone."""
        t = self.topic()
        sub = self.subscriber(B, [(t + "/gone", 1), (t + "/kept", 1)])
        pub = Publisher(self, A)
        pub.publish(t + "/gone", b"before", qos=1)
        self.assertEqual(self.payloads(sub, b"before"), [b"before"])
        sub.send(unsubscribe(2, [t + "/gone"]))
        sub.expect(unsuback(2))
        pub.publish(t + "/gone", b"after", qos=1)  # acked: B had it first, if B wanted it
        pub.publish(t + "/kept", b"sentinel", qos=1)
        got = self.collect(sub, b"sentinel")
        self.assertEqual([(m["topic"], m["payload"]) for m in got],
                         [(t + "/kept", b"sentinel")])

    def test_v5_no_local_subscriber_gets_other_clients_messages(self):
        """An MQTT 5 no-local subscription on B does not return the client's own publishes
        but does get another client's from A."""
        t = self.topic()
        sub = self.subscriber(B, [(t + "/nl", sub_options(1, no_local=True)),
                                  (t + "/own", 1)], v5=True)
        sub.send(publish_v5(t + "/nl", b"own", qos=1, mid=10))
        sub.send(publish_v5(t + "/own", b"own-sentinel", qos=1, mid=11))
        got, acks = [], set()
        while len(got) < 1 or len(acks) < 2:
            msg = sub.read_v5()
            if msg["type"] == "PUBACK":
                acks.add(msg["mid"])
            else:
                self.assertEqual(msg["type"], "PUBLISH", msg["raw"].hex(" "))
                sub.send(puback_v5(msg["mid"]))
                got.append((msg["topic"], msg["payload"]))
        self.assertEqual((got, acks), ([(t + "/own", b"own-sentinel")], {10, 11}))
        Publisher(self, A).publish(t + "/nl", b"from-a", qos=1)
        self.assertEqual(self.payloads(sub, b"from-a", v5=True), [b"from-a"])


class SharedSubscriptionTest(ClusterCase):
    """$share/{group}/{filter} with members on several nodes."""

    def test_group_spread_over_nodes_gets_each_message_once(self):
        """A group with members on all three nodes (MQTT 3.1.1 and 5) gets each of 300
        messages published on A exactly once, and members on more than one node take part."""
        t = self.topic()
        group = "$share/g/%s/#" % t
        members = []
        for node, protocol in ((A, mqtt.MQTTv311), (A, mqtt.MQTTv5), (B, mqtt.MQTTv311),
                               (C, mqtt.MQTTv5)):
            m = self.client(node=node, protocol=protocol)
            granted = m.subscribe(group, 1)
            self.assertEqual(granted, [1])
            members.append((node, m))
        payloads = [b"m%03d" % i for i in range(300)]
        Publisher(self, A).publish_many(t + "/x", payloads, qos=1)

        def total():
            return sum(len(m.received()) for _, m in members)
        self.poll(lambda: total() >= len(payloads), 10,
                  lambda: "the group got %d of %d" % (total(), len(payloads)))
        # A copy delivered twice would come before a message published after all were acked.
        Publisher(self, A).publish(t + "/x", b"last", qos=1)
        wait_for(lambda: any(b"last" in m.payloads() for _, m in members),
                 message="no member got the last message")
        got = sorted(p for _, m in members for p in m.payloads())
        self.assertEqual(got, sorted(payloads + [b"last"]))
        nodes = {node for node, m in members if m.received()}
        self.assertGreaterEqual(len(nodes), 2, "only members on node(s) %s got messages" % nodes)

    def test_members_only_on_other_nodes(self):
        """With no member on A, a group whose members are on B and C gets what is published
        on A: each message once."""
        t = self.topic()
        group = "$share/g/" + t
        members = [self.subscriber(B, [(group, 1)]),
                   self.subscriber(C, [(group, 1)], v5=True)]
        payloads = [b"m%02d" % i for i in range(20)]
        Publisher(self, A).publish_many(t, payloads, qos=1)
        got = []

        def drain():
            for member, v5 in zip(members, (False, True)):
                try:
                    pkt = member.read_packet(0.02)
                except TimeoutError:
                    continue
                msg = parse_v5(pkt) if v5 else parse_publish(pkt)
                self.assertEqual((msg.get("type", "PUBLISH"), msg["qos"]), ("PUBLISH", 1))
                member.send(puback_v5(msg["mid"]) if v5 else puback(msg["mid"]))
                got.append(msg["payload"])
            return len(got) >= len(payloads)
        self.poll(drain, TIMEOUT, lambda: "the group got %d of %d" % (len(got), len(payloads)),
                  interval=0)
        self.assertEqual(sorted(got), payloads)
        for member in members:  # and nothing twice
            member.expect_nothing_before_ping()

    def test_single_member_on_another_node_gets_all_in_order(self):
        """A group whose only member is on B gets every message published on A, in order."""
        t = self.topic()
        member = self.subscriber(B, [("$share/solo/" + t, 1)], v5=True)
        payloads = [b"m%02d" % i for i in range(30)]
        Publisher(self, A).publish_many(t, payloads, qos=1)
        self.assert_same_sequence(self.payloads(member, payloads[-1], v5=True), payloads)


class RetainedTest(ClusterCase):
    """Retained messages replicated to every node."""

    def test_retained_set_on_one_node_deleted_on_another(self):
        """A retained message set on A is sent (RETAIN 1) to new subscribers on B and C (which
        count it in cluster_retained_received); deleted on B, new subscribers on A and C no
        longer get it."""
        t = self.topic()
        sys_c = self.sys(C)
        received = sys_c.fresh_counter("cluster_retained_received")
        Publisher(self, A).publish(t, b"kept", qos=1, retain=True)
        for node in (A, B, C):
            self.wait_retained(node, t, [(t, b"kept", True)])
        sys_c.wait_counter_at_least("cluster_retained_received", received + 1)
        sub = self.subscriber(C, [(t, 1)])
        sub.expect_publish(t, b"kept", qos=1, retain=True)  # a paho check of the flag follows
        paho = self.client(node=B)
        paho.subscribe(t, 1)
        msg = paho.wait_message(t, b"kept")
        self.assertEqual((msg.retain, msg.qos), (1, 1))

        # Deleted on B, and a later retained message from the same publisher as a sentinel.
        pub_b = Publisher(self, B)
        pub_b.publish(t, b"", qos=1, retain=True)
        pub_b.publish(t + "/sentinel", b"s", qos=1, retain=True)
        self.addCleanup(pub_b.publish, t + "/sentinel", b"", 1, True)
        for node in (A, C):
            self.wait_retained(node, t + "/sentinel", [(t + "/sentinel", b"s", True)])
            self.assertEqual(self.retained_on(node, t), [], "node %d still has it" % node)

    def test_concurrent_writes_to_one_topic_converge(self):
        """Three clients on three nodes each write 50 retained values to one topic at once;
        afterwards every node gives new subscribers the same value, one of the last writes."""
        t = self.topic()
        pubs = [Publisher(self, node) for node in (A, B, C)]
        start = threading.Barrier(len(pubs))
        errors = []

        def write(n, pub):
            try:
                start.wait(TIMEOUT)
                for k in range(50):  # acked one by one: interleaved with the other nodes
                    pub.publish(t, b"n%d-%02d" % (n, k), qos=1 if k % 2 else 0, retain=True)
            except Exception as e:  # reported by the test thread
                errors.append(e)
        threads = [threading.Thread(target=write, args=(n, p)) for n, p in enumerate(pubs)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        self.assertEqual(errors, [])
        self.addCleanup(pubs[0].publish, t, b"", 1, True)

        views = {}

        def converged():
            for node in (A, B, C):
                views[node] = self.retained_on(node, t)
            return len({tuple(v) for v in views.values()}) == 1 and len(views[A]) == 1
        self.poll(converged, 10, lambda: "nodes disagree on the retained value: %r" % views,
                  interval=0.1)
        (topic, value, retain), = views[A]
        self.assertIn(value, [b"n%d-49" % n for n in range(3)])
        self.assertTrue(retain)


class SessionTest(ClusterCase):
    """Client ids are unique cluster-wide; sessions move between nodes."""

    def test_takeover_of_live_client_on_another_node(self):
        """Connecting to B with the id of a client connected to A closes A's connection (MQTT 5:
        DISCONNECT 0x8E Session taken over), publishes its will, and B's connection works."""
        for v5 in (False, True):
            with self.subTest(v5=v5):
                t = self.topic("v5" if v5 else "v311")
                watcher = self.client(node=C)
                self.assertEqual(watcher.subscribe(t + "/will", 1), [1])
                client_id = unique_id("x")
                will = dict(will_topic=t + "/will", will_payload=b"taken-over", will_qos=1)
                if v5:
                    old = self.raw_v5(client_id, node=A, **will)
                    new = self.raw_v5(client_id, node=B, session_present=0)
                    old.expect_disconnect_v5(RC.SESSION_TAKEN_OVER)
                    new.send(subscribe_v5(1, [(t + "/after", 1)]))
                    new.expect_v5("SUBACK", mid=1, codes=[1])
                else:
                    old = self.raw_connected(client_id, node=A, **will)
                    new = self.raw_connected(client_id, node=B)
                    old.expect_closed()  # MQTT-3.1.4-2
                    new.send(subscribe(1, [(t + "/after", 1)]))
                    new.expect(suback(1, [1]))
                msg = watcher.wait_message(t + "/will", b"taken-over")
                self.assertEqual(msg.qos, 1)
                Publisher(self, C).publish(t + "/after", b"to-new", qos=1)
                self.assertEqual(self.payloads(new, b"to-new", v5=v5), [b"to-new"])

    def test_paho_client_taken_over_from_another_node(self):
        """A paho client on A is disconnected when its id connects on C; the new one works."""
        t = self.topic()
        client_id = unique_id("paho")
        old = self.client(node=A, client_id=client_id)
        new = self.client(node=C, client_id=client_id)
        wait_for(old.disconnected.is_set, message="the client on A is still connected")
        self.assertEqual(new.subscribe(t, 1), [1])
        Publisher(self, B).publish(t, b"hello", qos=1)
        new.wait_message(t, b"hello")

    def test_persistent_session_moves_with_queued_and_in_flight_messages(self):
        """A 3.1.1 persistent session made on A resumes on B (sessionPresent 1): the message
        it had not acknowledged comes again (same packet id, DUP), then those queued while it
        was offline, each once, then new ones; back on A, nothing comes twice."""
        t = self.topic()
        client_id = unique_id("roam")
        pub = Publisher(self, C)
        c = self.persistent(client_id, A, 0)
        c.send(subscribe(1, [(t, 1)]))
        c.expect(suback(1, [1]))
        pub.publish(t, b"in-flight", qos=1)
        mid = c.expect_publish(t, b"in-flight", qos=1)
        c.send(disconnect())  # without the PUBACK
        c.expect_closed()
        for i in range(3):
            pub.publish(t, b"queued-%d" % i, qos=1)

        c = self.persistent(client_id, B, 1)
        c.expect(publish(t, b"in-flight", qos=1, mid=mid, dup=True))  # MQTT-4.4.0-1
        c.send(puback(mid))
        pub.publish(t, b"live", qos=1)
        got = self.collect(c, b"live")
        self.assertEqual([(m["payload"], m["dup"]) for m in got],
                         [(b"queued-0", False), (b"queued-1", False), (b"queued-2", False),
                          (b"live", False)])
        c.send(disconnect())
        c.expect_closed()

        c = self.persistent(client_id, A, 1)
        pub.publish(t, b"sentinel", qos=1)
        self.assertEqual(self.payloads(c, b"sentinel"), [b"sentinel"])

    def test_session_hops_between_nodes_while_another_node_publishes(self):
        """A persistent QoS 1 subscriber hops A -> B -> A -> B while a publisher on C sends as
        fast as it can: every message arrives, and the only repeats are the resends of the
        messages it had not acknowledged when it left (DUP=1). The hops race with messages that
        C routed to the old node before it learned of the move."""
        t = self.topic()
        client_id, c = self.persistent_subscriber(A, t, qos=1, stay=True)
        total = 2000
        errors = []

        def publish_all():
            try:
                pub = Publisher(self, C)
                for start in range(0, total, 50):
                    pub.publish_many(t, [b"m%d" % i for i in range(start, start + 50)], qos=1)
                pub.publish(t, b"end", qos=1)
            except Exception as e:  # reported by the main thread
                errors.append(e)
        publisher = threading.Thread(target=publish_all)
        publisher.start()
        self.addCleanup(publisher.join, TIMEOUT)
        got = self.receive_hopping(client_id, c, (B, A, B), 150, lambda p: p == b"end")
        publisher.join(TIMEOUT)
        self.assertEqual(errors, [])
        expected = [b"m%d" % i for i in range(total)]
        first_copies = {}
        for payload, dup in got:
            if not dup:
                first_copies[payload] = first_copies.get(payload, 0) + 1
        received = {payload for payload, _ in got}
        missing = [p for p in expected if p not in received]
        self.assertEqual(missing, [], "lost %d of %d messages" % (len(missing), total))
        twice = sorted(p for p, n in first_copies.items() if n > 1)
        self.assertEqual(twice, [], "delivered twice without DUP")

    def test_v5_session_resumed_on_another_node(self):
        """An MQTT 5 client with Session Expiry 300 subscribes on A, goes offline, and
        reconnects to B with Clean Start 0: Session Present 1, the messages published on C
        meanwhile, then live ones; B counts the move (cluster_sessions_moved)."""
        t = self.topic()
        sys_b = self.sys(B)
        moved = sys_b.fresh_counter("cluster_sessions_moved")
        expiry = [(P.SESSION_EXPIRY_INTERVAL, 300)]
        client_id = unique_id("roam5")
        c = self.raw_v5(client_id, node=A, session_present=0, properties=expiry)
        c.send(subscribe_v5(1, [(t, 1)]))
        c.expect_v5("SUBACK", mid=1, codes=[1])
        c.send(disconnect_v5())
        c.expect_closed()
        pub = Publisher(self, C)
        for i in range(3):
            pub.publish(t, b"queued-%d" % i, qos=1)
        c = self.raw_v5(client_id, node=B, clean_start=False, session_present=1,
                        properties=expiry)
        pub.publish(t, b"live", qos=1)
        self.assertEqual(self.payloads(c, b"live", v5=True),
                         [b"queued-0", b"queued-1", b"queued-2", b"live"])
        sys_b.wait_counter_at_least("cluster_sessions_moved", moved + 1)

    def test_clean_start_elsewhere_discards_the_session(self):
        """Connecting to B with Clean Session 1 under the id of a persistent session on A
        starts afresh (sessionPresent 0), and a later Clean Session 0 connect on A finds
        no session either."""
        t = self.topic()
        client_id = unique_id("fresh")
        c = self.persistent(client_id, A, 0)
        c.send(subscribe(1, [(t, 1)]))
        c.expect(suback(1, [1]))
        c.send(disconnect())
        c.expect_closed()
        Publisher(self, C).publish(t, b"for-the-old-session", qos=1)
        c = self.raw_connected(client_id, node=B)  # connack(0, 0)
        c.send(disconnect())
        c.expect_closed()
        c = self.persistent(client_id, A, 0)
        c.expect_nothing_before_ping()


class MoveOrderTest(ClusterCase):
    # Deep enough that a subscriber that lags behind its publishers by thousands loses none.
    cluster_flags = {"max_queued_messages": 100000}

    def test_session_moves_keep_each_publishers_order(self):
        """A persistent QoS 1 subscriber hops between A and B twenty times while a publisher on
        B and one on C send as fast as their acknowledgements allow: each publisher's messages
        reach it in the order sent (first copies; what it had not acknowledged at a hop comes
        again with DUP), none lost. Around each move a node routes some messages to the old
        node, which passes them on through its stand-in, and then sends the next ones to the
        new node directly; those must not overtake the ones on the detour (the move fence)."""
        t = self.topic()
        client_id, c = self.persistent_subscriber(A, t, qos=1, stay=True)
        total = 4000
        errors = []

        def publish_all(node, name):
            try:
                pub = Publisher(self, node)
                for start in range(0, total, 20):
                    pub.publish_many(t, [b"%s %d" % (name, i) for i in range(start, start + 20)],
                                     qos=1)
                pub.publish(t, b"%s end" % name, qos=1)
            except Exception as e:  # reported by the main thread
                errors.append(e)
        publishers = [threading.Thread(target=publish_all, args=(node, name))
                      for node, name in ((B, b"B"), (C, b"C"))]
        for publisher in publishers:
            publisher.start()
            self.addCleanup(publisher.join, TIMEOUT)
        ends = set()

        def both_ended(payload):
            if payload.endswith(b" end"):
                ends.add(payload)
            return len(ends) == 2

        got = self.receive_hopping(client_id, c, (B, A) * 10, 100, both_ended)
        for publisher in publishers:
            publisher.join(TIMEOUT)
        self.assertEqual(errors, [])
        for name in (b"B", b"C"):
            numbers = [(int(p.split()[1]), dup) for p, dup in got
                       if p.startswith(name + b" ") and not p.endswith(b" end")]
            firsts = [n for n, dup in numbers if not dup]
            overtaken = [(a, b) for a, b in zip(firsts, firsts[1:]) if b <= a]
            self.assertEqual(overtaken, [], "%s's messages out of order (first copies)" % name)
            lost = sorted(set(range(total)) - {n for n, _ in numbers})
            self.assertEqual(lost, [], "%s's messages lost" % name)


class MembershipTest(ClusterCase):
    """Nodes that stop, crash, freeze or join late. Each test starts its own cluster."""

    cluster_size = 0

    def offline_subscriber(self, node, topic_filter, qos=1):
        """A 3.1.1 persistent session on node subscribed to topic_filter, now disconnected."""
        return self.persistent_subscriber(node, topic_filter, qos)

    def test_nodes_seeded_with_one_node_find_each_other(self):
        """Nodes 1 and 2 given only node 0 as a seed (node 0 none) find each other: the
        cluster forms and a message from node 1 reaches a subscriber on node 2."""
        self.start_cluster(3, seeds={0: [], 1: [A], 2: [A]})
        t = self.topic()
        sub = self.subscriber(C, [(t, 1)])
        Publisher(self, B).publish(t, b"via-seed", qos=1)
        self.assertEqual(self.payloads(sub, b"via-seed"), [b"via-seed"])

    def test_qos0_for_a_stalled_peer_dropped_beyond_max_pending_bytes(self):
        """With --cluster_max_pending_bytes=64KiB, QoS 0 messages for a frozen peer beyond it
        are dropped and counted (cluster_forward_dropped) rather than piled up on A, which goes
        on serving; the peer, back, gets new messages and at most 64KiB of the old ones."""
        cluster = self.start_cluster(3, cluster_max_pending_bytes=65536)
        t = self.topic()
        sys_a = self.sys(A)
        dropped = sys_a.fresh_counter("cluster_forward_dropped")
        sub_b = self.subscriber(B, [(t, 0)])
        sub_c = self.subscriber(C, [(t + "/c", 1)])
        pub = Publisher(self, A)
        cluster.freeze(B)
        pub.publish_many(t, [b"x" * 1024] * 1024, qos=0)  # 1 MiB for B, in far less than 1s
        pub.publish(t + "/c", b"c-served", qos=1)
        self.assertEqual(self.payloads(sub_c, b"c-served"), [b"c-served"])
        sys_a.wait_counter_at_least("cluster_forward_dropped", dropped + 512)

        cluster.wait_peer_down(B)
        cluster.thaw(B)
        # Thawed, B finds itself cut off from the cluster: it closes its clients (they are to go
        # on elsewhere) and serves again once it is back in (cluster/README.md, partitions).
        got = []
        with self.assertRaises(ConnectionClosed):
            sub_b.collect_publishes(b"never", timeout=self.down_deadline + TIMEOUT, got=got)
        self.assertLessEqual(len(got), 64, "B delivered %d of the 1024" % len(got))
        cluster.wait_formed()
        sub_b = self.subscriber(B, [(t, 0)])
        pub.publish(t, b"after-thaw", qos=0)
        self.assertEqual(self.payloads(sub_b, b"after-thaw"), [b"after-thaw"])

    def test_acknowledged_message_survives_subscriber_node_crash(self):
        """PUBREC / PUBACK on A come once B, whose offline persistent session wants the
        messages, has them (and its replica on A too): B killed with SIGKILL right after and
        restarted, once it is back in the cluster, still delivers both when the client
        reconnects there (from the session A took over meanwhile)."""
        cluster = self.start_cluster(2)
        t = self.topic()
        client_id = self.offline_subscriber(B, t, qos=2)
        pub = Publisher(self, A)
        mid = pub._next_mid()
        pub.c.send(publish(t, b"acked-qos2", qos=2, mid=mid))
        pub.c.expect(pubrec(mid))
        pub.publish(t, b"acked-qos1", qos=1)
        cluster.kill_node(B)
        pub.c.send(pubrel(mid))
        pub.c.expect(pubcomp(mid))
        cluster.start_node(B)
        cluster.wait_formed()
        c = self.raw(node=B)
        c.send(connect(client_id, clean=False))
        c.expect(connack(1, 0))
        got = self.collect(c, b"acked-qos1")
        self.assertEqual([(m["payload"], m["qos"]) for m in got],
                         [(b"acked-qos2", 2), (b"acked-qos1", 1)])

    def test_late_node_catches_up_routes_and_retained(self):
        """A node added to a running 2-node cluster gets its routes and retained messages: a
        publish on it reaches a subscriber on node 0, a new subscriber on it gets the retained
        message, and node 0 routes to subscribers on it."""
        cluster = self.start_cluster(2)
        t = self.topic()
        Publisher(self, A).publish(t + "/r", b"kept", qos=1, retain=True)
        sub_a = self.subscriber(A, [(t + "/x", 1)])
        cluster.add_node()
        cluster.wait_formed()
        Publisher(self, C).publish(t + "/x", b"from-new", qos=1)
        self.assertEqual(self.payloads(sub_a, b"from-new"), [b"from-new"])
        self.wait_retained(C, t + "/r", [(t + "/r", b"kept", True)])
        sub_c = self.subscriber(C, [(t + "/y", 1)])
        Publisher(self, A).publish(t + "/y", b"to-new", qos=1)
        self.assertEqual(self.payloads(sub_c, b"to-new"), [b"to-new"])

    def test_stopped_node_rejoins(self):
        """C stopped with SIGTERM is marked down by A and B within the peer timeout, A and B go
        on serving each other (QoS 1 publishes acknowledged although C had a subscriber), and
        restarted C gets publishes from A again, for new and persistent sessions."""
        cluster = self.start_cluster(3)
        t = self.topic()
        client_id = self.offline_subscriber(C, t)
        sub_b = self.subscriber(B, [(t, 1)])
        self.assertEqual(cluster.stop_node(C), 0, cluster[C].log_tail())
        cluster.wait_peer_down(C, timeout=self.down_deadline)
        pub = Publisher(self, A)
        pub.publish(t, b"while-c-down", qos=1)
        self.assertEqual(self.payloads(sub_b, b"while-c-down"), [b"while-c-down"])

        cluster.start_node(C)
        cluster.wait_formed()
        sub_c = self.subscriber(C, [(t, 1)])
        back = self.raw(node=C)
        back.send(connect(client_id, clean=False))
        back.expect(connack(1, 0))
        pub.publish(t, b"after-rejoin", qos=1)
        self.assertEqual(self.payloads(sub_c, b"after-rejoin"), [b"after-rejoin"])
        self.assertEqual(self.payloads(sub_b, b"after-rejoin"), [b"after-rejoin"])
        # Whether what was published while C was down waits for the session is not specified
        # (cluster/README.md: not replicated yet); the message after the rejoin comes, once.
        got = self.payloads(back, b"after-rejoin")
        self.assertEqual(got[-1:], [b"after-rejoin"])
        self.assertEqual(len(got), len(set(got)), got)

    def test_frozen_node_marked_down_and_rejoins(self):
        """A node frozen with SIGSTOP is marked down within the peer timeout; a QoS 1 publish on
        A whose only subscriber is on the frozen node still gets its PUBACK, C keeps being
        served; after SIGCONT the node, cut off, closes its clients, rejoins, and serves new
        subscribers again."""
        cluster = self.start_cluster(3)
        t = self.topic()
        sub_b = self.subscriber(B, [(t, 1)])
        sub_c = self.subscriber(C, [(t + "/c", 1)])
        pub = Publisher(self, A)
        cluster.freeze(B)
        frozen = time.monotonic()
        pub.publish(t, b"during-freeze", qos=1, timeout=self.down_deadline + TIMEOUT)
        acked_after = time.monotonic() - frozen
        self.assertLess(acked_after, self.down_deadline, "PUBACK only after %.1fs" % acked_after)
        cluster.wait_peer_down(B, timeout=max(0.1, self.down_deadline -
                                              (time.monotonic() - frozen)))
        pub.publish(t + "/c", b"c-served", qos=1)
        self.assertEqual(self.payloads(sub_c, b"c-served"), [b"c-served"])

        cluster.thaw(B)
        # "during-freeze" may still reach it first (B took it before it saw itself cut off).
        with self.assertRaises(ConnectionClosed):
            sub_b.collect_publishes(b"never", timeout=self.down_deadline + TIMEOUT)
        cluster.wait_formed()
        sub_b = self.subscriber(B, [(t, 1)])
        pub.publish(t, b"after-thaw", qos=1)
        self.assertEqual(self.payloads(sub_b, b"after-thaw"), [b"after-thaw"])


if __name__ == "__main__":
    unittest.main()
