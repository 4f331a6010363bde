"""tierctl: a per-cgroup tiered-memory placement controller."""

__version__ = "0.1.0"
