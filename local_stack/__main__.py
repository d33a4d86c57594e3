"""`python -m local_stack`: run the whole application locally (what `make run` does)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from local_stack.containers import DEFAULT_MAX_CONTAINERS
from local_stack.stack import LocalStack
from local_stack.template import TEMPLATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the SAM template (default: the project's)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--aws-port", type=int, default=int(os.environ.get("AWS_PORT", "0")))
    parser.add_argument("--retry-delay", type=int, default=1, help="seconds before a failed message is retried")
    parser.add_argument("--metrics", action="store_true", help="print Powertools metrics (EMF) to stdout")
    parser.add_argument("--max-containers", type=int,
                        default=int(os.environ.get("LOCAL_MAX_CONTAINERS", DEFAULT_MAX_CONTAINERS)),
                        help="containers (processes) per function at most; beyond, an invocation waits for one")
    args = parser.parse_args()

    stack = LocalStack(args.template, host=args.host, port=args.port, aws_port=args.aws_port,
                       retry_delay=args.retry_delay, quiet_metrics=not args.metrics,
                       max_containers=args.max_containers).start()
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"API:          {stack.gateway.url}", flush=True)
    print(f"Console:      {stack.gateway.url}/console/  (development sign-in: any tenant, app, role)", flush=True)
    print(f"Swagger UI:   {stack.gateway.url}/docs", flush=True)
    print(f"Embedded AWS: {stack.aws.endpoint}  (AWS_ENDPOINT_URL for the AWS CLI or boto3)", flush=True)
    print("Token:        make token TENANT=t1 APP=app1 ROLES=admin SUB=ops", flush=True)
    print(f"Functions:    a process per container, up to {args.max_containers} per function "
          "(LOCAL_MAX_CONTAINERS)", flush=True)
    print("LOCAL_STACK_READY " + json.dumps({"api": stack.gateway.url, "aws": stack.aws.endpoint,
                                             "outputs": stack.stack.resolver.refs}), flush=True)
    # A signal may land on any thread, and its handler runs only when the main thread runs Python code: wake
    # up now and then rather than sleep in one uninterruptible wait.
    while not done.wait(0.5):
        pass
    print("Stopping...", flush=True)
    stack.stop()
    # Everything is stopped and flushed: skip the interpreter's final clean-up, which can outlast the test
    # fixture's wait (the fork server sees this process go and exits too).
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
