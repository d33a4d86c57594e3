"""Assembles the local stack: embedded AWS, resources from the template, functions, gateway, delivery."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3

from local_stack import provision
from local_stack.aws import EmbeddedAws
from local_stack.containers import (
    DEFAULT_MAX_CONTAINERS,
    DEFAULT_TIMEOUT_SCALE,
    FunctionRuntime,
    start_fork_server,
    wait_for_fork_server,
)
from local_stack.delivery import start_delivery
from local_stack.functions import FunctionSpec, function_specs
from local_stack.gateway import Gateway, routes_from
from local_stack.template import REGION, ROOT, TEMPLATE, load

LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
    "POWERTOOLS_DEV": "false",
    # The embedded AWS serves one request at a time: a request may wait on many others (marketing.core.aws).
    "MARKETING_AWS_READ_TIMEOUT": "60",
}


class LocalStack:
    def __init__(self, template_path: Path = TEMPLATE, *, host: str = "127.0.0.1", port: int = 3000,
                 aws_port: int = 0, stack_name: str = "local", retry_delay: int = 1, quiet_metrics: bool = True,
                 max_containers: int | None = None):
        self.template = load(template_path)
        self.host, self.port, self.aws_port = host, port, aws_port
        self.stack_name, self.retry_delay, self.quiet_metrics = stack_name, retry_delay, quiet_metrics
        self.max_containers = max_containers or int(os.environ.get("LOCAL_MAX_CONTAINERS", DEFAULT_MAX_CONTAINERS))
        self.timeout_scale = float(os.environ.get("LOCAL_TIMEOUT_SCALE", DEFAULT_TIMEOUT_SCALE))
        self.workers: list = []
        self.runtimes: dict[str, FunctionRuntime] = {}

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.aws.endpoint, region_name=REGION,
                            aws_access_key_id="local", aws_secret_access_key="local")

    def start(self) -> LocalStack:
        start_fork_server()  # the parent of every container: it preloads its imports while the stack is built
        self._host_environment = dict(os.environ)
        self.aws = EmbeddedAws(self.host, self.aws_port).start()
        self.stack = provision.create(self.template, self.client, self.stack_name)
        for path in (str(ROOT / "layers" / "shared"), str(ROOT)):  # schedules read the layer's clock
            if path not in sys.path:
                sys.path.insert(0, path)
        specs = function_specs(self.template, self.stack.resolver, self.stack_name)
        self.runtimes = {spec.logical_id: FunctionRuntime(spec, self.environment(spec),
                                                          max_containers=self.max_containers,
                                                          timeout_scale=self.timeout_scale) for spec in specs}
        routes = routes_from(self.runtimes, self.template, self.stack.resolver.resolve)
        self.gateway = Gateway(routes, self.runtimes, host=self.host, port=self.port).start()
        self.workers = start_delivery(self.runtimes, self.stack, self.client, retry_delay=self.retry_delay)
        wait_for_fork_server()  # ready means a cold start costs what it should
        return self

    def environment(self, spec: FunctionSpec) -> dict[str, str]:
        """What a container of `spec` sees: this process's environment, the embedded AWS's settings, then
        the function's own variables (its `Environment` merged with `Globals`). Not `AWS_LAMBDA_FUNCTION_NAME`:
        the layer reads it as "running in AWS" (and then wants secrets and parameters from there)."""
        env = {**self._host_environment, **LOCAL_ENV, "AWS_ENDPOINT_URL": self.aws.endpoint}
        if self.quiet_metrics:
            env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        return {**env, **spec.environment}

    def stop(self) -> None:
        for worker in self.workers:
            worker.stopping.set()
        for runtime in self.runtimes.values():  # first: a poller waiting on an invocation is released at once
            runtime.close()
        for worker in self.workers:
            worker.stop()
        self.gateway.stop()
        self.aws.stop()
