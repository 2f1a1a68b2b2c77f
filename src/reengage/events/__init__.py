"""Events out: the decisions reengage tells other platforms about, as signed webhooks.

- `outbox` records an event (and one delivery per subscription that wants it) in the
  transaction of the decision, and publishes their timers once it commits.
- `sender` is the `event` timer: one signed POST, its attempt logged, retried with backoff.
"""
