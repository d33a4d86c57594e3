"""`python -m local_stack`: run the whole application locally (what `make run` does)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from local_stack.stack import LocalStack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--aws-port", type=int, default=int(os.environ.get("AWS_PORT", "0")))
    parser.add_argument("--retry-delay", type=int, default=1, help="seconds before a failed message is retried")
    parser.add_argument("--metrics", action="store_true", help="print Powertools metrics (EMF) to stdout")
    args = parser.parse_args()

    stack = LocalStack(host=args.host, port=args.port, aws_port=args.aws_port, retry_delay=args.retry_delay,
                       quiet_metrics=not args.metrics).start()
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"API:          {stack.gateway.url}", flush=True)
    print(f"Console:      {stack.gateway.url}/console/  (development sign-in: any tenant, app, role)", flush=True)
    print(f"Swagger UI:   {stack.gateway.url}/docs", flush=True)
    print(f"Embedded AWS: {stack.aws.endpoint}  (AWS_ENDPOINT_URL for the AWS CLI or boto3)", flush=True)
    print("Token:        make token TENANT=t1 APP=app1 ROLES=admin SUB=ops", flush=True)
    print("LOCAL_STACK_READY " + json.dumps({"api": stack.gateway.url, "aws": stack.aws.endpoint,
                                             "outputs": stack.stack.resolver.refs}), flush=True)
    done.wait()
    print("Stopping...", flush=True)
    stack.stop()
    # Everything is stopped and flushed: skip the interpreter's final garbage collection, which takes
    # seconds once many containers (module copies) were loaded, and outlasts the test fixture's wait.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
