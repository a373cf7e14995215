"""A meshmq cluster on a private network of Linux network namespaces, for fault injection.

Layout of one run (names carry the test process's pid, so runs never collide and a later run can
tell the leftovers of a dead one):

    <tag>-sw   "switch": a bridge br0; one veth per host enslaved to it
    <tag>-n1   node n1, eth0 10.213.0.11/24, meshmqd on :1883 (MQTT) and :7883 (cluster)
    <tag>-n2   node n2, 10.213.0.12 ...
    <tag>-cl   the clients, 10.213.0.100: every MQTT client runs here (fault_clients.py)

Nothing is configured in the root namespace: no address, no bridge, no iptables rule. A partition
is iptables DROP rules inside one node's namespace for the other nodes' addresses (INPUT and
OUTPUT), so the node loses its peers while the clients still reach it; healing deletes them.

Processes are started with `ip netns exec NS argv...`, which execs argv: the Popen pid is the
program's own pid, so SIGKILL/SIGTERM reach meshmqd itself (checked at start via /proc/PID/exe).

Membership is read from the nodes' logs ("meshmqd: cluster: peer <id> up|down"), as
tests/integration/meshmq_harness.Cluster does: the cluster is formed when every running node's
last word about every other running node, since the last start/stop/partition of either, is
"up". Logs are files (one per node, appended across restarts), so "since" is a byte offset.

Nothing sleeps "long enough": every wait polls under a deadline and fails naming what is missing.
Everything (processes, namespaces) is removed by FaultCluster.close(), at exit (atexit) and, for
the leftovers of runs that died, by cleanup_stale_runs() before every new run.
"""

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
PYTHON = "/usr/bin/python3"  # the interpreter with paho-mqtt 1.6
CLIENTS = os.path.join(HERE, "fault_clients.py")

PREFIX = "mmqf"  # namespace names: mmqf<pid>-<run>-<host>
SUBNET = "10.213.0"
CLIENT_IP = SUBNET + ".100"
MQTT_PORT = 1883
CLUSTER_PORT = 7883

# Fast failure detection, as in the integration tests' Cluster.DEFAULT_FLAGS.
NODE_FLAGS = {"cluster_heartbeat_interval": "100ms", "cluster_peer_timeout": "1s",
              "sys_interval": "1s", "log_connections": True}
PEER_TIMEOUT = 1.0
START_TIMEOUT = 15.0  # a node from exec to serving MQTT
FORM_TIMEOUT = 20.0   # every running node up for every other
STOP_TIMEOUT = 15.0   # SIGTERM to exit

PEER_LINE = re.compile(r"meshmqd: cluster: peer (\S+) (up|down)\s*$")


def meshmqctl_path():
    """$MESHMQCTL, else the meshmqctl built beside meshmqd (build/node/admin/)."""
    path = os.environ.get("MESHMQCTL") or os.path.join(
        os.path.dirname(meshmqd_path()), "admin", "meshmqctl")
    if not os.access(path, os.X_OK):
        raise RuntimeError("meshmqctl not found at %s: set MESHMQCTL=/path/to/meshmqctl" % path)
    return path


def meshmqd_path():
    path = os.environ.get("MESHMQD") or os.path.join(REPO, "build", "node", "meshmqd")
    if not os.access(path, os.X_OK):
        raise RuntimeError("meshmqd not found at %s: set MESHMQD=/path/to/meshmqd" % path)
    return path


def unavailable_reason():
    """Why this machine cannot run the suite (None if it can): it needs root (namespaces,
    iptables inside them), iproute2, iptables and the Debian python3 with paho-mqtt."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return "needs %s" % tool
    if not os.access(PYTHON, os.X_OK):
        return "needs %s" % PYTHON
    return None


_supported_flags = {}


def meshmqd_supports(flag):
    """Whether this meshmqd knows --flag (from --helpfull): flags of work in progress are passed
    only once the binary has them."""
    binary = meshmqd_path()
    if binary not in _supported_flags:
        out = subprocess.run([binary, "--helpfull"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=30).stdout.decode("utf-8", "replace")
        _supported_flags[binary] = set(re.findall(r"--([a-z0-9_]+)", out))
    return flag in _supported_flags[binary]


def wait_for(predicate, timeout, message, interval=0.02):
    """Polls predicate until truthy (returned); raises AssertionError(message()) at the deadline.
    message is a callable, so it can describe the state at the time of failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


