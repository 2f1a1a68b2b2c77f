"""The timer engine: durable timers, one per key, claimed under a lease and executed once.

- `store`s (memory, SQL, Redis) hold pending timers; any number of schedulers claim from
  them atomically;
- the `scheduler` claims due timers in batches and hands them to an `executor` (in-process,
  or Celery workers);
- the `engine` runs each timer's handler — a named `TimerHandler` registered in the
  composition root (`reengage.runtime`) — then does what the handler's `Outcome` asks, once
  the handler's work committed: after-commit effects, follow-up timers, the acknowledgement;
- `rebuild` puts back, from the database, the timers a store lost.
"""
