"""The interactive terminal UI (``tierctl tui``): a thin Textual view over the daemon's Service.

``source`` (no Textual) collects frames from an in-process Service or from the daemon's socket;
``app`` and the view modules render them and send the operator's overrides back through the source.
"""
