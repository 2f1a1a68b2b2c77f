"""The pure core: decisions as values, no I/O, `now` always an argument."""
