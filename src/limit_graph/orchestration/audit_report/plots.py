"""Activity over time as an inline SVG bar chart, drawn here: no plotting library, no
script, nothing fetched.

Entries are counted per time bucket -- the shortest of a minute, ten minutes, an hour,
six hours, a day, a week or thirty days that keeps the chart within :data:`MAX_BARS`
bars (at least :data:`MIN_BARS` are drawn) -- and each bar is stacked by the kind of
action (the part of ``action`` before its first dot: ``session``, ``execution``,
``access``...).  Every bar segment carries a ``<title>``, which browsers show on hover.

>>> svg = activity_svg([(datetime(2026, 1, 1, 9, tzinfo=UTC), "session")], title="a <b>")
>>> svg.count('class="bar"'), "a &lt;b&gt;" in svg
(1, True)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

__all__ = ["MAX_BARS", "Buckets", "activity_svg", "bucket", "kind_of", "palette"]

MAX_BARS = 48
MIN_BARS = 12
"""A chart spans at least this many buckets (the first one's start, then on), so that a
burst of activity shows as bars on a time axis rather than one block."""
STEPS = (
    (60, "minute"),
    (600, "10 minutes"),
    (3600, "hour"),
    (6 * 3600, "6 hours"),
    (86400, "day"),
    (7 * 86400, "week"),
    (30 * 86400, "30 days"),
)
COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#882255")
"""Okabe and Ito's colours (and Tol's wine), told apart with the common colour-vision
deficiencies."""
FIRST_KINDS = ("execution", "session", "access", "workflow")
"""The kinds a session's story is told in: they get colours before any other."""
OTHER_COLOUR = "#999999"
OTHER = "other"

WIDTH, HEIGHT = 760, 250
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 30, 64
LEGEND_STEP = 100


def kind_of(action: str) -> str:
    """The kind of an action: ``execution.started`` is an ``execution``."""
    return action.split(".", 1)[0]


def palette(kinds: Sequence[str]) -> dict[str, str]:
    """A colour for each kind: those of :data:`FIRST_KINDS` present, then the others most
    frequent first; those past the palette are ``other``.

    >>> list(palette(["key", "key", "session", "tenant", "key"]))
    ['session', 'key', 'tenant']
    """
    counted = Counter(kinds)
    ranked = [k for k in FIRST_KINDS if k in counted]
    ranked += [k for k, _ in counted.most_common() if k not in ranked]
    return dict(zip(ranked[: len(COLOURS)], COLOURS, strict=False))


@dataclass(frozen=True)
class Buckets:
    """Counts per kind in consecutive buckets of ``step`` seconds from ``start``."""

    start: datetime
    step: int
    unit: str
    counts: list[Counter[str]]

    def moment(self, n: int) -> datetime:
        return self.start + timedelta(seconds=n * self.step)

    def label(self, n: int) -> str:
        moment = self.moment(n)
        if self.step >= 86400:
            return moment.strftime("%Y-%m-%d")
        return moment.strftime("%m-%d %H:%M")


