"""Who a request acts for: a name (``created_by``), its scopes and its groups.

``scopes`` is None for credentials that are not scope-limited (static basic users and bearer tokens,
for single-machine use): they may do everything. ``groups`` are matched against ``auth_classes`` tags
(:mod:`server.auth.classes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

#: the AppNote 0016 scopes, without the deployment's prefix (``tams-api/`` by default)
READ: Final = "read"
WRITE: Final = "write"
DELETE: Final = "delete"
ADMIN: Final = "admin"


@dataclass(frozen=True)
class Principal:
    """The caller of one request (or the owner of a webhook, when its events are delivered)."""

    name: str | None
    #: granted AppNote scopes without prefix (``read``, ``admin`` ...); None: not scope-limited
    scopes: frozenset[str] | None = None
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        """Holds the ``admin`` scope: every operation on every resource, whatever its auth classes.
        (Static credentials have no scopes: they pass every scope check, and see only their own webhooks.)"""
        return self.scopes is not None and ADMIN in self.scopes

    def has_any(self, scopes: Iterable[str]) -> bool:
        return self.scopes is None or not self.scopes.isdisjoint(scopes)

    def to_json(self) -> dict[str, Any]:
        """What webhook delivery needs to decide later (stored with the webhook; no secret in it)."""
        return {
            "name": self.name,
            "scopes": None if self.scopes is None else sorted(self.scopes),
            "groups": sorted(self.groups),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> Principal:
        """The inverse of :meth:`to_json`; an unknown principal has no scope and no group."""
        if not doc:
            return cls(None, frozenset(), frozenset())
        scopes = doc.get("scopes")
        return cls(doc.get("name"), None if scopes is None else frozenset(scopes), frozenset(doc.get("groups") or ()))


#: the principal of a server without authentication (``auth=none``): everything is allowed
ANONYMOUS: Final = Principal(None, frozenset((ADMIN,)))


def claimed_list(value: Any) -> list[str]:
    """A claim holding names: a space-separated string (OAuth2 ``scope``) or a list of strings (``scp``, groups)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def from_claims(claims: Mapping[str, Any], *, scope_prefix: str, groups_claim: str) -> Principal:
    """The principal a verified JWT describes: ``sub`` (or ``client_id``), scopes from ``scope``/``scp``,
    groups from ``groups_claim``. Scopes without the prefix are not AppNote scopes and are ignored."""
    raw = claimed_list(claims.get("scope")) + claimed_list(claims.get("scp"))
    scopes = frozenset(s[len(scope_prefix) :] for s in raw if s.startswith(scope_prefix) and s[len(scope_prefix) :])
    name = claims.get("sub") or claims.get("client_id")
    return Principal(str(name) if name is not None else None, scopes, frozenset(claimed_list(claims.get(groups_claim))))
