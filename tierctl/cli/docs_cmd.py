"""``tierctl completion bash|zsh`` and ``tierctl manpage``: generated from the argument parser
(tierctl/cli/docgen.py), so they always list every command and option of this version."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tierctl.cli import docgen


def register(sub: Any) -> None:
    p = sub.add_parser(
        "completion",
        help="print the shell completion script",
        description="Print the completion script for SHELL: tierctl completion bash > "
        "/usr/local/share/bash-completion/completions/tierctl, or source <(tierctl completion zsh) in "
        "~/.zshrc after compinit.",
    )
    p.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete in")
    p.set_defaults(func=run_completion)
    m = sub.add_parser(
        "manpage",
        help="print the man page (troff, section 8)",
        description="Print tierctl(8): tierctl manpage > /usr/local/share/man/man8/tierctl.8",
    )
    m.set_defaults(func=run_manpage)


def _parser() -> argparse.ArgumentParser:
    from tierctl.cli import build_parser  # the whole tree; imported here, tierctl.cli imports this module

    return build_parser()


def run_completion(args: argparse.Namespace) -> int:
    tree = docgen.command_tree(_parser())
    text = docgen.bash_completion(tree) if args.shell == "bash" else docgen.zsh_completion(tree)
    sys.stdout.write(text)
    return 0


def run_manpage(args: argparse.Namespace) -> int:
    sys.stdout.write(docgen.manpage(_parser()))
    return 0
