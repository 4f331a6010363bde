"""The cgroups table: sortable, filterable, updated in place (selection and scroll survive updates)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from tierctl.tui.keys import TABLE_KEYS, bindings
from tierctl.tui.model import COLUMNS, SORTS, FrameContext, row_cells, visible_rows

RIGHT = frozenset({"fast", "slow", "hot", "hit"})
PIN_STYLE: Mapping[str, str] = MappingProxyType({"fast": "bold cyan", "slow": "bold blue"})
WIDTHS: Mapping[str, int] = MappingProxyType(
    {"profile": 10, "override": 4, "fast": 7, "slow": 7, "hot": 7, "hit": 6}
)
MIN_PATH = 12


class PathCell(Text):
    """The cgroup cell: shows the path elided from the left, remembers the whole path (sort key)."""

    def __init__(self, path: str, width: int) -> None:
        super().__init__(elide_left(path, width))
        self.path = path


def elide_left(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[len(text) - width + 1 :]


def elide_right(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class CgroupTable(DataTable[Text]):
    BINDINGS = bindings(tuple(k for k in TABLE_KEYS if k.action not in ("filter", "clear_filter")))

    class Opened(Message):
        """The operator asked for a cgroup's detail (Enter or a click on the selected row)."""

        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.sort_by = "fast"
        self.reverse = False
        self.needle = ""
        self._all: list[dict[str, Any]] = []
        self._cells: dict[str, tuple[str, ...]] = {}
        self._order: list[str] = []
        self.path_width = 40

    def on_mount(self) -> None:
        self._columns()
        self._title()

    def _columns(self) -> None:
        for key, label in COLUMNS:
            just = "right" if key in RIGHT else "left"
            self.add_column(Text(label, justify=just), key=key, width=WIDTHS.get(key, self.path_width))

    def on_resize(self) -> None:
        others = sum(w + 2 * self.cell_padding for w in WIDTHS.values())
        width = max(MIN_PATH, self.size.width - others - 2 * self.cell_padding - 3)
        if width != self.path_width:
            self.path_width = width
            keep, y = self.selected_path, self.scroll_y
            self.clear(columns=True)
            self._columns()
            self._cells.clear()
            self._order = []
            self._apply()
            if keep is not None:
                self.select_path(keep, scroll=False)
            self.scroll_to(y=y, animate=False)

    # ---- data in -----------------------------------------------------------------------------------
    def show_frame(self, ctx: FrameContext) -> None:
        self.show(ctx.frame.cgroups)

    def show(self, cgroups: list[dict[str, Any]]) -> None:
        self._all = cgroups
        self._apply()

    def set_filter(self, needle: str) -> None:
        self.needle = needle
        self._apply()

    def _apply(self) -> None:
        keep = self.selected_path
        rows = visible_rows(self._all, sort=self.sort_by, reverse=self.reverse, needle=self.needle)
        paths = [str(c.get("path", "?")) for c in rows]
        wanted = set(paths)
        for gone in [p for p in self._cells if p not in wanted]:
            self.remove_row(gone)
            del self._cells[gone]
        for c, path in zip(rows, paths, strict=True):
            cells = row_cells(c)
            old = self._cells.get(path)
            if old is None:
                self.add_row(*self._styled(cells), key=path)
            elif old != cells:
                styled = self._styled(cells)
                for (col, _), a, b, s in zip(COLUMNS, old, cells, styled, strict=True):
                    if a != b:
                        self.update_cell(path, col, s)
            self._cells[path] = cells
        if paths != self._order:
            rank = {p: i for i, p in enumerate(paths)}
            self.sort("path", key=lambda cell: rank[cell.path])
            self._order = paths
        if keep in wanted:
            self.move_cursor(row=self.get_row_index(keep), scroll=False)
        self._title()

    def _styled(self, cells: tuple[str, ...]) -> list[Text]:
        out: list[Text] = [PathCell(cells[0], self.path_width)]
        for (key, _), v in zip(COLUMNS[1:], cells[1:], strict=True):
            style = PIN_STYLE.get(v, "") if key == "override" else ""
            v = elide_right(v, WIDTHS[key])
            out.append(Text(v, style=style, justify="right" if key in RIGHT else "left"))
        return out

    def _title(self) -> None:
        arrow = "▲" if self.reverse else "▼"
        label = dict(COLUMNS)[self.sort_by]
        t = f"cgroups {len(self._cells)}/{len(self._all)} · sort {label} {arrow}"
        if self.needle:
            t += f" · filter “{self.needle}”"
        self.border_title = t

    # ---- selection ---------------------------------------------------------------------------------
    @property
    def selected_path(self) -> str | None:
        if not self._cells or self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:  # no valid cursor yet
            return None
        return str(key.value) if key.value is not None else None

    def select_path(self, path: str, *, scroll: bool = True) -> bool:
        if path not in self._cells:
            return False
        self.move_cursor(row=self.get_row_index(path), scroll=scroll)
        return True

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Opened(str(event.row_key.value)))

    # ---- sorting -----------------------------------------------------------------------------------
    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column header sorts by it; a second click reverses the order."""
        event.stop()
        key = str(event.column_key.value)
        if key == "override":
            return
        if key == self.sort_by:
            self.reverse = not self.reverse
        else:
            self.sort_by, self.reverse = key, False
        self._apply()

    def action_next_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self._apply()

    def action_reverse_sort(self) -> None:
        self.reverse = not self.reverse
        self._apply()
