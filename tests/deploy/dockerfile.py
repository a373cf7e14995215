"""Reads deploy/docker/Dockerfile into its stages and instructions (no Docker engine here)."""

import json
import os
import re
import shlex

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.abspath(os.path.join(_HERE, "..", ".."))
DOCKERFILE = os.path.join(_REPO, "deploy", "docker", "Dockerfile")


class Stage:
    def __init__(self, base, name):
        self.base = base
        self.name = name
        self.instructions = []  # (KEYWORD, argument text)

    def all(self, keyword):
        return [text for kw, text in self.instructions if kw == keyword]

    def last(self, keyword):
        found = self.all(keyword)
        return found[-1] if found else None


def instructions(text):
    """(KEYWORD, text) per instruction: continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue  # Docker drops comment lines, also inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        logical.append(current)
        current = ""
    if current:
        logical.append(current)
    parsed = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        parsed.append((keyword.upper(), re.sub(r"\s+", " ", rest).strip()))
    return parsed


def stages(path=DOCKERFILE):
    with open(path) as f:
        text = f.read()
    result = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+ )?(\S+)(?: [Aa][Ss] (\S+))?", rest)
            if not match:
                raise AssertionError("cannot read FROM %s" % rest)
            result.append(Stage(match.group(1), match.group(2)))
        elif result:
            result[-1].instructions.append((keyword, rest))
    return result


def exec_form(text):
    """CMD/ENTRYPOINT arguments: the JSON (exec) form, or shell words."""
    if text.startswith("["):
        return json.loads(text)
    return shlex.split(text)


def user_ids(stage):
    """The final USER of a stage as (uid, gid) strings."""
    user = stage.last("USER")
    if user is None:
        return None
    uid, _, gid = user.partition(":")
    return uid, gid or None
