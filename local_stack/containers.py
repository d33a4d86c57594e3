"""Runs the template's functions as Lambda does: each container is a process of its own, kept warm and
reused, sharing no Python state with any other container.

A process per container is what isolates two invocations running at once: Powertools keeps the current
event on the resolver's class, so two invocations in one process can answer with each other's identity.

- A fork server, started before the stack's threads, preloads the heavy third-party packages (boto3,
  pydantic, Powertools). From it, each function gets a template process: the function's environment (and
  nothing else), then its import, the init. Every container of the function is a fork of its template, as
  Lambda SnapStart resumes a snapshot taken after init: it starts from the state the init left, never from
  an invocation's, and a cold start costs a fork. The init must leave no threads or open connections behind
  (clients are built lazily: docs/architecture.md); the template refuses to fork one that does.
- An idle container serves the next invocation (warm); a new one is a cold start (`cold_starts`).
- At most `max_containers` per function (`LOCAL_MAX_CONTAINERS`): beyond it an invocation waits for a free
  container, where Lambda would scale further or throttle.
- Events and answers cross a pipe as JSON. A handler's exception comes back as `FunctionError`. An
  invocation that outlives the function's `Timeout` (times `LOCAL_TIMEOUT_SCALE`), or whose container dies,
  fails as Lambda's would; its container is killed, and a new one takes the next invocation.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from decimal import Decimal
from multiprocessing import forkserver, reduction
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

from local_stack.functions import FunctionSpec, LambdaContext, load_module
from local_stack.template import ROOT

LAYER = ROOT / "layers" / "shared"
DEFAULT_MAX_CONTAINERS = 8
# Timeouts are the template's times this: here an invocation waits for a shared CPU and for the embedded AWS,
# which answers one request at a time, so a heavy one under load takes many times its time in Lambda. The
# timeout then only stops what hangs (LOCAL_TIMEOUT_SCALE=1 for Lambda's own limits).
DEFAULT_TIMEOUT_SCALE = 10.0
INIT_TIMEOUT = 60.0  # seconds for a function's init: Lambda allows 10, this machine is shared and slower
# Imported once in the fork server; none reads the environment on import, so each function still configures
# them from its own. The layer itself (`marketing`) is imported by each function's template, under the
# function's environment (its logger, metrics and settings are built from it).
PRELOAD = [
    "local_stack.containers", "boto3", "boto3.dynamodb.conditions", "pydantic", "aws_xray_sdk.core",
    "aws_lambda_powertools.event_handler", "aws_lambda_powertools.event_handler.openapi.params",
    "aws_lambda_powertools.utilities.batch", "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parameters", "aws_lambda_powertools.utilities.parser", "segno", "openpyxl",
]

_context = multiprocessing.get_context("forkserver")
_starting = threading.Lock()  # multiprocessing's bookkeeping of child processes is not thread-safe


def start_fork_server() -> None:
    """Start the fork server (once per process) with its preloaded packages: function templates are forked
    from it, never from the stack's own process, which runs threads."""
    _context.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()


def wait_for_fork_server() -> None:
    """Return once the fork server has preloaded its packages (it forks nothing before)."""
    with _starting:
        process = _context.Process(target=_nothing, daemon=True, name="fork-server-probe")
        process.start()
    process.join()


def _nothing() -> None:
    pass


