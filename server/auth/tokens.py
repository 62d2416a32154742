"""JWT bearer tokens checked against the identity provider's keys (``TAMS_AUTH=jwt``).

Built on PyJWT (``pyjwt[crypto]``): the JOSE parsing, signature and registered-claim checks are its
job; this module decides which keys and algorithms are acceptable and keeps the keys.

* Keys come from the provider's JWKS: ``TAMS_JWT_JWKS_URL``, or the ``jwks_uri`` of the OpenID
  discovery document of ``TAMS_JWT_ISSUER`` (whose ``issuer`` must be exactly that URL).
* They are cached. A token naming a key id the cache does not hold triggers a fetch (a key rotation
  needs no restart), at most once per ``jwt_jwks_min_refresh_s`` (a flood of made-up key ids costs one
  fetch); the whole set is fetched again after ``jwt_jwks_ttl_s`` (a withdrawn key stops working). When
  the provider cannot be reached, the keys held are kept.
* The provider's condition is kept in the server's health (part ``identity_provider``): the keys are fetched
  at start (:mod:`server.auth.idp_watch`, which retries with back-off until they are); while none could be
  fetched ``/ready`` answers 503 naming the provider and the cause. A token that cannot be checked because
  the keys cannot be fetched (none held, or it names a key the provider could not be asked about) is not the
  client's fault: :class:`IdentityProviderUnavailable` (503, ``Retry-After``), never 401. A token naming a
  key the provider, answering, does not have stays 401.
* Fetches run in a worker thread; a request whose key is cached is checked on the event loop
  (a signature check is tens of microseconds).
* Only asymmetric algorithms from ``TAMS_JWT_ALGORITHMS`` are accepted, and only with a key of the
  matching type (and curve): never ``none``, never an HMAC secret made of a public key. Symmetric
  (``oct``) keys in the JWKS are ignored.
* ``iss``, ``aud`` and ``exp`` are required; ``exp``, ``nbf`` and ``iat`` are checked with
  ``jwt_leeway_s`` of clock skew.

Tokens are never logged; reasons for a refusal name the check that failed, never the token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

import httpx
import jwt
from starlette.concurrency import run_in_threadpool

from server.config import Settings
from server.health import Health, Part
from tams_analytics.exceptions import StoreUnavailableError

logger = logging.getLogger(__name__)

#: the state the health shows while the provider's keys cannot be fetched
UNREACHABLE = "unreachable"

#: key types (and curves) each algorithm family may be used with
_KEY_TYPES: Final = {
    "RS": ("RSA", None),
    "PS": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", ("Ed25519", "Ed448")),
}


class InvalidToken(Exception):
    """The token is not acceptable; the message says which check failed (never the token)."""


class IdentityProviderUnavailable(StoreUnavailableError):
    """The token cannot be checked: the identity provider's keys cannot be fetched (HTTP 503, not the client's
    fault; the same request may succeed later)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, part=Part.IDENTITY_PROVIDER)


class JwksCache:
    """The identity provider's signing keys by key id, fetched when needed (blocking: call
    :meth:`refresh` off the event loop). Each attempt's outcome is reported to ``health``."""

    def __init__(
        self, settings: Settings, transport: httpx.BaseTransport | None = None, health: Health | None = None
    ) -> None:
        self.issuer = settings.jwt_issuer or ""
        self.jwks_url = settings.jwt_jwks_url
        self.ttl_s = settings.jwt_jwks_ttl_s
        self.min_refresh_s = settings.jwt_jwks_min_refresh_s
        self.timeout_s = settings.jwt_http_timeout_s
        self._transport = transport
        self._health = health
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = threading.Lock()
        #: how many times the JWKS was fetched (a new set of keys each time)
        self.fetches = 0
        #: why the last attempt to fetch the keys failed (None: it succeeded, or none was made yet)
        self.failure: str | None = None

    @property
    def where(self) -> str:
        """The provider, as messages name it: its issuer and where its keys are."""
        keys = self.jwks_url or "its discovery document"
        return f"identity provider {self.issuer or '(no issuer)'} (keys: {keys})"

    @property
    def fetched(self) -> bool:
        """A set of keys was fetched (and is held)."""
        return self._fetched_at is not None

    def key(self, kid: str | None) -> dict[str, Any] | None:
        """The cached JWK for ``kid`` (no I/O); a token without ``kid`` uses the only key there is."""
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def wants_refresh(self, kid: str | None) -> bool:
        """Whether a fetch is due for a token naming ``kid``: nothing fetched yet, the set is older than
        the TTL, or ``kid`` is unknown and the last attempt is older than the minimum interval."""
        now = time.monotonic()
        if self._fetched_at is None or now - self._fetched_at > self.ttl_s:
            return self._tried_at is None or now - self._tried_at >= self.min_refresh_s
        return self.key(kid) is None and (self._tried_at is None or now - self._tried_at >= self.min_refresh_s)

    def refresh(self, kid: str | None) -> None:
        """Fetch the JWKS if still due (one thread fetches; the others wait for it and use its keys)."""
        with self._lock:
            if self.wants_refresh(kid):
                self._attempt()

    def fetch_now(self) -> bool:
        """Fetch the JWKS now, due or not (the start-up fetch and its retries); whether it succeeded."""
        with self._lock:
            self._attempt()
            return self.failure is None

    def _attempt(self) -> None:
        """One fetch, its outcome kept (:attr:`failure`) and reported to the health (call with the lock held)."""
        self._tried_at = time.monotonic()
        try:
            keys = self._fetch()
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self.failure = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            logger.warning("fetching the identity provider's keys failed (%s): keeping %d keys", exc, len(self._keys))
            if self._health is not None:
                kept = f"; keeping the {len(self._keys)} keys fetched before" if self.fetched else ""
                summary = f"{self.where} cannot be reached: {self.failure}{kept}"
                # keys held still check tokens: ready; none held: no token can be checked
                self._health.report(Part.IDENTITY_PROVIDER, UNREACHABLE, summary, ready=self.fetched)
            return
        self._keys, self._fetched_at, self.failure = keys, time.monotonic(), None
        self.fetches += 1
        logger.info("identity provider keys fetched: %d signing keys", len(keys))
        if self._health is not None:
            self._health.ok(Part.IDENTITY_PROVIDER, f"{self.where}: {len(keys)} signing keys")

    def _fetch(self) -> dict[str | None, dict[str, Any]]:
        # a client per fetch (one an hour, or per key rotation): nothing to close at shutdown
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False, transport=self._transport) as client:
            url = self.jwks_url or self._discover(client)
            response = client.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
        keys: dict[str | None, dict[str, Any]] = {}
        for jwk in response.json()["keys"]:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("kty") == "oct":
                continue  # encryption keys and symmetric secrets never verify a signature here
            keys[jwk.get("kid")] = jwk
        return keys

    def _discover(self, client: httpx.Client) -> str:
        """The ``jwks_uri`` of the issuer's OpenID discovery document (looked up once)."""
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        response = client.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        doc = response.json()
        if doc.get("issuer") != self.issuer:
            raise ValueError(f"the discovery document names issuer {doc.get('issuer')!r}, not {self.issuer!r}")
        self.jwks_url = str(doc["jwks_uri"])
        return self.jwks_url


