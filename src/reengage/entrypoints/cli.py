"""The `reengage` command."""

from __future__ import annotations

import logging
import sys
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reengage.config import Settings
from reengage.domain.activity import ChannelKind
from reengage.entrypoints import startup
from reengage.entrypoints.logging import configure_logging

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
app.add_typer(orgs_app, name="orgs")
app.add_typer(bots_app, name="bots")
events_app = typer.Typer(
    help="Events out: signed webhooks of reengage's decisions (docs/events.md).",
    no_args_is_help=True,
)
app.add_typer(events_app, name="events")


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_json)
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


def main() -> None:
    """The `reengage` command: a known failure to start (configuration, an unreachable
    database or Redis) is one line on stderr and exit code 2, never a traceback."""
    try:
        app()
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

    options: dict[str, Any] = {"host": host, "port": port, "log_level": "info"}
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
    try:
        uvicorn.run(create_app(runtime), **options)
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

    celery_app.worker_main(
        ["worker", "-Q", queues, "-c", str(concurrency), "-P", pool, "--loglevel", "INFO"]
    )


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


@app.command("manager-bot")
def manager_bot() -> None:
    """Run the Telegram manager bot (long polling; REENGAGE_MANAGER_BOT_TOKEN must be set)."""
    from reengage.entrypoints.manager_bot.dispatcher import run_polling
    from reengage.runtime import Runtime

    settings = _settings_to_run()
    if settings.manager_bot_token is None:
        raise typer.BadParameter("REENGAGE_MANAGER_BOT_TOKEN is not set")
    runtime = Runtime.build(settings)
    try:
        run_polling(settings, runtime)
    finally:
        runtime.close()


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


@bots_app.command("create")
def bots_create(
    org_id: int,
    name: str,
    channel: Annotated[ChannelKind, typer.Option()] = ChannelKind.SIMULATOR,
) -> None:
    """Register a bot for an organization."""
    from reengage.runtime import Runtime
    from reengage.services.tenancy import create_bot

    settings = _settings()
    runtime = Runtime.build(settings)
    bot = create_bot(
        runtime.sessions,
        runtime.credentials,
        org_id,
        name=name,
        channel=channel,
        now=runtime.clock.now(),
    )
    typer.echo(f"bot {bot.id}")


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
