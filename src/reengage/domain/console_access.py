"""Who may do what in the web console: roles and the actions they allow."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


class Action(StrEnum):
    VIEW = "view"  # read any page of the organization
    EDIT = "edit"  # change bots, campaigns, policies
    ADMINISTER = "administer"  # people, invitations and API keys


_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.EDITOR: frozenset({Action.VIEW, Action.EDIT}),
    Role.VIEWER: frozenset({Action.VIEW}),
}


def allows(role: Role, action: Action) -> bool:
    """Whether a user with `role` may perform `action`."""
    return action in _ALLOWED[role]


def parse_role(value: str) -> Role | None:
    """The role a form or a row names, or None when it names none."""
    try:
        return Role(value)
    except ValueError:
        return None
