"""The Celery worker: thin tasks that open a session, call one service and commit."""
