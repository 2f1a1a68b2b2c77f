"""Delivery: every message reengage sends, once, with what happened to it.

- `outbox`: a decision writes the delivery row in its own transaction and publishes its
  timer after the commit;
- `handler` (the `delivery` timer) → `attempt` (claim, in-flight mark, the platform's
  answer) → `outcome` (the rules: refusals, holds, retries, ambiguity);
- `chat_action` ("typing…" during a block's delay) and `auto_delete` (delete after a time)
  are timers of their own.
"""
