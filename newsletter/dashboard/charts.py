"""Charts drawn on the server as inline SVG: no script, no CDN, nothing for a Content Security
Policy to allow. Colours come from CSS classes (static/newsletter/admin/dashboard.css) so the
admin's light and dark themes both work.

Every bar and point is wrapped in a link to the admin list behind it and carries a <title>
(the browser's tooltip) and data-date / data-value attributes (what tests read back).

The markup is built with f-strings rather than format_html: a chart has a few thousand
elements and most values are numbers. Every string that is not a number or a date goes
through `escape` (the standard library's: labels, titles, links).
"""

import math
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from html import escape
from typing import Callable

from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 600, 200
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 10, 24

Href = Callable[[int], str | None]


@dataclass
class Series:
    label: str
    values: list[float | None]
    css: str  # colour class: c-sent, c-failed, ...
    href: str | None = None  # the list behind the whole series (legend)
    point_href: Href | None = None  # the list behind one day
    total: float | None = None  # shown in the legend


@dataclass
class Threshold:
    value: float
    label: str
    css: str


@dataclass
class Axis:
    top: float
    fmt: Callable[[float], str]
    ticks: list[float] = field(default_factory=list)


def count(value: float) -> str:
    return f"{int(round(value)):,}"


def percent(value: float) -> str:
    """0.0011 -> "0.11%", 0.02 -> "2%", a rate too small to show -> "<0.01%"."""
    shown = f"{value * 100:.2f}".rstrip("0").rstrip(".")
    return "<0.01%" if shown == "0" and value > 0 else f"{shown}%"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `value`."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value * (1 - 1e-9))


def axis(highest: float, fmt, whole: bool = False) -> Axis:
    """Four equal steps of a round size up to at least `highest` (whole steps for counts)."""
    step = nice_ceiling(highest / 4)
    if whole:
        step = max(1, math.ceil(step))
    return Axis(step * 4, fmt, [step * i for i in range(5)])


class Plot:
    """Coordinates of a chart with one slot per day."""

    def __init__(self, days: int, y: Axis):
        self.days, self.y = days, y
        self.inner_h = HEIGHT - TOP - BOTTOM
        self.slot = (WIDTH - LEFT - RIGHT) / days

    def x(self, i: int) -> float:
        """Centre of day i."""
        return round(LEFT + self.slot * (i + 0.5), 1)

    def y_of(self, value: float) -> float:
        return round(TOP + self.inner_h * (1 - min(value, self.y.top) / self.y.top), 1)


@lru_cache(maxsize=512)
def _day(d: date) -> str:
    return d.strftime("%a %b %-d")


@lru_cache(maxsize=512)
def _iso(d: date) -> str:
    return d.isoformat()


def _svg(label: str, body: list[str], css: str, height: int = HEIGHT) -> SafeString:
    label = escape(label)
    return mark_safe(
        f'<svg class="ops-chart {css}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{label}" '
        f'preserveAspectRatio="xMidYMid meet"><title>{label}</title>{"".join(body)}</svg>'
    )


def _linked(href: str | None, element: str) -> str:
    return f'<a href="{escape(href)}">{element}</a>' if href else element


def _frame(plot: Plot, dates: list[date]) -> list[str]:
    """Grid lines with y labels, and a date label at each month's first day (or every 2 weeks)."""
    parts = []
    for tick in plot.y.ticks:
        y = plot.y_of(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 4}" y="{y + 3.5:.1f}" text-anchor="end">{escape(plot.y.fmt(tick))}</text>')
    labelled = [i for i, d in enumerate(dates) if d.day == 1] or list(range(0, len(dates), 14))
    for i in labelled:
        x = round(LEFT + plot.slot * i, 1)
        parts.append(f'<line class="tickmark" x1="{x}" x2="{x}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM + 4}"/>')
        parts.append(f'<text class="tick" x="{x + 2:.1f}" y="{HEIGHT - 6}">{dates[i].strftime("%b %-d")}</text>')
    return parts


def _line_parts(plot: Plot, dates: list[date], s: Series, fmt) -> list[str]:
    """A polyline per run of known values, and a linked dot per day."""
    parts, runs, run = [], [], []
    for i, v in enumerate(s.values):
        if v is None:
            if run:
                runs.append(run)
            run = []
        else:
            run.append(f"{plot.x(i)},{plot.y_of(v)}")
    if run:
        runs.append(run)
    css, label = escape(s.css), escape(s.label)
    for points in runs:
        parts.append(f'<polyline class="line {css}" points="{" ".join(points)}"/>')
    for i, v in enumerate(s.values):
        if v is None:
            continue
        value = f"{v:.6f}" if isinstance(v, float) else v
        dot = (
            f'<circle class="dot {css}" cx="{plot.x(i)}" cy="{plot.y_of(v)}" r="2.2" data-date="{_iso(dates[i])}" '
            f'data-value="{value}" data-series="{label}"><title>{label}, {_day(dates[i])}: {escape(fmt(v))}</title></circle>'
        )
        parts.append(_linked(s.point_href(i) if s.point_href else None, dot))
    return parts


