"""Fault injection: a 3-node meshmq cluster loses nodes and links under load, and the clients'
histories are checked against what the cluster promises (README "Running a cluster",
cluster/README.md).

Each scenario runs on its own private network of namespaces (netns_cluster.py): nodes n1..n3,
clients in their own namespace behind a "load balancer" (each client's list of nodes, tried
round-robin on any disconnect or refusal, fault_clients.py). Publishers send numbered messages
at QoS 1 and QoS 2 with clean session 0; one persistent subscriber (clean session 0, QoS 2,
subscribed once) receives them. After the fault, the histories must show:

  * every message acknowledged to a publisher (PUBACK / PUBCOMP) reached the subscriber;
  * no QoS 2 message reached it twice;
  * per publisher and topic, first deliveries in increasing sequence (QoS 1 repeats allowed);
  * nothing delivered that was never published, at the QoS it was published at;
  * every reconnect of the subscriber found its session (CONNACK session present 1), and, where
    the fault took its node away, it did reconnect;
  * retained messages are the same on every node at the end, and the last ones written;
  * the publishers were acknowledged both before and after the fault (the fault was under load).

Scenarios (the short profile runs each fault once; see PROFILES):

  test_baseline_no_fault            the same load with no fault: the control
  test_kill_subscriber_node         kill -9 the subscriber's node; prints FAILOVER line
  test_kill_publisher_node_on_ack   kill -9 the publishers' node right after a PUBACK
  test_partition_minority_and_heal  cut n1 (subscriber's node) from n2, n3, then heal; the
                                    minority must refuse CONNECT (rc 3) and drop its clients,
                                    and serve again after healing; prints FAILOVER line
  test_rolling_restart              SIGTERM each node in turn and start it again, under load
  test_force_leave_across_a_one_sided_partition
                                    cut only the n1-n3 link: `meshmqctl cluster leave n3` on n1
                                    is refused (n2 still sees n3 up); removes n3 once it is dead

CheckerTest checks the checker itself on made-up histories, without a network.

Run:   cd tests/fault && MESHMQD=/path/to/meshmqd /usr/bin/python3 -m unittest -v test_faults
One:   ... -m unittest -v test_faults.FaultTest.test_kill_subscriber_node
Soak:  MESHMQ_FAULT_PROFILE=soak ... (longer load, several faults per scenario)
Keep files (data dirs, node logs, client histories): MESHMQ_FAULT_KEEP=1 (kept anyway on failure)
"""

import collections
import contextlib
import functools
import json
import os
import sys
import time
import unittest

import netns_cluster
from netns_cluster import FaultCluster, wait_for

# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------

Profile = collections.namedtuple("Profile", [
    "rate",      # messages per second, per publisher
    "warmup",    # messages per publisher the subscriber must have before the first fault
    "settle",    # seconds of load after each recovery, before the next step
    "cycles",    # faults per scenario (kill/partition, then recover)
    "rounds",    # rolling restarts (each restarts every node once)
])

PROFILES = {
    "short": Profile(rate=200, warmup=100, settle=2.0, cycles=1, rounds=1),
    "soak": Profile(rate=300, warmup=1000, settle=20.0, cycles=5, rounds=3),
}
PROFILE_NAME = os.environ.get("MESHMQ_FAULT_PROFILE", "short")
if PROFILE_NAME not in PROFILES:
    raise RuntimeError("MESHMQ_FAULT_PROFILE must be one of %s, got %r" % (
        sorted(PROFILES), PROFILE_NAME))
PROFILE = PROFILES[PROFILE_NAME]

FAILOVER_TIMEOUT = 15.0  # fault to the subscriber connected elsewhere
DRAIN_QUIET = 3.0        # after the publishers stop: no delivery for this long ends the wait
DRAIN_TIMEOUT = 30.0
RETAINED_FILTER = "fault/retained/#"

# ---------------------------------------------------------------------------------------------
# The history checker: pure functions of the clients' histories (lists of event dicts)
# ---------------------------------------------------------------------------------------------

Pub = collections.namedtuple("Pub", "name topic qos events")
Sub = collections.namedtuple("Sub", "name filters events")


def topic_matches(topic_filter, topic):
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


def seq_ranges(seqs, limit=8):
    """[1, 2, 3, 7, 9, 10] -> "1-3, 7, 9-10" (the first `limit` ranges, then "...")."""
    ranges = []
    for seq in sorted(seqs):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    text = ", ".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in ranges[:limit])
    return text + (", ..." if len(ranges) > limit else "")


def acked_seqs(pub):
    return [e["seq"] for e in pub.events if e["ev"] == "acked"]


