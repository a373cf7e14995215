"""deploy/local/cluster.sh as a user runs it: `start 3` brings up three nodes and prints how to
use them; the printed mosquitto_sub and mosquitto_pub commands carry a message from one node to
another; the printed meshmqctl command sees the whole cluster; `status` reports it; `stop` ends
every node gracefully within a deadline; and a second start finds its data again.

The nodes get a base port from a range no other test uses (MESHMQ_LOCAL_BASE_PORT).

Run: cd tests/deploy && MESHMQD=../../build/node/meshmqd \
         MESHMQCTL=../../build/node/admin/meshmqctl /usr/bin/python3 -m unittest -v \
         test_local_cluster
"""

import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import meshmqd_flags

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(_REPO, "deploy", "local", "cluster.sh")
NODES = 3
PORT_OFFSETS = (0, 6000, 8000, 16200)  # mqtt, cluster, admin, http (cluster.sh's layout)
START_TIMEOUT = 60    # seconds for `start` to have every node ready
STOP_TIMEOUT = 60     # seconds for `stop` to have every node gone
CLIENT_TIMEOUT = 20   # seconds for a message to arrive


def free_base_port():
    """A base port whose four ranges of NODES ports are free, below the ephemeral range (so
    nothing else takes them meanwhile)."""
    for base in range(12000, 16000, 37):
        ports = [base + offset + i for offset in PORT_OFFSETS for i in range(NODES)]
        try:
            sockets = []
            for port in ports:
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no free base port for %d local nodes" % NODES)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


class LocalClusterTest(unittest.TestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="meshmq-local-")
        self.base = free_base_port()
        self.env = dict(os.environ, MESHMQD=meshmqd_flags.meshmqd_path(),
                        MESHMQCTL=meshmqd_flags.meshmqctl_path(), MESHMQ_LOCAL_DIR=self.state,
                        MESHMQ_LOCAL_BASE_PORT=str(self.base),
                        MESHMQ_LOCAL_TIMEOUT=str(START_TIMEOUT))
        self.addCleanup(shutil.rmtree, self.state, ignore_errors=True)
        self.addCleanup(self.kill_leftovers)

    def cluster(self, *args, timeout=START_TIMEOUT + 30):
        return subprocess.run([SCRIPT, *args], env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)

    def pids(self):
        pids = []
        for node in range(1, NODES + 1):
            path = os.path.join(self.state, "n%d" % node, "meshmqd.pid")
            if os.path.exists(path):
                with open(path) as f:
                    pids.append(int(f.read()))
        return pids

    def kill_leftovers(self):
        self.cluster("stop", timeout=STOP_TIMEOUT * NODES + 30)
        for pid in self.pids():
            if alive(pid):
                os.kill(pid, 9)

    def printed_command(self, output, program):
        line = next((l for l in output.splitlines() if l.strip().startswith(program)), None)
        self.assertIsNotNone(line, "start printed no %s command:\n%s" % (program, output))
        return shlex.split(line.strip().rstrip("&"))

    def test_start_use_status_stop(self):
        started = self.cluster("start", str(NODES))
        self.assertEqual(started.returncode, 0, started.stdout)
        pids = self.pids()
        self.assertEqual(len(pids), NODES)

        # The printed subscriber (on the last node) gets what the printed publisher (on the
        # first) sends: the message crossed the cluster.
        subscriber = self.printed_command(started.stdout, "mosquitto_sub")
        publisher = self.printed_command(started.stdout, "mosquitto_pub")
        self.assertIn(str(self.base + NODES - 1), subscriber)
        self.assertIn(str(self.base), publisher)
        # stdbuf: a mosquitto_sub writing to a pipe would hold its debug lines back.
        sub = subprocess.Popen(["stdbuf", "-oL"] + subscriber +
                               ["-d", "-C", "1", "-W", str(CLIENT_TIMEOUT)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            lines = []
            deadline = time.monotonic() + CLIENT_TIMEOUT
            while not any("SUBACK" in l for l in lines):  # -d prints the SUBACK's arrival
                line = sub.stdout.readline()
                self.assertTrue(line and time.monotonic() < deadline,
                                "mosquitto_sub got no SUBACK:\n" + "".join(lines))
                lines.append(line)
            self.assertEqual(subprocess.run(publisher, timeout=CLIENT_TIMEOUT).returncode, 0)
            rest, _ = sub.communicate(timeout=CLIENT_TIMEOUT)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
            sub.stdout.close()
        self.assertEqual(sub.returncode, 0, "".join(lines) + rest)
        self.assertIn("demo/hello hi", rest)

        # The printed meshmqctl command answers for every node.
        meshmqctl = self.printed_command(started.stdout, meshmqd_flags.meshmqctl_path())
        status = subprocess.run(meshmqctl, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=30)
        self.assertEqual(status.returncode, 0, status.stdout)
        for node in range(1, NODES + 1):
            self.assertRegex(status.stdout, r"(?m)^n%d\s" % node)

        report = self.cluster("status")
        self.assertEqual(report.returncode, 0, report.stdout)
        self.assertEqual(len(re.findall(r"(?m)^n\d+ running, pid \d+, ready", report.stdout)),
                         NODES, report.stdout)

        again = self.cluster("start", str(NODES))
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("already running", again.stdout)

        self.stop_and_check(pids)

        # The data dirs stay: the same cluster starts again, and stops again.
        restarted = self.cluster("start", str(NODES))
        self.assertEqual(restarted.returncode, 0, restarted.stdout)
        self.stop_and_check(self.pids())

    def stop_and_check(self, pids):
        began = time.monotonic()
        stopped = self.cluster("stop", timeout=STOP_TIMEOUT * NODES + 30)
        took = time.monotonic() - began
        self.assertEqual(stopped.returncode, 0, stopped.stdout)
        self.assertLess(took, STOP_TIMEOUT)
        self.assertEqual([pid for pid in pids if alive(pid)], [])
        for node in range(1, NODES + 1):
            with open(os.path.join(self.state, "n%d" % node, "meshmqd.log")) as f:
                log = f.read()
            # A graceful stop, not a kill: meshmqd said so last.
            self.assertTrue(log.rstrip().endswith("meshmqd: stopped"), log[-2000:])
        report = self.cluster("status")
        self.assertNotEqual(report.returncode, 0)
        self.assertEqual(len(re.findall(r"(?m)^n\d+ stopped", report.stdout)), NODES)

    def test_refuses_ports_in_use(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", self.base + 8000 + 1))  # node 2's admin port
            busy.listen()
            started = self.cluster("start", str(NODES))
        self.assertNotEqual(started.returncode, 0)
        self.assertIn("port %d is in use" % (self.base + 8001), started.stdout)
        self.assertEqual(self.pids(), [])


if __name__ == "__main__":
    unittest.main()
