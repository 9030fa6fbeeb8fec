"""The hour and weekday a request block reads, on the users' clock (``SETLIST_TIMEZONE``).

Events are stored as instants (UTC). The request features (``hour_sin``, ``is_weekend``, a declared
function of device, hour and weekday) mean the users' local time: an evening listener in São Paulo plays
at 21:00 there, which UTC calls midnight of the next day. Training computes each query's block in the
zone the settings name and records it in the ranker (``MODEL_ZONE_ATTR``); serving computes each Rank's
block in the zone of the model that scores it, so a model is always served on the clock it learned,
whatever the setting says since. One zone per deployment: a log whose users span many zones keeps UTC,
or a zone that fits most of them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

#: the booster attribute holding the zone a ranker's request block was computed in at training
MODEL_ZONE_ATTR = "setlist_request_timezone"
_OFFSET = re.compile(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?")


def parse_zone(text: str) -> tzinfo:
    """An IANA zone name (``America/Sao_Paulo``), a fixed offset (``+05:30``, ``-0300``) or ``UTC``."""
    t = str(text).strip()
    if t.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return UTC
    if m := _OFFSET.fullmatch(t):
        hours, minutes = int(m[2]), int(m[3] or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"{text!r} is not a time zone: an offset is at most ±23:59")
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if m[1] == "-" else 1)
        return UTC if not offset else timezone(offset)
    if t.lower() == "localtime":  # a link to this machine's /etc/localtime: a server may read another zone under it
        raise ValueError(
            f"{text!r} is not a time zone: it is this machine's clock, which a model records by name and a server "
            "reads as its own; give the IANA name (Europe/Paris) or an offset (+05:30)"
        )
    try:
        return ZoneInfo(t)
    except Exception as exc:  # not found, a malformed key, a directory of zones: all one mistake
        raise ValueError(
            f"{text!r} is not a time zone: give an IANA name (America/Sao_Paulo, Asia/Kolkata, Europe/Paris) "
            "or an offset (+05:30)"
        ) from exc


def zone_name(zone: tzinfo) -> str:
    """The text ``parse_zone`` reads back: the IANA key, ``UTC``, or ``+HH:MM``."""
    if isinstance(zone, ZoneInfo):
        return zone.key
    offset = zone.utcoffset(None) or timedelta(0)
    if not offset:
        return "UTC"
    sign, rest = ("-", -offset) if offset < timedelta(0) else ("+", offset)
    minutes = int(rest.total_seconds()) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def hour_weekday(when: datetime, zone: tzinfo) -> tuple[int, int]:
    """``when``'s hour (0–23) and weekday (Monday 0) on ``zone``'s clock; a naive time is UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone(zone)
    return local.hour, local.weekday()


def model_zone(booster: Any) -> tzinfo:
    """The zone a ranker was trained on; UTC for a model trained before the setting existed. A value
    that is no zone raises ValueError (the model file was edited or damaged)."""
    raw = booster.attr(MODEL_ZONE_ATTR)
    return parse_zone(raw) if raw else UTC


def set_model_zone(booster: Any, zone: tzinfo) -> None:
    booster.set_attr(**{MODEL_ZONE_ATTR: zone_name(zone)})
