"""The chaos bench: the production topology as processes, under faults (`python -m bench.chaos`;
see bench/README.md). The short version runs in the suite: tests/integration/test_chaos.py."""
