"""End-to-end fixtures: the local stack (`python -m local_stack`) in a subprocess, reached over HTTP.

Each test works in a tenant of its own, so tests share one stack without seeing each other's data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import boto3
import pytest
import requests

from local_stack.auth import make_token
from local_stack.template import ROOT, load, parameter_defaults

pytestmark = pytest.mark.e2e

READY = "LOCAL_STACK_READY "


@dataclass
class Api:
    """An HTTP client for one caller of the local stack."""

    base: str
    token: str | None
    session: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.session.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json_body=None, **kwargs) -> requests.Response:
        return self.request("POST", path, json=json_body, **kwargs)

    def put(self, path: str, json_body=None, **kwargs) -> requests.Response:
        return self.request("PUT", path, json=json_body, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


@dataclass
class LocalStackProcess:
    api_url: str
    aws_url: str
    outputs: dict[str, str]
    process: subprocess.Popen
    log: list[str]

    def token(self, tenant: str, *, sub: str = "ops", roles: str = "admin", app: str = "app1",
              ttl_seconds: int = 3600) -> str:
        params = parameter_defaults(load())
        return make_token(tenant=tenant, sub=sub, roles=roles, app=app, issuer=params["JwtIssuer"],
                          audience=params["JwtAudience"], ttl_seconds=ttl_seconds)

    def api(self, tenant: str, *, sub: str = "ops", roles: str = "admin", app: str = "app1") -> Api:
        return Api(self.api_url, self.token(tenant, sub=sub, roles=roles, app=app))

    def anonymous(self) -> Api:
        return Api(self.api_url, None)

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.aws_url, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")


@contextmanager
def running_local_stack() -> Iterator[LocalStackProcess]:
    """`python -m local_stack` in a subprocess, until the block ends."""
    # Webhook tests run their receivers on 127.0.0.1 over http: the local escape hatch (docs/architecture.md).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOCAL_ALLOW_LOOPBACK_WEBHOOKS": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "local_stack", "--port", "0"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    ready: dict = {}
    for line in process.stdout:
        log.append(line)
        if line.startswith(READY):
            ready = json.loads(line[len(READY):])
            break
    if not ready:
        process.kill()
        pytest.fail("the local stack did not start:\n" + "".join(log[-40:]))
    # Keep draining its output so the pipe never fills and blocks the stack.
    threading.Thread(target=lambda: log.extend(process.stdout), daemon=True).start()
    try:
        yield LocalStackProcess(ready["api"], ready["aws"], ready["outputs"], process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a stack loaded with many containers can be slow to stop
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def local_stack():
    with running_local_stack() as stack:
        yield stack


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"
