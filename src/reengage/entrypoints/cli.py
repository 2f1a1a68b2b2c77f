"""The `reengage` command."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reengage.config import Settings
from reengage.domain.activity import ChannelKind
from reengage.domain.duration import parse_duration
from reengage.entrypoints import startup
from reengage.entrypoints.logging import configure_logging, configure_logging_from

if TYPE_CHECKING:
    from reengage.runtime import Runtime

app = typer.Typer(
    help="reengage: keeps chatbot conversations from dying silently.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals hold settings: URLs with passwords, keys
)
orgs_app = typer.Typer(help="Organizations and their API keys.", no_args_is_help=True)
bots_app = typer.Typer(help="Bots of an organization.", no_args_is_help=True)
keys_app = typer.Typer(help="The secret key (REENGAGE_SECRET_KEY).", no_args_is_help=True)
users_app = typer.Typer(help="People who log in to the web console.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(bots_app, name="bots")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
events_app = typer.Typer(
    help="Events out: signed webhooks of reengage's decisions (docs/events.md).",
    no_args_is_help=True,
)
app.add_typer(events_app, name="events")


def _settings() -> Settings:
    settings = Settings()
    configure_logging_from(settings)
    return settings


def _settings_to_run(*, redis: bool = True) -> Settings:
    """The settings of a long-running command (or `migrate`), checked before it starts: a
    real secret key outside SQLite, a database URL reengage runs on, the database (and with
    `redis`, Redis) reachable within `startup_timeout`. A failure is one line on stderr and
    exit code 2 (`main`)."""
    settings = _settings()
    startup.database_url(settings.database_url)
    startup.check_secret_key(settings)
    startup.wait_for(lambda: startup.check_database(settings), settings.startup_timeout)
    if redis:
        startup.wait_for(lambda: startup.check_redis(settings), settings.startup_timeout)
    return settings


def _version() -> str:
    try:
        return version("reengage")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from reengage import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"reengage {_version()}")
        raise typer.Exit


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """reengage: keeps chatbot conversations from dying silently."""


@contextmanager
def _runtime(settings: Settings | None = None) -> Iterator[Runtime]:
    """A runtime for one management command, closed after it."""
    from reengage.runtime import Runtime

    runtime = Runtime.build(settings or _settings())
    try:
        yield runtime
    finally:
        runtime.close()


def main() -> None:
    """The `reengage` command: a known failure to start (configuration, an unreachable
    database or Redis) is one line on stderr and exit code 2, never a traceback; a refused
    management command (an unknown bot, a missing credential) one line and exit code 1."""
    from reengage.services.errors import ServiceError

    try:
        app()
    except ServiceError as exc:
        print(f"reengage: error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        message = startup.explain(exc)
        if message is None:
            raise
        print(f"reengage: error: {message}", file=sys.stderr)
        sys.exit(startup.EXIT_CONFIG)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic) at REENGAGE_DATABASE_URL."""
    from reengage.adapters.db.migrate import upgrade

    settings = _settings_to_run(redis=False)
    upgrade(settings.database_url)
    typer.echo("database is at the latest schema")


@app.command()
def prune(
    dry_run: Annotated[bool, typer.Option(help="Say what would go; change nothing")] = False,
) -> None:
    """Drop the activity and conversation events older than REENGAGE_RETENTION_DAYS (whole
    partitions on PostgreSQL, batched deletes on SQLite) and make the coming partitions."""
    from reengage.adapters.clock import SystemClock
    from reengage.adapters.db.session import make_engine, make_session_factory
    from reengage.services.retention import prune_history

    settings = _settings_to_run(redis=False)
    engine = make_engine(settings.database_url)
    try:
        report = prune_history(
            make_session_factory(engine),
            SystemClock().now(),
            settings.retention_days,
            dry_run=dry_run,
        )
    finally:
        engine.dispose()
    if report.skipped:
        typer.echo("another process is pruning; nothing done")
        return
    dry = " (dry run: nothing changed)" if dry_run else ""
    typer.echo(f"retention: {settings.retention_days} days{dry}")
    for name in report.dropped:
        typer.echo(f"drop partition {name}")
    for table, rows in report.deleted.items():
        typer.echo(f"delete {rows} rows from {table}")
    for name in report.created:
        typer.echo(f"create partition {name}")