def last_published(pub):
    """The highest seq the publisher sent (from its "stopped"/"stopping" line, else acks)."""
    for e in reversed(pub.events):
        if e["ev"] in ("stopped", "stopping"):
            return e["last_seq"]
    return max(acked_seqs(pub), default=0)


def deliveries(sub, pub):
    """The subscriber's message events from that publisher on its topic, in arrival order."""
    return [e for e in sub.events
            if e["ev"] == "msg" and e["pub"] == pub.name and e["topic"] == pub.topic]


def check_pair(sub, pub):
    """Problems in what sub received from pub: losses, QoS 2 duplicates, order, phantoms, QoS."""
    got = deliveries(sub, pub)
    label = "%s from %s (QoS %d, %s)" % (sub.name, pub.name, pub.qos, pub.topic)
    problems = []
    acked = set(acked_seqs(pub))
    received = collections.Counter(e["seq"] for e in got)
    missing = sorted(acked - set(received))
    if missing:
        problems.append("%s: %d of %d acknowledged messages never delivered: seqs %s" % (
            label, len(missing), len(acked), seq_ranges(missing)))
    if pub.qos == 2:
        doubled = sorted(seq for seq, n in received.items() if n > 1)
        if doubled:
            problems.append("%s: %d QoS 2 messages delivered more than once: %s" % (
                label, len(doubled), ", ".join("seq %d x%d" % (s, received[s])
                                               for s in doubled[:8])))
    top = last_published(pub)
    phantoms = sorted(seq for seq in received if seq < 1 or seq > top)
    if phantoms:
        problems.append("%s: %d messages delivered that were never published (last seq %d): "
                        "%s" % (label, len(phantoms), top, seq_ranges(phantoms)))
    inversions = order_inversions(got)
    if inversions:
        problems.append("%s: %d messages first delivered out of order: %s" % (
            label, len(inversions), ", ".join("seq %d after %d" % pair
                                              for pair in inversions[:5])))
    wrong_qos = [e["seq"] for e in got if e["qos"] != pub.qos]
    if wrong_qos:
        problems.append("%s: %d messages delivered at another QoS: seqs %s" % (
            label, len(wrong_qos), seq_ranges(wrong_qos)))
    return problems


def order_inversions(got):
    """(seq, highest seq first-delivered before it) for each first delivery that arrives after
    a higher seq's: per publisher and topic, first deliveries must increase."""
    seen, inversions, highest = set(), [], 0
    for e in got:
        seq = e["seq"]
        if seq in seen:
            continue  # a repeat (QoS 1 may repeat; QoS 2 repeats are reported separately)
        seen.add(seq)
        if seq < highest:
            inversions.append((seq, highest))
        highest = max(highest, seq)
    return inversions


def check_delivery(pubs, subs):
    problems = []
    for sub in subs:
        for pub in pubs:
            if any(topic_matches(f, pub.topic) for f in sub.filters):
                problems += check_pair(sub, pub)
    return problems


def connacks(events, ok_only=True):
    return [e for e in events if e["ev"] == "connack" and (e["rc"] == 0 or not ok_only)]


def check_sessions(sub, fault_times=(), names=None, require_reconnect=False):
    """Every reconnect of the subscriber (each CONNACK 0 after its first) must have found its
    session; with require_reconnect, there must be a reconnect after each fault time (the
    fault took the subscriber's node away)."""
    names = names or {}
    problems = []
    accepted = connacks(sub.events)
    if not accepted:
        return ["%s never connected" % sub.name]
    for e in accepted[1:]:
        if not e["sp"]:
            problems.append("%s: reconnect to %s at %s got session_present=0 (its session and "
                            "subscription were lost)" % (
                                sub.name, names.get(e["node"], e["node"]),
                                _when(e["t"], fault_times)))
    for t in fault_times if require_reconnect else ():
        if not any(e["t"] > t for e in accepted):
            problems.append("%s never reconnected after the fault at %s (it stayed on %s)" % (
                sub.name, _clock(t), names.get(accepted[-1]["node"], accepted[-1]["node"])))
    if not any(e["ev"] == "suback" for e in sub.events):
        problems.append("%s never got its SUBACK" % sub.name)
    return problems


def check_progress(pubs, fault_times):
    """The scenario ran under load: every publisher had acks before the first fault and after
    the last one (else the checks above would pass vacuously)."""
    if not fault_times:
        return []
    problems = []
    for pub in pubs:
        times = [e["t"] for e in pub.events if e["ev"] == "acked"]
        if not any(t < min(fault_times) for t in times):
            problems.append("%s: nothing acknowledged before the fault" % pub.name)
        if not any(t > max(fault_times) for t in times):
            problems.append("%s: nothing acknowledged after the fault" % pub.name)
    return problems