def _step(first: datetime, last: datetime) -> tuple[int, str, datetime, int]:
    """The step, its name, the first bucket's start and the number of bars."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for step, unit in STEPS:
        start = epoch + timedelta(seconds=(first - epoch).total_seconds() // step * step)
        bars = int((last - start).total_seconds() // step) + 1
        if bars <= MAX_BARS or step == STEPS[-1][0]:  # the longest step, whatever the span
            return step, unit, start, bars
    raise AssertionError("unreachable: the last step returns")


def bucket(points: Sequence[tuple[datetime, str]]) -> Buckets:
    """Count ``(moment, kind)`` points in the shortest step that gives few enough bars."""
    if not points:
        return Buckets(datetime(1970, 1, 1, tzinfo=UTC), 3600, "hour", [])
    first = min(at for at, _ in points).astimezone(UTC)
    last = max(at for at, _ in points).astimezone(UTC)
    step, unit, start, bars = _step(first, last)
    counts: list[Counter[str]] = [Counter() for _ in range(max(MIN_BARS, min(bars, MAX_BARS)))]
    for at, kind in points:
        n = int((at.astimezone(UTC) - start).total_seconds() // step)
        counts[min(n, len(counts) - 1)][kind] += 1
    return Buckets(start, step, unit, counts)


def _nice(top: int) -> int:
    """An even axis top at least ``top``: itself (rounded up to even) up to 10, then the
    smallest of 12, 16, 20, 24, 30, 40, 50, 60, 80, 100, 120... -- so that the middle
    tick is a whole number.

    >>> [_nice(n) for n in (0, 1, 7, 13, 81, 1234)]
    [2, 2, 8, 16, 100, 1600]
    """
    if top <= 10:
        return max(2, top + top % 2)
    scale = 1
    while True:
        for m in (12, 16, 20, 24, 30, 40, 50, 60, 80, 100):
            if m * scale >= top:
                return m * scale
        scale *= 10


def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def activity_svg(
    points: Sequence[tuple[datetime, str]],
    *,
    title: str,
    colours: Mapping[str, str] | None = None,
    ident: str = "plot",
) -> str:
    """An SVG chart of the points per time bucket, stacked by kind; ``colours`` keeps a
    kind the same colour in every chart of a page (kinds it lacks are ``other``), and
    ``ident`` (unique in the page) names its title for screen readers."""
    colours = dict(colours) if colours is not None else palette([k for _, k in points])
    folded = [(at, k if k in colours else OTHER) for at, k in points]
    buckets = bucket(folded)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice(max((sum(c.values()) for c in buckets.counts), default=1))
    parts = [
        f'<svg class="plot" role="img" aria-labelledby="{ident}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}">{escape(title)}</title>',
        f'<text class="plot-title" x="{LEFT}" y="18">{escape(title)} '
        f"(entries per {escape(buckets.unit)})</text>",
    ]
    for tick in sorted({0, top // 2, top}):
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_f(y)}" y2="{_f(y)}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{_f(y + 4)}" text-anchor="end">{tick}</text>'
        )
    n = max(len(buckets.counts), 1)
    slot = plot_w / n
    order = [*colours, OTHER]
    for i, counted in enumerate(buckets.counts):
        x, base = LEFT + i * slot + slot * 0.1, float(TOP + plot_h)
        for kind in order:
            amount = counted.get(kind, 0)
            if not amount:
                continue
            h = plot_h * amount / top
            base -= h
            colour = colours.get(kind, OTHER_COLOUR)
            tip = f"{kind}: {amount} {'entry' if amount == 1 else 'entries'}, {buckets.label(i)}"
            parts.append(
                f'<rect class="bar" x="{_f(x)}" y="{_f(base)}" width="{_f(slot * 0.8)}" '
                f'height="{_f(h)}" fill="{colour}"><title>{escape(tip)}</title></rect>'
            )
    for i in sorted({0, n // 2, n - 1}):  # the ends' labels inside the chart
        anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
        x = LEFT + i * slot + {"start": slot * 0.1, "end": slot * 0.9, "middle": slot / 2}[anchor]
        parts.append(
            f'<text class="tick" x="{_f(x)}" y="{TOP + plot_h + 16}" text-anchor="{anchor}">'
            f"{escape(buckets.label(i))} UTC</text>"
        )
    present = [k for k in order if any(c.get(k) for c in buckets.counts)]
    per_row = plot_w // LEGEND_STEP
    for j, kind in enumerate(present):  # two rows at most: seven colours and "other"
        x = LEFT + j % per_row * LEGEND_STEP
        legend_y = HEIGHT - 26 + j // per_row * 17
        parts.append(
            f'<rect class="key" x="{x}" y="{legend_y - 10}" width="10" height="10" '
            f'fill="{colours.get(kind, OTHER_COLOUR)}"/>'
            f'<text class="legend" x="{x + 14}" y="{legend_y}">{escape(kind[:14])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
