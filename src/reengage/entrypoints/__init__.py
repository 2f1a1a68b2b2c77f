"""Entry points: HTTP API, Celery worker, scheduler, CLI."""
