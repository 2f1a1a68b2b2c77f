"""What users of reengage can run to try it without the platforms: fakes of the Telegram Bot
API and the WhatsApp Cloud API that speak the real wire formats, a server to run them on
127.0.0.1, and a harness that runs reengage's timers on a manual clock.

The fakes are small Starlette apps (see `server.serve`): they record every call, can be
scripted (failures, blocks, rate limits, flood control) and double as a local playground.
Only the base URL differs from production. Nothing in the engine imports this package.
"""
