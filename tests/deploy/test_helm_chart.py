"""The Helm chart (deploy/helm/meshmq), rendered with real helm over several value sets: it lints
strictly, its manifests pass Kubernetes' schemas and API types, bad values are refused, and the
pieces fit together the way a cluster needs them to (the names peers dial, the ports and probes
meshmqd really serves, the drain on scale-down, the flags meshmqd really has).

What meshmqd does with the rendered flags is test_helm_chart_runs.py.

Run: cd tests/deploy && MESHMQD=../../build/node/meshmqd /usr/bin/python3 -m unittest -v \
         test_helm_chart
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import chart
import deploy_tools
import dockerfile
import meshmqd_flags

# Each value set (tests/deploy/values/) and what a user choosing it should get.
VALUE_SETS = {
    "defaults": dict(file=None, replicas=3, service_type="LoadBalancer", persistence=True,
                     service_monitor=False, password_file=False, anonymous=True),
    "persistence-off": dict(file="persistence-off.yaml", replicas=3, service_type="LoadBalancer",
                            persistence=False, service_monitor=False, password_file=False,
                            anonymous=True),
    "nodeport": dict(file="nodeport.yaml", replicas=3, service_type="NodePort", node_port=31883,
                     persistence=True, service_monitor=False, password_file=False,
                     anonymous=True),
    "servicemonitor": dict(file="servicemonitor.yaml", replicas=3, service_type="LoadBalancer",
                           persistence=True, service_monitor=True, password_file=False,
                           anonymous=True),
    "five-replicas": dict(file="five-replicas.yaml", replicas=5, service_type="LoadBalancer",
                          persistence=True, service_monitor=False, password_file=True,
                          anonymous=False),
    "existing-secret": dict(file="existing-secret.yaml", replicas=3, service_type="ClusterIP",
                            persistence=True, service_monitor=False, password_file=True,
                            anonymous=True),
}

# Value sets values.schema.json must refuse, and where in the values it must say the fault is.
BAD_VALUE_SETS = {
    "replicas-zero.yaml": "/replicaCount",
    "replicas-string.yaml": "/replicaCount",
    "service-type.yaml": "/service/type",
    "service-port.yaml": "/service/port",
    "container-port-string.yaml": "/ports/http",
    "chart-owned-flag.yaml": "data_dir",
    "misspelled-value.yaml": "replicas",
    "short-grace-period.yaml": "/terminationGracePeriodSeconds",
}

LISTENERS = {"mqtt_listen": "mqtt", "cluster_listen": "cluster", "http_listen": "http",
             "admin_listen": "admin"}
DEFAULT_PORTS = {"mqtt": 1883, "cluster": 7883, "admin": 9883, "http": 18083}
CLUSTER_DOMAIN = "cluster.local"


def _duration_seconds(text):
    match = re.fullmatch(r"([0-9.]+)(ms|s|m|h)", text)
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


class HelmChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tools = deploy_tools.ensure_tools()
        cls.meshmqd_flags = meshmqd_flags.known_flags(meshmqd_flags.meshmqd_path())
        cls.workdir = tempfile.mkdtemp(prefix="meshmq-helm-")
        cls._releases = {}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def release(self, label):
        if label not in self._releases:
            self._releases[label] = chart.render(self.tools, self.workdir, label,
                                                 VALUE_SETS[label]["file"])
        return self._releases[label]

    def value_sets(self):
        for label, expect in VALUE_SETS.items():
            yield label, self.release(label), expect

    @staticmethod
    def ports_of(release):
        """The meshmqd container's ports by name."""
        return {p["name"]: p["containerPort"] for p in release.container["ports"]}

    # --- helm itself --------------------------------------------------------------------------

    def test_lint_strict(self):
        for label, expect in VALUE_SETS.items():
            with self.subTest(values=label):
                result = chart.helm(self.tools, "lint", "--strict", chart.CHART,
                                    "--namespace", chart.NAMESPACE,
                                    *chart.values_args(expect["file"]), check=False)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_renders_and_passes_kubernetes_schemas(self):
        # (The schemas themselves were checked as each value set was rendered: chart.render.)
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                kinds = {"StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget"}
                if label != "existing-secret":
                    kinds.add("Secret")
                if expect["service_monitor"]:
                    kinds.add("ServiceMonitor")
                self.assertEqual({o["kind"] for o in release.objects}, kinds)
                self.assertEqual(len(release.of_kind("Service")), 2)  # headless, and clients'
                for o in release.objects:
                    self.assertEqual(o["metadata"].get("namespace"), chart.NAMESPACE, o["kind"])

    def test_manifests_type_check_against_the_kubernetes_api(self):
        # One TypeScript run over every value set: unknown fields and wrong types fail it.
        inputs = ["%s=%s" % (label, self.release(label).json_path) for label in VALUE_SETS]
        out_dir = tempfile.mkdtemp(prefix="typecheck-", dir=self.tools.root)
        try:
            result = subprocess.run(
                [self.tools.node, os.path.join(os.path.dirname(__file__),
                                               "typecheck_manifests.cjs"), out_dir, *inputs],
                env=self.tools.node_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, timeout=300)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        self.assertEqual(result.returncode, 0, result.stdout)

    def test_schema_refuses_bad_values(self):
        for name, where in BAD_VALUE_SETS.items():
            with self.subTest(values=name):
                result = chart.helm(self.tools, "template", chart.RELEASE, chart.CHART,
                                    "-f", os.path.join(chart.VALUES_DIR, "bad", name),
                                    check=False)
                self.assertNotEqual(result.returncode, 0, "helm template accepted " + name)
                self.assertIn("don't meet the specifications of the schema", result.stderr)
                self.assertIn(where, result.stderr)

    def test_notes_tell_how_to_connect_and_administer(self):
        for label, expect in VALUE_SETS.items():
            with self.subTest(values=label):
                release = self.release(label)
                notes = chart.helm(self.tools, "install", chart.RELEASE, chart.CHART,
                                   "--namespace", chart.NAMESPACE, "--dry-run=client",
                                   *chart.values_args(expect["file"])).stdout
                notes = notes[notes.index("NOTES:"):]
                token_file = release.flags()["admin_token_file"]
                sts = release.statefulset["metadata"]["name"]
                ctl = re.search(r"kubectl -n %s exec %s-0 -- (meshmqctl [^\n]*) status\n"
                                % (chart.NAMESPACE, sts), notes)
                self.assertIsNotNone(ctl, notes)
                ctl_flags = dict(meshmqd_flags.parse_flags(ctl.group(1).split()[1:]))
                self.assertEqual(ctl_flags["token_file"], token_file)
                admin_port = meshmqd_flags.split_host_port(release.flags()["admin_listen"])[1]
                self.assertEqual(ctl_flags.get("server", "127.0.0.1:9883"),
                                 "127.0.0.1:%d" % admin_port)
                self.assertRegex(notes, r"mosquitto_sub -h \S+ -p \S+ -t")
                service = release.one("Service", sts)
                if expect["service_type"] == "LoadBalancer":
                    self.assertIn("-p %d" % service["spec"]["ports"][0]["port"], notes)

    # --- the cluster's wiring -----------------------------------------------------------------

    def test_pods_find_each_other_through_the_headless_service(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                sts = release.statefulset
                headless = release.one("Service", sts["spec"]["serviceName"])
                self.assertEqual(headless["spec"]["clusterIP"], "None")
                # Peers must find a pod before it is ready: it is ready once it reaches them.
                self.assertIs(headless["spec"]["publishNotReadyAddresses"], True)
                pod_labels = sts["spec"]["template"]["metadata"]["labels"]
                self.assertTrue(_selects(headless["spec"]["selector"], pod_labels))
                self.assertEqual(sts["spec"]["podManagementPolicy"], "Parallel")
                self.assertEqual(sts["spec"]["replicas"], expect["replicas"])

                flags = release.flags()
                dns = "%s.%s.svc.%s" % (headless["metadata"]["name"], chart.NAMESPACE,
                                        CLUSTER_DOMAIN)
                self.assertEqual(flags["peers_dns"], dns)
                cluster_port = meshmqd_flags.split_host_port(flags["cluster_listen"])[1]
                headless_ports = {p["name"]: p for p in headless["spec"]["ports"]}
                self.assertEqual(headless_ports["cluster"]["port"], cluster_port)
                # Each pod is its own node, reached at its stable name (the IP changes on restart).
                self.assertEqual(flags["node_id"], "$(POD_NAME)")
                self.assertEqual(flags["cluster_advertise"],
                                 "$(POD_NAME).%s:%d" % (dns, cluster_port))
                env = {e["name"]: e for e in release.container["env"]}
                self.assertEqual(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
                                 "metadata.name")

    def test_every_flag_exists_in_meshmqd(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                for name in release.flags():
                    self.assertIn(name, self.meshmqd_flags,
                                  "the chart passes --%s: not in meshmqd --help" % name)
                flags = release.flags()
                self.assertEqual(flags["allow_anonymous"],
                                 "true" if expect["anonymous"] else "false")
                self.assertEqual("password_file" in flags, expect["password_file"])

    def test_container_ports_are_the_listeners(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                flags = release.flags()
                ports = self.ports_of(release)
                open_listeners = {}
                for flag, port_name in LISTENERS.items():
                    host, port = meshmqd_flags.split_host_port(flags[flag])
                    if flag == "admin_listen" and meshmqd_flags.is_loopback(host):
                        continue  # reached from inside the pod only: no port to declare
                    # Reached from other pods, the kubelet or the Service: every interface.
                    self.assertEqual(host, "0.0.0.0", flag)
                    open_listeners[port_name] = port
                self.assertEqual(ports, open_listeners)
                if label == "defaults":
                    self.assertEqual(dict(ports, admin=9883), DEFAULT_PORTS)
                    self.assertEqual(flags["admin_listen"], "127.0.0.1:9883")

    def test_admin_listener_needs_the_token(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                flags = release.flags()
                token = release.file_at(flags["admin_token_file"])
                self.assertIn("secret", token.volume)
                if token.content is not None:
                    self.assertGreaterEqual(len(token.content.strip()), 16)
                else:  # auth.existingSecret: the user's Secret, under the key the user named
                    self.assertEqual(token.key, "token")

    def test_probes_hit_the_health_endpoints(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                http_port = meshmqd_flags.split_host_port(release.flags()["http_listen"])[1]
                ports = self.ports_of(release)
                for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                                    ("startupProbe", "/healthz")):
                    get = release.container[probe]["httpGet"]
                    self.assertEqual(get["path"], path, probe)
                    port = get["port"]
                    by_number = ports[port] if isinstance(port, str) else port
                    self.assertEqual(by_number, http_port, probe)

    def test_pod_stop_drains_the_node(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                flags = release.flags()
                command = release.container["lifecycle"]["preStop"]["exec"]["command"]
                self.assertEqual(os.path.basename(command[0]), "meshmqctl")
                self.assertEqual(command[-2:], ["node", "drain"])
                ctl = dict(meshmqd_flags.parse_flags(command[1:-2]))
                admin_host, admin_port = meshmqd_flags.split_host_port(flags["admin_listen"])
                self.assertEqual(ctl["server"], "127.0.0.1:%d" % admin_port)
                self.assertEqual(ctl["token_file"], flags["admin_token_file"])
                # The drain must finish (or give up) before Kubernetes kills the pod, and have time
                # for a few leave steps.
                grace = release.pod_spec["terminationGracePeriodSeconds"]
                self.assertLess(_duration_seconds(ctl["timeout"]), grace)
                leave_step = _duration_seconds(flags.get("cluster_leave_timeout", "10s"))
                self.assertGreaterEqual(_duration_seconds(ctl["timeout"]), 3 * leave_step)

    def test_data_dir_is_on_the_data_volume(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                data = release.file_at(release.flags()["data_dir"])
                volume = data.volume
                claims = [c["metadata"]["name"]
                          for c in release.statefulset["spec"].get("volumeClaimTemplates", [])]
                if expect["persistence"]:
                    self.assertIn("persistentVolumeClaim", volume)
                    self.assertEqual(claims, [volume["name"]])
                else:
                    self.assertIn("emptyDir", volume)
                    self.assertEqual(claims, [])
                mount, _ = release.mount_of(release.flags()["data_dir"])
                self.assertFalse(mount.get("readOnly", False))

    def test_files_meshmqd_reads_are_mounted(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                flags = release.flags()
                for flag in ("password_file", "acl_file", "admin_token_file"):
                    if flag in flags:
                        mounted = release.file_at(flags[flag])
                        self.assertIsNotNone(mounted.key,
                                             "%s is not a file: %s" % (flag, flags[flag]))
                flagfiles = [a for a in release.container["args"] if a.startswith("--flagfile=")]
                self.assertEqual(len(flagfiles), 1)

    def test_runs_unprivileged_as_the_image_user(self):
        runtime = dockerfile.stages()[-1]
        uid, gid = dockerfile.user_ids(runtime)
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                pod = release.pod_spec["securityContext"]
                self.assertIs(pod["runAsNonRoot"], True)
                self.assertEqual(str(pod["runAsUser"]), uid)
                # The volumes are writable by the image's user.
                self.assertEqual(str(pod["fsGroup"]), gid)
                container = release.container["securityContext"]
                self.assertIs(container["readOnlyRootFilesystem"], True)
                self.assertIs(container["allowPrivilegeEscalation"], False)
                self.assertEqual(container["capabilities"]["drop"], ["ALL"])
                self.assertIs(release.pod_spec["automountServiceAccountToken"], False)
                self.assertIn("memory", release.container["resources"]["limits"])

    def test_pods_spread_over_machines(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                pod_labels = release.statefulset["spec"]["template"]["metadata"]["labels"]
                anti = release.pod_spec["affinity"]["podAntiAffinity"]
                if label == "five-replicas":  # podAntiAffinity: hard
                    terms = anti["requiredDuringSchedulingIgnoredDuringExecution"]
                else:
                    terms = [t["podAffinityTerm"]
                             for t in anti["preferredDuringSchedulingIgnoredDuringExecution"]]
                self.assertEqual(terms[0]["topologyKey"], "kubernetes.io/hostname")
                self.assertTrue(_selects(terms[0]["labelSelector"]["matchLabels"], pod_labels))
                for constraint in release.pod_spec["topologySpreadConstraints"]:
                    selector = constraint["labelSelector"]["matchLabels"]
                    self.assertTrue(_selects(selector, pod_labels))

    def test_clients_reach_every_pod_through_the_service(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                sts = release.statefulset
                service = release.one("Service", sts["metadata"]["name"])
                self.assertEqual(service["spec"]["type"], expect["service_type"])
                pod_labels = sts["spec"]["template"]["metadata"]["labels"]
                self.assertTrue(_selects(service["spec"]["selector"], pod_labels))
                (port,) = service["spec"]["ports"]
                self.assertEqual(port["targetPort"], "mqtt")
                self.assertIn("mqtt", self.ports_of(release))
                self.assertEqual(port.get("nodePort"), expect.get("node_port"))
                # Metrics and admin never go out through the clients' Service.
                self.assertEqual(len(service["spec"]["ports"]), 1)

    def test_disruption_budget_keeps_a_majority(self):
        for label, release, expect in self.value_sets():
            with self.subTest(values=label):
                pdb = release.one("PodDisruptionBudget")
                self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
                pod_labels = release.statefulset["spec"]["template"]["metadata"]["labels"]
                self.assertTrue(_selects(pdb["spec"]["selector"]["matchLabels"], pod_labels))

    def test_service_monitor_scrapes_every_pod(self):
        release = self.release("servicemonitor")
        monitor = release.one("ServiceMonitor")
        self.assertEqual(monitor["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(monitor["metadata"]["labels"]["release"], "prometheus")
        self.assertEqual(monitor["spec"]["namespaceSelector"]["matchNames"], [chart.NAMESPACE])
        selected = [s for s in release.of_kind("Service")
                    if _selects(monitor["spec"]["selector"]["matchLabels"],
                                s["metadata"]["labels"])]
        # The headless Service lists every pod, ready or not: a node that is not serving is the
        # one whose metrics matter most.
        self.assertEqual([s["metadata"]["name"] for s in selected],
                         [release.statefulset["spec"]["serviceName"]])
        (endpoint,) = monitor["spec"]["endpoints"]
        self.assertEqual(endpoint["path"], "/metrics")
        ports = {p["name"]: p for p in selected[0]["spec"]["ports"]}
        http_port = meshmqd_flags.split_host_port(release.flags()["http_listen"])[1]
        self.assertEqual(ports[endpoint["port"]]["port"], http_port)
        self.assertEqual(ports[endpoint["port"]]["targetPort"], "http")

    def test_changed_settings_restart_the_pods(self):
        base = self.release("defaults").statefulset["spec"]["template"]["metadata"]["annotations"]
        changed = chart.render(self.tools, self.workdir, "changed-config", None,
                               ["--set", "config.durability=fsync",
                                "--set", "auth.adminToken=another-token"])
        annotations = changed.statefulset["spec"]["template"]["metadata"]["annotations"]
        self.assertNotEqual(annotations["checksum/config"], base["checksum/config"])
        self.assertNotEqual(annotations["checksum/secret"], base["checksum/secret"])
        again = chart.render(self.tools, self.workdir, "defaults-again", None)
        self.assertEqual(again.statefulset["spec"]["template"]["metadata"]["annotations"], base)


if __name__ == "__main__":
    unittest.main()