def stacked_bars(
    label: str, dates: list[date], series: list[Series], fmt=count, overlay: Series | None = None, marks: Series | None = None
) -> SafeString:
    """One bar per day, the series stacked bottom-up in the order given; optionally a line on
    the same axis (`overlay`) and a mark above the bars on each day where `marks` is not 0."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(dates))]
    highest = max(totals + [v or 0 for v in (overlay.values if overlay else [])], default=0)
    plot = Plot(len(dates), axis(highest, fmt, whole=fmt is count))
    parts = _frame(plot, dates)
    width = round(max(plot.slot - 1.2, 1), 1)
    for i, day in enumerate(dates):
        base = 0.0
        for s in series:
            value = s.values[i] or 0
            if not value:
                continue
            top, bottom = plot.y_of(base + value), plot.y_of(base)
            rect = (
                f'<rect class="{escape(s.css)}" x="{plot.x(i) - width / 2:.1f}" y="{top}" width="{width}" '
                f'height="{max(bottom - top, 0.6):.1f}" data-date="{_iso(day)}" data-value="{value}">'
                f"<title>{_day(day)}: {escape(fmt(value))} {escape(s.label.lower())}</title></rect>"
            )
            parts.append(_linked(s.point_href(i) if s.point_href else None, rect))
            base += value
    if overlay:
        parts += _line_parts(plot, dates, overlay, fmt)
    if marks:
        for i, value in enumerate(marks.values):
            if value:
                mark = (
                    f'<path class="mark {escape(marks.css)}" d="M{plot.x(i)},{TOP + 8} l4,-7 l-8,0 z" data-date="{_iso(dates[i])}" '
                    f'data-value="{value}"><title>{_day(dates[i])}: {escape(fmt(value))} {escape(marks.label.lower())}</title></path>'
                )
                parts.append(_linked(marks.point_href(i) if marks.point_href else None, mark))
    return _svg(label, parts, "bars")


def stacked_areas(label: str, dates: list[date], series: list[Series], fmt=count) -> SafeString:
    """Areas stacked bottom-up (series in order), for counts that change slowly."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(dates))]
    plot = Plot(len(dates), axis(max(totals, default=0), fmt, whole=fmt is count))
    parts = _frame(plot, dates)
    base = [0.0] * len(dates)
    for s in series:
        top = [b + (v or 0) for b, v in zip(base, s.values)]
        upper = " ".join(f"{plot.x(i)},{plot.y_of(v)}" for i, v in enumerate(top))
        lower = " ".join(f"{plot.x(i)},{plot.y_of(v)}" for i, v in reversed(list(enumerate(base))))
        last = s.values[-1] or 0
        area = (
            f'<polygon class="{escape(s.css)}" points="{upper} {lower}" data-series="{escape(s.label)}" data-last="{last}">'
            f"<title>{escape(s.label)}: {escape(fmt(last))} on {dates[-1].strftime('%b %-d')}</title></polygon>"
        )
        parts.append(_linked(s.href, area))
        base = top
    return _svg(label, parts, "areas")


def lines(label: str, dates: list[date], series: list[Series], fmt=percent, thresholds: list[Threshold] = ()) -> SafeString:
    """Lines with a dot per day (gaps where a value is None) and labelled threshold lines; the
    y axis always reaches above the highest threshold, so every threshold is drawn."""
    highest = max([v for s in series for v in s.values if v is not None] + [t.value * 1.15 for t in thresholds] + [0])
    plot = Plot(len(dates), axis(highest, fmt))
    parts = _frame(plot, dates)
    for t in thresholds:
        y, css = plot.y_of(t.value), escape(t.css)
        parts.append(
            f'<line class="threshold {css}" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" data-threshold="{t.value}"/>'
            f'<text class="threshold-label {css}" x="{LEFT + 4}" y="{y - 3:.1f}">{escape(t.label)}</text>'
        )
    for s in series:
        parts += _line_parts(plot, dates, s, fmt)
    return _svg(label, parts, "lines")


def ranked_bars(label: str, rows: list[tuple[str, float, str | None]], fmt=count, css: str = "c-topic") -> SafeString:
    """Horizontal bars, one per (label, value, href) row, in the order given."""
    row_h, label_w = 19, 230
    height = TOP + row_h * max(len(rows), 1) + 4
    top = nice_ceiling(max([value for _, value, _ in rows] + [1]))
    span = WIDTH - label_w - RIGHT - 50
    parts = []
    for i, (name, value, href) in enumerate(rows):
        y, length, name = TOP + i * row_h, span * value / top, escape(name)
        bar = (
            f'<text class="tick name" x="{label_w - 6}" y="{y + 13}" text-anchor="end">{name}</text>'
            f'<rect class="{escape(css)}" x="{label_w}" y="{y + 3}" width="{max(length, 1):.1f}" height="{row_h - 6}" '
            f'data-label="{name}" data-value="{value}"><title>{name}: {escape(fmt(value))}</title></rect>'
            f'<text class="tick" x="{label_w + length + 4:.1f}" y="{y + 13}">{escape(fmt(value))}</text>'
        )
        parts.append(_linked(href, bar))
    return _svg(label, parts, "ranked", height)
