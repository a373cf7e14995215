"""meshmqd's command line as the deploy files write it, checked against the binary itself."""

import os
import re
import subprocess

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.abspath(os.path.join(_HERE, "..", ".."))

# absl's own flags (--helpfull lists them, --help does not) that deploy files may use.
ABSL_BUILTIN_FLAGS = {"flagfile"}


def meshmqd_path():
    path = os.environ.get("MESHMQD") or os.path.join(_REPO, "build", "node", "meshmqd")
    if not os.access(path, os.X_OK):
        raise AssertionError("meshmqd not found at %s: set MESHMQD" % path)
    return path


def meshmqctl_path():
    path = os.environ.get("MESHMQCTL") or os.path.join(_REPO, "build", "node", "admin", "meshmqctl")
    if not os.access(path, os.X_OK):
        raise AssertionError("meshmqctl not found at %s: set MESHMQCTL" % path)
    return path


def _listed_flags(binary, help_flag):
    result = subprocess.run([binary, help_flag], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=30)
    return set(re.findall(r"^\s+--([a-z0-9_]+) \(", result.stdout, re.MULTILINE))


def known_flags(binary):
    """Every flag meshmqd documents in --help, and the absl built-ins above it really has."""
    flags = _listed_flags(binary, "--help")
    if not flags:
        raise AssertionError("%s --help lists no flags" % binary)
    builtins = ABSL_BUILTIN_FLAGS & _listed_flags(binary, "--helpfull")
    return flags | builtins


def parse_flags(args):
    """['--name=value', ...] -> [(name, value)]; a bare '--name' is ('name', None)."""
    parsed = []
    for arg in args:
        match = re.fullmatch(r"--([A-Za-z0-9_]+)(?:=(.*))?", arg, re.DOTALL)
        if not match:
            raise AssertionError("not a --flag=value argument: %r" % arg)
        parsed.append((match.group(1), match.group(2)))
    return parsed


def flagfile_lines(text):
    """The flag lines of an absl flag file: blank lines and # comments are skipped."""
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def split_host_port(address):
    host, _, port = address.rpartition(":")
    return host, int(port)


def is_loopback(host):
    return host == "localhost" or host.startswith("127.")
