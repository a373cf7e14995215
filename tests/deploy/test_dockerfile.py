"""deploy/docker/Dockerfile, checked without a Docker engine (none runs on these machines): it
builds with the scripts users run, its runtime stage installs a package for every shared library
the binaries load, runs unprivileged, declares the ports and the data volume, and its default
command starts a node that answers the health probe.

Run: cd tests/deploy && MESHMQD=../../build/node/meshmqd \
         MESHMQCTL=../../build/node/admin/meshmqctl /usr/bin/python3 -m unittest -v test_dockerfile
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import dockerfile
import meshmqd_flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import meshmq_harness  # noqa: E402  (wait_for, free ports)

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PORTS = {"mqtt_listen": 1883, "cluster_listen": 7883, "admin_listen": 9883, "http_listen": 18083}
DEBIAN_12 = re.compile(r"debian:(12|bookworm)(-slim)?(@sha256:[0-9a-f]+)?$")


def runtime_packages(stage):
    """The packages the stage's `apt-get install` lines name."""
    packages = []
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;", run):
            words = shlex.split(command)
            if "apt-get" in words and "install" in words:
                packages += [w for w in words[words.index("install") + 1:]
                             if not w.startswith("-")]
    return packages


def shared_libraries(binary):
    """Paths of the shared libraries ldd resolves for a binary; fails on 'not found'."""
    output = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, text=True, check=True,
                            timeout=30).stdout
    if "not found" in output:
        raise AssertionError("%s has unresolved libraries:\n%s" % (binary, output))
    libraries = []
    for line in output.splitlines():
        match = re.search(r"=> (/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if match:
            libraries.append(match.group(1))
    return libraries


def _spellings(path):
    """A library's path and its /usr-merged twins: dpkg knows only the one a package ships."""
    real = os.path.realpath(path)
    spellings = [path, real]
    for p in (path, real):
        spellings.append(p[len("/usr"):] if p.startswith("/usr/lib/") else "/usr" + p)
    return list(dict.fromkeys(spellings))


def owning_packages(paths):
    """{path: Debian package owning it}, from one dpkg -S call; fails for an unowned path."""
    spellings = {path: _spellings(path) for path in paths}
    result = subprocess.run(["dpkg", "-S"] + sorted({s for v in spellings.values() for s in v}),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            timeout=60)
    owner = {}
    for line in result.stdout.splitlines():
        # "libssl3:amd64: /usr/lib/x86_64-linux-gnu/libssl.so.3"
        packages, _, file_path = line.rpartition(": ")
        owner[file_path] = packages.split(",")[0].split(":")[0].strip()
    owners = {}
    for path, candidates in spellings.items():
        found = [owner[c] for c in candidates if c in owner]
        if not found:
            raise AssertionError("no Debian package owns %s" % path)
        owners[path] = found[0]
    return owners


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = dockerfile.stages()
        cls.build, cls.runtime = cls.stages[0], cls.stages[-1]

    def test_stages_are_debian_12(self):
        self.assertGreaterEqual(len(self.stages), 2)
        for stage in self.stages:
            self.assertRegex(stage.base, DEBIAN_12)

    def test_build_runs_the_users_scripts(self):
        runs = " && ".join(self.build.all("RUN"))
        install = runs.find("deploy/scripts/install-deps.sh")
        build = runs.find("deploy/scripts/build.sh")
        self.assertNotEqual(install, -1, runs)
        self.assertNotEqual(build, -1, runs)
        self.assertLess(install, build)
        self.assertRegex(runs, r"BUILD_TYPE=Release\s+(\S*/)?deploy/scripts/build\.sh")
        # Those scripts must exist and be runnable as the Dockerfile calls them.
        for script in ("install-deps.sh", "build.sh"):
            self.assertTrue(os.access(os.path.join(_REPO, "deploy", "scripts", script), os.X_OK))

    def test_runtime_gets_the_built_binaries(self):
        copies = [c.split() for c in self.runtime.all("COPY") if c.startswith("--from=")]
        self.assertEqual(len(copies), 1, copies)
        source_stage = copies[0][0][len("--from="):]
        self.assertEqual(source_stage, self.build.name)
        sources = copies[0][1:-1]
        # build.sh builds into <repo>/build; the build stage's WORKDIR holds the repo; CMake
        # puts the binaries where ctest finds them (MESHMQD, MESHMQCTL).
        with open(os.path.join(_REPO, "deploy", "scripts", "build.sh")) as f:
            self.assertIn("-B build", f.read())
        workdir = self.build.last("WORKDIR")
        self.assertEqual(sources, [workdir + "/build/node/meshmqd",
                                   workdir + "/build/node/admin/meshmqctl"])
        self.assertTrue(meshmqd_flags.meshmqd_path().endswith("/node/meshmqd"))
        self.assertTrue(meshmqd_flags.meshmqctl_path().endswith("/node/admin/meshmqctl"))
        self.assertEqual(copies[0][-1], "/usr/local/bin/")
        self.assertNotIn("-dev", " ".join(runtime_packages(self.runtime)))

    def test_runtime_packages_cover_every_shared_library(self):
        listed = set(runtime_packages(self.runtime))
        self.assertTrue(listed, "the runtime stage installs no packages")
        loaded = {binary: shared_libraries(binary)
                  for binary in (meshmqd_flags.meshmqd_path(), meshmqd_flags.meshmqctl_path())}
        owners = owning_packages({lib for libs in loaded.values() for lib in libs})
        needed = {}
        for binary, libraries in loaded.items():
            for library in libraries:
                needed.setdefault(owners[library], []).append(
                    "%s (%s)" % (os.path.basename(library), os.path.basename(binary)))
        missing = {p: libs for p, libs in needed.items() if p not in listed}
        self.assertEqual(missing, {}, "packages to add to the runtime stage")
        # And nothing the binaries do not load: the image stays small.
        self.assertEqual(sorted(listed - set(needed)), [])

    def test_runs_as_an_unprivileged_user(self):
        uid, gid = dockerfile.user_ids(self.runtime)
        self.assertRegex(uid, r"^[0-9]+$", "numeric, so Kubernetes' runAsNonRoot can check it")
        self.assertNotEqual(int(uid), 0)
        self.assertNotEqual(int(gid), 0)
        runs = " ".join(self.runtime.all("RUN"))
        self.assertRegex(runs, r"useradd\b[^&]*--uid %s\b" % uid)
        self.assertRegex(runs, r"chown -R %s:%s /var/lib/meshmq" % (uid, gid))

    def test_ports_and_data_volume(self):
        exposed = {int(p.split("/")[0]) for e in self.runtime.all("EXPOSE") for p in e.split()}
        self.assertEqual(exposed, set(PORTS.values()))
        volumes = [v for text in self.runtime.all("VOLUME") for v in dockerfile.exec_form(text)]
        flags = dict(meshmqd_flags.parse_flags(self.default_arguments()))
        data_dir = flags["data_dir"]
        self.assertTrue(any(data_dir == v or data_dir.startswith(v.rstrip("/") + "/")
                            for v in volumes), (data_dir, volumes))

    def default_arguments(self):
        return dockerfile.exec_form(self.runtime.last("CMD"))

    def test_default_command_flags(self):
        entrypoint = dockerfile.exec_form(self.runtime.last("ENTRYPOINT"))
        self.assertEqual([os.path.basename(e) for e in entrypoint], ["meshmqd"])
        known = meshmqd_flags.known_flags(meshmqd_flags.meshmqd_path())
        flags = dict(meshmqd_flags.parse_flags(self.default_arguments()))
        for name in flags:
            self.assertIn(name, known)
        for flag, port in PORTS.items():
            host, listen_port = meshmqd_flags.split_host_port(flags[flag])
            self.assertEqual(listen_port, port, flag)
        # The HTTP listener serves the health probes from outside the container; the admin
        # listener has no token here, so meshmqd only allows it on loopback (docker exec).
        self.assertEqual(meshmqd_flags.split_host_port(flags["http_listen"])[0], "0.0.0.0")
        self.assertTrue(meshmqd_flags.is_loopback(
            meshmqd_flags.split_host_port(flags["admin_listen"])[0]))

    def test_default_command_starts_a_node(self):
        # The image's command, with the data dir and ports moved to this machine's free ones.
        root = tempfile.mkdtemp(prefix="meshmq-image-")
        self.addCleanup(shutil.rmtree, root, ignore_errors=True)
        arguments, http_port = [], None
        for name, value in meshmqd_flags.parse_flags(self.default_arguments()):
            if name == "data_dir":
                value = os.path.join(root, os.path.basename(value))
            elif name in PORTS:
                host, _ = meshmqd_flags.split_host_port(value)
                port = meshmq_harness.stable_free_port()
                value = "%s:%d" % (host, port)
                if name == "http_listen":
                    http_port = port
            arguments.append("--%s=%s" % (name, value))
        log_path = os.path.join(root, "meshmqd.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen([meshmqd_flags.meshmqd_path()] + arguments, cwd=root,
                                       stdout=log, stderr=subprocess.STDOUT)
        try:
            def healthy():
                if process.poll() is not None:
                    with open(log_path) as f:
                        self.fail("meshmqd exited with the image's command:\n" + f.read())
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % http_port,
                                                timeout=2) as reply:
                        return reply.status == 200
                except (urllib.error.URLError, OSError):
                    return False
            meshmq_harness.wait_for(healthy, timeout=20, interval=0.05,
                                    message="/healthz never answered")
        finally:
            process.terminate()
            self.assertEqual(process.wait(timeout=30), 0)

    def test_dockerignore_keeps_host_builds_out(self):
        # A host build/ in the context would bring a CMake cache for other paths into the
        # build stage, and build.sh would fail on it.
        with open(os.path.join(_REPO, ".dockerignore")) as f:
            patterns = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        for needed in ("build/", ".git/"):
            self.assertIn(needed, patterns)


if __name__ == "__main__":
    unittest.main()
