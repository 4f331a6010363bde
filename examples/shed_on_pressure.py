#!/usr/bin/env python3
"""Shed load when tierctl asks (docs/pressure.md): subscribe to the daemon's events and act on a
pressure_notify naming this process's cgroup. Needs read access to the socket (group tierctl).
Usage: shed_on_pressure.py [--socket PATH] [--cgroup PATH] [--once]"""

import argparse
import json
import socket
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--socket", default="/run/tierctl/tierctl.sock")
ap.add_argument("--cgroup", default=Path("/proc/self/cgroup").read_text().split("::", 1)[-1].strip())
ap.add_argument("--once", action="store_true", help="exit after the first notification")
args = ap.parse_args()
conn = socket.socket(socket.AF_UNIX)
conn.connect(args.socket)
conn.sendall(b'{"v": 1, "id": 1, "op": "subscribe", "args": {}}\n')
for line in conn.makefile("r", encoding="utf-8"):
    event = json.loads(line).get("event", {})
    if event.get("kind") == "pressure_notify" and event.get("cgroup") == args.cgroup:
        # here a real service drops caches, stops taking new work, flushes buffers ...
        print(f"shedding {event['bytes']} bytes before {event['deadline']:.0f}", flush=True)
        if args.once:
            break
