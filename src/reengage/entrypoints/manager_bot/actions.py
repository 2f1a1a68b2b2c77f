"""Button action codes per feature prefix (one byte each inside the signed token)."""

from __future__ import annotations

from enum import IntEnum

MENU = "menu"
RECOVERY = "recovery"
TIMEOUTS = "timeouts"


class Menu(IntEnum):
    MAIN = 1
    LANGUAGE = 2


class Rec(IntEnum):
    BOTS = 1
    CAMPAIGN = 2
    TOGGLE_ENABLED = 3
    ASK_THRESHOLD = 4
    ASK_ZONE = 5
    TOGGLE_PAID = 6
    ASK_WINDOW = 7
    EXCLUSIONS = 8
    ASK_EXCLUSION = 9
    REMOVE_EXCLUSION = 10
    STEPS = 11
    STEP = 12
    ASK_STEP = 13
    ASK_SCHEDULE = 14
    MOVE_UP = 15
    MOVE_DOWN = 16
    DELETE_STEP = 17
    BLOCK = 18
    ASK_BLOCK = 19
    ASK_CAPTION = 20
    ASK_DELAY = 21
    ASK_AUTO_DELETE = 22
    DELETE_BLOCK = 23
    PREVIEW = 24
    PUBLISH = 25
    RESULTS = 26
    REPLAY = 27


class Tmo(IntEnum):
    BOTS = 1
    BOT = 2
    ASK_TIMEOUT = 3
    SET_ACTION = 4
    TOGGLE = 5


# Presses that change something and would change it again if replayed (a toggle flips back,
# a publish makes another version, a move moves twice): each such button works once.
SINGLE_USE = frozenset(
    {
        (MENU, Menu.LANGUAGE),
        *((RECOVERY, a) for a in (Rec.TOGGLE_ENABLED, Rec.TOGGLE_PAID, Rec.REMOVE_EXCLUSION)),
        *((RECOVERY, a) for a in (Rec.MOVE_UP, Rec.MOVE_DOWN, Rec.DELETE_STEP)),
        *((RECOVERY, a) for a in (Rec.DELETE_BLOCK, Rec.PUBLISH)),
        (TIMEOUTS, Tmo.SET_ACTION),
        (TIMEOUTS, Tmo.TOGGLE),
    }
)
