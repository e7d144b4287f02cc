"""Business hours (``BUSINESS_HOURS`` in ``DIGEST_TIMEZONE``): are we open, when do we open, how long were we open.

Every function takes aware datetimes and works in the configured time zone, so
daylight-saving changes move the opening hours with the local clock. ``hours``
of ``None`` means always open.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.config import BusinessHours


def local_moment(day: date, at: time, tz: ZoneInfo) -> datetime:
    """``at`` o'clock on ``day`` in ``tz``, as UTC. A time skipped by a DST change maps to the
    instant the clock jumped past it (02:30 on a spring-forward night is 03:30 summer time)."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def is_open(moment: datetime, hours: BusinessHours | None, tz: ZoneInfo) -> bool:
    if hours is None:
        return True
    local = moment.astimezone(tz)
    return local.weekday() in hours.days and hours.start <= local.time() < hours.end


def next_opening(moment: datetime, hours: BusinessHours | None, tz: ZoneInfo) -> datetime:
    """``moment`` itself when open, else the next time business hours start."""
    if is_open(moment, hours, tz):
        return moment
    day = moment.astimezone(tz).date()
    for offset in range(8):
        candidate_day = day + timedelta(days=offset)
        if candidate_day.weekday() not in hours.days:
            continue
        opening = local_moment(candidate_day, hours.start, tz)
        if opening > moment:
            return opening
    raise AssertionError("business hours open on at least one weekday")  # config guarantees it


def open_seconds(start: datetime, end: datetime, hours: BusinessHours | None, tz: ZoneInfo) -> float:
    """How much of [start, end) fell inside business hours, in seconds."""
    if end <= start:
        return 0.0
    if hours is None:
        return (end - start).total_seconds()
    total = 0.0
    day = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    while day <= last:
        if day.weekday() in hours.days:
            opens, closes = local_moment(day, hours.start, tz), local_moment(day, hours.end, tz)
            overlap = (min(end, closes) - max(start, opens)).total_seconds()
            total += max(0.0, overlap)
        day += timedelta(days=1)
    return total


def describe(hours: BusinessHours | None) -> str:
    if hours is None:
        return "always open"
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    days = ", ".join(names[d] for d in sorted(hours.days))
    return f"{days} {hours.start:%H:%M}-{hours.end:%H:%M}"
