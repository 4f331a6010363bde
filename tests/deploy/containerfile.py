"""Reading deploy/Containerfile: its stages and their instructions, and its RUN steps as shell commands that
can run outside a container (tests/deploy/test_image.py). Only the Containerfile syntax that file uses is
understood: comments, backslash continuations, FROM ... AS name, and instructions in shell or JSON form."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ENV, ...
    args: str  # the rest of the (joined) line
    line: int  # where it starts, 1-based

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of ENTRYPOINT / CMD; ValueError when the instruction is in shell form."""
        value = json.loads(self.args)
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"line {self.line}: not a JSON array of strings: {self.args}")
        return value


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        if len(found) != 1:
            raise ValueError(f"stage {self.name}: {len(found)} {keyword} instructions, expected 1")
        return found[0]


def parse(path: Path) -> dict[str, Stage]:
    """The stages of a Containerfile by name, in order."""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for ins in _instructions(path.read_text(encoding="utf-8")):
        if ins.keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", ins.args, re.IGNORECASE)
            if not m:
                raise ValueError(f"line {ins.line}: cannot read FROM {ins.args}")
            current = Stage(m.group(2) or str(len(stages)), m.group(1))
            stages[current.name] = current
        elif current is None:
            if ins.keyword != "ARG":
                raise ValueError(f"line {ins.line}: {ins.keyword} before FROM")
        else:
            current.instructions.append(ins)
    return stages


def _instructions(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if not buf:
            start = no
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line)
        joined = " ".join(b for b in buf if b)
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buf = []
    if buf:
        raise ValueError(f"line {start}: the file ends inside a continued instruction")
    return out


def run_commands(ins: Instruction) -> list[list[str]]:
    """A ``RUN a && b && c`` step as its commands, each as an argument list (shell quoting undone; a
    ``$(...)`` substitution stays one argument, for the caller to expand)."""
    if ins.keyword != "RUN":
        raise ValueError(f"line {ins.line}: not a RUN instruction")
    # operators outside quotes and outside a $(...) substitution (which may hold anything)
    outside = re.sub(r"\"[^\"]*\"|'[^']*'|\$\([^)]*\)", "", ins.args)
    if any(op in outside for op in ("||", ";", "|", "<", ">", "`")):
        raise ValueError(f"line {ins.line}: only `a && b` chains are understood: {ins.args}")
    return [shlex.split(part) for part in ins.args.split("&&")]


def copy_args(ins: Instruction) -> tuple[str | None, list[str], str]:
    """``COPY [--from=STAGE] SRC... DEST`` as (stage or None, sources, destination)."""
    words = shlex.split(ins.args)
    stage = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            stage = flag.split("=", 1)[1]
        else:
            raise ValueError(f"line {ins.line}: unsupported COPY flag {flag}")
    if len(words) < 2:
        raise ValueError(f"line {ins.line}: COPY needs a source and a destination")
    return stage, words[:-1], words[-1]
