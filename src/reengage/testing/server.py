"""Run an ASGI app with uvicorn on 127.0.0.1 in a background thread.

`serve(app)` binds a free port, waits until the server accepts connections and returns a
`RunningServer` with `.url` and `.stop()` (also a context manager). Global logging is left
alone (no uvicorn log config), there is no lifespan and no websocket support.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

HOST = "127.0.0.1"


class RunningServer:
    """A uvicorn server running `app` in a daemon thread; `url` has no trailing slash."""

    def __init__(self, app: ASGIApp, *, port: int = 0, startup_timeout: float = 10.0) -> None:
        # IPPROTO_TCP, so asyncio sets TCP_NODELAY on accepted connections (no 40 ms stalls).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, port))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"fake-server-{self.port}",
            daemon=True,
        )
        self._stopped = False
        self._thread.start()
        try:
            self._wait_started(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                msg = "the fake server failed to start"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                msg = f"the fake server did not start within {timeout} s"
                raise TimeoutError(msg)
            time.sleep(0.005)
        with socket.create_connection((HOST, self.port), timeout=timeout):
            pass  # accepts connections

    @property
    def native_id(self) -> int | None:
        """The serving thread's id in the operating system (for its CPU time)."""
        return self._thread.native_id

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and join the thread; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(app: ASGIApp, *, port: int = 0) -> RunningServer:
    """Start `app` on 127.0.0.1 (`port` 0 picks a free one) and return once it accepts."""
    return RunningServer(app, port=port)
