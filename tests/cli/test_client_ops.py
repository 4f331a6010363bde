"""The CLI's mutation commands derive from the API's declaration (tierctl.api.protocol.OPS): every
mutation is a subcommand of its own name whose help and description are the declaration's ``cli``
texts, and a plain success prints the declared ``done``."""

from __future__ import annotations

import argparse
import inspect
from typing import Any

import pytest

from tierctl.api.protocol import MUTATIONS, OPS
from tierctl.cli import build_parser, client_cmds, main


def _subcommands() -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    """The top-level subparsers by name, and each one's line in ``tierctl --help``."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return dict(action.choices), helps
    raise AssertionError("tierctl has no subcommands")


@pytest.mark.parametrize("op", sorted(MUTATIONS))
def test_every_mutation_is_a_subcommand_with_the_declared_texts(op: str) -> None:
    cli = OPS[op].cli
    assert cli is not None, f"the mutation {op} declares no cli"
    parsers, helps = _subcommands()
    assert op in parsers, f"no `tierctl {op}`"
    assert helps[op] == cli.help and cli.help
    assert parsers[op].description == cli.description and cli.description
    assert parsers[op].get_default("op") == op


def test_only_declared_mutations_have_their_own_arguments() -> None:
    assert set(client_cmds.MUTATION_CMDS) <= MUTATIONS
    # an op without its own arguments prints what its declaration says a success is
    for name in MUTATIONS - set(client_cmds.MUTATION_CMDS):
        cli = OPS[name].cli
        assert cli is not None and cli.done, name


def test_the_cli_help_is_the_declaration_not_a_copy() -> None:
    """No mutation's help text is written in the CLI module: it lives in the declaration only."""
    src = inspect.getsource(client_cmds)
    for name in MUTATIONS:
        cli = OPS[name].cli
        assert cli is not None
        assert cli.help not in src and cli.description not in src, name


def test_the_subcommands_list_the_mutations_in_declared_order() -> None:
    parsers, _ = _subcommands()
    shown = [n for n in parsers if n in MUTATIONS]
    assert shown == [n for n in OPS if n in MUTATIONS]


@pytest.mark.parametrize("op", sorted(n for n in MUTATIONS if n not in client_cmds.MUTATION_CMDS))
def test_a_plain_success_prints_the_declared_done(
    op: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_call(args: argparse.Namespace, name: str, **op_args: Any) -> Any:
        calls.append((name, op_args))
        return {}

    monkeypatch.setattr(client_cmds, "_call", fake_call)
    assert main([op]) == 0
    cli = OPS[op].cli
    assert cli is not None
    assert calls == [(op, {})] and capsys.readouterr().out == f"{cli.done}\n"