UNKNOWN = object()  # expected value of a retained topic whose write was not acknowledged


def check_retained(states, expected):
    """states: node -> {topic: payload} (None: could not be read). All nodes must hold the same
    retained messages, and each topic the last value written (expected; UNKNOWN: any)."""
    problems = []
    readable = {node: state for node, state in sorted(states.items()) if state is not None}
    problems += ["retained: could not read %s's retained messages" % node
                 for node in sorted(states) if states[node] is None]
    topics = sorted(set(expected).union(*readable.values()))
    differ = [t for t in topics if len({state.get(t) for state in readable.values()}) > 1]
    if differ:
        problems.append("retained: nodes differ on %d topic(s): %s" % (len(differ), "; ".join(
            "%s: %s" % (t, ", ".join("%s has %r" % (node, state.get(t))
                                     for node, state in readable.items()))
            for t in differ[:4])))
    for node, state in readable.items():
        wrong = [t for t in topics if expected.get(t) is not UNKNOWN and
                 state.get(t) != expected.get(t)]
        if wrong:
            problems.append("retained: %s is not the last written on %s" % (node, "; ".join(
                "%s has %r, expected %r" % (t, state.get(t), expected.get(t))
                for t in wrong[:4])))
    return problems


def failover_time(sub, after, exclude_nodes=()):
    """Seconds from `after` to the subscriber's first CONNACK 0 with session present on a node
    not in exclude_nodes; None if there is none."""
    for e in connacks(sub.events):
        if e["t"] > after and e["sp"] and e["node"] not in exclude_nodes:
            return e["t"] - after
    return None


