"""Node loss on loopback (cluster/README.md, "Node loss and partitions"): persistent sessions
replicated to a peer and taken over when their node dies, publishes held while that happens,
stale sessions of a returning node dropped, graceful leave, and the majority rule.

Each test starts its own cluster (nodes A, B, C = 0, 1, 2) with a 1 s peer timeout. The fault
suite under tests/fault does the same with network namespaces, partitions and many messages.
"""

import threading
import time
import unittest

from meshmq_harness import (TIMEOUT, connack, connect, pubcomp, publish, pubrec, pubrel,
                            unique_id)
from test_cluster import A, B, C, ClusterCase, Publisher


class FailoverTest(ClusterCase):
    cluster_size = 0

    def resume(self, node, client_id):
        c = self.raw(node=node)
        c.send(connect(client_id, clean=False))
        c.expect(connack(1, 0))
        return c

    def session_fed_while_its_node_is_down(self):
        """A 3-node cluster; a persistent session on B gets b"old", B is killed, and the
        session (taken over elsewhere) gets b"while-down". Returns (cluster, client id)."""
        cluster = self.start_cluster(3)
        t = self.topic()
        client_id = self.persistent_subscriber(B, t, qos=1)
        pub = Publisher(self, A)
        pub.publish(t, b"old", qos=1)
        cluster.kill_node(B)
        pub.publish(t, b"while-down", qos=1, timeout=self.down_deadline + TIMEOUT)
        return cluster, client_id

    def test_killed_subscriber_node_session_resumes_on_another(self):
        """B, holding a persistent session with QoS 1 and 2 messages queued, is killed with
        SIGKILL; the session is taken over by its replica, keeps queueing what A publishes (the
        PUBACKs wait for the takeover rather than go unrouted), and the client resuming on C gets
        Session Present and every message, in order, once."""
        cluster = self.start_cluster(3)
        t = self.topic()
        client_id = self.persistent_subscriber(B, t, qos=2)
        pub = Publisher(self, A)
        for i in range(3):
            pub.publish(t, b"before-%d" % i, qos=1)
        mid = pub._next_mid()
        pub.c.send(publish(t, b"before-qos2", qos=2, mid=mid))
        pub.c.expect(pubrec(mid))
        pub.c.send(pubrel(mid))
        pub.c.expect(pubcomp(mid))
        sys_a, sys_c = self.sys(A), self.sys(C)
        taken = sys_a.fresh_counter("cluster_sessions_taken_over") + \
            sys_c.fresh_counter("cluster_sessions_taken_over")
        cluster.kill_node(B)
        for i in range(3):
            pub.publish(t, b"after-%d" % i, qos=1, timeout=self.down_deadline + TIMEOUT)
        c = self.resume(C, client_id)
        got = self.collect(c, b"after-2")
        self.assertEqual([m["payload"] for m in got],
                         [b"before-0", b"before-1", b"before-2", b"before-qos2",
                          b"after-0", b"after-1", b"after-2"])
        self.assertEqual(got[3]["qos"], 2)
        self.poll(lambda: (sys_a.counter("cluster_sessions_taken_over") or 0) +
                  (sys_c.counter("cluster_sessions_taken_over") or 0) > taken,
                  TIMEOUT, "a takeover counted")

    def test_returning_node_drops_what_was_taken_over(self):
        """B is killed, its session taken over elsewhere and fed while it is down; B restarted
        does not resurrect its stale copy: the client resuming on B gets the messages from while
        B was down (from the session that was taken over), each once."""
        cluster, client_id = self.session_fed_while_its_node_is_down()
        cluster.start_node(B)
        cluster.wait_formed()
        c = self.resume(B, client_id)
        got = self.collect(c, b"while-down")
        self.assertEqual([m["payload"] for m in got], [b"old", b"while-down"])
        c.expect_nothing_before_ping()

    def test_restarted_survivor_keeps_the_session_it_took_over(self):
        """B is killed; its session is taken over by A or C, which is then killed and restarted
        too, before B returns. The taken-over session's claim was stored with it, so it still
        wins over B's stale copy: resuming on B gives the message from while B was down.
        (Claims used to live in memory only; after the restart both copies claimed 0 and the
        higher node id's stale copy could win.)"""
        cluster, client_id = self.session_fed_while_its_node_is_down()
        took = "took over 1 sessions of %s" % cluster[B].node_id
        taker, = self.poll(lambda: next(([n] for n in (A, C) if took in cluster[n].log_tail(200)),
                                        None),
                          TIMEOUT, lambda: "nobody took the session over:\n" + "\n".join(
                              cluster[n].log_tail(40) for n in (A, C)))
        cluster.restart_node(taker, kill=True)
        cluster.wait_formed()
        cluster.start_node(B)
        cluster.wait_formed()
        c = self.resume(B, client_id)
        got = self.collect(c, b"while-down")
        self.assertEqual([m["payload"] for m in got], [b"old", b"while-down"])

    def test_publisher_stays_connected_while_a_node_with_a_stale_session_returns(self):
        """B is killed; its persistent session, taken over elsewhere, keeps getting A's QoS 1
        stream. B restarts with its stale copy, whose routes it announces before A's dial to it
        (backing off while B was down) is up, so A's first forwards to B find no link. They used
        to wait as orphans for a failover of B that never came and were refused after 2 s, which
        closed the publisher's connection. Now A dials B at once and sends them on the new
        link: the publisher is never closed, and the session gets the whole stream in order."""
        cluster, client_id = self.session_fed_while_its_node_is_down()
        t = self.topic()
        pub = Publisher(self, A)
        sent = []

        def publish_for(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                payload = b"m-%05d" % len(sent)
                pub.publish(t, payload, qos=1, timeout=TIMEOUT)
                sent.append(payload)
                # A steady stream, not a wait for anything; slow enough that the session's
                # queue (1000 messages by default) keeps all of it.
                time.sleep(0.02)

        # Long enough down for A's redials to B to reach their longest backoff (2 s).
        publish_for(3.0)
        stop = threading.Event()
        errors = []

        def stream():
            try:
                while not stop.is_set():
                    publish_for(0.1)
            except Exception as e:  # the publisher closed or an ack missing: the failure
                errors.append(e)

        streamer = threading.Thread(target=stream)
        streamer.start()
        try:
            cluster.start_node(B)
            cluster.wait_formed()
            # Past the 2 s an orphan waited before it was refused.
            deadline = time.monotonic() + 3.0
            while not errors and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            streamer.join(TIMEOUT)
        self.assertEqual(errors, [], "the publisher on A lost its connection while B returned:"
                         "\n" + cluster[A].log_tail(20))
        c = self.resume(C, client_id)
        got = self.collect(c, sent[-1])
        self.assertEqual([m["payload"] for m in got], [b"old", b"while-down"] + sent)

    def whole_cluster_restart_keeps_sessions(self, stop):
        """A persistent session on B with QoS 1 messages acknowledged to A's publisher; every
        node is stopped at once by stop(cluster, node) and started again. The client resuming
        on C gets the messages, and what is published next reaches it too."""
        cluster = self.start_cluster(3)
        t = self.topic()
        client_id = self.persistent_subscriber(B, t, qos=1)
        pub = Publisher(self, A)
        sent = [b"m-%d" % i for i in range(5)]
        for payload in sent:
            pub.publish(t, payload, qos=1)
        threads = [threading.Thread(target=stop, args=(cluster, node)) for node in (A, B, C)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for node in (A, B, C):
            cluster.start_node(node)
        cluster.wait_formed()
        c = self.resume(C, client_id)
        self.assertEqual([m["payload"] for m in self.collect(c, sent[-1])], sent)
        # Still subscribed. (A restarted node used to number its messages as in its last life,
        # and the moved session dropped "after" as a copy of one it had: acknowledged, lost.)
        pub = Publisher(self, A)
        pub.publish(t, b"after", qos=1)
        self.assertEqual([m["payload"] for m in self.collect(c, b"after")], [b"after"])

    def test_whole_cluster_killed_and_restarted_keeps_sessions(self):
        """Every node killed at once (a power cut)."""
        self.whole_cluster_restart_keeps_sessions(lambda cluster, node: cluster.kill_node(node))

    def test_whole_cluster_stopped_and_restarted_keeps_sessions(self):
        """Every node sent SIGTERM at once (the whole cluster shut down): each keeps its
        sessions in its own store for its next start."""
        codes = {}

        def stop(cluster, node):
            codes[node] = cluster.stop_node(node, timeout=60.0)

        self.whole_cluster_restart_keeps_sessions(stop)
        self.assertEqual(codes, {A: 0, B: 0, C: 0})

    def test_graceful_leave_hands_sessions_over(self):
        """SIGTERM on B (a graceful leave) hands its sessions to the replicas before it exits:
        its live client is closed, messages published after B is gone are queued for the
        session, and the client resuming on A gets them with Session Present."""
        cluster = self.start_cluster(3)
        t = self.topic()
        client_id, live = self.persistent_subscriber(B, t, qos=1, stay=True)
        pub = Publisher(self, C)
        pub.publish(t, b"before-leave", qos=1)
        self.assertEqual(self.payloads(live, b"before-leave"), [b"before-leave"])
        self.assertEqual(cluster.stop_node(B), 0, cluster[B].log_tail())
        live.expect_closed()
        pub.publish(t, b"after-leave", qos=1, timeout=self.down_deadline + TIMEOUT)
        c = self.resume(A, client_id)
        self.assertEqual(self.payloads(c, b"after-leave"), [b"after-leave"])
        self.assertIn("took over 1 sessions of %s" % cluster[B].node_id,
                      cluster[A].log_tail(200) + cluster[C].log_tail(200))

    def test_nodes_leaving_together_hand_every_session_to_the_nodes_that_stay(self):
        """A scale-down from 5 nodes to 2: SIGTERM to three nodes at once. Each has persistent
        sessions with a queued message; every one resumes on a node that stays, with Session
        Present and its message. (The leaving nodes hear of each other and leave one at a
        time; without that, one took over another's sessions after announcing its own leave.)"""
        cluster = self.start_cluster(5)
        t = self.topic()
        sessions = []  # (client_id, topic)
        for node in (2, 3, 4):
            for k in range(4):
                topic = "%s/%d/%d" % (t, node, k)
                sessions.append((self.persistent_subscriber(node, topic, qos=1), topic))
        pub = Publisher(self, 0)
        for _, topic in sessions:
            pub.publish(topic, b"queued", qos=1)
        codes = {}
        threads = [threading.Thread(target=lambda n=n: codes.__setitem__(
            n, cluster.stop_node(n, timeout=60.0))) for n in (2, 3, 4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(codes, {2: 0, 3: 0, 4: 0},
                         "\n".join(cluster[n].log_tail(30) for n in (2, 3, 4)))
        for i, (client_id, topic) in enumerate(sessions):
            c = self.resume(i % 2, client_id)
            self.assertEqual(self.payloads(c, b"queued"), [b"queued"], client_id)

    def test_will_of_a_client_on_a_killed_node_is_published_by_a_survivor(self):
        """A client with a will connected to B; B killed with SIGKILL: the will reaches a
        subscriber on C (published by the node that held its copy), once."""
        cluster = self.start_cluster(3)
        t = self.topic()
        sub = self.subscriber(C, [(t + "/#", 1)])
        gone = self.raw(node=B)
        gone.send(connect(unique_id("will"), will_topic=t + "/will", will_payload=b"b-died",
                          will_qos=1))
        gone.expect(connack(0, 0))
        cluster.kill_node(B)
        got = self.payloads(sub, b"b-died", timeout=self.down_deadline + TIMEOUT)
        self.assertEqual(got, [b"b-died"])
        Publisher(self, A).publish(t + "/end", b"end", qos=1)
        self.assertEqual(self.payloads(sub, b"end"), [b"end"])

    def test_graceful_leave_publishes_no_wills(self):
        """A client with a will on B, which leaves gracefully (SIGTERM): the client is closed
        to reconnect elsewhere, and its will is not published anywhere."""
        cluster = self.start_cluster(3)
        t = self.topic()
        sub = self.subscriber(A, [(t + "/#", 1)])
        c = self.raw(node=B)
        c.send(connect(unique_id("leave"), will_topic=t + "/will", will_payload=b"no",
                       will_qos=1))
        c.expect(connack(0, 0))
        self.assertEqual(cluster.stop_node(B), 0, cluster[B].log_tail())
        c.expect_closed()
        cluster.wait_peer_down(B, timeout=self.down_deadline + TIMEOUT)
        Publisher(self, C).publish(t + "/end", b"end", qos=1, timeout=self.down_deadline + TIMEOUT)
        self.assertEqual(self.payloads(sub, b"end"), [b"end"])

    def test_minority_node_refuses_clients(self):
        """With A and C frozen, B can see none of the other two members: it stops serving
        (closes its clients, refuses CONNECT with Server unavailable); with them back it serves
        again."""
        cluster = self.start_cluster(3)
        live = self.raw(node=B)
        live.send(connect(unique_id("minority")))
        live.expect(connack(0, 0))
        cluster.freeze(A)
        cluster.freeze(C)
        live.expect_closed(timeout=self.down_deadline + TIMEOUT)
        refused = self.raw(node=B)
        refused.send(connect(unique_id("refused")))
        refused.expect(connack(0, 3))
        cluster.thaw(A)
        cluster.thaw(C)
        # (Not wait_formed: A and C, frozen together, may never have seen each other go.)
        deadline = time.monotonic() + self.down_deadline + 2 * TIMEOUT
        while True:
            c = self.raw(node=B)
            c.send(connect(unique_id("back")))
            packet = c.read_packet(TIMEOUT)
            if packet == connack(0, 0) or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # between attempts, not instead of a condition
        self.assertEqual(packet, connack(0, 0))


if __name__ == "__main__":
    unittest.main()
