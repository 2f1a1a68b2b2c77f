"""The Telegram manager bot: organization admins run recovery campaigns and timeouts."""
