"""A pod of the Helm chart played on this machine: what a test needs to run meshmqd with exactly
the arguments the chart gives it, and the preStop hook with exactly its command.

Only what cannot exist outside Kubernetes is replaced: each volume becomes a directory (its
ConfigMap or Secret files written into it), paths inside the pod become those directories,
$(POD_NAME) becomes a pod name, the cluster's DNS names become this machine's (the headless
Service's: localhost; the pod's own: 127.0.0.1), the listeners' ports become free ones, and the
binaries in the image become the ones under test.
"""

import os
import re

import meshmqd_flags

_IMAGE_BINARY_DIR = "/usr/local/bin/"
_LISTENERS = ("mqtt_listen", "cluster_listen", "http_listen", "admin_listen")


class LocalPod:
    def __init__(self, release, root, pod_name, free_port, user_secrets=None):
        """user_secrets: {key: bytes} standing in for a Secret the user manages."""
        self.release = release
        self.pod_name = pod_name
        self.mounts = {}  # mountPath inside the pod -> directory here
        self.ports = {}   # port inside the pod -> port here
        for mount in release.container.get("volumeMounts", []):
            local = os.path.join(root, mount["name"])
            os.makedirs(local, exist_ok=True)
            self.mounts[mount["mountPath"].rstrip("/")] = local
            self._write_files(mount, local, user_secrets or {})
        flags = release.flags()
        for flag in _LISTENERS:
            _, port = meshmqd_flags.split_host_port(flags[flag])
            self.ports[port] = free_port()
        self._localize_flagfiles()

    def _write_files(self, mount, local, user_secrets):
        volume = self.release.volume(mount["name"])
        source = volume.get("configMap") or volume.get("secret")
        if source is None:
            return  # emptyDir or a PersistentVolumeClaim: an empty directory
        if "items" in source:
            paths = [item["path"] for item in source["items"]]
        else:
            name = source.get("name") or source["secretName"]
            kind = "ConfigMap" if "configMap" in volume else "Secret"
            paths = list(self.release.one(kind, name).get("data", {}))
        for path in paths:
            mounted = self.release.file_at(mount["mountPath"].rstrip("/") + "/" + path)
            content = mounted.content
            if content is None:
                content = user_secrets[mounted.key]
            with open(os.path.join(local, path), "wb") as f:
                f.write(content)

    def _localize_flagfiles(self):
        for arg in self.release.container["args"]:
            if arg.startswith("--flagfile="):
                path = self.local_path(arg.split("=", 1)[1])
                with open(path) as f:
                    lines = f.read().splitlines()
                with open(path, "w") as f:
                    f.write("\n".join(self.localize(line) if line.startswith("--") else line
                                      for line in lines) + "\n")

    def local_path(self, pod_path):
        for mount_path in sorted(self.mounts, key=len, reverse=True):
            if pod_path == mount_path or pod_path.startswith(mount_path + "/"):
                return self.mounts[mount_path] + pod_path[len(mount_path):]
        raise AssertionError("%s is on no volume" % pod_path)

    def localize(self, arg):
        """One argument as it must read on this machine."""
        arg = arg.replace("$(POD_NAME)", self.pod_name)
        peers_dns = self.release.flags()["peers_dns"]
        arg = arg.replace("%s.%s" % (self.pod_name, peers_dns), "127.0.0.1")
        arg = arg.replace(peers_dns, "localhost")
        if arg.startswith(_IMAGE_BINARY_DIR):
            name = arg[len(_IMAGE_BINARY_DIR):]
            return {"meshmqd": meshmqd_flags.meshmqd_path(),
                    "meshmqctl": meshmqd_flags.meshmqctl_path()}[name]
        match = re.fullmatch(r"(--[a-z0-9_]+=)(.*)", arg)
        if not match:
            return arg
        prefix, value = match.groups()
        for mount_path in sorted(self.mounts, key=len, reverse=True):
            if value == mount_path or value.startswith(mount_path + "/"):
                return prefix + self.local_path(value)
        port = re.search(r":([0-9]+)$", value)
        if port and int(port.group(1)) in self.ports:
            return prefix + value[:port.start(1)] + str(self.ports[int(port.group(1))])
        return arg

    def meshmqd_command(self):
        return [meshmqd_flags.meshmqd_path()] + [self.localize(a)
                                                 for a in self.release.container["args"]]

    def pre_stop_command(self):
        command = self.release.container["lifecycle"]["preStop"]["exec"]["command"]
        return [self.localize(a) for a in command]

    def port(self, flag):
        """The port here of a listener flag (mqtt_listen, ...)."""
        return self.ports[meshmqd_flags.split_host_port(self.release.flags()[flag])[1]]

    def working_dir(self):
        """The image's WORKDIR is the data volume's mount (deploy/docker/Dockerfile)."""
        return self.local_path(os.path.dirname(self.release.flags()["data_dir"]))
