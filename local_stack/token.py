"""`python -m local_stack.token --tenant t1 --app app1 --roles admin --sub ops`: a bearer token for the
local stack, signed as its JWT authorizer expects."""

from __future__ import annotations

import argparse

from local_stack.auth import make_token
from local_stack.template import load, parameter_defaults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenant", default="t1")
    parser.add_argument("--app", default="app1")
    parser.add_argument("--roles", default="admin", help="comma-separated: admin, service, user")
    parser.add_argument("--sub", default="ops")
    parser.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until the token expires")
    args = parser.parse_args()
    params = parameter_defaults(load())
    print(make_token(tenant=args.tenant, sub=args.sub, roles=args.roles, app=args.app,
                     issuer=params["JwtIssuer"], audience=params["JwtAudience"], ttl_seconds=args.ttl))


if __name__ == "__main__":
    main()
