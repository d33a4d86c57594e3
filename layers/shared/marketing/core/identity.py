"""Who is calling: read only from the claims the JWT authorizer verified, never from the request body.

Roles: `admin` (operators of a tenant), `service` (the tenant's back ends), `user` (an end user, who may act
only on their own user id). Every resource belongs to a (tenant, app): the tenant is the customer, the
app one of its apps. Every key the data-access modules build starts with the caller's `scope`
(`T#{tenant}#A#{app}#...`), so a caller never reaches another tenant's items, nor another app's of its own
tenant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from marketing.core.errors import Forbidden, Unauthorized
from marketing.core.types import ID_CHARS

_ID = re.compile(rf"{ID_CHARS}{{1,128}}")  # what core.types.Identifier accepts: no `#`, so keys stay unambiguous


def scope_of(tenant_id: str, app_id: str) -> str:
    """The one definition of the key scope: every partition key is `T#{scope}#...`. Consumers that act for a
    (tenant, app) of an event or a message build it here too."""
    return f"{tenant_id}#A#{app_id}"


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
    def scope(self) -> str:
        """What the data-access modules key by: the tenant and the app (see `scope_of`)."""
        return scope_of(self.tenant_id, self.app_id)

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


def is_identifier(value: Any) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def caller_from_claims(claims: Mapping[str, Any] | None) -> Caller:
    """The caller of verified claims. A token without a subject, or without a valid tenant or app (ids of
    `core.types.ID_CHARS`, which end up inside keys), is refused: nothing can be scoped without them."""
    claims = claims or {}
    sub, tenant_id, app_id = claims.get("sub"), claims.get("tenant_id"), claims.get("app_id")
    if not sub or not is_identifier(tenant_id) or not is_identifier(app_id):
        raise Unauthorized("the token carries no subject, or no valid tenant or app")
    roles = parse_roles(claims.get("roles"))
    if not roles:
        raise Forbidden("the token carries no known role")
    return Caller(sub=str(sub), tenant_id=tenant_id, app_id=app_id, roles=roles)
