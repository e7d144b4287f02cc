"""The digest's chart, drawn from plain data so it can be drawn in a child process (see digest.py)."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class ChartData:
    received_per_hour: list[int]
    answered_per_hour: list[int]
    hour_labels: list[str]
    trend: list[tuple[str, float | None]]  # (local date, response rate)
    local_date: date
    timezone: str
    trend_days: int


def draw(data: ChartData) -> bytes:
    """A PNG: received and answered per hour over the day, and the response-rate trend."""
    from matplotlib.figure import (
        Figure,  # the object API draws with Agg and keeps no global state
    )

    figure = Figure(figsize=(10, 6.4), dpi=100)
    hourly, trend = figure.subplots(2, 1, height_ratios=[3, 2])
    figure.subplots_adjust(left=0.07, right=0.98, top=0.94, bottom=0.06, hspace=0.38)  # fixed margins: no layout engine to run
    positions = list(range(24))
    hourly.bar([p - 0.2 for p in positions], data.received_per_hour, width=0.4, label="received", color="#8da0cb")
    hourly.bar([p + 0.2 for p in positions], data.answered_per_hour, width=0.4, label="answered", color="#1b9e77")
    hourly.set_xticks(positions[::2], data.hour_labels[::2], fontsize=8)
    hourly.set_ylabel("mentions")
    hourly.set_title(f"Mentions per hour, {data.local_date:%a %d %b %Y} ({data.timezone})", fontsize=11, loc="left")
    hourly.set_ylim(0, max(data.received_per_hour + data.answered_per_hour + [1]) * 1.1)
    hourly.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False, fontsize=9)
    hourly.yaxis.get_major_locator().set_params(integer=True)
    labels = [label for label, _ in data.trend]
    rates = [rate * 100 if rate is not None else math.nan for _, rate in data.trend]
    trend.plot(range(len(rates)), rates, marker="o", color="#d95f02")
    trend.set_xticks(range(len(labels)), labels, fontsize=8)
    trend.set_ylim(0, 105)
    trend.set_ylabel("response rate %")
    trend.set_title(f"Response rate, last {data.trend_days} days", fontsize=11, loc="left")
    trend.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        hourly.spines[side].set_visible(False)
        trend.spines[side].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
