"""meshmqd started with exactly what the Helm chart renders (its arguments, its flag file, its
Secret's files; local_pod.py replaces only paths, ports and the pod name) really runs: the
probes' endpoints answer, clients get in the way the values say, meshmqctl reaches the admin
listener with the token, and the preStop hook's own command drains the node until it exits.

A typo in a flag, a file mounted under the wrong name or a token that does not match fails here
rather than in a crash-looping pod.

Run: cd tests/deploy && MESHMQD=../../build/node/meshmqd \
         MESHMQCTL=../../build/node/admin/meshmqctl /usr/bin/python3 -m unittest -v \
         test_helm_chart_runs
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import chart
import deploy_tools
import local_pod

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import meshmq_harness  # noqa: E402  (wait_for, free ports, paho clients)
import paho.mqtt.client as mqtt  # noqa: E402

START_TIMEOUT = 20.0  # seconds for a node to answer its probes
STOP_TIMEOUT = 30.0   # seconds for a drained node to exit


def http_status(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def mqtt_connect_rc(port, username=None, password=None):
    """The CONNACK return code a 3.1.1 client gets (None: no CONNACK)."""
    result = {}
    client = mqtt.Client(client_id="chart-check-%d" % time.monotonic_ns())
    client.on_connect = lambda c, u, f, rc: result.setdefault("rc", rc)
    if username is not None:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        meshmq_harness.wait_for(lambda: "rc" in result, timeout=5, message="no CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return result["rc"]


def round_trip(port, topic, username=None, password=None):
    """Subscribes, publishes, and returns the payload that came back."""
    got = []
    subscribed = []
    client = mqtt.Client(client_id="chart-roundtrip-%d" % time.monotonic_ns())
    if username is not None:
        client.username_pw_set(username, password)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.on_subscribe = lambda c, u, mid, granted: subscribed.append(granted)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        meshmq_harness.wait_for(lambda: subscribed, message="no SUBACK")
        client.publish(topic, b"through the chart's node", qos=1)
        meshmq_harness.wait_for(lambda: got, message="the message did not come back")
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


class ChartNodeRuns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tools = deploy_tools.ensure_tools()
        cls.workdir = tempfile.mkdtemp(prefix="meshmq-chart-run-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def start_pod(self, label, values_file, user_secrets=None):
        release = chart.render(self.tools, self.workdir, label, values_file)
        pod_name = release.statefulset["metadata"]["name"] + "-0"
        pod = local_pod.LocalPod(release, os.path.join(self.workdir, label), pod_name,
                                 meshmq_harness.stable_free_port, user_secrets)
        log_path = os.path.join(self.workdir, label + ".log")
        log = open(log_path, "wb")
        self.addCleanup(log.close)
        process = subprocess.Popen(pod.meshmqd_command(), cwd=pod.working_dir(), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.addCleanup(self._kill, process)

        def log_text():
            with open(log_path, errors="replace") as f:
                return f.read()

        def answers(path):
            if process.poll() is not None:
                self.fail("meshmqd exited (%s) with the chart's arguments:\n%s"
                          % (process.returncode, log_text()))
            return http_status(pod.port("http_listen"), path) == 200

        # What the startup, liveness and readiness probes ask, in that order.
        meshmq_harness.wait_for(lambda: answers("/healthz"), timeout=START_TIMEOUT,
                                interval=0.05, message="/healthz never answered 200")
        meshmq_harness.wait_for(lambda: answers("/readyz"), timeout=START_TIMEOUT,
                                interval=0.05, message="/readyz never answered 200")
        return pod, process, log_text

    @staticmethod
    def _kill(process):
        if process.poll() is None:
            process.kill()
            process.wait()

    def drain_with_pre_stop(self, pod, process, log_text):
        command = pod.pre_stop_command()
        hook = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=STOP_TIMEOUT)
        self.assertEqual(hook.returncode, 0, "preStop %s failed:\n%s\n--- meshmqd:\n%s"
                         % (command, hook.stdout, log_text()))
        # The node stops by itself: Kubernetes' SIGTERM afterwards finds nothing left to do.
        try:
            self.assertEqual(process.wait(timeout=STOP_TIMEOUT), 0, log_text())
        except subprocess.TimeoutExpired:
            self.fail("meshmqd still runs %.0fs after the preStop drain:\n%s"
                      % (STOP_TIMEOUT, log_text()))
        self.assertIn("meshmqd: stopped", log_text())

    @staticmethod
    def meshmqctl_status(pod, with_token=True):
        """meshmqctl status, reaching the node the way the preStop hook does (its --server and
        --token_file)."""
        pre_stop = pod.pre_stop_command()
        command = [pre_stop[0]] + [
            a for a in pre_stop[1:-2]
            if not a.startswith("--timeout") and (with_token or not a.startswith("--token_file"))]
        return subprocess.run(command + ["status"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=30)

    def test_default_values(self):
        pod, process, log_text = self.start_pod("defaults", None)
        self.assertEqual(round_trip(pod.port("mqtt_listen"), "chart/defaults"),
                         b"through the chart's node")
        status = self.meshmqctl_status(pod)
        self.assertEqual(status.returncode, 0, status.stdout)
        self.assertIn(pod.pod_name, status.stdout)  # --node_id is the pod's name
        self.drain_with_pre_stop(pod, process, log_text)

    def test_admin_open_to_the_pod_network_with_its_token(self):
        # meshmqd refuses a non-loopback admin listener without a token: this one has it.
        pod, process, log_text = self.start_pod("servicemonitor", "servicemonitor.yaml")
        status = self.meshmqctl_status(pod)
        self.assertEqual(status.returncode, 0, status.stdout)
        refused = self.meshmqctl_status(pod, with_token=False)
        self.assertNotEqual(refused.returncode, 0, refused.stdout)
        self.drain_with_pre_stop(pod, process, log_text)

    def test_clients_authenticated_by_the_password_file(self):
        pod, process, log_text = self.start_pod("five-replicas", "five-replicas.yaml")
        port = pod.port("mqtt_listen")
        self.assertEqual(mqtt_connect_rc(port), 5)  # anonymous: not authorized
        self.assertEqual(mqtt_connect_rc(port, "sensor", "wrong"), 4)
        self.assertEqual(round_trip(port, "sensors/kitchen", "sensor", "s3cret"),
                         b"through the chart's node")
        self.drain_with_pre_stop(pod, process, log_text)

    def test_secret_the_user_manages(self):
        with open(os.path.join(chart.VALUES_DIR, "five-replicas.yaml")) as f:
            password_line = [line.strip() for line in f if line.strip().startswith("sensor:")][0]
        pod, process, log_text = self.start_pod(
            "existing-secret", "existing-secret.yaml",
            user_secrets={"token": b"a-token-the-user-made\n",
                          "mosquitto-passwd": (password_line + "\n").encode()})
        self.assertEqual(round_trip(pod.port("mqtt_listen"), "any/topic", "sensor", "s3cret"),
                         b"through the chart's node")
        self.assertEqual(mqtt_connect_rc(pod.port("mqtt_listen"), "sensor", "wrong"), 4)
        self.drain_with_pre_stop(pod, process, log_text)


if __name__ == "__main__":
    unittest.main()
