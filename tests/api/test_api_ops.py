"""The operations are declared once (tierctl.api.protocol.OPS): the server dispatches by the
declaration, the TUI's actions derive from it (and its in-process source serves by it:
tests/tui/test_source.py), the CLI's mutation commands too (tests/cli/test_client_ops.py), and every
declared op names a Service method that takes its arguments."""

from __future__ import annotations

import inspect

import pytest

from tierctl.api.protocol import MUTATIONS, OP_OF_METHOD, OPS
from tierctl.service.contract import ServiceContract
from tierctl.service.service import Service
from tierctl.tui.source import ACTIONS


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_names_a_contract_method_that_takes_its_arguments(name: str) -> None:
    spec = OPS[name]
    for cls in (ServiceContract, Service):
        fn = getattr(cls, spec.method, None)
        assert callable(fn), f"{cls.__name__} has no {spec.method} for op {name}"
        # keyword-only parameters with defaults (reload's trigger) are the daemon's, not the wire's
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.name != "self" and not (p.kind is p.KEYWORD_ONLY and p.default is not p.empty)
        ]
        want = len(spec.args) + (1 if spec.prepare else 0)
        assert len(params) == want, f"{cls.__name__}.{spec.method}{inspect.signature(fn)} for op {name}"
        # the wire's argument names are the method's parameter names, in order
        assert [a.name for a in spec.args] == [p.name for p in params[: len(spec.args)]], name
    if spec.prepare:
        assert callable(getattr(ServiceContract, spec.prepare, None))


def test_tui_actions_are_the_declared_mutations() -> None:
    assert {OP_OF_METHOD[a] for a in ACTIONS} == set(MUTATIONS)
    assert set(ACTIONS) >= {"pin", "unpin", "set_quota", "pause", "resume", "migrate_now", "reload"}


def test_the_server_has_no_per_op_code() -> None:
    """A new op is one OpSpec and one Service method: the dispatcher names no op."""
    import tierctl.api.server as server

    src = inspect.getsource(server.ApiServer._call)
    for name in OPS:
        assert f'"{name}"' not in src, name
