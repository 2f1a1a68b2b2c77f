"""What a user's text does beyond being activity: opt-outs, then the flow."""

from __future__ import annotations

from datetime import datetime

from reengage.services import recovery
from reengage.services.flows import FlowDeps, on_user_text


def handle_text(deps: FlowDeps, bot_id: int, user_id: str, text: str, now: datetime) -> None:
    with deps.sessions.begin() as session:
        recovery.on_user_text(session, bot_id, user_id, text, now)
    on_user_text(deps, bot_id, user_id, text, now)