class FunctionError(Exception):
    """An invocation that failed as Lambda reports it: `error_type` is the handler's exception class, or
    Lambda's own (`Sandbox.Timedout`, `Runtime.ExitError`, `Runtime.MarshalError`, ...)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class _Unreachable(FunctionError):
    """The invocation never began: its container had died while idle, or its template before forking it."""


# --- in a function's template and containers ---

def _error(error_type: str, message: str) -> dict:
    return {"error": {"errorType": error_type, "errorMessage": message}}


def _raised(spec: FunctionSpec, exc: BaseException) -> dict:
    # Lambda logs the traceback in the function's log and answers its type and message.
    print(f"[{spec.logical_id}] {''.join(traceback.format_exception(exc))}", file=sys.stderr, flush=True)
    return _error(type(exc).__name__, str(exc))


def _decimal(value: Any) -> float:
    # What the Lambda runtime's JSON encoder accepts beyond plain JSON; anything else fails the invocation.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _answer(conn: Connection, answer: dict) -> None:
    try:
        data = json.dumps(answer, default=_decimal)
    except (TypeError, ValueError) as exc:
        data = json.dumps(_error("Runtime.MarshalError", f"Unable to marshal response: {exc}"))
    conn.send_bytes(data.encode())


def _sockets() -> set[str]:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return set()  # not Linux: not checked
    links = set()
    for fd in fds.iterdir():
        try:
            links.add(os.readlink(fd))
        except OSError:
            pass
    return {link for link in links if link.startswith("socket:")}


def incubate(control: Connection, spec: FunctionSpec, environment: dict[str, str]) -> None:
    """A function's template: its environment and its import (the init), once; then a container forked for
    each request on `control`, until the stack closes it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the stack stops us
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # containers are reaped as they exit
    os.environ.clear()
    os.environ.update(environment)
    sys.path[:0] = [str(spec.code_dir), str(LAYER)]  # the task root and the layer, as in Lambda
    sockets = _sockets()
    try:
        module = load_module(spec)
        handler = getattr(module, spec.handler.rsplit(".", 1)[1])
    except BaseException as exc:
        _answer(control, _raised(spec, exc))
        return
    if threading.active_count() > 1 or _sockets() - sockets:
        # A fork would share the connection, or lose the thread: Lambda's init runs in each environment.
        _answer(control, _error("Local.ForkUnsafeInit", "the init left a thread or an open socket behind: "
                                "build clients and threads lazily, on the first invocation"))
        return
    gc.freeze()  # the collector leaves the init's objects alone, so containers keep sharing their pages
    _answer(control, {"ready": True})
    while True:
        try:
            control.recv_bytes()
            fd = reduction.recv_handle(control)
        except EOFError:
            return  # the stack is gone
        pid = os.fork()
        if pid == 0:
            _container(control, Connection(fd), spec, module, handler)
        os.close(fd)
        _answer(control, {"pid": pid})


def _container(control: Connection, conn: Connection, spec: FunctionSpec, module: ModuleType, handler) -> None:
    """A forked container's whole life: it never returns into its template's loop."""
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _serve(conn, spec, module, handler)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(_flush())


def _flush() -> int:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return 0


def _serve(conn: Connection, spec: FunctionSpec, module: ModuleType, handler) -> None:
    """A container: one request at a time until the stack closes the pipe."""
    while True:
        _flush()  # the function's log lines, as Lambda sends them, by the end of each invocation
        try:
            request = json.loads(conn.recv_bytes())
        except EOFError:
            return
        if request["op"] == "openapi":
            app = getattr(module, "app", None)
            schema = app.get_openapi_json_schema() if hasattr(app, "get_openapi_json_schema") else None
            _answer(conn, {"result": json.loads(schema) if schema else None})
            continue
        try:
            answer = {"result": handler(request["event"], LambdaContext(spec))}
        except Exception as exc:
            answer = _raised(spec, exc)
        _answer(conn, answer)


# --- in the stack's process ---

