"""Shell completion and the man page generated from the argparse tree: every command and every visible
long option is in both; the scripts parse and complete in bash (and zsh where it is installed); the
page renders without groff warnings."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tierctl.cli import build_parser, main
from tierctl.cli.docgen import FILES, bash_completion, command_tree, exit_codes, manpage, zsh_completion
from tierctl.errors import (
    EXIT_INTERNAL,
    DaemonUnreachableError,
    InputError,
    PermissionDeniedError,
    TierctlError,
)

PARSER = build_parser()
TREE = command_tree(PARSER)
BASH = bash_completion(TREE)
ZSH = zsh_completion(TREE)
MAN = manpage(PARSER)


def visible_long_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every long option of ``parser`` and its subparsers, walked here independently of docgen."""
    out: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= visible_long_options(sub)
        elif action.help != argparse.SUPPRESS:
            out |= {f for f in action.option_strings if f.startswith("--")}
    return out


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [(*path, name), *command_paths(sub, (*path, name))]
    return out


def man_source_text(page: str) -> str:
    """The page's words with troff escapes undone (\\- is a hyphen, \\fB ... \\fR are fonts)."""
    return re.sub(r"\\f[BIRP]", "", page).replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")


PATHS = command_paths(PARSER)
LONG_OPTIONS = visible_long_options(PARSER)


def test_the_tree_is_complete() -> None:
    assert [c.path for c in TREE[1:]] == PATHS
    assert len(PATHS) > 20 and ("profile", "check") in PATHS and ("unit",) in PATHS
    assert {"--version", "--profiles", "--hint-faults", "--exec"} <= LONG_OPTIONS


@pytest.mark.parametrize("script", [BASH, ZSH], ids=["bash", "zsh"])
def test_completion_names_every_command_and_long_option(script: str) -> None:
    words = set(re.findall(r"[A-Za-z0-9_-]+", script))
    for path in PATHS:
        assert path[-1] in words, path
        assert f"{' '.join(path)!r}" in script or f"{path[-1]})" in script, f"no spec for {path}"
    missing = {o for o in LONG_OPTIONS if o not in words}
    assert not missing


def test_man_page_names_every_command_and_long_option() -> None:
    text = man_source_text(MAN)
    for path in PATHS:
        assert f'.SS "tierctl {" ".join(path)}"' in text, path
    words = set(re.findall(r"--[A-Za-z0-9-]+", text))
    assert not LONG_OPTIONS - words


def test_man_page_exit_codes_and_files() -> None:
    codes = dict(exit_codes())
    expected = {
        0,
        TierctlError.exit_code,
        InputError.exit_code,
        DaemonUnreachableError.exit_code,
        PermissionDeniedError.exit_code,
        EXIT_INTERNAL,
        130,
    }
    assert set(codes) == expected
    status = MAN.split(".SH EXIT STATUS", 1)[1].split(".SH ", 1)[0]
    for code in expected:
        assert f".TP\n{code}\n" in status, code
    files = man_source_text(MAN.split(".SH FILES", 1)[1].split(".SH ", 1)[0])
    for path, _ in FILES:
        assert path in files
    assert {"/etc/tierctl/profiles", "/var/lib/tierctl"} <= {p for p, _ in FILES}
    assert any(p.startswith("/run/tierctl/") for p, _ in FILES)


def test_cli_prints_what_docgen_generates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    assert capsys.readouterr().out == BASH
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out == ZSH
    assert main(["manpage"]) == 0
    assert capsys.readouterr().out == MAN
    assert main(["completion", "fish"]) == 2


# ------------------------------------------------------------------------------------------ shells
BASH_BIN = shutil.which("bash")
ZSH_BIN = shutil.which("zsh")

# (words on the line, the last one being completed) -> words that must be offered
CASES = [
    (["tierctl", ""], {"sim", "daemon", "profile", "unit", "completion", "manpage"}),
    (["tierctl", "pro"], {"profile"}),
    (["tierctl", "profile", "c"], {"check"}),
    (["tierctl", "profile", "check", "--"], {"--profiles", "--json"}),
    (["tierctl", "daemon", "--hint-faults", ""], {"auto", "on", "off"}),
    (["tierctl", "daemon", "--profiles", "/etc", "--hi"], {"--hint-faults"}),
    (["tierctl", "pin", "/a.slice", "--tier", "s"], {"slow"}),
    (["tierctl", "completion", ""], {"bash", "zsh"}),
]


def _complete(shell: str, script: Path, words: list[str]) -> set[str]:
    if shell == "bash":
        driver = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _tierctl; '
        driver += 'printf "%s\\n" "${COMPREPLY[@]}"'
        cmd = [str(BASH_BIN), "--norc", "--noprofile", "-c", driver, "bash", str(script), *words]
    else:  # as zsh's _bash_complete calls it: COMP_WORDS 1-based, COMP_CWORD the 0-based index
        driver = 'autoload -U compinit && compinit -u -D; source "$1"; shift; COMP_WORDS=("$@"); '
        driver += 'COMP_CWORD=$(( $# - 1 )); _tierctl; print -rl -- "${COMPREPLY[@]}"'
        cmd = [str(ZSH_BIN), "-f", "-c", driver, "zsh", str(script), *words]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stderr, p.stderr
    return {w for w in p.stdout.splitlines() if w}


@pytest.mark.skipif(BASH_BIN is None, reason="bash is not installed here")
def test_bash_accepts_and_completes(tmp_path: Path) -> None:
    script = tmp_path / "tierctl.bash"
    script.write_text(BASH)
    p = subprocess.run([str(BASH_BIN), "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stderr, p.stderr
    for words, want in CASES:
        got = _complete("bash", script, words)
        assert want <= got, (words, got)
        assert all(w.startswith(words[-1]) for w in got), (words, got)  # bash filters by the prefix


@pytest.mark.skipif(ZSH_BIN is None, reason="zsh is not installed here (the bash part is tested)")
def test_zsh_accepts_and_completes(tmp_path: Path) -> None:
    script = tmp_path / "tierctl.zsh"
    script.write_text(ZSH)
    p = subprocess.run([str(ZSH_BIN), "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stderr, p.stderr
    for words, want in CASES:
        # zsh's compgen emulation returns every candidate; compadd filters by the prefix afterwards
        assert want <= _complete("zsh", script, words), words


# --------------------------------------------------------------------------------------- rendering
GROFF = shutil.which("groff")
MAN_BIN = shutil.which("man")


@pytest.mark.skipif(GROFF is None and MAN_BIN is None, reason="neither groff nor man is installed here")
def test_man_page_renders_without_warnings(tmp_path: Path) -> None:
    page = tmp_path / "tierctl.8"
    page.write_text(MAN)
    if GROFF is not None:
        p = subprocess.run(
            [GROFF, "-man", "-Tascii", "-P-cbou", "-ww", str(page)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    else:
        cmd = [str(MAN_BIN), "--warnings", "-l", str(page)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={"MANPAGER": "cat"})
    assert p.returncode == 0 and not p.stderr, p.stderr
    rendered = set(re.findall(r"--[A-Za-z0-9-]+", p.stdout))
    assert not LONG_OPTIONS - rendered
    for path in PATHS:
        assert f"tierctl {' '.join(path)}" in p.stdout


def test_roff_escapes_a_leading_dot() -> None:
    from tierctl.cli.docgen import _roff

    assert _roff(".hidden -x \\y") == "\\&.hidden \\-x \\ey"
