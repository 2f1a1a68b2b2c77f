"""SQLAlchemy models, session factory and repositories."""
