"""Use cases: each owns its transaction and calls the pure core for decisions."""
