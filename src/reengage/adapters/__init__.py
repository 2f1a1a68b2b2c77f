"""I/O at the edges: database, Redis, channels, queue, clocks."""
