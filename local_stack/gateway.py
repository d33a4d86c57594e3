"""The local HttpApi: routes each `HttpApi` event of the template to its function with a real API Gateway
v2 (payload format 2.0) event, after doing what the JWT authorizer does. Also serves `/docs` (Swagger UI
over the functions' own Powertools OpenAPI schemas, merged), `POST /_local/invoke/{LogicalId}` and the console's
development sign-in (`/_local/token`, local_stack/dev_signin.py)."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from local_stack import auth, dev_signin
from local_stack.containers import FunctionError, FunctionRuntime
from local_stack.threads import ServerThread

_TEXT_TYPES = ("application/json", "text/", "application/xml", "image/svg+xml", "application/x-www-form-urlencoded")


@dataclass
class Route:
    method: str
    path: str
    runtime: FunctionRuntime
    jwt: dict | None  # the authorizer's JwtConfiguration ({issuer, audience}); None for a public route

    @property
    def public(self) -> bool:
        return self.jwt is None

    def __post_init__(self):
        # A greedy variable also takes an empty rest, as API Gateway's does (`/console/` reaches `/console/{proxy+}`).
        pattern = re.sub(r"\{(\w+)\+\}", r"(?P<\1>.*)", self.path)
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self.regex = re.compile(f"^{pattern}$")
        # API Gateway prefers the most specific route: more literal segments, then no greedy variable.
        segments = self.path.strip("/").split("/")
        self.specificity = (sum(not s.startswith("{") for s in segments), "+}" not in self.path)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def routes_from(runtimes: dict[str, FunctionRuntime], template: dict, resolve) -> list[Route]:
    """Every `HttpApi` event of every function, with the JWT configuration of its authorizer."""
    apis = {logical: res.get("Properties", {}).get("Auth", {})
            for logical, res in template.get("Resources", {}).items() if res["Type"] == "AWS::Serverless::HttpApi"}
    routes = []
    for runtime in runtimes.values():
        for event in runtime.spec.events.values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties", {})
            api = apis.get((props.get("ApiId") or {}).get("Ref"), {})
            name = props.get("Auth", {}).get("Authorizer", api.get("DefaultAuthorizer"))
            jwt = None
            if name not in (None, "NONE"):
                jwt = resolve(api["Authorizers"][name]["JwtConfiguration"])
            routes.append(Route(props.get("Method", "ANY").upper(), props["Path"], runtime, jwt))
    return routes


def _body_of(request: Request) -> tuple[str | None, bool]:
    raw = request.get_data()
    if not raw:
        return None, False
    if request.mimetype.startswith(_TEXT_TYPES) or not request.mimetype:
        try:
            return raw.decode(), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(raw).decode(), True


def api_event(request: Request, route: Route, params: dict, claims: dict | None) -> dict:
    now = time.time()
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(request.query_string.decode(), keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    body, is_base64 = _body_of(request)
    return {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": request.path,
        "rawQueryString": request.query_string.decode(),
        "cookies": [f"{k}={v}" for k, v in request.cookies.items()] or None,
        "headers": headers,
        "queryStringParameters": query or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": is_base64,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": request.host,
            "domainPrefix": "local", "requestId": str(uuid.uuid4()), "routeKey": route.key, "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
            "http": {"method": request.method, "path": request.path, "protocol": "HTTP/1.1",
                     "sourceIp": request.remote_addr or "127.0.0.1",
                     "userAgent": request.headers.get("user-agent", "")},
            **({"authorizer": {"jwt": {"claims": claims, "scopes": None}}} if claims is not None else {}),
        },
    }


def _response_from(result) -> Response:
    if not isinstance(result, dict) or "statusCode" not in result:
        return Response(json.dumps(result), status=200, mimetype="application/json")
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    response = Response(data, status=int(result["statusCode"]))
    response.headers.clear()
    for name, value in (result.get("headers") or {}).items():
        response.headers[name] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(name, str(value))
    for cookie in result.get("cookies") or []:
        response.headers.add("Set-Cookie", cookie)
    return response


def _error(status: int, code: str, message: str) -> Response:
    body = {"error": {"code": code, "message": message, "details": []}}
    return Response(json.dumps(body), status=status, mimetype="application/json")


class Gateway(ServerThread):
    def __init__(self, routes: list[Route], runtimes: dict[str, FunctionRuntime], *, host: str = "127.0.0.1",
                 port: int = 3000):
        self.routes = sorted(routes, key=lambda r: r.specificity, reverse=True)
        self.runtimes = runtimes
        super().__init__(make_server(host, port, self.wsgi, threaded=True), "gateway")

    def wsgi(self, environ, start_response):
        request = Request(environ)
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        if request.path in ("/docs", "/docs/openapi.json") and request.method == "GET":
            return self._docs(request.path.endswith(".json"))
        if request.path == dev_signin.PATH:
            return dev_signin.handle(request)
        if request.path.startswith("/_local/invoke/") and request.method == "POST":
            return self._invoke(request.path.rsplit("/", 1)[1], request)
        for route in self.routes:
            match = route.regex.match(request.path)
            if not match or route.method not in (request.method, "ANY"):
                continue
            claims = None
            if not route.public:
                claims = auth.verify(request.headers.get("authorization"), issuer=route.jwt["issuer"],
                                     audience=route.jwt["audience"])
                if claims is None:
                    return _error(401, "UNAUTHORIZED", "missing or invalid bearer token")
            try:
                result = route.runtime.invoke(api_event(request, route, match.groupdict(), claims))
            except FunctionError as exc:  # the function failed (its log has the traceback): API Gateway answers 500
                print(f"[local-stack] {route.key}: {exc}", flush=True)
                return _error(500, "INTERNAL_ERROR", f"function error: {exc.error_type}")
            return _response_from(result)
        return _error(404, "ROUTE_NOT_FOUND", "no such route")

    def _invoke(self, logical_id: str, request: Request) -> Response:
        runtime = self.runtimes.get(logical_id)
        if runtime is None:
            return _error(404, "FUNCTION_NOT_FOUND", f"no function {logical_id}")
        try:
            result = runtime.invoke(json.loads(request.get_data() or b"{}"))
        except FunctionError as exc:
            return _error(500, "FUNCTION_ERROR", str(exc))
        return Response(json.dumps(result), mimetype="application/json")

    def openapi(self) -> dict:
        """The Powertools OpenAPI schemas of every HTTP function, merged into one document."""
        spec: dict = {"openapi": "3.1.0", "info": {"title": "Marketing engine (local)", "version": "0.1.0"},
                      "paths": {}, "components": {"schemas": {}, "securitySchemes": {
                          "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
                      "security": [{"bearer": []}], "servers": [{"url": self.url}]}
        runtimes = {route.runtime.spec.logical_id: route.runtime for route in self.routes}
        with ThreadPoolExecutor(8) as pool:  # asked of a container of each function: cold starts in parallel
            schemas = list(pool.map(FunctionRuntime.openapi, runtimes.values()))
        for schema in schemas:
            if schema is None:
                continue
            for path, item in schema.get("paths", {}).items():
                spec["paths"].setdefault(path, {}).update(item)
            spec["components"]["schemas"].update(schema.get("components", {}).get("schemas", {}))
        for route in self.routes:  # a route without the authorizer takes no token (the template says which)
            if route.public and route.method.lower() in spec["paths"].get(route.path, {}):
                spec["paths"][route.path][route.method.lower()]["security"] = []
        return spec

    def _docs(self, as_json: bool) -> Response:
        spec = json.dumps(self.openapi())
        if as_json:
            return Response(spec, mimetype="application/json")
        import aws_lambda_powertools.event_handler.openapi.swagger_ui as ui
        from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

        assets = Path(ui.__file__).parent
        html = generate_swagger_html(spec, (assets / "swagger-ui-bundle.min.js").read_text(),
                                     (assets / "swagger-ui.min.css").read_text(), "", None)
        return Response(html, mimetype="text/html")
