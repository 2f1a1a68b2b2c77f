"""Media assets: stored once by reengage, uploaded to each bot's platform at most once."""

from __future__ import annotations

import hashlib
from datetime import datetime

from fastapi import APIRouter, UploadFile
from pydantic import BaseModel
from sqlalchemy import select

from reengage.adapters.db.models import MediaAsset
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut
from reengage.services.errors import InvalidInput

media_router = APIRouter(
    tags=["media"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)

# Telegram bots may upload up to 50 MB; larger files belong behind a URL.
MAX_BYTES = 50 * 1024 * 1024


class MediaOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime


@media_router.post("/v1/media", response_model=MediaOut, status_code=201)
async def upload(runtime: RuntimeDep, org_id: OrgId, file: UploadFile) -> MediaOut:
    """Store a file for media blocks (`asset_id`). The same bytes are stored once."""
    content = await file.read(MAX_BYTES + 1)
    if not content:
        raise InvalidInput("the file is empty", "file")
    if len(content) > MAX_BYTES:
        raise InvalidInput("the file is larger than 50 MB", "file")
    digest = hashlib.sha256(content).hexdigest()
    with runtime.sessions.begin() as session:
        asset = session.scalar(
            select(MediaAsset).where(MediaAsset.org_id == org_id, MediaAsset.sha256 == digest)
        )
        if asset is None:
            asset = MediaAsset(
                org_id=org_id,
                filename=file.filename or "file",
                content_type=file.content_type or "application/octet-stream",
                size=len(content),
                sha256=digest,
                content=content,
                created_at=runtime.clock.now(),
            )
            session.add(asset)
            session.flush()
        return MediaOut.model_validate(asset, from_attributes=True)
