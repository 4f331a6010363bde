"""The docs name only commands and flags that exist: every ``tierctl <command> [--flag ...]`` in a code
span or code block of README.md, packaging/README.md and docs/*.md is a command of this version's parser
(``tierctl.cli.build_parser``) with those options, and ``tierctl <command> --help`` parses. On the pages
meant for operators (README, packaging/README, docs/real-machine.md) a ``--flag`` standing alone must be
an option of some tierctl command, or one of the other programs' flags listed in ``FOREIGN_FLAGS``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tierctl.cli import build_parser, docgen, main

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", REPO / "packaging" / "README.md", *(REPO / "docs").glob("*.md")])
OPERATOR_PAGES = [REPO / "README.md", REPO / "packaging" / "README.md", REPO / "docs" / "real-machine.md"]
# flags of other programs on the operator pages (pip, venv, podman, systemd-analyze, daxctl ...)
FOREIGN_FLAGS = {"--system-site-packages", "--offline", "--mode", "--now", "--wheel", "--system-ram"}

TREE = {" ".join(c.path): c for c in docgen.command_tree(build_parser())}
GLOBAL = {"--help", "-h", "--version"}
# "tierctl" as a program name: at the start, after a space, a path or "-m"; not tierctl.x, tierctl/x, =tierctl
INVOCATION = re.compile(r"(?:^|(?<=[\s/(]))tierctl((?:[ \t]+[^\s;|&>#`]+)*)")
FLAG = re.compile(r"^\[?(--[a-z][a-z0-9-]*)")
WORD = re.compile(r"^[a-z][a-z-]*$")
LEADING = re.compile(r"^\s*(?:\$\s+|sudo\s+)?(?:\S*/)?$")  # what may come before a program name


def code_texts(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every code span (over line breaks too) and of every line of every fenced
    block, comments dropped from block lines."""
    out: list[tuple[int, str]] = []
    prose: list[str] = []
    fenced = False
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            prose.append("")
        elif fenced:
            out.append((no, re.split(r"(?:^|\s)#\s", line, maxsplit=1)[0]))
            prose.append("")
        else:
            prose.append(line)
    text = "\n".join(prose)
    for m in re.finditer(r"`([^`]+)`", text):
        out.append((text.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split())))
    return sorted(out)


def invocations(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, command path, flags) for each ``tierctl ...`` followed by a lower-case word: the command
    path is the longest run of words that names a command; flags are the ``--x`` after it up to a
    shell separator. A word that names no command is reported only where the text starts with the
    program (``tierctl verify``, ``$ /usr/local/bin/tierctl nope``): elsewhere "tierctl" may be a
    namespace or a group (``kubectl -n tierctl logs``, "the tierctl mutators group")."""
    found = []
    for no, text in code_texts(path):
        for m in INVOCATION.finditer(text):
            words = m.group(1).split()
            if not words or not WORD.match(words[0]):
                continue  # "systemctl status tierctl", "usermod -aG tierctl USER", "g tierctl -"
            cmd: list[str] = []
            for w in words:
                if " ".join([*cmd, w]) in TREE:
                    cmd.append(w)
                else:
                    break
            if not cmd:
                if LEADING.match(text[: m.start()]):
                    found.append((no, words[0], []))  # not a command: reported by the test
                continue
            flags = [f.group(1) for w in words[len(cmd) :] if (f := FLAG.match(w))]
            found.append((no, " ".join(cmd), flags))
    return found


def options(cmd: str) -> set[str]:
    return {flag for o in TREE[cmd].options for flag in o.flags} | GLOBAL


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_tierctl_command_and_flag_in_the_docs_exists(path: Path) -> None:
    problems = []
    for no, cmd, flags in invocations(path):
        if cmd not in TREE:
            problems.append(f"{path.name}:{no}: `tierctl {cmd}` is not a command")
            continue
        problems += [f"{path.name}:{no}: `tierctl {cmd}` has no {f}" for f in flags if f not in options(cmd)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", OPERATOR_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_flags_on_the_operator_pages_are_tierctl_options(path: Path) -> None:
    known = {f for c in TREE.values() for o in c.options for f in o.flags} | GLOBAL | FOREIGN_FLAGS
    missing = [
        f"{path.name}:{no}: {flag}"
        for no, text in code_texts(path)
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)
        if flag not in known
    ]
    assert not missing, "\n".join(missing)


def test_every_command_the_docs_name_parses_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    cmds = {cmd for path in DOCS for _, cmd, _ in invocations(path)}
    page = {cmd for _, cmd, _ in invocations(REPO / "docs" / "real-machine.md")}
    assert {"unit", "daemon", "samplers", "sample", "profile check", "topology", "move"} <= page <= cmds
    for cmd in sorted(cmds):
        with pytest.raises(SystemExit) as done:
            main([*cmd.split(), "--help"])
        assert done.value.code == 0, cmd
    capsys.readouterr()


def test_the_checker_finds_what_is_not_there(tmp_path: Path) -> None:
    page = tmp_path / "x.md"
    page.write_text("Run `tierctl verify` or\n```sh\ntierctl daemon --no-such-flag  # --nor-this\n```\n")
    assert invocations(page) == [(1, "verify", []), (3, "daemon", ["--no-such-flag"])]


def test_the_readme_first_screen_keeps_two_commands_and_links_the_real_machine_page() -> None:
    head = (REPO / "README.md").read_text(encoding="utf-8").split("\n## ")[0]
    block = head.split("```sh\n")[1].split("```")[0]
    assert [line.split()[0] for line in block.splitlines()] == ["scripts/demo", "scripts/test"]
    assert "](docs/real-machine.md)" in head