def run(argv, check=True, timeout=60):
    """Runs a short command; raises with its output if it fails (check=True)."""
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), result.returncode,
                                                   result.stderr.decode(errors="replace")))
    return result


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_list():
    out = run(["ip", "netns", "list"], check=False).stdout.decode()
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_namespace_processes(ns):
    """SIGKILLs what still runs in one of our namespaces (a meshmqd or client of a dead run)."""
    out = run(["ip", "netns", "pids", ns], check=False).stdout.decode()
    for pid in (int(p) for p in out.split() if p.isdigit()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cleanup_stale_runs():
    """Deletes the namespaces (and kills the processes in them) of earlier runs of this suite
    whose test process no longer exists."""
    for ns in _netns_list():
        match = re.match(r"%s(\d+)-" % PREFIX, ns)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            _kill_namespace_processes(ns)
            run(["ip", "netns", "delete", ns], check=False)


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


class Network:
    """The switch namespace, one namespace per host (name -> IP), and the veths between them."""

    _runs = 0

    def __init__(self, hosts):
        Network._runs += 1
        self.tag = "%s%d-%d" % (PREFIX, os.getpid(), Network._runs)
        self.hosts = dict(hosts)  # host name -> IP
        self.switch = self.tag + "-sw"
        self.namespaces = []
        self.partitioned = {}  # host -> the iptables rules added for it

    def ns(self, host):
        return "%s-%s" % (self.tag, host)

    def create(self):
        try:
            self._add_namespace(self.switch)
            run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
            run(["ip", "-n", self.switch, "link", "set", "br0", "up"])
            for i, (host, ip) in enumerate(self.hosts.items()):
                self._attach(host, ip, "p%d" % i)
        except BaseException:
            self.destroy()
            raise
        return self

    def _add_namespace(self, ns):
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _attach(self, host, ip, port_name):
        """A namespace for host whose eth0 is a veth to a port of the switch's bridge. Both ends
        are created inside the switch namespace (never in the root one), the peer then moved."""
        ns = self.ns(host)
        self._add_namespace(ns)
        run(["ip", "-n", self.switch, "link", "add", port_name, "type", "veth",
             "peer", "name", "eth0", "netns", ns])
        run(["ip", "-n", self.switch, "link", "set", port_name, "master", "br0"])
        run(["ip", "-n", self.switch, "link", "set", port_name, "up"])
        run(["ip", "-n", ns, "addr", "add", "%s/24" % ip, "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def exec_argv(self, host, argv):
        return ["ip", "netns", "exec", self.ns(host)] + list(argv)

    def partition(self, host, others):
        """Cuts host off from the hosts in others (both directions), clients unaffected."""
        rules = []
        for other in others:
            ip = self.hosts[other]
            rules += [["INPUT", "-s", ip, "-j", "DROP"], ["OUTPUT", "-d", ip, "-j", "DROP"]]
        for rule in rules:
            run(["ip", "netns", "exec", self.ns(host), "iptables", "-w", "-A"] + rule)
        self.partitioned.setdefault(host, []).extend(rules)

    def heal(self, host):
        for rule in self.partitioned.pop(host, []):
            run(["ip", "netns", "exec", self.ns(host), "iptables", "-w", "-D"] + rule)

    def destroy(self):
        for ns in reversed(self.namespaces):
            _kill_namespace_processes(ns)
            run(["ip", "netns", "delete", ns], check=False)
        self.namespaces = []


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

_live = []  # every FaultCluster not closed yet, for atexit


def _close_all():
    for cluster in list(_live):
        cluster.close()


atexit.register(_close_all)


def _cleanup_on_sigterm():
    """SIGTERM of the test process (a CI timeout, ^C of a wrapper) removes everything and exits
    at once; raising SystemExit instead would only fail the current test (unittest catches it)
    and go on with the next one."""
    def handler(signum, frame):
        _close_all()
        os._exit(128 + signum)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, handler)


def _wait_exec(proc, program, timeout=5.0):
    """Checks that `ip netns exec` exec'd program in place (same pid), so signals sent to
    proc.pid reach program itself."""
    def exe():
        try:
            return os.path.basename(os.readlink("/proc/%d/exe" % proc.pid))
        except OSError:
            return None
    name = os.path.basename(os.path.realpath(program))
    wait_for(lambda: exe() == name or exe() is None and proc.poll() is not None, timeout,
             lambda: "pid %d runs %s, not %s" % (proc.pid, exe(), name), interval=0.005)


class Node:
    """One meshmqd in its namespace. The data dir and the log file outlive restarts."""

    def __init__(self, cluster, index):
        self.cluster = cluster
        self.name = "n%d" % index
        self.ip = "%s.%d" % (SUBNET, 10 + index)
        self.mqtt = "%s:%d" % (self.ip, MQTT_PORT)
        self.cluster_address = "%s:%d" % (self.ip, CLUSTER_PORT)
        self.dir = os.path.join(cluster.dir, self.name)
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "meshmqd.log")
        self.proc = None
        self.starts = 0
        os.makedirs(self.data_dir)

    def argv(self):
        flags = dict(NODE_FLAGS, **self.cluster.extra_flags)
        argv = [meshmqd_path(), "--mqtt_listen=%s" % self.mqtt,
                "--cluster_listen=%s" % self.cluster_address, "--node_id=%s" % self.name,
                "--data_dir=%s" % self.data_dir,
                "--peers=%s" % ",".join(n.cluster_address for n in self.cluster.nodes
                                        if n is not self)]
        for key, value in flags.items():
            value = ("true" if value else "false") if isinstance(value, bool) else value
            argv.append("--%s=%s" % (key, value))
        return argv

    def spawn(self):
        """Starts meshmqd (same flags and data dir every time); the log file gets a marker."""
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(("=== fault harness: start %d of %s at %.3f\n" %
                       (self.starts, self.name, time.time())).encode())
            log.flush()
        argv = self.argv()
        self.proc = subprocess.Popen(self.cluster.net.exec_argv(self.name, argv),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     # Session ownership traced in the log (cluster/debug_log.h).
                                     env=dict(os.environ, MESHMQ_CLUSTER_DEBUG="1"))
        # Each line gets the wall time it was read at, to line the log up with the clients'
        # histories (whose events carry time.time() too).
        threading.Thread(target=_timestamp_lines, args=(self.proc.stdout, self.log_path),
                         daemon=True).start()
        _wait_exec(self.proc, argv[0])

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait for the exit; returns the exit code, None if it had to be killed."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, start=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=30):
        return "\n".join(self.log_text().splitlines()[-lines:])


def _timestamp_lines(pipe, path):
    """Copies a node's output to its log file, each line prefixed with the time it arrived."""
    with open(path, "ab") as log:
        for line in iter(pipe.readline, b""):
            log.write(b"%.3f " % time.time() + line)
            log.flush()
    pipe.close()


class ClientProcess:
    """A fault_clients.py worker in the client namespace, its history in a JSON-lines file."""

    def __init__(self, cluster, name, role, args):
        self.cluster = cluster
        self.name = name
        self.history_path = os.path.join(cluster.dir, "clients", name + ".jsonl")
        self.stop_file = os.path.join(cluster.dir, "clients", name + ".stop")
        self.output_path = os.path.join(cluster.dir, "clients", name + ".out")
        self._events, self._offset = [], 0  # history read so far
        argv = [PYTHON, CLIENTS, role, "--log", self.history_path,
                "--stop-file", self.stop_file] + list(args)
        if os.environ.get("MESHMQ_FAULT_PAHO_LOG"):
            argv.append("--paho-log")  # every packet, in the .out file
        with open(self.output_path, "ab") as out:
            self.proc = subprocess.Popen(cluster.net.exec_argv("cl", argv),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         cwd=HERE)
        _wait_exec(self.proc, PYTHON)

    def history(self):
        """The events so far. Read incrementally (only complete new lines), so polling a long
        soak history stays cheap; the list returned is a copy."""
        try:
            with open(self.history_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                self._events.append(json.loads(line))
            except ValueError:
                pass  # a line torn by a killed worker
        return list(self._events)

    def stop(self, timeout=15.0):
        """Asks the worker to finish (stop file; SIGTERM works too) and waits; returns its exit
        code, None if it had to be killed."""
        open(self.stop_file, "w").close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output_tail(self, lines=10):
        try:
            with open(self.output_path, encoding="utf-8", errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------------


class FaultCluster:
    """n meshmqd nodes (n1..nN) and a client namespace on a private network.

    with FaultCluster(3) as cluster: cluster.start(); cluster.kill("n1"); ...
    Files of the run (data dirs, node logs, client histories) are under cluster.dir, which
    close() deletes unless keep_files is set (the tests set it when they fail)."""

    def __init__(self, n=3, extra_flags=None):
        cleanup_stale_runs()
        _cleanup_on_sigterm()
        self.dir = tempfile.mkdtemp(prefix="meshmq-fault-%d-" % os.getpid())
        os.makedirs(os.path.join(self.dir, "clients"))
        self.extra_flags = dict(extra_flags or {})
        self.nodes = [Node(self, i) for i in range(1, n + 1)]
        self.clients = []
        self.keep_files = bool(os.environ.get("MESHMQ_FAULT_KEEP"))
        self._marks = {}  # (observer, peer) -> observer's log offset from which lines count
        hosts = {node.name: node.ip for node in self.nodes}
        hosts["cl"] = CLIENT_IP
        self.net = Network(hosts)
        _live.append(self)
        self.net.create()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def hosts(self, *names):
        """The MQTT addresses of the named nodes, in that order, for a client's --hosts."""
        return ",".join(self.node(name).mqtt for name in names)

    # -- node lifecycle -----------------------------------------------------------------------

    def start(self):
        """Starts every node at once, then waits until each serves MQTT and the cluster formed."""
        for node in self.nodes:
            self._mark(node)
            node.spawn()
        for node in self.nodes:
            self.wait_serving(node.name)
        self.wait_formed()
        return self

    def start_node(self, name):
        node = self.node(name)
        self._mark(node)
        node.spawn()
        self.wait_serving(name)

    def kill(self, name):
        """SIGKILL: a crash. Returns the time (time.time()) of the kill."""
        node = self.node(name)
        self._mark(node)
        t = time.time()
        node.kill()
        return t

    def terminate(self, name, timeout=STOP_TIMEOUT):
        """SIGTERM and wait for the exit; returns the exit code (None: killed at the deadline)."""
        node = self.node(name)
        self._mark(node)
        return node.terminate(timeout)

    def partition(self, name):
        """Cuts node name off from every other node; clients still reach all. Returns the time."""
        node = self.node(name)
        self._mark(node)
        t = time.time()
        self.net.partition(name, [n.name for n in self.nodes if n is not node])
        return t

    def cut(self, a, b):
        """Cuts the link between nodes a and b alone (both ways): each still reaches the
        third, and clients reach all (a one-sided partition). heal(a) mends it. Returns the
        time."""
        self._mark(self.node(a))
        self._mark(self.node(b))
        t = time.time()
        self.net.partition(a, [b])
        return t

    def heal(self, name):
        node = self.node(name)
        self._mark(node)
        self.net.heal(name)

    def running(self):
        return [n for n in self.nodes if n.running()]

    # -- membership from the logs -------------------------------------------------------------

    def _mark(self, node):
        """From now on only log lines written after this count for what node says about the
        others, and what the others say about node."""
        for other in self.nodes:
            if other is not node:
                self._marks[(node.name, other.name)] = node.log_size()
                self._marks[(other.name, node.name)] = other.log_size()

    def peer_view(self, observer, peer):
        """What observer last said about peer since the mark: "up", "down" or None."""
        view = None
        text = observer.log_text(self._marks.get((observer.name, peer.name), 0))
        for line in text.splitlines():
            match = PEER_LINE.search(line)
            if match and match.group(1) == peer.name:
                view = match.group(2)
        return view

    def _views_not(self, want, pairs):
        return ["%s says %s is %s" % (j.name, i.name, self.peer_view(j, i) or "unknown")
                for j, i in pairs if self.peer_view(j, i) != want]

    def wait_formed(self, timeout=FORM_TIMEOUT):
        running = self.running()
        pairs = [(j, i) for j in running for i in running if i is not j]
        wait_for(lambda: not self._views_not("up", pairs), timeout,
                 lambda: "cluster not formed within %.0fs: %s" % (
                     timeout, "; ".join(self._views_not("up", pairs))))

    def wait_peer_down(self, name, observers=None, timeout=PEER_TIMEOUT + 10.0):
        """Waits until every other running node (or those named) says node name is down."""
        node = self.node(name)
        watchers = [self.node(o) for o in observers] if observers else [
            n for n in self.running() if n is not node]
        pairs = [(j, node) for j in watchers]
        wait_for(lambda: not self._views_not("down", pairs), timeout,
                 lambda: "%s not marked down within %.0fs: %s" % (
                     name, timeout, "; ".join(self._views_not("down", pairs))))

    # -- clients ------------------------------------------------------------------------------

    def tool(self, *args, timeout=30):
        """Runs a one-shot fault_clients.py tool in the client namespace; returns its JSON."""
        argv = self.net.exec_argv("cl", [PYTHON, CLIENTS] + [str(a) for a in args])
        result = run(argv, check=False, timeout=timeout)
        try:
            return json.loads(result.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"result": "error", "exit": result.returncode,
                    "stderr": result.stderr.decode(errors="replace")[-2000:]}

    def probe(self, name, until=None, timeout=2.0):
        """CONNECT (clean session) to node name from the client namespace: "ok", "rc3",
        "refused", "closed", "timeout"; with until, polls until that result or the deadline."""
        args = ["probe", "--host", self.node(name).mqtt, "--timeout", timeout]
        if until:
            args += ["--until", until]
        return self.tool(*args, timeout=timeout + 10)["result"]

    def wait_serving(self, name, timeout=START_TIMEOUT):
        """Polls until a client gets CONNACK 0 from node name; fails at once if it exited. The
        probe tool polls in rounds of a second, so a node that died is noticed between them."""
        node = self.node(name)
        deadline = time.monotonic() + timeout
        result = None
        while node.running() and time.monotonic() < deadline:
            result = self.probe(name, until="ok", timeout=1.0)
            if result == "ok":
                return
        if node.running():
            what = "not serving MQTT within %.0fs (last probe: %s)" % (timeout, result)
        else:
            what = "exited with %s before serving MQTT" % node.proc.returncode
        raise AssertionError("%s %s:\n%s" % (name, what, node.log_tail(15)))

    def retain(self, name, topic, payload):
        """Publishes a retained message (QoS 1) on node name; fails unless PUBACKed."""
        result = self.tool("retain-pub", "--host", self.node(name).mqtt, "--topic", topic,
                           "--payload", payload)
        if result["result"] != "ok":
            raise AssertionError("retained publish to %s on %s failed: %s" % (topic, name,
                                                                              result))

    def read_retained(self, name, topic_filter):
        """The retained messages node name holds under topic_filter: {topic: payload}, or None
        if it could not be read."""
        result = self.tool("retain-read", "--host", self.node(name).mqtt, "--filter",
                           topic_filter)
        return result.get("retained")

    def start_client(self, name, role, *args):
        client = ClientProcess(self, name, role, [str(a) for a in args])
        self.clients.append(client)
        return client

    # -- reports and cleanup ------------------------------------------------------------------

    def dump_stacks(self):
        """Every running node's threads' stacks to nN/stacks.txt (gdb, if installed): what a
        node that stopped answering was stuck in."""
        gdb = shutil.which("gdb")
        if not gdb:
            return
        for node in self.nodes:
            if not node.running():
                continue
            path = os.path.join(node.dir, "stacks.txt")
            with open(path, "wb") as out:
                subprocess.run([gdb, "-p", str(node.proc.pid), "-batch", "-ex",
                                "thread apply all bt"], stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=120, check=False)

    def log_tails(self, lines=30):
        parts = []
        for node in self.nodes:
            state = "running" if node.running() else "stopped"
            parts.append("--- %s (%s), %s:\n%s" % (node.name, state, node.log_path,
                                                    node.log_tail(lines)))
        for client in self.clients:
            tail = client.output_tail()
            if tail:
                parts.append("--- client %s output:\n%s" % (client.name, tail))
        return "\n".join(parts)

    def close(self):
        """Idempotent: kills clients and nodes, deletes the namespaces and (unless keep_files)
        the run's files."""
        if self not in _live:
            return
        _live.remove(self)
        for client in self.clients:
            client.kill()
        for node in self.nodes:
            node.kill()
        self.net.destroy()
        if self.keep_files:
            sys.stderr.write("fault run files kept in %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
