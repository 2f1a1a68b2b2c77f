"""Media assets: stored once by reengage, uploaded to each bot's platform at most once."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, UploadFile
from pydantic import BaseModel

from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut
from reengage.services.media import store_media

media_router = APIRouter(
    tags=["media"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


class MediaOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime


@media_router.post(
    "/v1/media", response_model=MediaOut, status_code=201, responses={413: {"model": ErrorOut}}
)
def upload(runtime: RuntimeDep, org_id: OrgId, file: UploadFile) -> MediaOut:
    """Store a file for media blocks (`asset_id`), up to 50 MB (413 beyond). The same bytes
    are stored once."""
    with runtime.sessions.begin() as session:
        asset = store_media(
            session,
            runtime.media,
            org_id,
            filename=file.filename or "file",
            content_type=file.content_type or "application/octet-stream",
            stream=file.file,  # the request's spooled copy, read in chunks
            now=runtime.clock.now(),
        )
        return MediaOut.model_validate(asset, from_attributes=True)
