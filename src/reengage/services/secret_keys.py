"""Rotating the secret key: every stored secret (bots' credentials, events-out signing
secrets) re-encrypted with the newest key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.crypto import Credentials
from reengage.adapters.db.models import Bot, EventSubscription

BATCH = 500


@dataclass(frozen=True, slots=True)
class Rotation:
    rotated: int  # re-encrypted with the newest key
    current: int  # already encrypted with it


def rotate_credentials(sessions: sessionmaker[Session], credentials: Credentials) -> Rotation:
    """Re-encrypt every secret stored under the secret key with the newest one: bots'
    credentials, then events-out subscriptions' signing secrets (the current one and the one
    still signing after a rotation). A batch per transaction, each row locked while it
    changes (a concurrent replacement wins or waits). A secret no key given decrypts stops
    the rotation with a ValueError naming its row; what was rotated before it stays rotated
    (running again is harmless)."""
    bots = _rotate(sessions, credentials, Bot, ("credentials",), "bot")
    subscriptions = _rotate(
        sessions,
        credentials,
        EventSubscription,
        ("secret", "previous_secret"),
        "event subscription",
    )
    return Rotation(bots.rotated + subscriptions.rotated, bots.current + subscriptions.current)


def _rotate(
    sessions: sessionmaker[Session],
    credentials: Credentials,
    model: Any,  # Bot or EventSubscription: an `id` and the secret columns
    columns: tuple[str, ...],
    noun: str,
) -> Rotation:
    rotated = current = 0
    after = 0
    while True:
        with sessions.begin() as session:
            rows = session.scalars(
                # unscoped: the operator's command, over every organization's rows
                select(model)
                .where(model.id > after, or_(*(getattr(model, c).is_not(None) for c in columns)))
                .order_by(model.id)
                .limit(BATCH)
                .with_for_update()
            ).all()
            for row in rows:
                for column in columns:
                    stored = getattr(row, column)
                    if stored is None:
                        continue
                    try:
                        blob = credentials.rotate(stored)
                    except ValueError as exc:
                        raise ValueError(f"{noun} {row.id}: {exc}") from exc
                    if blob is None:
                        current += 1
                    else:
                        setattr(row, column, blob)
                        rotated += 1
        if len(rows) < BATCH:
            return Rotation(rotated, current)
        after = rows[-1].id
