"""Run the Alembic migrations programmatically (used by `reengage migrate` and tests).

The migrations ship inside the package (`reengage/migrations`, found with
`importlib.resources`), so an installed wheel migrates a database from anywhere; no
`alembic.ini` is needed. From a source checkout, `alembic` itself works too (`alembic.ini`
points at the same directory)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config


def migrations_directory() -> Path:
    """The directory of the migration scripts, inside the installed package."""
    location = files("reengage") / "migrations"
    path = Path(str(location))
    if not (path / "env.py").is_file():
        raise RuntimeError(f"the migrations are missing from the installed package ({path})")
    return path


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
