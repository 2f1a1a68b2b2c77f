"""Inbound: what users and platforms tell us.

- `handler` (the `inbound` timer) answers a user's message: opt-out and opt-in keywords,
  the flow's next question, durable across crashes (the message is in the database first);
- `platform` applies what platforms report: blocked and unblocked users, delivery statuses.
"""
