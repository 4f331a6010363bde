"""The cgroups table: sortable, filterable, updated in place (selection and scroll survive updates)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from tierctl.tui import pressure_model
from tierctl.tui.keys import TABLE_KEYS, bindings
from tierctl.tui.model import (
    ALL_COLUMNS,
    COLUMNS,
    SORTS,
    WIDTHS,
    FrameContext,
    row_cells,
    table_layout,
    visible_rows,
)

RIGHT = frozenset({"fast", "slow", "hot", "hit", "psi", "wset"})
LABELS: Mapping[str, str] = MappingProxyType(dict(ALL_COLUMNS))
PIN_STYLE: Mapping[str, str] = MappingProxyType({"fast": "bold cyan", "slow": "bold blue"})
STATE_STYLE: Mapping[str, str] = MappingProxyType(
    {"trim": "yellow", "notif": "bold magenta", "kill": "bold red", "prot": "cyan"}
)


def psi_style(cell: str) -> str:
    try:
        v = float(cell)
    except ValueError:
        return ""
    return "bold red" if v >= 10 else "yellow" if v >= 1 else ""


def cells_of(c: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
    """The row's cells for the columns ``keys`` (the rows carry pressure_model.merge's keys)."""
    every = dict(zip((k for k, _ in COLUMNS), row_cells(c), strict=True))
    if "psi" in keys or "wset" in keys or "state" in keys:
        every.update(pressure_model.pressure_cells(c))
    return tuple(every[k] for k in keys)


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
        self.keys: tuple[str, ...] = tuple(k for k, _ in COLUMNS)  # the columns shown
        self.pressure = False  # whether the pressure columns may be shown

    def on_mount(self) -> None:
        self._columns()
        self._title()

    def _columns(self) -> None:
        for key in self.keys:
            just = "right" if key in RIGHT else "left"
            self.add_column(Text(LABELS[key], justify=just), key=key, width=WIDTHS.get(key, self.path_width))

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> bool:
        """Columns and the path's width for the table's width; rebuilt (True) only when they change."""
        keys, width = table_layout(self.size.width, self.pressure, self.cell_padding)
        if (keys, width) == (self.keys, self.path_width):
            return False
        self.keys, self.path_width = keys, width
        keep, y = self.selected_path, self.scroll_y
        self.clear(columns=True)
        self._columns()
        self._cells.clear()
        self._order = []
        self._apply()
        if keep is not None:
            self.select_path(keep, scroll=False)
        self.scroll_to(y=y, animate=False)
        return True

    # ---- data in -----------------------------------------------------------------------------------
    def show_frame(self, ctx: FrameContext) -> None:
        self.show(ctx.frame.cgroups, getattr(ctx.frame, "pressure", None))

    def show(self, cgroups: list[dict[str, Any]], pressure: dict[str, Any] | None = None) -> None:
        """``pressure``: the Service's pressure_status(); its columns show while it reports cgroups."""
        self._all = pressure_model.merge(cgroups, pressure)
        on = pressure_model.has_columns(pressure)
        if on != self.pressure:
            self.pressure = on
            if self.size.width and self._layout():
                return
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
            cells = cells_of(c, self.keys)
            old = self._cells.get(path)
            if old is None:
                self.add_row(*self._styled(cells), key=path)
            elif old != cells:
                styled = self._styled(cells)
                for col, a, b, s in zip(self.keys, old, cells, styled, strict=True):
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
        for key, v in zip(self.keys[1:], cells[1:], strict=True):
            style = (
                PIN_STYLE.get(v, "")
                if key == "override"
                else STATE_STYLE.get(v, "")
                if key == "state"
                else psi_style(v)
                if key == "psi"
                else ""
            )
            v = elide_right(v, WIDTHS[key])
            out.append(Text(v, style=style, justify="right" if key in RIGHT else "left"))
        return out

    def _title(self) -> None:
        arrow = "▲" if self.reverse else "▼"
        label = LABELS[self.sort_by]
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
        """The next sortable column among those shown."""
        order = [k for k in SORTS if k in self.keys]
        i = order.index(self.sort_by) if self.sort_by in order else -1
        self.sort_by = order[(i + 1) % len(order)]
        self._apply()

    def action_reverse_sort(self) -> None:
        self.reverse = not self.reverse
        self._apply()
