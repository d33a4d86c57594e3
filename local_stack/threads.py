"""Background threads of the local stack: servers, pollers and timers all start and stop the same way."""

from __future__ import annotations

import threading


class Background:
    """A daemon thread running `run()`; `stop()` sets `stopping` and waits for the thread."""

    def __init__(self, name: str):
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)

    def run(self) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._halt()
        self._thread.join(timeout=5)

    def _halt(self) -> None:
        """Wake the thread up when setting `stopping` is not enough."""


class ServerThread(Background):
    """A werkzeug server answering on a daemon thread."""

    def __init__(self, server, name: str):
        super().__init__(name)
        self.server = server

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def run(self) -> None:
        self.server.serve_forever()

    def _halt(self) -> None:
        self.server.shutdown()


class Poller(Background):
    """Calls `poll_once()` until stopped: pauses when it found nothing, and keeps polling after an error, as
    an event source mapping would."""

    idle_pause = 0.1  # seconds between polls that found nothing

    def poll_once(self) -> int:
        """Deliver what is waiting; answers how much it took (0: nothing)."""
        raise NotImplementedError

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self.poll_once():
                    self.stopping.wait(self.idle_pause)
            except Exception as exc:
                print(f"[local-stack] {self._thread.name}: {exc!r}", flush=True)
                self.stopping.wait(1)
