"""The socket API: versioned JSON lines over a Unix socket (docs/api.md).

``ApiServer`` serves a ``ServiceContract`` object; ``ApiClient`` is what the CLI and the TUI use.
"""

from __future__ import annotations

from tierctl.api.client import DEFAULT_SOCKET, ApiClient, DaemonNotRunningError, Subscription, default_socket
from tierctl.api.protocol import MAX_LINE, OPS, RemoteError
from tierctl.api.server import ApiServer, Limits
from tierctl.service.contract import API_VERSION

__all__ = [
    "API_VERSION",
    "DEFAULT_SOCKET",
    "MAX_LINE",
    "OPS",
    "ApiClient",
    "ApiServer",
    "DaemonNotRunningError",
    "Limits",
    "RemoteError",
    "Subscription",
    "default_socket",
]