def start_scheduler(settings: Settings, runtime: Runtime | None = None) -> threading.Event:
    """Run a scheduler in a background thread; set the returned event to stop it."""
    from reengage.entrypoints.scheduler.main import build_scheduler

    scheduler = build_scheduler(settings, runtime)
    stop = threading.Event()
    threading.Thread(target=scheduler.run, args=(stop,), name="scheduler", daemon=True).start()
    return stop


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[
        int, typer.Option(help="API processes on this port (production mode only)", min=1)
    ] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = False,
) -> None:
    """Serve the HTTP API. Without a broker (embedded mode) it also runs the scheduler and
    executes due work in-process."""
    settings = _settings_to_run()
    if workers > 1:
        if settings.embedded:
            raise typer.BadParameter("--workers needs a broker (REENGAGE_BROKER_URL)")
        from reengage.entrypoints import metrics_server

        metrics_server.share_between_processes()  # /metrics of any of them sums them all
    import uvicorn

    from reengage.entrypoints.api.app import create_app
    from reengage.runtime import Runtime

    options: dict[str, Any] = {"host": host, "port": port, "log_level": settings.log_level}
    options["access_log"] = access_log
    if settings.log_json:  # uvicorn's lines go through our JSON formatter, not its own
        options["log_config"] = None
    if workers > 1:
        # Each process builds its own runtime (connections are not shared across a fork).
        factory = "reengage.entrypoints.api.app:app_from_environment"
        uvicorn.run(factory, factory=True, workers=workers, **options)
        return
    runtime = Runtime.build(settings)
    stop = start_scheduler(settings, runtime) if settings.embedded else None
    api = create_app(runtime)
    startup.settle_heap()
    try:
        uvicorn.run(api, **options)
    finally:
        if stop:
            stop.set()


MetricsPort = Annotated[
    int | None, typer.Option(help="Serve Prometheus metrics on this port (/metrics)")
]
MetricsHost = Annotated[str, typer.Option(help="Address the metrics port listens on")]


@app.command()
def scheduler(metrics_port: MetricsPort = None, metrics_host: MetricsHost = "127.0.0.1") -> None:
    """Claim due timers and hand them to Celery workers (or run them here if no broker)."""
    settings = _settings_to_run()
    if metrics_port is not None:
        from reengage.entrypoints import metrics_server

        metrics_server.serve(metrics_port, metrics_host)
    from reengage.entrypoints.scheduler.main import run_forever

    run_forever(settings)


@app.command()
def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated Celery queues")
    ] = "timers,recovery,events",
    concurrency: Annotated[int, typer.Option(help="Worker processes/threads")] = 2,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads, solo")] = "prefork",
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
    name: Annotated[
        str | None,
        typer.Option(help="Celery node name, unique per worker (`a@%h`); default celery@<host>"),
    ] = None,
) -> None:
    """Run a Celery worker executing due work (REENGAGE_BROKER_URL must be set)."""
    settings = _settings_to_run()
    if settings.broker_url is None:
        raise typer.BadParameter("REENGAGE_BROKER_URL is not set: nothing to consume")
    if metrics_port is not None:
        from reengage.entrypoints import metrics_server

        if pool == "prefork":  # the timers run in child processes
            metrics_server.share_between_processes()
        metrics_server.serve(metrics_port, metrics_host)
    from reengage.entrypoints.worker.celery_app import app as celery_app

    argv = ["worker", "-Q", queues, "-c", str(concurrency), "-P", pool, "--loglevel", "INFO"]
    celery_app.worker_main([*argv, "-n", name] if name else argv)


@app.command()
def doctor() -> None:
    """Check the configuration, the database and its schema, Redis, the broker and every
    bot's credentials with its platform; one line per check, exit code 1 if one fails."""
    from reengage.entrypoints.doctor import FAIL, run

    configure_logging(level=logging.WARNING)
    failed = 0
    for check in run():
        typer.echo(check.line())
        failed += check.status == FAIL
    if failed:
        typer.echo(f"{failed} check(s) failed", err=True)
        raise typer.Exit(1)


