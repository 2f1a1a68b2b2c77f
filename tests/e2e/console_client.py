"""A console user's browser, as plain HTTP: logs in, reads a page's CSRF token, posts forms."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

from reengage.domain.console_access import Role
from reengage.runtime import Runtime
from reengage.services.console_users import create_user
from reengage.services.tenancy import NewOrganization

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def make_user(runtime: Runtime, org_id: int, email: str, role: Role = Role.OWNER) -> str:
    with runtime.sessions.begin() as session:
        create_user(session, org_id, email, PASSWORD, role, runtime.clock.now())
    return email


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


class ConsoleBrowser:
    def __init__(self, client: TestClient, org: NewOrganization | None = None) -> None:
        self.client = client
        self.org = org  # the user's organization, when the test made it

    def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        token = csrf_of(self.client.get("/console/login"))
        form = {"email": email, "password": password, "csrf": token}
        return self.client.post("/console/login", data=form, follow_redirects=False)

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path, follow_redirects=False)

    def csrf(self) -> str:
        return csrf_of(self.get("/console/bots"))

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        """A form posted with the session's CSRF token, as the page would send it."""
        form = {"csrf": self.csrf(), **(data or {})}
        return self.client.post(path, data=form, follow_redirects=False)

    def post_raw(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.client.post(path, data=data, follow_redirects=False)
