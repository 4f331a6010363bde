"""``tierctl tui`` argument handling (the UI itself is exercised by the other tests)."""

from __future__ import annotations

import pytest

from tierctl.cli import main


@pytest.mark.parametrize(
    "argv,message",
    [
        (["tui", "--sim", "--socket", "/tmp/x.sock"], "choose --sim or --socket, not both"),
        (["tui", "--refresh", "0"], "--refresh: must be > 0"),
        (["tui", "--refresh", "nan"], "--refresh: must be a finite number"),
        (["tui", "--sim", "--period", "-1"], "--period: must be > 0"),
        (["tui", "--sim", "no-such-workload"], "unknown workload 'no-such-workload'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tierctl: error: ") and message in err and err.count("\n") == 1