@app.command()
def demo(
    speed: Annotated[float, typer.Option(help="Time acceleration (60 = a minute per second)")] = 60,
    port: Annotated[int, typer.Option(help="TCP port of the API")] = 8000,
    duration: Annotated[float, typer.Option(help="Stop after N real seconds (0 = run)")] = 0,
    database: Annotated[str, typer.Option(help="SQLite file, recreated")] = "reengage-demo.db",
) -> None:
    """Run everything in one process on SQLite with simulated users going quiet."""
    from reengage.entrypoints.demo import run_demo

    configure_logging(level=logging.WARNING)
    run_demo(speed=speed, port=port, duration=duration, database=database)


@orgs_app.command("create")
def orgs_create(name: str, language: str = "pt-BR") -> None:
    """Create an organization and print its first API key (shown only once)."""
    from reengage.runtime import Runtime
    from reengage.services.tenancy import create_organization

    runtime = Runtime.build(_settings())
    created = create_organization(runtime.sessions, name, runtime.clock.now(), language)
    typer.echo(f"organization {created.org_id}\napi key {created.api_key}")


@orgs_app.command("issue-key")
def orgs_issue_key(org_id: int, name: str = "cli") -> None:
    """Issue another API key for an organization."""
    from reengage.runtime import Runtime
    from reengage.services.tenancy import issue_api_key

    runtime = Runtime.build(_settings())
    typer.echo(issue_api_key(runtime.sessions, org_id, name, runtime.clock.now()))


@orgs_app.command("invite-admin")
def orgs_invite_admin(org_id: int) -> None:
    """Create a one-time code (valid 7 days) that makes a Telegram user an admin of the
    organization in the manager bot: they send `/start <code>` to it."""
    from reengage.runtime import Runtime
    from reengage.services.manager_access import create_invite

    runtime = Runtime.build(_settings())
    try:
        with runtime.sessions.begin() as session:
            code, expires_at = create_invite(session, org_id, runtime.clock.now())
    finally:
        runtime.close()
    typer.echo(f"invite code {code}\nexpires {expires_at.isoformat()}\nsend: /start {code}")


@users_app.command("create-owner")
def users_create_owner(
    org_id: int,
    email: str,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="REENGAGE_OWNER_PASSWORD",
            help="10 to 128 characters (asked for when not given)",
        ),
    ],
) -> None:
    """Create a web console owner of an organization (the first one; owners invite the rest
    from the console's People page)."""
    from reengage.domain.console_access import Role
    from reengage.runtime import Runtime
    from reengage.services.console_users import create_user
    from reengage.services.errors import ServiceError

    runtime = Runtime.build(_settings())
    try:
        with runtime.sessions.begin() as session:
            user = create_user(session, org_id, email, password, Role.OWNER, runtime.clock.now())
            user_id, address = user.id, user.email
    except ServiceError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    finally:
        runtime.close()
    typer.echo(f"owner {user_id} {address}: log in at {runtime.settings.public_url}/console/")


@app.command("manager-bot")
def manager_bot(
    webhook: bool = typer.Option(
        False,
        "--webhook",
        help="Register the webhook (REENGAGE_PUBLIC_URL, REENGAGE_MANAGER_BOT_WEBHOOK_SECRET) "
        "and exit: the API (`reengage serve`) then receives the updates.",
    ),
) -> None:
    """Run the Telegram manager bot (long polling; REENGAGE_MANAGER_BOT_TOKEN must be set),
    or with --webhook point Telegram at the API instead."""
    from reengage.entrypoints.manager_bot.dispatcher import run_polling
    from reengage.runtime import Runtime

    settings = _settings_to_run()
    if settings.manager_bot_token is None:
        raise typer.BadParameter("REENGAGE_MANAGER_BOT_TOKEN is not set")
    if webhook:
        _set_manager_webhook(settings)
        return
    runtime = Runtime.build(settings)
    try:
        run_polling(settings, runtime)
    finally:
        runtime.close()


