"""The embedded AWS stand-in: moto's server in this process, answering one request at a time.

moto's DynamoDB reads, checks and writes a conditional update without a lock, so concurrent requests can
oversell a conditional decrement. A lock around each request makes every request atomic, as DynamoDB's
are, while separate requests still interleave: check-then-act bugs in our code still show.
"""

from __future__ import annotations

import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server

from local_stack import moto_fixes
from local_stack.threads import ServerThread

moto_fixes.apply()


class SerializedApp:
    """WSGI middleware: the whole request, body included, runs under one lock."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per AWS call drowns the application's logs
        pass


class EmbeddedAws(ServerThread):
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        app = SerializedApp(DomainDispatcherApplication(create_backend_app))
        super().__init__(make_server(host, port, app, threaded=True, request_handler=_QuietHandler), "embedded-aws")

    @property
    def endpoint(self) -> str:
        return self.url
