"""Request dependencies: the runtime and the caller's organization."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from reengage.i18n import N_
from reengage.runtime import Runtime
from reengage.services.audit_log import api_key_actor
from reengage.services.errors import Unauthorized
from reengage.services.tenancy import authenticate

# An API key goes in either header: both schemes are declared, either one suffices.
bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer rg_...`")
api_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    auto_error=False,
    description="API key: `X-API-Key: rg_...`",
)


async def get_runtime(request: Request) -> Runtime:  # async: no thread hop to read a field
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_org_id(
    runtime: RuntimeDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_api_key: Annotated[str | None, Depends(api_key_header)] = None,
) -> int:
    key = bearer.credentials if bearer else x_api_key
    if not key:
        raise Unauthorized(N_("missing API key (Authorization: Bearer <key>)"))
    with runtime.sessions() as session:
        return authenticate(session, key)


OrgId = Annotated[int, Depends(get_org_id)]


def get_actor(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_api_key: Annotated[str | None, Depends(api_key_header)] = None,
) -> str:
    """Who the audit log says made a change through the API: the key, by its prefix (read
    after `OrgId` checked it)."""
    key = bearer.credentials if bearer else x_api_key
    return api_key_actor(key or "")


Actor = Annotated[str, Depends(get_actor)]
