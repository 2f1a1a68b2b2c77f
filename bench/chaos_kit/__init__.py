"""The chaos bench's parts: the production topology as processes, under faults (run it with
`python bench/chaos.py`; see bench/README.md). The short version runs in the suite:
tests/integration/test_chaos.py."""
