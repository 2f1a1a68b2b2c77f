"""The scheduler process and the executors it hands due timers to."""
