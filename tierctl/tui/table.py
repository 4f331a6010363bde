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
from tierctl.tui.layout import BASE_KEYS, COLUMNS, LABELS, SORTS, plan_columns
from tierctl.tui.model import FrameContext, row_cells, visible_rows
from tierctl.tui.rowinfo import OUTCOME_MARK, ROW_STYLE, has_pods, outcome_open, row_state

RIGHT = frozenset({"fast", "slow", "hot", "hit", "psi", "wset"})
PIN_STYLE: Mapping[str, str] = MappingProxyType({"fast": "bold cyan", "slow": "bold blue"})
STATE_STYLE: Mapping[str, str] = MappingProxyType(
    {"trim": "yellow", "notif": "bold magenta", "kill": "bold red", "prot": "cyan"}
)
MARK_STYLE: Mapping[str, str] = MappingProxyType({"…": "bold yellow", "!": "bold white on red"})


def psi_style(cell: str) -> str:
    try:
        v = float(cell)
    except ValueError:
        return ""
    return "bold red" if v >= 10 else "yellow" if v >= 1 else ""


def cells_of(c: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
    """The row's cells for the columns ``keys`` (the rows carry pressure_model.merge's keys); the pin
    cell ends in a mark while an action on the cgroup is under way (…) or stuck (!)."""
    every = dict(zip((k for k, _ in COLUMNS), row_cells(c), strict=True))
    state = outcome_open(c)
    if state:
        every["override"] += OUTCOME_MARK[state]
    if "psi" in keys or "wset" in keys or "state" in keys:
        every.update(pressure_model.pressure_cells(c))
    return tuple(every[k] for k in keys)


class PathCell(Text):
    """The cgroup cell: the path elided in the middle (the slice and the unit's tail stay), remembers
    the whole path (sort key)."""

    def __init__(self, path: str, width: int, style: str = "") -> None:
        super().__init__(elide_middle(path, width), style=style)
        self.path = path


def elide_middle(text: str, width: int) -> str:
    """A path that does not fit: first its ancestors lose the ``.slice`` suffix
    (``/system/postgresql@16-main.service``), then the middle goes (``/system/…16-main.service``): the
    slice (up to half the width) and as much of the end as fits stay."""
    if len(text) <= width:
        return text
    parts = text.split("/")
    short = "/".join([*(p.removesuffix(".slice") for p in parts[:-1]), parts[-1]])
    if len(short) <= width:
        return short
    if width < 4:
        return short[-width:]
    first = short.find("/", 1) + 1 if short.startswith("/") else short.find("/") + 1
    head = min(max(first, 0), (width - 1) // 2)
    tail = width - 1 - head
    return short[:head] + "…" + short[len(short) - tail :]


def elide_right(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def natural_widths(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The longest path, profile and pod of the rows (the layout grows the columns to them)."""
    cells = [row_cells(c) for c in rows]
    keys = [k for k, _ in COLUMNS]
    return {k: max((len(c[keys.index(k)]) for c in cells), default=0) for k in ("path", "profile", "pod")}


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
        self.keys: tuple[str, ...] = BASE_KEYS  # the columns shown
        self.widths: dict[str, int] = {}
        self.pressure = False  # whether the pressure columns may be shown
        self.pods = False  # whether any row is a pod's (the pod column may be shown)
        self.natural: dict[str, int] = {}
        self.quotas: dict[str, Any] = {}  # the overrides' quotas (row colours: over quota)
        self.fast_capacity = 0
        self._states: dict[str, str | None] = {}
        self._marked: tuple[str, bool] = ("fast", False)  # the sort the headers show

    def on_mount(self) -> None:
        self._columns()
        self._title()

    def _columns(self) -> None:
        for key in self.keys:
            self.add_column(self._header(key), key=key, width=self.widths.get(key, self.path_width))

    def _header(self, key: str) -> Text:
        """The column's label, with ▼ (largest / A first) or ▲ on the sorted column."""
        label = LABELS[key]
        if key == self.sort_by:
            label += " ▲" if self.reverse else " ▼"
        return Text(
            label, justify="right" if key in RIGHT else "left", style="bold" if key == self.sort_by else ""
        )

    def _mark_sorted(self) -> None:
        if (self.sort_by, self.reverse) == self._marked:
            return
        self._marked = (self.sort_by, self.reverse)
        for key, col in self.columns.items():
            col.label = self._header(str(key.value))
        self._clear_caches()
        self.refresh()

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> bool:
        """Columns and the path's width for the table's width; rebuilt (True) only when they change."""
        plan = plan_columns(
            self.size.width, self.pressure, self.cell_padding, natural=self.natural, pods=self.pods
        )
        if plan == self.widths:
            return False
        self.widths = plan
        self.keys, self.path_width = tuple(plan), plan["path"]
        keep, y = self.selected_path, self.scroll_y
        self.clear(columns=True)
        self._columns()
        self._marked = (self.sort_by, self.reverse)
        self._cells.clear()
        self._states.clear()
        self._order = []
        self._apply()
        if keep is not None:
            self.select_path(keep, scroll=False)
        self.scroll_to(y=y, animate=False)
        return True

    # ---- data in -----------------------------------------------------------------------------------
    def show_frame(self, ctx: FrameContext) -> None:
        self.quotas = dict((ctx.frame.status.get("overrides") or {}).get("quotas") or {})
        self.fast_capacity = sum(n.capacity for n in ctx.nodes if n.tier == "fast")
        self.show(ctx.frame.cgroups, ctx.frame.pressure)

    def show(self, cgroups: list[dict[str, Any]], pressure: dict[str, Any] | None = None) -> None:
        """``pressure``: the Service's pressure_status(); its columns show while it reports cgroups.
        The pod column shows while any row is a pod's; the columns grow to their longest text."""
        self._all = pressure_model.merge(cgroups, pressure)
        on, pods, natural = pressure_model.has_columns(pressure), has_pods(cgroups), natural_widths(cgroups)
        if (on, pods, natural) != (self.pressure, self.pods, self.natural):
            self.pressure, self.pods, self.natural = on, pods, natural
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
            self._states.pop(gone, None)
        for c, path in zip(rows, paths, strict=True):
            cells = cells_of(c, self.keys)
            state = row_state(c, self.quotas.get(path), self.fast_capacity)
            old = self._cells.get(path)
            if old is None:
                self.add_row(*self._styled(cells, state), key=path)
            elif old != cells or self._states.get(path) != state:
                restyle = self._states.get(path) != state
                styled = self._styled(cells, state)
                for col, a, b, s in zip(self.keys, old, cells, styled, strict=True):
                    if a != b or restyle:
                        self.update_cell(path, col, s)
            self._cells[path] = cells
            self._states[path] = state
        if paths != self._order:
            rank = {p: i for i, p in enumerate(paths)}
            self.sort("path", key=lambda cell: rank[cell.path])
            self._order = paths
        if keep in wanted:
            self.move_cursor(row=self.get_row_index(keep), scroll=False)
        self._mark_sorted()
        self._title()

    def _styled(self, cells: tuple[str, ...], state: str | None = None) -> list[Text]:
        """The cells as shown; ``state`` (rowinfo.row_state) colours the row's cgroup and figures."""
        row = ROW_STYLE.get(state or "", "")
        out: list[Text] = [PathCell(cells[0], self.path_width, row)]
        for key, v in zip(self.keys[1:], cells[1:], strict=True):
            style = row if key in ("fast", "hit") or state == "stuck" else ""
            if key == "override":
                style = PIN_STYLE.get(v.rstrip("…!"), "")
            elif key == "state":
                style = STATE_STYLE.get(v, "")
            elif key == "psi":
                style = psi_style(v)
            cell = Text(elide_right(v, self.widths.get(key, len(v))), style=style)
            cell.justify = "right" if key in RIGHT else "left"
            if key == "override" and v[-1:] in MARK_STYLE:
                cell.stylize(MARK_STYLE[v[-1]], len(cell) - 1)
            out.append(cell)
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
