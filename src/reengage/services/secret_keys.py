"""Rotating the secret key: every stored credential re-encrypted with the newest key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.crypto import Credentials
from reengage.adapters.db.models import Bot

BATCH = 500


@dataclass(frozen=True, slots=True)
class Rotation:
    rotated: int  # re-encrypted with the newest key
    current: int  # already encrypted with it


def rotate_credentials(sessions: sessionmaker[Session], credentials: Credentials) -> Rotation:
    """Re-encrypt every bot's credentials with the newest secret key, a batch per
    transaction (each row locked while it changes: a concurrent replacement wins or waits).
    A credential no key given decrypts stops the rotation with a ValueError naming the bot;
    what was rotated before it stays rotated (running again is harmless)."""
    rotated = current = 0
    after = 0
    while True:
        with sessions.begin() as session:
            bots = session.scalars(
                # unscoped: the operator's command, over every organization's bots
                select(Bot)
                .where(Bot.id > after, Bot.credentials.is_not(None))
                .order_by(Bot.id)
                .limit(BATCH)
                .with_for_update()
            ).all()
            for bot in bots:
                assert bot.credentials is not None
                try:
                    blob = credentials.rotate(bot.credentials)
                except ValueError as exc:
                    raise ValueError(f"bot {bot.id}: {exc}") from exc
                if blob is None:
                    current += 1
                else:
                    bot.credentials = blob
                    rotated += 1
        if len(bots) < BATCH:
            return Rotation(rotated, current)
        after = bots[-1].id
