"""The fake Telegram Bot API in a process of its own, with Telegram's flood control enforced in
real time and the fault switch beside it (`reengage.testing.faults`):

    python -m bench.chaos_kit.platform --port 18081
"""

from __future__ import annotations

import argparse

import uvicorn

from reengage.testing.faults import telegram_platform
from reengage.testing.telegram import FakeTelegram


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--per-bot", type=int, default=30, help="messages/s per bot")
    parser.add_argument("--chat-gap", type=float, default=1.0, help="seconds between two in a chat")
    args = parser.parse_args()
    fake = FakeTelegram()
    fake.enforce_flood_control(per_bot=args.per_bot, chat_gap=args.chat_gap)
    uvicorn.run(
        telegram_platform(fake),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
    )


if __name__ == "__main__":
    main()
