"""Fakes of the Telegram Bot API and the WhatsApp Cloud API that speak the real wire formats.

Small Starlette apps meant to run on 127.0.0.1 (see `server.serve`): they record every call, can
be scripted per test (failures, blocks, rate limits) and double as a local playground for demos.
Only the base URL differs from production.
"""
