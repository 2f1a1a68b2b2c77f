"""Silence: what happens when a contact goes quiet.

- `handler` (the `inactivity` timer, one per subject) asks each feature in turn and re-arms
  the timer for the earliest next look;
- `inactivity` logs the silence once (`inactivity_detected`);
- `timeout` resolves the inactivity policy in force and runs its stages (reminders, then
  close / hand off / fallback flow);
- `episodes` starts recovery episodes and runs their steps (the `recovery_step` timer);
- `live_campaign` finds a bot's published, enabled campaign.
"""
