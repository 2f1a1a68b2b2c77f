"""The audit log: every change made through the console or the API, who made it, when, and
the values before and after. Written in the transaction of the change itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import AuditEntry


def api_key_actor(plaintext: str) -> str:
    """How an API key is named in the log: by its public prefix, never the secret."""
    parts = plaintext.split("_")
    prefix = parts[1] if len(parts) >= 3 and parts[0] == "rg" else "?"
    return f"api key rg_{prefix[:16]}"


def record_change(
    session: Session,
    org_id: int,
    actor: str,
    action: str,
    subject: str,
    now: datetime,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add one entry to the organization's log, in the caller's transaction."""
    session.add(
        AuditEntry(
            org_id=org_id,
            at=now,
            actor=actor[:300],
            action=action[:64],
            subject=subject[:200],
            before=before,
            after=after,
        )
    )


def recent_entries(session: Session, org_id: int, limit: int = 200) -> list[AuditEntry]:
    """The organization's latest entries, newest first."""
    from reengage.services.tenancy import scoped  # tenancy writes entries: imported late

    stmt = scoped(AuditEntry, org_id).order_by(AuditEntry.id.desc()).limit(limit)
    return list(session.scalars(stmt))