class JwtVerifier:
    """Checks bearer JWTs: algorithm, key, signature, issuer, audience and validity period."""

    def __init__(
        self, settings: Settings, transport: httpx.BaseTransport | None = None, health: Health | None = None
    ) -> None:
        self.algorithms = settings.jwt_algorithm_list()
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway_s = settings.jwt_leeway_s
        self.keys = JwksCache(settings, transport, health)
        self._prepared: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._prepared_for = 0  # the key set (``keys.fetches``) the prepared keys come from

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token`` (fetching keys in a worker thread when needed), or
        :class:`InvalidToken`."""
        alg, kid = self._header(token)
        # nothing held yet: a fetch may be in flight (the start-up one), wait for it rather than refuse
        if not self.keys.fetched or self.keys.wants_refresh(kid):
            await run_in_threadpool(self.keys.refresh, kid)
        return self._verify(token, alg, kid)

    def claims_blocking(self, token: str) -> dict[str, Any]:
        """:meth:`claims` for callers that are already off the event loop."""
        alg, kid = self._header(token)
        if not self.keys.fetched or self.keys.wants_refresh(kid):
            self.keys.refresh(kid)
        return self._verify(token, alg, kid)

    def _header(self, token: str) -> tuple[str, str | None]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"not a JWT: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise InvalidToken(f"algorithm {alg!r} is not accepted (accepted: {', '.join(self.algorithms)})")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the key id (kid) is not a string")
        return alg, kid

    def _verify(self, token: str, alg: str, kid: str | None) -> dict[str, Any]:
        jwk = self.keys.key(kid)
        if jwk is None:
            failure = self.keys.failure
            if failure is None and not self.keys.fetched:
                failure = "no keys fetched yet"
            if failure is not None:  # the provider was not asked: not the client's fault
                raise IdentityProviderUnavailable(
                    f"the token cannot be checked: the identity provider is unreachable ({self.keys.where}: "
                    f"{failure}); try again later"
                )
            raise InvalidToken(f"the identity provider has no signing key {kid!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self._prepare(kid, jwk, alg),
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from None
        return claims

    def _prepare(self, kid: str | None, jwk: Mapping[str, Any], alg: str) -> jwt.PyJWK:
        """The key bound to ``alg``, if its type (and curve) fits the algorithm and its own ``alg``, if any."""
        if self._prepared_for != self.keys.fetches:  # a new key set: a key id may now hold another key
            self._prepared, self._prepared_for = {}, self.keys.fetches
        cached = self._prepared.get((kid, alg))
        if cached is not None:
            return cached
        kty, curves = _KEY_TYPES.get(alg, _KEY_TYPES.get(alg[:2], (None, None)))
        curve_ok = curves is None or jwk.get("crv") in (curves if isinstance(curves, tuple) else (curves,))
        if jwk.get("kty") != kty or not curve_ok or jwk.get("alg", alg) != alg:
            raise InvalidToken(f"key {kid!r} ({jwk.get('kty')}, {jwk.get('alg') or 'any alg'}) is not for {alg}")
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=alg)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"key {kid!r} is unusable: {exc}") from None
        self._prepared[(kid, alg)] = key
        return key
