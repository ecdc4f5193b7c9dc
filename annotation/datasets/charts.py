"""Charts for the statistics page, drawn here as inline SVG: horizontal bars (per-label counts, per-class
scores), columns (the objects-per-item histogram) and 100 % stacked bars (size classes per label).

The pages carry a strict Content-Security-Policy (no inline styles or scripts), so a chart takes
its look from classes styled in ``platform.css``; a label's own colour goes in the ``fill``
attribute, an SVG presentation attribute the policy does not govern, and only when it is a plain
``#rrggbb``. Every text is escaped; each mark carries a ``<title>`` (a tooltip, read out by screen
readers) with the full name and figure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
NAME_WIDTH = 170  # room for the names left of horizontal bars
VALUE_WIDTH = 70
ROW = 24
BAR = 16
PAD = 8
NAME_CHARS = 24
HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class Bar:
    name: str
    value: float
    colour: str | None = None  # a label's "#rrggbb"; None: the chart's colour from the stylesheet
    text: str | None = None  # the figure written by the bar; the value, formatted, by default


@dataclass(frozen=True)
class Stack:
    name: str
    parts: Sequence[int]  # one count per series, in the series' order


def _figure(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}"


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def _fill(colour: str | None) -> SafeString:
    if colour and HEX_COLOUR.fullmatch(colour):
        return format_html(' fill="{}"', colour)
    return mark_safe("")  # noqa: S308 - a constant


def _svg(chart_id: str, title: str, height: float, body: list[str], css: str) -> SafeString:
    head = format_html(
        '<svg class="chart {}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title" '
        'xmlns="http://www.w3.org/2000/svg"><title id="{}-title">{}</title>',
        css,
        WIDTH,
        round(height),
        chart_id,
        chart_id,
        title,
    )
    # Every part was built with format_html, which escapes what it is given.
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308


def bar_chart(bars: Sequence[Bar], *, chart_id: str, title: str, scale_max: float | None = None) -> SafeString:
    """One horizontal bar per entry, longest for the largest value (or ``scale_max``)."""
    top = max([scale_max or 0, *(bar.value for bar in bars)]) or 1
    span = WIDTH - NAME_WIDTH - VALUE_WIDTH
    body = []
    for index, bar in enumerate(bars):
        y = PAD + index * ROW
        width = span * max(bar.value, 0) / top
        text = bar.text if bar.text is not None else _figure(bar.value)
        body.append(
            format_html(
                '<g><title>{}: {}</title><text class="name" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="bar" x="{}" y="{}" width="{}" height="{}"{}></rect>'
                '<text class="value" x="{}" y="{}">{}</text></g>',
                bar.name,
                text,
                NAME_WIDTH - 8,
                y + BAR - 3,
                _short(bar.name),
                NAME_WIDTH,
                y,
                f"{max(width, 1 if bar.value > 0 else 0):.1f}",
                BAR,
                _fill(bar.colour),
                f"{NAME_WIDTH + width + 6:.1f}",
                y + BAR - 3,
                text,
            )
        )
    return _svg(chart_id, title, 2 * PAD + len(bars) * ROW, body, "chart-bars")


def column_chart(bars: Sequence[Bar], *, chart_id: str, title: str, x_title: str = "") -> SafeString:
    """One column per entry (a histogram's bins), its figure above it and its name below."""
    height, top_pad, bottom = 220, 20, 44 if x_title else 28
    left, right = 12, 12
    plot = height - top_pad - bottom
    slot = (WIDTH - left - right) / max(len(bars), 1)
    top = max([bar.value for bar in bars] or [0]) or 1
    body = [
        format_html(
            '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"></line>',
            left,
            top_pad + plot,
            WIDTH - right,
            top_pad + plot,
        )
    ]
    for index, bar in enumerate(bars):
        column = plot * max(bar.value, 0) / top
        x = left + index * slot
        text = bar.text if bar.text is not None else _figure(bar.value)
        body.append(
            format_html(
                '<g><title>{}: {}</title><rect class="bar" x="{}" y="{}" width="{}" height="{}"{}></rect>'
                '<text class="value" x="{}" y="{}" text-anchor="middle">{}</text>'
                '<text class="name" x="{}" y="{}" text-anchor="middle">{}</text></g>',
                bar.name,
                text,
                f"{x + slot * 0.15:.1f}",
                f"{top_pad + plot - column:.1f}",
                f"{slot * 0.7:.1f}",
                f"{column:.1f}",
                _fill(bar.colour),
                f"{x + slot / 2:.1f}",
                f"{top_pad + plot - column - 4:.1f}",
                text,
                f"{x + slot / 2:.1f}",
                top_pad + plot + 16,
                _short(bar.name),
            )
        )
    if x_title:
        body.append(
            format_html(
                '<text class="axis-title" x="{}" y="{}" text-anchor="middle">{}</text>', WIDTH / 2, height - 6, x_title
            )
        )
    return _svg(chart_id, title, height, body, "chart-columns")


def stacked_chart(
    stacks: Sequence[Stack], *, chart_id: str, title: str, series: Sequence[tuple[str, str]]
) -> SafeString:
    """A 100 % bar per entry split by ``series`` ((css class, name) pairs), with a legend above."""
    legend_height = ROW
    span = WIDTH - NAME_WIDTH - 16
    body = []
    x = NAME_WIDTH
    for css, name in series:
        body.append(
            format_html(
                '<rect class="{}" x="{}" y="{}" width="12" height="12"></rect>'
                '<text class="name" x="{}" y="{}">{}</text>',
                css,
                x,
                4,
                x + 16,
                14,
                name,
            )
        )
        x += 24 + 8 * len(name)
    for index, stack in enumerate(stacks):
        y = legend_height + PAD + index * ROW
        total = sum(stack.parts)
        parts = [
            format_html(
                '<text class="name" x="{}" y="{}" text-anchor="end"><title>{}</title>{}</text>',
                NAME_WIDTH - 8,
                y + BAR - 3,
                stack.name,
                _short(stack.name),
            )
        ]
        if not total:
            parts.append(
                format_html(
                    '<rect class="empty-bar" x="{}" y="{}" width="{}" height="{}"></rect>'
                    '<text class="value" x="{}" y="{}">no objects</text>',
                    NAME_WIDTH,
                    y,
                    span,
                    BAR,
                    NAME_WIDTH + 6,
                    y + BAR - 3,
                )
            )
        start = float(NAME_WIDTH)
        for (css, name), count in zip(series, stack.parts, strict=True):
            if not total or not count:
                continue
            width = span * count / total
            parts.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{} · {}: {} ({}%)</title></rect>',
                    css,
                    f"{start:.1f}",
                    y,
                    f"{width:.1f}",
                    BAR,
                    stack.name,
                    name,
                    f"{count:,}",
                    f"{100 * count / total:.1f}",
                )
            )
            start += width
        body.append(format_html("<g>{}</g>", mark_safe("".join(parts))))  # noqa: S308 - built by format_html
    return _svg(chart_id, title, legend_height + 2 * PAD + len(stacks) * ROW, body, "chart-stacked")
