"""Media assets: files reengage stores once and uploads to each bot's platform at most once."""

from __future__ import annotations

from datetime import datetime
from typing import BinaryIO

from sqlalchemy.orm import Session

from reengage.adapters.db.models import MediaAsset
from reengage.domain.bounds import text_problem
from reengage.i18n import N_
from reengage.ports import MediaStore, MediaTooLarge
from reengage.services.errors import InvalidInput, PayloadTooLarge
from reengage.services.tenancy import scoped

# Telegram bots may upload up to 50 MB; larger files belong behind a URL.
MAX_BYTES = 50 * 1024 * 1024


def store_media(
    session: Session,
    store: MediaStore,
    org_id: int,
    *,
    filename: str,
    content_type: str,
    stream: BinaryIO,
    now: datetime,
) -> MediaAsset:
    """Store a file for media blocks: its bytes go to the media store in chunks (hashed as
    they are written, never held whole), its row to the database. The same bytes are one
    file, and one asset per organization. Too large or empty: InvalidInput, nothing kept."""
    for field, value, most in (("filename", filename, 255), ("content_type", content_type, 100)):
        problem = text_problem(value) or (
            f"at most {most} characters" if len(value) > most else None
        )
        if problem:
            raise InvalidInput(
                N_("{field_name}: {problem}"), f"file.{field}", field_name=field, problem=problem
            )
    try:
        stored = store.put(stream, MAX_BYTES)
    except MediaTooLarge:
        raise PayloadTooLarge(N_("the file is larger than 50 MB"), "file") from None
    if stored.size == 0:
        raise InvalidInput(N_("the file is empty"), "file")
    asset = session.scalar(scoped(MediaAsset, org_id, MediaAsset.sha256 == stored.sha256))
    if asset is None:
        asset = MediaAsset(
            org_id=org_id,
            filename=filename,
            content_type=content_type,
            size=stored.size,
            sha256=stored.sha256,
            storage_key=stored.key,
            content=None,
            created_at=now,
        )
        session.add(asset)
        session.flush()
    elif asset.storage_key is None:  # written before the store: its bytes move there now
        asset.storage_key, asset.content = stored.key, None
    return asset
