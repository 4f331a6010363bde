"""The pure core of tierctl: arrays in, arrays out, no I/O.

Data flows one way: samples -> heat model -> policy -> plan -> mover.
"""