def _clock(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + ("%.3f" % (t % 1))[1:]


def _when(t, fault_times):
    before = [f for f in fault_times if f <= t]
    if before:
        return "%+.3f s after the fault" % (t - max(before))
    return _clock(t)


def longest_ack_gap(pub):
    """The longest time without an acknowledgement: how long the fault stalled the publisher
    (reported, not asserted)."""
    times = [e["t"] for e in pub.events if e["ev"] == "acked"]
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def summary(pubs, subs):
    parts = []
    for pub in pubs:
        parts.append("%s sent %d acked %d (longest gap between acks %.2f s)" % (
            pub.name, last_published(pub), len(acked_seqs(pub)), longest_ack_gap(pub)))
    for sub in subs:
        msgs = [e for e in sub.events if e["ev"] == "msg"]
        distinct = len({(e["pub"], e["seq"]) for e in msgs})
        parts.append("%s received %d (%d distinct), %d connects" % (
            sub.name, len(msgs), distinct, len(connacks(sub.events))))
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# The checker, checked
# ---------------------------------------------------------------------------------------------


def _msg(seq, pub="p", topic="t", qos=1, t=0.0):
    return {"ev": "msg", "pub": pub, "topic": topic, "seq": seq, "qos": qos, "dup": 0,
            "retain": 0, "t": t}


def _pub(qos=1, acked=range(1, 11), last=10, name="p"):
    events = [{"ev": "acked", "seq": s, "t": float(s)} for s in acked]
    events.append({"ev": "stopped", "last_seq": last, "unacked": [], "t": 100.0})
    return Pub(name, "t", qos, events)


def _sub(seqs, qos=1, extra=()):
    events = [{"ev": "connack", "rc": 0, "sp": 0, "node": "a", "t": 0.0},
              {"ev": "suback", "granted": [2], "t": 0.0}]
    events += [_msg(s, qos=qos) for s in seqs] + list(extra)
    return Sub("s", ["t"], events)


class CheckerTest(unittest.TestCase):
    """The checker must flag each kind of violation, and say which messages."""

    def test_complete_history_passes(self):
        self.assertEqual(check_delivery([_pub()], [_sub(range(1, 11))]), [])

    def test_unacked_messages_may_be_lost(self):
        self.assertEqual(check_delivery([_pub(acked=range(1, 9))], [_sub(range(1, 9))]), [])

    def test_loss_names_the_missing_seqs(self):
        problems = check_delivery([_pub()], [_sub([1, 2, 3, 7, 10])])
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("5 of 10 acknowledged messages never delivered: seqs 4-6, 8-9",
                      problems[0])

    def test_qos1_repeats_allowed_qos2_repeats_flagged(self):
        seqs = [1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10]
        self.assertEqual(check_delivery([_pub(qos=1)], [_sub(seqs, qos=1)]), [])
        problems = check_delivery([_pub(qos=2)], [_sub(seqs, qos=2)])
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("1 QoS 2 messages delivered more than once: seq 3 x2", problems[0])

    def test_out_of_order_first_delivery_flagged(self):
        problems = check_delivery([_pub()], [_sub([1, 2, 4, 3, 5, 6, 7, 8, 9, 10])])
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("seq 3 after 4", problems[0])
        # A repeat of an earlier seq (QoS 1 resend) is not an inversion.
        self.assertEqual(check_delivery([_pub()], [_sub([1, 2, 3, 4, 2, 3, 5, 6, 7, 8, 9,
                                                         10])]), [])

    def test_phantom_and_wrong_qos_flagged(self):
        problems = check_delivery([_pub()], [_sub(list(range(1, 11)) + [11])])
        self.assertTrue(any("never published (last seq 10): 11" in p for p in problems),
                        problems)
        problems = check_delivery([_pub(qos=2)], [_sub(range(1, 11), qos=1)])
        self.assertTrue(any("10 messages delivered at another QoS" in p for p in problems),
                        problems)

    def test_unmatched_subscription_not_checked(self):
        sub = Sub("s", ["other/#"], _sub([]).events)
        self.assertEqual(check_delivery([_pub()], [sub]), [])

    def test_sessions(self):
        fault = 10.0
        reconnect = {"ev": "connack", "rc": 0, "sp": 1, "node": "b", "t": 11.0}
        self.assertEqual(check_sessions(_sub([], extra=[reconnect]), [fault]), [])
        lost = dict(reconnect, sp=0)
        problems = check_sessions(_sub([], extra=[lost]), [fault], {"b": "n2"})
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("reconnect to n2 at +1.000 s after the fault got session_present=0",
                      problems[0])
        self.assertEqual(check_sessions(_sub([]), [fault]), [])  # not required by default
        problems = check_sessions(_sub([]), [fault], require_reconnect=True)
        self.assertIn("never reconnected after the fault", problems[0])
        refused = dict(reconnect, rc=3, sp=0)  # a refused CONNECT is not a reconnect
        self.assertIn("never reconnected", check_sessions(_sub([], extra=[refused]), [fault],
                                                          require_reconnect=True)[0])

    def test_progress(self):
        pub = _pub()  # acks at t = 1..10
        self.assertEqual(check_progress([pub], [5.0]), [])
        self.assertIn("nothing acknowledged after the fault", check_progress([pub], [50.0])[0])

    def test_retained(self):
        expected = {"a": "1", "b": "2"}
        self.assertEqual(check_retained({"n1": dict(expected), "n2": dict(expected)},
                                        expected), [])
        problems = check_retained({"n1": dict(expected), "n2": {"a": "0"}, "n3": None},
                                  expected)
        self.assertEqual(len(problems), 3, problems)
        self.assertIn("could not read n3", problems[0])
        self.assertIn("nodes differ on 2 topic(s): a: n1 has '1', n2 has '0'; b: n1 has '2', "
                      "n2 has None", problems[1])
        self.assertIn("n2 is not the last written on a has '0', expected '1'; b has None, "
                      "expected '2'", problems[2])
        # Equal everywhere but stale: flagged too. A write without its PUBACK may or may not
        # have happened, but all nodes must still agree.
        stale = {"a": "0", "b": "2"}
        problems = check_retained({"n1": dict(stale), "n2": dict(stale)}, expected)
        self.assertEqual(len(problems), 2, problems)
        unsure = dict(expected, a=UNKNOWN)
        self.assertEqual(check_retained({"n1": dict(stale), "n2": dict(stale)}, unsure), [])
        problems = check_retained({"n1": dict(stale), "n2": dict(expected)}, unsure)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("nodes differ", problems[0])

    def test_failover_time(self):
        sub = _sub([], extra=[{"ev": "connack", "rc": 0, "sp": 0, "node": "b", "t": 11.0},
                              {"ev": "connack", "rc": 0, "sp": 1, "node": "c", "t": 12.5}])
        self.assertAlmostEqual(failover_time(sub, 10.0), 2.5)
        self.assertIsNone(failover_time(sub, 10.0, exclude_nodes=["c"]))


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


def scenario(method):
    """Runs a scenario test; on failure prints every node's log tail and keeps the run's files
    (data dirs, logs, client histories) for inspection."""
    @functools.wraps(method)
    def wrapper(self):
        with self.reporting_failure():
            method(self)
    return wrapper


class PahoWorkaroundTest(unittest.TestCase):
    """fault_clients.keep_pubrel_resends: a QoS 2 message waiting for PUBCOMP is resent as
    PUBREL after any number of reconnects, never published again (paho 1.6.1 republished it
    as new after the second)."""

    def test_pubrel_resend_survives_two_resets(self):
        import paho.mqtt.client as mqtt
        import fault_clients
        client = mqtt.Client(client_id="t", clean_session=False, protocol=mqtt.MQTTv311)
        fault_clients.keep_pubrel_resends(mqtt, client)
        released = mqtt.MQTTMessage(mid=1)
        released.qos, released.state = 2, mqtt.mqtt_ms_wait_for_pubcomp
        unanswered = mqtt.MQTTMessage(mid=2)
        unanswered.qos, unanswered.state = 2, mqtt.mqtt_ms_wait_for_pubrec
        client._out_messages[1] = released
        client._out_messages[2] = unanswered
        for _ in range(2):  # a refused reconnect, then an accepted one
            client._messages_reconnect_reset_out()
        self.assertEqual(released.state, mqtt.mqtt_ms_resend_pubrel)
        self.assertEqual((unanswered.state, unanswered.dup), (mqtt.mqtt_ms_publish, True))


class FaultTest(unittest.TestCase):
    """One 3-node cluster per test, on its own network. Helpers keep the clients, the fault
    times and the retained messages written, for the checks at the end."""

    def setUp(self):
        reason = netns_cluster.unavailable_reason()
        if reason:
            self.skipTest(reason)
        self.cluster = FaultCluster(3, extra_flags={"replication_factor": 2})
        self.addCleanup(self.cluster.close)
        self.names = {n.mqtt: n.name for n in self.cluster.nodes}
        self.pubs = {}         # name -> (ClientProcess, topic, qos)
        self.sub = None        # the subscriber's ClientProcess
        self.sub_filters = []
        self.fault_times = []  # when each fault was injected (time.time())
        self.retained = {}     # topic -> last payload written (PUBACKed)
        self.problems = []     # violations found along the way, reported with the history's
        with self.reporting_failure():
            self.cluster.start()

    @contextlib.contextmanager
    def reporting_failure(self):
        """On an exception (not a skip): node log tails to stderr, and the run's files kept."""
        try:
            yield
        except unittest.SkipTest:
            raise
        except BaseException:
            self.cluster.keep_files = True
            self.cluster.dump_stacks()
            sys.stderr.write("\n=== %s failed; node logs (tails):\n%s\n" % (
                self.id(), self.cluster.log_tails()))
            raise

    # -- clients ------------------------------------------------------------------------------

    def hosts_from(self, first):
        """All nodes, starting at first, in the order a client tries them."""
        names = [n.name for n in self.cluster.nodes]
        i = names.index(first)
        return self.cluster.hosts(*(names[i:] + names[:i]))

    def start_subscriber(self, first, topics):
        self.sub_filters = list(topics)
        self.sub = self.cluster.start_client(
            "sub", "subscriber", "--id", "fault-sub", "--hosts", self.hosts_from(first),
            "--topics", ",".join(topics))
        wait_for(lambda: any(e["ev"] == "suback" for e in self.sub.history()), 15,
                 lambda: "subscriber got no SUBACK: %s" % self.sub.history()[-5:])

    def start_publisher(self, name, qos, first):
        topic = "fault/data/" + name
        proc = self.cluster.start_client(
            name, "publisher", "--id", name, "--hosts", self.hosts_from(first), "--topic",
            topic, "--qos", qos, "--rate", PROFILE.rate)
        self.pubs[name] = (proc, topic, qos)

    def start_load(self, sub_node, pub_nodes):
        """The subscriber on sub_node, then a QoS 1 and a QoS 2 publisher (on pub_nodes[0] and
        pub_nodes[-1]); returns once the subscriber has PROFILE.warmup messages of each."""
        topics = ["fault/data/pub-q1", "fault/data/pub-q2"]
        self.start_subscriber(sub_node, topics)
        self.start_publisher("pub-q1", 1, pub_nodes[0])
        self.start_publisher("pub-q2", 2, pub_nodes[-1])
        self.wait_delivered(PROFILE.warmup, 30, "before the fault")

    def delivered_counts(self, since=0.0):
        counts = collections.Counter()
        for e in self.sub.history():
            if e["ev"] == "msg" and e["t"] >= since:
                counts[e["pub"]] += 1
        return counts

    def wait_delivered(self, n, timeout, when, since=0.0):
        """Waits until the subscriber got n messages of every publisher (since a time)."""
        wait_for(lambda: all(self.delivered_counts(since)[p] >= n for p in self.pubs),
                 timeout, lambda: "subscriber did not get %d messages of each publisher %s "
                 "within %.0fs: %s" % (n, when, timeout, dict(self.delivered_counts(since))),
                 interval=0.05)

    def sub_node(self):
        """The node the subscriber last connected to (CONNACK 0)."""
        accepted = [e for e in self.sub.history() if e["ev"] == "connack" and e["rc"] == 0]
        return self.names[accepted[-1]["node"]]

    def pub_node(self, name):
        accepted = [e for e in self.pubs[name][0].history()
                    if e["ev"] == "connack" and e["rc"] == 0]
        return self.names[accepted[-1]["node"]]

    def load_for(self, seconds):
        """Lets the load run for a while: a span of traffic to check, not a wait for a
        condition (those poll under deadlines)."""
        time.sleep(seconds)

    # -- faults and recovery ------------------------------------------------------------------

    def fault(self, t):
        self.fault_times.append(t)
        return t

    def wait_sub_reconnected(self, after, what, exclude=()):
        """Waits for the subscriber's first CONNACK 0 after `after` (on a node not in exclude);
        prints the failover time (to a CONNACK with session present) as FAILOVER what: X s."""
        def reconnected():
            return any(e["ev"] == "connack" and e["rc"] == 0 and e["t"] > after and
                       self.names[e["node"]] not in exclude for e in self.sub.history())
        try:
            wait_for(reconnected, FAILOVER_TIMEOUT, "", interval=0.02)
        except AssertionError:
            self.problems.append("subscriber not reconnected elsewhere within %.0fs of the "
                                 "fault (%s)" % (FAILOVER_TIMEOUT, what))
        sub = Sub("sub", self.sub_filters, self.sub.history())
        excluded = [self.cluster.node(n).mqtt for n in exclude]
        seconds = failover_time(sub, after, excluded)
        print("FAILOVER %s: %s" % (what, "%.3f s" % seconds if seconds is not None else
                                   "none (no CONNACK with session present)"), flush=True)

    def restart(self, name):
        self.cluster.start_node(name)
        self.cluster.wait_formed()

    def retain(self, node, topic, payload):
        """Writes a retained message; a failed write is a problem, and its topic may then hold
        either value at the end (but the same on every node)."""
        topic = "fault/retained/" + topic
        try:
            self.cluster.retain(node, topic, payload)
            self.retained[topic] = payload
        except AssertionError as e:
            self.problems.append(str(e))
            self.retained[topic] = UNKNOWN

    # -- the end ------------------------------------------------------------------------------

    def stop_and_check(self, require_reconnect=False):
        """Stops the publishers, lets the subscriber drain, stops it, then checks histories,
        sessions, progress and retained state; fails listing every problem."""
        publishers = [p for p, _, _ in self.pubs.values()]
        for proc in publishers:
            open(proc.stop_file, "w").close()  # all at once
        for proc in publishers:
            self.expect_clean_exit(proc)
        pubs = [Pub(name, topic, qos, proc.history())
                for name, (proc, topic, qos) in self.pubs.items()]
        self.drain(pubs)
        self.expect_clean_exit(self.sub)
        subs = [Sub("sub", self.sub_filters, self.sub.history())]
        self.problems += check_delivery(pubs, subs)
        self.problems += check_sessions(subs[0], self.fault_times, self.names,
                                        require_reconnect)
        self.problems += check_progress(pubs, self.fault_times)
        self.check_retained_converged()
        print("RESULT %s: %s" % (self._testMethodName, summary(pubs, subs)), flush=True)
        if self.problems:
            self.fail("%d problem(s):\n  %s\nrun files: %s" % (
                len(self.problems), "\n  ".join(self.problems), self.cluster.dir))

    def expect_clean_exit(self, proc):
        code = proc.stop()
        if code != 0:
            self.problems.append("client %s exited with %s: %s" % (proc.name, code,
                                                                   proc.output_tail(5)))

    def drain(self, pubs):
        """Waits until the subscriber has every acknowledged message, or nothing arrived for
        DRAIN_QUIET seconds (then the checker reports what is missing)."""
        def settled():
            events = self.sub.history()
            got = {(e["pub"], e["seq"]) for e in events if e["ev"] == "msg"}
            if all((p.name, s) in got for p in pubs for s in acked_seqs(p)):
                return True
            last = max((e["t"] for e in events if e["ev"] == "msg"), default=0)
            return time.time() - last > DRAIN_QUIET
        wait_for(settled, DRAIN_TIMEOUT, "subscriber still receiving after %.0fs" %
                 DRAIN_TIMEOUT, interval=0.1)

    def check_retained_converged(self, timeout=10.0):
        """Retained messages equal (and as last written) on every node, allowing the nodes a
        few seconds to converge after the last recovery."""
        states = {}

        def converged():
            states.clear()
            for node in self.cluster.nodes:
                states[node.name] = self.cluster.read_retained(node.name, RETAINED_FILTER)
            return not check_retained(states, self.retained)
        try:
            wait_for(converged, timeout, "", interval=0.2)
        except AssertionError:
            self.problems += check_retained(states, self.retained)

    # -- scenarios ----------------------------------------------------------------------------

    @scenario
    def test_baseline_no_fault(self):
        """The load of the other scenarios with no fault: everything must pass, so a failure
        elsewhere is the fault's."""
        self.start_load("n1", ["n2", "n3"])
        self.retain("n2", "before", "before")
        self.load_for(PROFILE.settle)
        self.retain("n3", "during", "during")
        self.stop_and_check()

    @scenario
    def test_kill_subscriber_node(self):
        """kill -9 the subscriber's node: the subscriber continues on another node with its
        session (replicated), nothing acknowledged is lost. The node then comes back."""
        self.start_load("n1", ["n2"])
        self.retain("n2", "before", "before")
        for cycle in range(PROFILE.cycles):
            victim = self.sub_node()
            t = self.fault(self.cluster.kill(victim))
            self.wait_sub_reconnected(t, "kill_subscriber_node", exclude=[victim])
            self.retain(self.survivor(victim), "during", "during %d" % cycle)
            self.load_for(PROFILE.settle)
            self.restart(victim)
        self.load_for(1.0)
        self.stop_and_check(require_reconnect=True)

    @scenario
    def test_kill_publisher_node_on_ack(self):
        """kill -9 the publishers' node the moment a publisher logs a PUBACK: every acknowledged
        message (that one included) reaches the subscriber on another node."""
        self.start_load("n2", ["n1"])
        self.retain("n2", "before", "before")
        for cycle in range(PROFILE.cycles):
            victim, seq, t = self.kill_on_next_ack("pub-q1")
            self.fault(t)
            print("killed %s right after pub-q1's ack of seq %d" % (victim, seq), flush=True)
            self.wait_publishers_reconnected(t, victim)
            self.retain(self.survivor(victim), "during", "during %d" % cycle)
            self.load_for(PROFILE.settle)
            self.restart(victim)
        self.load_for(1.0)
        self.stop_and_check()

    def kill_on_next_ack(self, pub, timeout=10.0):
        """Tails pub's history and kills the node that acknowledged as soon as a new "acked"
        line appears; returns (that node, that seq, kill time). The node is the one named in
        the ack, not the one pub was on a moment before: it may have moved since."""
        path = self.pubs[pub][0].history_path
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            deadline = time.monotonic() + timeout
            pending = b""
            while time.monotonic() < deadline:
                pending += f.read()
                lines = pending.split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if b'"ev":"acked"' in line:
                        event = json.loads(line)
                        victim = self.names[event["node"]]
                        t = self.cluster.kill(victim)
                        return victim, event["seq"], t
                time.sleep(0.0005)
        raise AssertionError("%s logged no ack within %.0fs" % (pub, timeout))

    def wait_publishers_reconnected(self, after, victim):
        """Every publisher that was on victim at `after` gets a CONNACK 0 after `after` within
        FAILOVER_TIMEOUT; one that does not is a problem."""
        def connacks(proc):
            return [e for e in proc.history() if e["ev"] == "connack" and e["rc"] == 0]

        def reconnected(proc):
            return any(e["t"] > after for e in connacks(proc))

        for name, (proc, _, _) in self.pubs.items():
            before = [e for e in connacks(proc) if e["t"] <= after]
            if before and self.names[before[-1]["node"]] != victim:
                continue  # not on the node that was killed
            try:
                wait_for(lambda: reconnected(proc), FAILOVER_TIMEOUT, "", interval=0.05)
            except AssertionError:
                self.problems.append("%s not reconnected within %.0fs of the fault" % (
                    name, FAILOVER_TIMEOUT))

    def survivor(self, victim):
        return next(n.name for n in self.cluster.nodes if n.name != victim and n.running())

    @scenario
    def test_partition_minority_and_heal(self):
        """Cut the subscriber's node off from the other two (clients still reach it). The
        minority node refuses CONNECT (3.1.1 rc 3) and drops its clients, so the subscriber
        moves to the majority and takes its session over; the majority keeps serving. After
        healing, the node rejoins, serves again and holds the same retained messages."""
        self.start_load("n1", ["n2"])
        self.retain("n2", "before", "before")
        for cycle in range(PROFILE.cycles):
            victim = self.sub_node()
            majority = [n.name for n in self.cluster.nodes if n.name != victim]
            t = self.fault(self.cluster.partition(victim))
            self.cluster.wait_peer_down(victim, observers=majority)
            self.expect_probe(victim, "rc3", "%s (minority) should refuse CONNECT with rc 3 "
                              "during the partition" % victim)
            for node in majority:
                self.expect_probe(node, "ok", "%s (majority) should serve during the "
                                  "partition" % node)
            self.wait_sub_reconnected(t, "partition_minority", exclude=[victim])
            self.retain(majority[0], "during", "during %d" % cycle)
            self.retain(majority[1], "before", "overwritten during %d" % cycle)
            self.load_for(PROFILE.settle)
            self.cluster.heal(victim)
            self.cluster.wait_formed()
            self.expect_probe(victim, "ok", "%s should serve again after healing" % victim)
        self.load_for(1.0)
        self.stop_and_check(require_reconnect=True)

    def ctl(self, node, *args):
        """meshmqctl in node's namespace, against its admin listener (loopback there)."""
        argv = self.cluster.net.exec_argv(node, [netns_cluster.meshmqctl_path(),
                                                 "--server=127.0.0.1:9883"] + list(args))
        return netns_cluster.run(argv, check=False, timeout=60)

    @scenario
    def test_force_leave_across_a_one_sided_partition(self):
        """Only the n1-n3 link is cut: n1 sees n3 down, n2 still sees it up. Removing n3
        from the cluster on n1 (`meshmqctl cluster leave n3`, a force-leave since n3 is not up
        there) is refused, naming n2, and removes nothing: n3 is alive and serving its own
        sessions, which a force-leave would have taken over a second time. Once n3 is dead
        (killed, down everywhere), the same command removes it from n1 and n2."""
        self.cluster.cut("n1", "n3")
        self.cluster.wait_peer_down("n3", observers=["n1"])
        self.assertNotEqual(self.cluster.peer_view(self.cluster.node("n2"),
                                                   self.cluster.node("n3")), "down",
                            "n2 should still see n3 up")
        refused = self.ctl("n1", "cluster", "leave", "n3")
        err = refused.stderr.decode(errors="replace")
        self.assertNotEqual(refused.returncode, 0, refused.stdout)
        self.assertIn("node n3 is not up here but is up on n2", err)
        members = json.loads(self.ctl("n1", "--json", "cluster", "members").stdout)
        self.assertIn("n3", [m["node_id"] for m in members["members"]])
        self.assertEqual(self.cluster.probe("n3", until="ok", timeout=5.0), "ok",
                         "n3 (in touch with n2) should still serve")

        self.cluster.heal("n1")
        n1, n3 = self.cluster.node("n1"), self.cluster.node("n3")
        wait_for(lambda: self.cluster.peer_view(n1, n3) == "up" and
                 self.cluster.peer_view(n3, n1) == "up", netns_cluster.FORM_TIMEOUT,
                 "the n1-n3 link did not come back after healing")
        self.cluster.kill("n3")
        self.cluster.wait_peer_down("n3")
        removed = self.ctl("n1", "cluster", "leave", "n3")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertEqual(removed.stdout.decode(),
                         "node n3 was not up: removed from the members of n1, n2\n")

    def expect_probe(self, node, want, what, timeout=netns_cluster.PEER_TIMEOUT + 5.0):
        result = self.cluster.probe(node, until=want, timeout=timeout)
        if result != want:
            self.problems.append("%s, but within %.0fs a CONNECT got %s" % (what, timeout,
                                                                            result))

    @scenario
    def test_rolling_restart(self):
        """SIGTERM each node in turn, wait for its exit, start it again on the same data dir and
        wait until it serves and the cluster formed, all under load: nothing acknowledged is
        lost and every reconnect of the subscriber finds its session."""
        self.start_load("n1", ["n2", "n3"])
        self.retain("n2", "before", "before")
        for rnd in range(PROFILE.rounds):
            for node in self.cluster.nodes:
                since = self.fault(time.time())
                code = self.cluster.terminate(node.name)
                if code != 0:
                    self.problems.append("%s exited with %s after SIGTERM (round %d)" % (
                        node.name, "no exit in %.0fs" % netns_cluster.STOP_TIMEOUT
                        if code is None else code, rnd + 1))
                self.retain(self.survivor(node.name), "during", "%s down, round %d" % (
                    node.name, rnd + 1))
                self.restart(node.name)
                # Load continues through each step: more deliveries before the next restart.
                self.load_for(PROFILE.settle / 2)
                try:
                    self.wait_delivered(50, FAILOVER_TIMEOUT, "after restarting %s" %
                                        node.name, since=since)
                except AssertionError as e:
                    self.problems.append(str(e))
        self.load_for(1.0)
        self.stop_and_check(require_reconnect=False)


if __name__ == "__main__":
    unittest.main()
