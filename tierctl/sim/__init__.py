"""The simulated two-tier machine: demo, test double and research tool in one.

It implements the same protocols the real kernel adapters do (sampler, memory
view, mover), so the Controller runs on it unchanged.
"""
