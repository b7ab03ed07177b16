"""The EHR's JWT on every hook and feedback call, as CDS Hooks 2.0 asks: signed by a
trusted issuer's key named by `kid` (required, whatever the issuer), asymmetric
algorithms only, `aud` the endpoint called, `exp`, `iat` (not in the future, at most 5
minutes old) and `jti` good once. Any failure is a plain 401 with no detail.

One signature check per token: the header and claims are read once (no separate
unverified pass) and the issuers' keys are parsed once, at start-up.
"""
from __future__ import annotations

import base64
import json
import time
from typing import Any, Callable

from ..engine.errors import InputError
from .config import Config

ALGORITHMS = ["ES384", "RS384", "ES256", "RS256"]
MAX_TOKEN_AGE = 300  # seconds an iat may lie in the past (and a jti is remembered)
LEEWAY = 5


def _part(segment: str) -> dict[str, Any]:
    data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


class Auth:
    """Trusted issuers' keys by (iss, kid); `first_use` remembers token ids."""

    def __init__(self, config: Config, first_use: Callable[[str, float, float], bool]) -> None:
        import jwt
        self.jwt = jwt
        self.config = config
        self.first_use = first_use
        self.keys: dict[str, Any] = {}
        for iss, spec in config.issuers.items():
            if "jwks_file" in spec:
                try:
                    data = json.loads((config.base / spec["jwks_file"]).read_text())
                    keyset = jwt.PyJWKSet.from_dict(data)
                except (OSError, ValueError, jwt.PyJWTError) as exc:
                    raise InputError(f"issuer {iss}: cannot read its JWKS "
                                     f"({type(exc).__name__})", spec["jwks_file"]) from None
                self.keys[iss] = {k.key_id: k for k in keyset.keys if k.key_id}
            elif "jwks_url" in spec:
                self.keys[iss] = jwt.PyJWKClient(spec["jwks_url"], timeout=5)
            else:
                raise InputError(f"issuer {iss}: give jwks_file or jwks_url")

    def _key(self, iss: Any, kid: Any) -> Any:
        keys = self.keys.get(iss) if isinstance(iss, str) else None
        if keys is None or not isinstance(kid, str) or not kid:
            return None  # unknown issuer, or no kid: refused for every issuer
        if isinstance(keys, dict):
            return keys.get(kid)
        return keys.get_signing_key(kid)

    def check(self, header: str | None, endpoint: str) -> bool:
        """True when the bearer token is good for `endpoint` (and now used up)."""
        if not header or not header.startswith("Bearer "):
            return False
        token = header[7:].strip()
        try:
            head_b64, claims_b64, _ = token.split(".")
            head, unverified = _part(head_b64), _part(claims_b64)
            key = self._key(unverified.get("iss"), head.get("kid"))
            if key is None or head.get("alg") not in ALGORITHMS:
                return False
            # the key object itself: a JWK without "alg" (an RSA key used with RS384)
            # must not be pinned to a default algorithm; the list holds asymmetric ones
            claims = self.jwt.decode(token, key.key, algorithms=[head["alg"]],
                                     issuer=unverified["iss"], audience=endpoint,
                                     options={"require": ["iss", "aud", "exp", "iat", "jti"]},
                                     leeway=LEEWAY)
        except Exception:  # noqa: BLE001 - any token problem is a plain 401
            return False
        now = time.time()
        iat, jti = claims["iat"], claims["jti"]
        if not isinstance(iat, (int, float)) or not isinstance(jti, str) or not jti \
                or iat > now + LEEWAY or iat < now - MAX_TOKEN_AGE:
            return False
        until = max(float(claims["exp"]), now + MAX_TOKEN_AGE) + 10
        return self.first_use(f"{claims['iss']}|{jti}", until, now)
