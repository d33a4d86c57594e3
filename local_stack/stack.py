"""Assembles the local stack: embedded AWS, resources from the template, functions, gateway, delivery."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3

from local_stack import provision
from local_stack.aws import EmbeddedAws
from local_stack.delivery import start_delivery
from local_stack.functions import FunctionRuntime, function_specs
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
                 aws_port: int = 0, stack_name: str = "local", retry_delay: int = 1, quiet_metrics: bool = True):
        self.template = load(template_path)
        self.host, self.port, self.aws_port = host, port, aws_port
        self.stack_name, self.retry_delay, self.quiet_metrics = stack_name, retry_delay, quiet_metrics
        self.workers: list = []

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.aws.endpoint, region_name=REGION,
                            aws_access_key_id="local", aws_secret_access_key="local")

    def start(self) -> LocalStack:
        self.aws = EmbeddedAws(self.host, self.aws_port).start()
        self.stack = provision.create(self.template, self.client, self.stack_name)
        os.environ.update(LOCAL_ENV)
        os.environ["AWS_ENDPOINT_URL"] = self.aws.endpoint
        if self.quiet_metrics:
            os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        specs = function_specs(self.template, self.stack.resolver, self.stack_name)
        self._apply_environment(specs)
        for path in (str(ROOT / "layers" / "shared"), str(ROOT)):
            if path not in sys.path:
                sys.path.insert(0, path)
        self.runtimes = {spec.logical_id: FunctionRuntime(spec) for spec in specs}
        routes = routes_from(self.runtimes, self.template, self.stack.resolver.resolve)
        self.gateway = Gateway(routes, self.runtimes, host=self.host, port=self.port).start()
        self.workers = start_delivery(self.runtimes, self.stack, self.client, retry_delay=self.retry_delay)
        return self

    @staticmethod
    def _apply_environment(specs) -> None:
        """Functions share this process, hence its environment: a variable two functions set differently
        cannot be honoured, so it is refused rather than silently picked."""
        merged: dict[str, str] = {}
        for spec in specs:
            for key, value in spec.environment.items():
                if merged.get(key, value) != value:
                    raise ValueError(f"functions disagree on {key}: the local stack needs one value")
                merged[key] = value
        os.environ.update(merged)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.gateway.stop()
        self.aws.stop()
