"""Channel adapters: Telegram Bot API, WhatsApp Cloud API, signed webhooks, the simulator."""