def _ask(conn: Connection, timeout: float) -> dict:
    """The next answer on `conn`, within `timeout` seconds."""
    try:
        if not conn.poll(timeout):
            raise FunctionError("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
        return json.loads(conn.recv_bytes())
    except (EOFError, OSError):
        raise FunctionError("Runtime.ExitError", "Runtime exited without answering") from None


class Container:
    """One execution environment: a process forked from its function's template, and the pipe to it."""

    def __init__(self, conn: Connection, pid: int):
        self.conn, self.pid = conn, pid

    @property
    def alive(self) -> bool:
        """An idle container never speaks first: something to read is its end of file."""
        try:
            return not self.conn.poll(0)
        except OSError:
            return False

    def ask(self, request: dict, timeout: float) -> dict:
        try:
            self.conn.send_bytes(json.dumps(request).encode())
        except OSError:
            raise _Unreachable("Runtime.ExitError", "Runtime exited before the invocation") from None
        return _ask(self.conn, timeout)

    def kill(self) -> None:
        if self.alive:
            try:
                os.kill(self.pid, signal.SIGKILL)
                self.conn.poll(5)  # its end of file: the process is gone
            except (ProcessLookupError, OSError):
                pass
        self.conn.close()


class Template:
    """A function's template process (its init done once), which forks its containers."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str]):
        self.control, child = _context.Pipe()
        with _starting:
            self.process = _context.Process(target=incubate, args=(child, spec, environment), daemon=True,
                                            name=f"template-{spec.logical_id}")
            self.process.start()
        child.close()
        self._lock = threading.Lock()
        self._ready: dict | None = None

    def ready(self) -> dict:
        """`{"ready": True}` once the init is done, or the error it ended with."""
        with self._lock:
            if self._ready is None:
                try:
                    self._ready = _ask(self.control, INIT_TIMEOUT)
                except FunctionError as failed:
                    self._ready = _error(failed.error_type, f"init: {failed}")
            return self._ready

    def fork(self) -> Container:
        here, there = _context.Pipe()
        try:
            with self._lock:
                self.control.send_bytes(b"fork")
                reduction.send_handle(self.control, there.fileno(), self.process.pid)
                pid = _ask(self.control, INIT_TIMEOUT)["pid"]
        except (FunctionError, OSError):  # it was killed: the invocation has not begun, a new template takes it
            here.close()
            raise _Unreachable("Runtime.ExitError", "the function's template process is gone") from None
        finally:
            there.close()
        return Container(here, pid)

    def kill(self) -> None:
        self.control.close()
        self.process.kill()
        self.process.join(5)


class FunctionRuntime:
    """The containers of one function: idle ones are reused, at most `max_containers` exist at once."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], *,
                 max_containers: int = DEFAULT_MAX_CONTAINERS, timeout_scale: float = DEFAULT_TIMEOUT_SCALE):
        self.spec, self.environment, self.max_containers = spec, environment, max_containers
        self.timeout = spec.timeout * timeout_scale
        self.cold_starts = 0  # containers created
        self._slots = threading.BoundedSemaphore(max_containers)
        self._lock = threading.Lock()
        self._template: Template | None = None
        self._idle: list[Container] = []
        self._containers: set[Container] = set()
        self._closed = False
        self._schema: dict | None = None

    def invoke(self, event: Any) -> Any:
        """The handler's answer to `event`; raises `FunctionError` when the invocation fails."""
        return self._call({"op": "invoke", "event": event}, self.timeout)

    def openapi(self) -> dict | None:
        """The function's Powertools OpenAPI schema (None for a function without an HTTP resolver)."""
        if self._schema is None:
            self._schema = {"schema": self._call({"op": "openapi"}, INIT_TIMEOUT)}
        return self._schema["schema"]

    @property
    def pids(self) -> set[int]:
        """The process ids of the containers (not of the template)."""
        with self._lock:
            return {c.pid for c in self._containers}

    def close(self) -> None:
        """Kill every container and the template; invocations still running fail."""
        with self._lock:
            self._closed = True
            containers, self._idle, template = list(self._containers), [], self._template
        for container in containers:
            container.kill()
        if template is not None:
            template.kill()

    def _call(self, request: dict, timeout: float) -> Any:
        with self._slots:
            try:
                answer = self._ask(self._take(), request, timeout)
            except _Unreachable:  # a new container takes the invocation, as Lambda would
                answer = self._ask(self._take(), request, timeout)
        if "error" in answer:
            raise FunctionError(answer["error"]["errorType"], answer["error"]["errorMessage"])
        return answer["result"]

    def _ask(self, container: Container, request: dict, timeout: float) -> dict:
        try:
            answer = container.ask(request, timeout)
        except FunctionError:
            self._discard(container)
            raise
        with self._lock:
            self._idle.append(container)
        return answer

    def _take(self) -> Container:
        """An idle container if one is alive (warm), else a new one forked from the template (cold start)."""
        with self._lock:
            while self._idle:
                container = self._idle.pop()
                if container.alive:
                    return container
                container.kill()  # it died while idle: replaced below, a cold start
                self._containers.discard(container)
            if self._closed:
                raise FunctionError("Local.Stopped", "the local stack is stopping")
            if self._template is None:
                self._template = Template(self.spec, self.environment)
            template = self._template
        init = template.ready()
        if "error" in init:  # Lambda runs the init again on the next invocation
            self._forget(template)
            raise FunctionError(init["error"]["errorType"], init["error"]["errorMessage"])
        try:
            container = template.fork()
        except FunctionError:
            self._forget(template)
            raise
        with self._lock:
            self._containers.add(container)
            self.cold_starts += 1
            closed = self._closed
        if closed:  # `close` ran meanwhile and did not see it
            self._discard(container)
            raise FunctionError("Local.Stopped", "the local stack is stopping")
        return container

    def _forget(self, template: Template) -> None:
        template.kill()
        with self._lock:
            if self._template is template:
                self._template = None

    def _discard(self, container: Container) -> None:
        container.kill()
        with self._lock:
            self._containers.discard(container)
