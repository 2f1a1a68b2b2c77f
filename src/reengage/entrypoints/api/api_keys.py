"""API keys: the organization's keys by prefix, and revoking one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from reengage.adapters.db.models import ApiKey
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ApiKeyOut, ErrorOut
from reengage.services import tenancy

api_keys_router = APIRouter(
    prefix="/v1/api-keys", tags=["api keys"], responses={401: {"model": ErrorOut}}
)
Prefix = Annotated[str, Path(pattern="^[0-9a-f]{8}$", description="rg_<prefix>_...")]


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        prefix=key.prefix, name=key.name, created_at=key.created_at, revoked_at=key.revoked_at
    )


@api_keys_router.get("", response_model=list[ApiKeyOut])
def list_keys(
    runtime: RuntimeDep,
    org_id: OrgId,
    prefix: Annotated[str | None, Query(pattern="^[0-9a-f]{1,8}$")] = None,
) -> list[ApiKeyOut]:
    """The organization's API keys, revoked ones included (never the key itself); with
    `prefix`, those whose prefix starts with it."""
    with runtime.sessions() as session:
        return [key_out(k) for k in tenancy.list_api_keys(session, org_id, prefix)]


@api_keys_router.delete("/{prefix}", response_model=ApiKeyOut, responses={404: {"model": ErrorOut}})
def revoke_key(runtime: RuntimeDep, org_id: OrgId, prefix: Prefix) -> ApiKeyOut:
    """Revoke a key: every API process refuses it from its next request on (the key making
    this request included). Revoking a revoked key changes nothing."""
    key = tenancy.revoke_api_key_by_prefix(runtime.sessions, org_id, prefix, runtime.clock.now())
    return key_out(key)
