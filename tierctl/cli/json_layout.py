"""Where things are in a JSON text, for errors as ``file:line``: the line of each top-level key of an
object, of each entry of its "knobs" list, and of the second occurrence of a duplicate key.

Used by :mod:`tierctl.cli.knobs_survey` on knob records the JSON parser accepted (or refused as
holding a duplicate key); pure functions of the text.
"""

from __future__ import annotations

import json
import re


def line_of(text: str, offset: int) -> int:
    """The line (from 1) holding character ``offset`` of ``text``."""
    return text.count("\n", 0, offset) + 1


def layout(text: str) -> tuple[dict[str, int], list[int]]:
    """The line of each top-level key of a JSON object, and of each entry of its "knobs" list (for
    errors as file:line; the text parsed as JSON already)."""
    dec = json.JSONDecoder()
    space = re.compile(r"\s*")
    keys: dict[str, int] = {}
    entries: list[int] = []

    def skip(i: int) -> int:
        m = space.match(text, i)
        return m.end() if m else i

    try:
        i = skip(0)
        if not text.startswith("{", i):
            return keys, entries
        i = skip(i + 1)
        while i < len(text) and text[i] != "}":
            key, j = dec.raw_decode(text, i)
            keys[str(key)] = line_of(text, i)
            j = skip(skip(j) + 1)  # past ":"
            if key == "knobs" and text.startswith("[", j):
                j = skip(j + 1)
                while text[j] != "]":
                    entries.append(line_of(text, j))
                    _, j = dec.raw_decode(text, j)
                    j = skip(j)
                    if text[j] == ",":
                        j = skip(j + 1)
                j += 1
            else:
                _, j = dec.raw_decode(text, j)
            i = skip(j)
            if i < len(text) and text[i] == ",":
                i = skip(i + 1)
    except (ValueError, IndexError):
        pass
    return keys, entries


def duplicate_line(text: str, message: str) -> int | None:
    """The line of the second ``"key":`` for strict_json's "duplicate key 'x'" (None otherwise)."""
    m = re.fullmatch(r"duplicate key '(.*)'", message)
    if m is None:
        return None
    seen = [x.start() for x in re.finditer(re.escape(json.dumps(m.group(1))) + r"\s*:", text)]
    return line_of(text, seen[1]) if len(seen) > 1 else None
