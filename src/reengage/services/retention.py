"""Retention: the history older than `retention_days` goes, a whole day at a time; the coming
days' partitions are made ahead (`reengage prune`, and a scheduler every `prune_interval`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db import partitions
from reengage.adapters.db.partitions import PruneReport

log = structlog.get_logger(__name__)


def prune_history(
    sessions: sessionmaker[Session], now: datetime, retention_days: int, *, dry_run: bool = False
) -> PruneReport:
    """Drop what is older than the retention and make the coming partitions, in one
    transaction; dry: change nothing and say what would change."""
    with sessions() as session:
        report = partitions.prune(
            session.connection(), now, timedelta(days=retention_days), dry_run=dry_run
        )
        if dry_run:
            session.rollback()
        else:
            session.commit()
    if report.dropped or report.deleted or report.created:
        log.info(
            "retention.pruned",
            dry_run=dry_run,
            created=len(report.created),
            dropped=report.dropped,
            deleted=report.deleted,
        )
    return report
