"""Who is calling: read only from the claims the JWT authorizer verified, never from the request body.

Roles: `admin` (operators of a tenant), `service` (the tenant's back ends), `user` (an end user, who may act
only on their own user id). Every key the data-access modules build starts with the caller's tenant, so a
caller can never reach another tenant's items.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from marketing.core.errors import Forbidden, Unauthorized


class Role(StrEnum):
    ADMIN = "admin"
    SERVICE = "service"
    USER = "user"


@dataclass(frozen=True)
class Caller:
    sub: str
    tenant_id: str
    app_id: str
    roles: frozenset[Role]

    @property
    def is_staff(self) -> bool:
        """Admins and services act on any user of their tenant."""
        return bool(self.roles & {Role.ADMIN, Role.SERVICE})

    def require(self, *roles: Role) -> None:
        if not self.roles & set(roles):
            raise Forbidden(f"this operation needs one of the roles: {', '.join(sorted(roles))}")

    def require_user_access(self, user_id: str) -> None:
        """A `user` may act only on their own id; `admin` and `service` on any user of their tenant."""
        if self.is_staff or (Role.USER in self.roles and user_id == self.sub):
            return
        raise Forbidden("a user may act only on their own user id")

    def require_same_tenant(self, tenant_id: str | None) -> None:
        if tenant_id is not None and tenant_id != self.tenant_id:
            raise Forbidden("the request names another tenant")


def parse_roles(raw: Any) -> frozenset[Role]:
    """Roles as the authorizer passes them: a list, or API Gateway's rendering of a list claim `[a b]`,
    or a space- or comma-separated string. Unknown roles are ignored."""
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                raw = json.loads(text)
            except ValueError:
                raw = text[1:-1].replace(",", " ").split()
        else:
            raw = text.replace(",", " ").split()
    names = {str(r).strip() for r in (raw or [])}
    return frozenset(Role(n) for n in names if n in Role._value2member_map_)


def caller_from_claims(claims: Mapping[str, Any] | None) -> Caller:
    claims = claims or {}
    sub, tenant_id = claims.get("sub"), claims.get("tenant_id")
    if not sub or not tenant_id:
        raise Unauthorized("the token carries no subject or tenant")
    roles = parse_roles(claims.get("roles"))
    if not roles:
        raise Forbidden("the token carries no known role")
    return Caller(sub=str(sub), tenant_id=str(tenant_id), app_id=str(claims.get("app_id") or ""), roles=roles)
