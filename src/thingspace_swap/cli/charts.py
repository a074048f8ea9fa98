"""``report --chart``: changes by state over time and the latency distribution, as a PNG.

matplotlib (the ``charts`` extra) is imported only when a chart is drawn, and only its Agg
canvas is used: no pyplot, no global backend switch, no display needed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import CliError
from .figures import percentile

__all__ = ["write_chart"]

#: Colours per terminal phase (colour-blind safe).
COLOURS = MappingProxyType(
    {
        "completed": "#1b9e77",
        "failed": "#d95f02",
        "manual_review": "#7570b3",
        "rejected": "#e7298a",
        "cancelled": "#666666",
    }
)


def _matplotlib() -> tuple[Any, Any, Any, Any]:
    try:
        from matplotlib import dates, ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CliError(
            "report --chart needs matplotlib: pip install 'thingspace-swap[charts]'", 1
        ) from None
    return Figure, FigureCanvasAgg, dates, ticker


def write_chart(path: Path, finished: Sequence[tuple[float, str, float]], *, title: str) -> None:
    """Draw ``finished`` (finish time, phase, duration in seconds) into the PNG at ``path``."""
    figure_class, canvas_class, dates, ticker = _matplotlib()
    figure = figure_class(figsize=(11, 4.5), dpi=100, layout="constrained")
    canvas_class(figure)
    over_time, latency = figure.subplots(1, 2, width_ratios=(3, 2))
    figure.suptitle(title)

    by_phase: dict[str, list[float]] = defaultdict(list)
    for moment, phase, _ in finished:
        by_phase[phase].append(moment)
    if by_phase:
        for phase in sorted(by_phase, key=lambda p: list(COLOURS).index(p) if p in COLOURS else 9):
            moments = sorted(by_phase[phase])
            stamps = [datetime.fromtimestamp(m, timezone.utc) for m in moments]
            over_time.step(
                stamps,
                range(1, len(stamps) + 1),
                where="post",
                label=f"{phase.replace('_', ' ')} ({len(stamps)})",
                color=COLOURS.get(phase),
            )
        locator = dates.AutoDateLocator()
        over_time.xaxis.set_major_locator(locator)
        over_time.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
        over_time.legend(loc="upper left")
    else:
        over_time.text(0.5, 0.5, "no changes in the period", ha="center", va="center")
    over_time.set_title("changes by state over time (cumulative, UTC)")
    over_time.set_ylabel("changes")

    durations = sorted(d for _, phase, d in finished if phase == "completed")
    if durations:
        bins = max(5, min(40, len(set(durations))))
        latency.hist(durations, bins=bins, color=COLOURS["completed"], alpha=0.8)
        for share, style in ((0.5, "--"), (0.95, ":")):
            value = percentile(durations, share, digits=None) or 0.0
            latency.axvline(
                value, color="black", linestyle=style, label=f"p{int(share * 100)} {value:.1f} s"
            )
        latency.legend(loc="upper right")
    else:
        latency.text(0.5, 0.5, "no completed changes", ha="center", va="center")
    for axes in (over_time, latency):
        axes.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    latency.set_title("latency of completed changes")
    latency.set_xlabel("seconds from queued to completed")
    latency.set_ylabel("changes")
    try:
        figure.savefig(path, format="png")
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror or error}", 1) from None
