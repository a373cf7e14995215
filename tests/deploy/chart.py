"""Renders the Helm chart (deploy/helm/meshmq) with helm, checks the manifests against
Kubernetes' schemas (validate_manifests.cjs), and answers the tests' questions about them: which
object, which container, what a path inside the pod holds, which flags meshmqd gets."""

import base64
import json
import os
import posixpath
import subprocess

import meshmqd_flags

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.abspath(os.path.join(_HERE, "..", ".."))
CHART = os.path.join(_REPO, "deploy", "helm", "meshmq")
VALUES_DIR = os.path.join(_HERE, "values")
RELEASE = "mq"
NAMESPACE = "mqtt-test"
CONTAINER = "meshmqd"
CUSTOM_RESOURCE_KINDS = {"ServiceMonitor"}


def helm(tools, *args, check=True):
    result = subprocess.run([tools.helm, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError("helm %s failed (%d):\n%s" % (" ".join(args), result.returncode,
                                                            result.stderr))
    return result


def values_args(values_file):
    return ["-f", os.path.join(VALUES_DIR, values_file)] if values_file else []


def render(tools, workdir, label, values_file=None, extra_args=()):
    """helm template, then the schemas; the objects as a Release."""
    result = helm(tools, "template", RELEASE, CHART, "--namespace", NAMESPACE,
                  *values_args(values_file), *extra_args)
    rendered = os.path.join(workdir, label + ".yaml")
    with open(rendered, "w") as f:
        f.write(result.stdout)
    json_path = os.path.join(workdir, label + ".json")
    check = subprocess.run(
        [tools.node, os.path.join(_HERE, "validate_manifests.cjs"), rendered, json_path],
        env=tools.node_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=120)
    if check.returncode != 0:
        raise AssertionError("%s: Kubernetes' schemas reject the manifests:\n%s"
                             % (label, check.stdout))
    with open(json_path) as f:
        return Release(json.load(f), json_path)


class MountedFile:
    """What a path inside the pod holds: a key of a ConfigMap or Secret (rendered here, or one
    the user manages: content None), or a directory on a writable volume (key None)."""

    def __init__(self, volume, key, content):
        self.volume = volume
        self.key = key
        self.content = content


class Release:
    def __init__(self, objects, json_path):
        self.objects = objects
        self.json_path = json_path

    def of_kind(self, kind):
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind, name=None):
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        if len(found) != 1:
            raise AssertionError("expected one %s%s, found %d" % (
                kind, " " + name if name else "", len(found)))
        return found[0]

    @property
    def statefulset(self):
        return self.one("StatefulSet")

    @property
    def pod_spec(self):
        return self.statefulset["spec"]["template"]["spec"]

    @property
    def container(self):
        containers = [c for c in self.pod_spec["containers"] if c["name"] == CONTAINER]
        if len(containers) != 1:
            raise AssertionError("no container %r in the StatefulSet" % CONTAINER)
        return containers[0]

    def volume(self, name):
        for volume in self.pod_spec.get("volumes", []):
            if volume["name"] == name:
                return volume
        for claim in self.statefulset["spec"].get("volumeClaimTemplates", []):
            if claim["metadata"]["name"] == name:
                return {"name": name, "persistentVolumeClaim": claim}
        raise AssertionError("the pod mounts volume %r, which it does not have" % name)

    def mount_of(self, path):
        """The volume mount holding `path` inside the container, and path relative to it."""
        best = None
        for mount in self.container.get("volumeMounts", []):
            root = mount["mountPath"].rstrip("/")
            if path == root or path.startswith(root + "/"):
                if best is None or len(root) > len(best[0]["mountPath"].rstrip("/")):
                    best = (mount, posixpath.relpath(path, root))
        if best is None:
            raise AssertionError("%s is on no volume of the container" % path)
        return best

    def file_at(self, path):
        mount, relative = self.mount_of(path)
        volume = self.volume(mount["name"])
        if "configMap" in volume or "secret" in volume:
            source = volume.get("configMap") or volume["secret"]
            key = relative
            for item in source.get("items", []):
                if item["path"] == relative:
                    key = item["key"]
            if "configMap" in volume:
                data = self.one("ConfigMap", source["name"])["data"]
                if key not in data:
                    raise AssertionError("ConfigMap %s has no %s (for %s)" % (
                        source["name"], key, path))
                return MountedFile(volume, key, data[key].encode())
            secrets = [s for s in self.of_kind("Secret")
                       if s["metadata"]["name"] == source["secretName"]]
            if not secrets:  # the user's own Secret (auth.existingSecret)
                return MountedFile(volume, key, None)
            data = secrets[0].get("data", {})
            if key not in data:
                raise AssertionError("Secret %s has no %s (for %s)" % (
                    source["secretName"], key, path))
            return MountedFile(volume, key, base64.b64decode(data[key]))
        return MountedFile(volume, None, None)

    def meshmqd_args(self):
        """The container's arguments, each --flagfile replaced by the flag lines it holds."""
        args = []
        for arg in self.container["args"]:
            if arg.startswith("--flagfile="):
                content = self.file_at(arg.split("=", 1)[1]).content
                if content is None:
                    raise AssertionError("the flag file %s is not rendered by the chart" % arg)
                args.extend(meshmqd_flags.flagfile_lines(content.decode()))
            else:
                args.append(arg)
        return args

    def flags(self):
        """{name: value} of every flag meshmqd gets; a flag given twice fails."""
        flags = {}
        for name, value in meshmqd_flags.parse_flags(self.meshmqd_args()):
            if name in flags:
                raise AssertionError("--%s is given twice" % name)
            flags[name] = value
        return flags