def _set_manager_webhook(settings: Settings) -> None:
    import asyncio

    from aiogram.exceptions import TelegramAPIError

    from reengage.entrypoints.manager_bot.webhook import set_manager_webhook

    if settings.manager_bot_webhook_secret is None:
        raise typer.BadParameter(
            "REENGAGE_MANAGER_BOT_WEBHOOK_SECRET is not set (16+ characters of A-Z, a-z, 0-9, "
            "_ and -; e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    try:
        url = asyncio.run(set_manager_webhook(settings))
    except TelegramAPIError as exc:
        typer.echo(f"error: Telegram refused the webhook: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"manager bot webhook set: {url}")


@bots_app.command("set-webhook")
def bots_set_webhook(org_id: int, bot_id: int) -> None:
    """Register a Telegram bot's webhook at REENGAGE_PUBLIC_URL with a generated secret."""
    from reengage.runtime import Runtime
    from reengage.services.webhook_setup import register_telegram_webhook

    settings = _settings()
    runtime = Runtime.build(settings)
    try:
        url = register_telegram_webhook(
            runtime.sessions,
            runtime.credentials,
            org_id,
            bot_id,
            settings.public_url,
            settings.telegram_api_base,
        )
    finally:
        runtime.close()
    typer.echo(f"webhook set: {url}")


def _bad(message: str, option: str | None = None) -> Exception:
    """A refused command-line value: one line (`main`), naming the option."""
    from reengage.services.errors import InvalidInput

    return InvalidInput(f"{option}: {message}" if option else message, option)


def _secret(value: str | None) -> str | None:
    """A secret option's value; `-` reads it from stdin (kept out of the process list and the
    shell's history)."""
    if value == "-":
        value = sys.stdin.readline().strip()
        if not value:
            raise _bad("nothing read from stdin")
    return value


def _threshold(value: str | None) -> timedelta | None:
    if value is None or value == "default":
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _bad(str(exc), "--threshold") from exc


def _credentials(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _bad(f"expected NAME=VALUE, got {name!r}", "--credential")
        out[name] = value
    return out


Token = Annotated[
    str | None,
    typer.Option(help="The bot's token (Telegram) or access token (WhatsApp); - reads stdin"),
]
Threshold = Annotated[
    str | None,
    typer.Option(help="Silence before a conversation counts as inactive: 600, 10m, 0 = off"),
]


@bots_app.command("create")
def bots_create(
    org_id: int,
    name: str,
    channel: Annotated[ChannelKind, typer.Option()] = ChannelKind.SIMULATOR,
    token: Token = None,
    credential: Annotated[
        list[str] | None,
        typer.Option(help="Another credential, NAME=VALUE (repeatable): phone_number_id=..."),
    ] = None,
    threshold: Threshold = None,
) -> None:
    """Register a bot for an organization, with its credentials (encrypted at rest)."""
    from reengage.adapters.channels.factory import missing_credentials
    from reengage.services.tenancy import TOKEN_FIELD, create_bot

    credentials = _credentials(credential or [])
    token = _secret(token)
    if token is not None:
        if channel not in TOKEN_FIELD:
            raise _bad(f"{channel.value} bots take no token", "--token")
        credentials[TOKEN_FIELD[channel]] = token
    missing = missing_credentials(channel, credentials)
    if missing:
        hint = "--token" if missing[0] == TOKEN_FIELD.get(channel) else "--credential"
        raise _bad(f"{channel.value} bots need credentials.{missing[0]}", hint)
    with _runtime() as runtime:
        bot = create_bot(
            runtime.sessions,
            runtime.credentials,
            org_id,
            name=name,
            channel=channel,
            now=runtime.clock.now(),
            credentials=credentials or None,
            inactivity_threshold=_threshold(threshold),
        )
    typer.echo(f"bot {bot.id}")


@bots_app.command("list")
def bots_list(org_id: int) -> None:
    """The organization's bots: id, channel, name, threshold (seconds), credentials, state."""
    from reengage.services.tenancy import list_bots

    with _runtime() as runtime, runtime.sessions() as session:
        bots = list_bots(session, org_id)
        for bot in bots:
            threshold = (
                "default" if bot.inactivity_threshold_s is None else bot.inactivity_threshold_s
            )
            has = "credentials" if bot.credentials else "no credentials"
            state = "disabled" if bot.disabled_at else "enabled"
            typer.echo(f"{bot.id}\t{bot.channel}\t{bot.name}\t{threshold}\t{has}\t{state}")


@bots_app.command("update")
def bots_update(
    org_id: int,
    bot_id: int,
    name: Annotated[str | None, typer.Option(help="A new name")] = None,
    threshold: Annotated[
        str | None, typer.Option(help="A new inactivity threshold (10m, 0 = off, default)")
    ] = None,
) -> None:
    """Rename a bot or change its inactivity threshold (from each conversation's next event
    on)."""
    from reengage.services.tenancy import UNSET, update_bot

    if name is None and threshold is None:
        raise _bad("give --name or --threshold")
    if name is not None and not name.strip():
        raise _bad("the name is empty", "--name")
    with _runtime() as runtime:
        bot = update_bot(
            runtime.sessions,
            org_id,
            bot_id,
            name=name,
            inactivity_threshold=UNSET if threshold is None else _threshold(threshold),
        )
    typer.echo(f"bot {bot.id} updated")


@bots_app.command("rotate-token")
def bots_rotate_token(
    org_id: int,
    bot_id: int,
    token: Annotated[str, typer.Argument(help="The new token; - reads it from stdin")],
) -> None:
    """Replace a Telegram bot's token or a WhatsApp number's access token (the other
    credentials stay). A Telegram bot then needs `reengage bots set-webhook` again."""
    from reengage.services.tenancy import rotate_token

    with _runtime() as runtime:
        bot = rotate_token(
            runtime.sessions, runtime.credentials, org_id, bot_id, _secret(token) or ""
        )
    typer.echo(f"bot {bot.id}: token replaced")


@bots_app.command("disable")
def bots_disable(org_id: int, bot_id: int) -> None:
    """Stop a bot: its messages are still recorded, nothing acts and nothing is sent (a
    message already queued is skipped) until `reengage bots enable`."""
    from reengage.services.bot_lifecycle import disable_bot

    with _runtime() as runtime:
        disable_bot(runtime.sessions, org_id, bot_id, runtime.clock.now())
    typer.echo(f"bot {bot_id} disabled")


@bots_app.command("enable")
def bots_enable(org_id: int, bot_id: int) -> None:
    """Let a disabled bot act again; what came due meanwhile runs now."""
    from reengage.services.bot_lifecycle import enable_bot
    from reengage.timers.rebuild import rebuild_timers

    with _runtime() as runtime:
        enable_bot(
            runtime.sessions,
            org_id,
            bot_id,
            runtime.clock.now(),
            restore=lambda at: rebuild_timers(
                runtime.sessions, runtime.timers, runtime.registry, at
            ),
        )
    typer.echo(f"bot {bot_id} enabled")


@bots_app.command("delete")
def bots_delete(org_id: int, bot_id: int) -> None:
    """Delete a bot: its running episodes end (bot_deleted), its queued messages are
    skipped, its credentials wiped; its history stays for the results."""
    from reengage.services.bot_lifecycle import delete_bot_and_webhook

    with _runtime() as runtime:
        refused = delete_bot_and_webhook(runtime, org_id, bot_id)
    typer.echo(f"bot {bot_id} deleted")
    if refused is not None:
        typer.echo(f"Telegram did not remove its webhook ({refused}): it posts into 404s now")


@orgs_app.command("list")
def orgs_list() -> None:
    """Every organization: id, language, name."""
    from reengage.services.tenancy import list_organizations

    with _runtime() as runtime, runtime.sessions() as session:
        for org in list_organizations(session):
            typer.echo(f"{org.id}\t{org.language}\t{org.name}")


@orgs_app.command("keys")
def orgs_keys(
    org_id: int,
    prefix: Annotated[str | None, typer.Option(help="Only the keys whose prefix starts so")] = None,
) -> None:
    """The organization's API keys: prefix (rg_<prefix>_...), name, created, revoked."""
    from reengage.services.tenancy import list_api_keys

    with _runtime() as runtime, runtime.sessions() as session:
        for key in list_api_keys(session, org_id, prefix):
            revoked = key.revoked_at.isoformat() if key.revoked_at else "active"
            typer.echo(f"{key.prefix}\t{key.name}\t{key.created_at.isoformat()}\t{revoked}")


@orgs_app.command("revoke-key")
def orgs_revoke_key(org_id: int, prefix: str) -> None:
    """Revoke an API key by its prefix (rg_<prefix>_...): refused at once by every API
    process."""
    from reengage.services.tenancy import revoke_api_key_by_prefix

    with _runtime() as runtime:
        revoke_api_key_by_prefix(runtime.sessions, org_id, prefix, runtime.clock.now())
    typer.echo(f"api key {prefix} revoked")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret (bots' credentials, events-out signing secrets) with
    the newest secret key. Rotate by setting
    REENGAGE_SECRET_KEY=new,old everywhere, running this, then dropping the old key."""
    from reengage.services.secret_keys import rotate_credentials

    settings = _settings()
    startup.check_secret_key(settings)
    with _runtime(settings) as runtime:
        try:
            done = rotate_credentials(runtime.sessions, runtime.credentials)
        except ValueError as exc:
            raise startup.StartupError(
                f"{exc}: give every key it may be encrypted with in REENGAGE_SECRET_KEY, "
                "newest first"
            ) from exc
    typer.echo(f"secrets re-encrypted: {done.rotated}; already on the newest key: {done.current}")


def _events_run(work: Any) -> Any:
    """Run `work(session, runtime, now)` in one transaction; a refusal is one line on stderr
    and exit code 1."""
    from reengage.runtime import Runtime
    from reengage.services.errors import ServiceError

    runtime = Runtime.build(_settings())
    try:
        with runtime.sessions.begin() as session:
            result = work(session, runtime, runtime.clock.now())
    except ServiceError as exc:
        typer.echo(f"reengage: error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        runtime.close()
    return result


def _subscription_line(sub: Any) -> str:
    state = "enabled" if sub.enabled else f"disabled ({sub.disabled_reason})"
    return f"subscription {sub.id} {sub.url} {','.join(sub.event_types)} {state}"


@events_app.command("subscribe")
def events_subscribe(
    org_id: int,
    url: str,
    event_type: Annotated[
        list[str], typer.Option("--type", help="A type, group.* or * (repeat for more)")
    ],
) -> None:
    """Subscribe a URL to event types; print its signing secret (shown only once)."""
    from reengage.services import event_subscriptions as subs

    def work(session: Any, runtime: Runtime, now: Any) -> str:
        change = subs.SubscriptionChange(url, event_type)
        sub, secret = subs.create(session, runtime.credentials, org_id, change, now)
        return f"{_subscription_line(sub)}\nsecret {secret}"

    typer.echo(_events_run(work))


@events_app.command("list")
def events_list(org_id: int) -> None:
    """The organization's subscriptions."""
    from reengage.services import event_subscriptions as subs

    def work(session: Any, runtime: Runtime, now: Any) -> list[str]:
        return [_subscription_line(s) for s in subs.list_all(session, org_id)]

    for line in _events_run(work):
        typer.echo(line)


@events_app.command("enable")
def events_enable(org_id: int, subscription_id: int, off: bool = False) -> None:
    """Enable a subscription (its failures forgotten), or disable it with --off."""
    from reengage.services import event_subscriptions as subs

    def work(session: Any, runtime: Runtime, now: Any) -> str:
        change = subs.SubscriptionChange(enabled=not off)
        return _subscription_line(subs.change(session, org_id, subscription_id, change, now))

    typer.echo(_events_run(work))


@events_app.command("rotate-secret")
def events_rotate_secret(org_id: int, subscription_id: int) -> None:
    """A new signing secret (printed once); the previous one also signs for 24 hours."""
    from reengage.services import event_subscriptions as subs

    def work(session: Any, runtime: Runtime, now: Any) -> str:
        sub, secret = subs.rotate_secret(session, runtime.credentials, org_id, subscription_id, now)
        return f"{_subscription_line(sub)}\nsecret {secret}"

    typer.echo(_events_run(work))


@events_app.command("resend")
def events_resend(org_id: int, delivery_id: int) -> None:
    """Send a delivered or failed event again (same webhook-id); a worker sends it."""
    from reengage.services import event_subscriptions as subs

    def work(session: Any, runtime: Runtime, now: Any) -> str:
        return f"delivery {subs.resend(session, org_id, delivery_id, now).id} pending"

    typer.echo(_events_run(work))


if __name__ == "__main__":
    main()
