"""Media assets: files reengage stores once and uploads to each bot's platform at most once."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.orm import Session

from reengage.adapters.db.models import MediaAsset
from reengage.domain.bounds import text_problem
from reengage.i18n import N_
from reengage.services.errors import InvalidInput
from reengage.services.tenancy import scoped

# Telegram bots may upload up to 50 MB; larger files belong behind a URL.
MAX_BYTES = 50 * 1024 * 1024


def store_media(
    session: Session,
    org_id: int,
    *,
    filename: str,
    content_type: str,
    content: bytes,
    now: datetime,
) -> MediaAsset:
    """Store a file for media blocks; the same bytes are stored once per organization."""
    if not content:
        raise InvalidInput(N_("the file is empty"), "file")
    if len(content) > MAX_BYTES:
        raise InvalidInput(N_("the file is larger than 50 MB"), "file")
    for field, value, most in (("filename", filename, 255), ("content_type", content_type, 100)):
        problem = text_problem(value) or (
            f"at most {most} characters" if len(value) > most else None
        )
        if problem:
            raise InvalidInput(
                N_("{field_name}: {problem}"), f"file.{field}", field_name=field, problem=problem
            )
    digest = hashlib.sha256(content).hexdigest()
    asset = session.scalar(scoped(MediaAsset, org_id, MediaAsset.sha256 == digest))
    if asset is None:
        asset = MediaAsset(
            org_id=org_id,
            filename=filename,
            content_type=content_type,
            size=len(content),
            sha256=digest,
            content=content,
            created_at=now,
        )
        session.add(asset)
        session.flush()
    return asset
