"""Edits of a campaign draft (the JSON `parse_campaign` reads), one small change at a time.

Each edit returns a new draft checked by `parse_campaign`, so the manager bot and the API
share one set of rules. Inputs people type are parsed here first, so an error can be told
in their language: `ScheduleError` for schedules, zones and windows, `DraftError` for the rest.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from reengage import i18n
from reengage.domain import recovery as rec
from reengage.domain import schedule as sch
from reengage.domain.duration import format_duration, parse_duration

Draft = dict[str, Any]

_USER_ID = re.compile(r"[A-Za-z0-9_+.@-]{1,128}")


class DraftError(ValueError):
    """An edit that cannot be made; `message(language)` says why."""

    def __init__(self, code: str, value: object = "") -> None:
        self.code, self.value = code, str(value)
        super().__init__(self.message("en"))

    def message(self, language: str = "pt-BR") -> str:
        # The texts are in the message catalogue, under "campaign_draft:<code>".
        return i18n.keyed("campaign_draft", self.code, language, v=self.value)


def checked(draft: Draft) -> Draft:
    """The draft if `parse_campaign` accepts it; a schedule problem stays a ScheduleError."""
    try:
        rec.parse_campaign(draft)
    except rec.CampaignError as exc:
        if isinstance(exc.__cause__, sch.ScheduleError):
            raise exc.__cause__ from exc
        raise DraftError("invalid", f"{exc.field}: {exc.message}") from exc
    return draft


def _copy(draft: Mapping[str, Any]) -> Draft:
    return copy.deepcopy(dict(draft))


def _duration(text: str, minimum: timedelta, code: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise DraftError("duration", text.strip()) from exc
    if value < minimum:
        raise DraftError(code, text.strip())
    return value


def _steps(draft: Draft) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = draft.setdefault("steps", [])
    return steps


def _step(draft: Draft, index: int) -> dict[str, Any]:
    steps = _steps(draft)
    if not 0 <= index < len(steps):
        raise DraftError("no_step", index + 1)
    return steps[index]


def _block(draft: Draft, step: int, index: int) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = _step(draft, step).setdefault("blocks", [])
    if not 0 <= index < len(blocks):
        raise DraftError("no_block", index + 1)
    return blocks[index]


# ---- campaign settings ----


def set_threshold(draft: Mapping[str, Any], text: str) -> Draft:
    """Silence before an episode starts (at least a minute)."""
    new = _copy(draft)
    new["threshold"] = format_duration(_duration(text, timedelta(minutes=1), "threshold"))
    return checked(new)


def set_time_zone(draft: Mapping[str, Any], name: str) -> Draft:
    """The IANA zone the schedules' wall-clock times are read in."""
    new = _copy(draft)
    new["time_zone"] = str(sch.zone(name.strip()))
    return checked(new)


def set_ignore_paid(draft: Mapping[str, Any], value: bool) -> Draft:
    """Whether users with a confirmed payment are left alone."""
    return checked({**_copy(draft), "ignore_paid": value})


def set_window(draft: Mapping[str, Any], text: str) -> Draft:
    """`08:00-21:00` sets the send window, `-` clears it."""
    new = _copy(draft)
    if text.strip() == "-":
        new.pop("send_window", None)
        return checked(new)
    start, sep, end = text.replace(" ", "").partition("-")
    if not sep:
        raise DraftError("window_format", text.strip())
    window = sch.parse_window(start, end)
    new["send_window"] = {
        "start": window.start.strftime("%H:%M"),
        "end": window.end.strftime("%H:%M"),
        "weekdays": sorted(window.weekdays),
    }
    return checked(new)


def add_exclusion(draft: Mapping[str, Any], user_id: str) -> Draft:
    """Never contact this user."""
    value = user_id.strip()
    if not _USER_ID.fullmatch(value):
        raise DraftError("user_id", value)
    new = _copy(draft)
    exclusions: list[str] = [str(u) for u in new.get("exclusions") or []]
    if value not in exclusions:
        exclusions.append(value)
    new["exclusions"] = exclusions
    return checked(new)


def remove_exclusion(draft: Mapping[str, Any], user_id: str) -> Draft:
    new = _copy(draft)
    new["exclusions"] = [str(u) for u in new.get("exclusions") or [] if str(u) != user_id]
    return checked(new)


# ---- steps ----


def add_step(draft: Mapping[str, Any], schedule: str) -> Draft:
    """A new last step with no blocks yet."""
    new = _copy(draft)
    parsed = sch.parse_schedule(schedule)
    _steps(new).append({"schedule": sch.format_schedule(parsed), "blocks": []})
    return checked(new)


def set_schedule(draft: Mapping[str, Any], step: int, schedule: str) -> Draft:
    new = _copy(draft)
    target = _step(new, step)
    target["schedule"] = sch.format_schedule(sch.parse_schedule(schedule))
    return checked(new)


def move_step(draft: Mapping[str, Any], step: int, offset: int) -> Draft:
    """Swap a step with its neighbour (`offset` -1: up, +1: down); at an end, no change."""
    new = _copy(draft)
    _step(new, step)
    steps = _steps(new)
    other = step + offset
    if 0 <= other < len(steps):
        steps[step], steps[other] = steps[other], steps[step]
    return checked(new)


def delete_step(draft: Mapping[str, Any], step: int) -> Draft:
    new = _copy(draft)
    _step(new, step)
    del _steps(new)[step]
    return checked(new)


# ---- blocks ----


def add_text_block(draft: Mapping[str, Any], step: int, text: str) -> Draft:
    new = _copy(draft)
    _step(new, step).setdefault("blocks", []).append({"kind": "text", "text": text})
    return checked(new)


def add_media_block(
    draft: Mapping[str, Any], step: int, kind: str, asset_id: int, caption: str | None
) -> Draft:
    """A photo, video, audio, document or animation block of a stored media asset."""
    new = _copy(draft)
    block: dict[str, Any] = {"kind": kind, "asset_id": asset_id}
    if caption:
        block["caption"] = caption
    _step(new, step).setdefault("blocks", []).append(block)
    return checked(new)


def set_caption(draft: Mapping[str, Any], step: int, block: int, text: str) -> Draft:
    """A media block's caption (`-` removes it)."""
    new = _copy(draft)
    target = _block(new, step, block)
    if target.get("kind", "text") == "text":
        raise DraftError("not_media")
    target.pop("text", None)
    if text.strip() == "-":
        target.pop("caption", None)
    else:
        target["caption"] = text
    return checked(new)


def set_delay(draft: Mapping[str, Any], step: int, block: int, text: str) -> Draft:
    """Typing/uploading shown for this long before the block is sent (`0s`: none)."""
    new = _copy(draft)
    target = _block(new, step, block)
    target["delay"] = format_duration(_duration(text, timedelta(0), "duration"))
    return checked(new)


def set_auto_delete(draft: Mapping[str, Any], step: int, block: int, text: str) -> Draft:
    """Delete the sent message this long after sending (`-`: never)."""
    new = _copy(draft)
    target = _block(new, step, block)
    if text.strip() == "-":
        target.pop("auto_delete_after", None)
    else:
        after = _duration(text, timedelta(minutes=1), "auto_delete")
        target["auto_delete_after"] = format_duration(after)
    return checked(new)


def delete_block(draft: Mapping[str, Any], step: int, block: int) -> Draft:
    new = _copy(draft)
    _block(new, step, block)
    del _step(new, step)["blocks"][block]
    return checked(new)
