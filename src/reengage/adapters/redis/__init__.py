"""Redis adapters: the hot timer index."""
