"""Anti-forgery tokens for the review form: the Airflow session cookie alone must not approve a creative.

A browser sends Airflow's `_token` cookie with any request to the API server, including a form another
site makes it post. So each state-changing form carries a token that only a page served to the same user
can hold: `issued.HMAC(key, user|issued)`. A forging site cannot read our pages (same-origin policy) and
cannot compute the MAC without the server key, so its request is refused. Stateless: no session store,
and every API-server worker that shares the key accepts it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

MAX_AGE_S = 8 * 3600


def derive_key(secret: str | bytes) -> bytes:
    """A key for this purpose only, derived from a deployment secret (never the secret itself)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if not raw:
        raise ValueError("the anti-forgery key needs a non-empty secret")
    return hmac.new(raw, b"pipelines.web.csrf.v1", hashlib.sha256).digest()


def _mac(key: bytes, user: str, issued: int) -> str:
    return hmac.new(key, f"{user}|{issued}".encode(), hashlib.sha256).hexdigest()


def issue(key: bytes, user: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_mac(key, user, issued)}"


def verify(key: bytes, user: str, token: str | None, now: float | None = None) -> bool:
    """True when `token` was issued to `user` by a holder of `key` within MAX_AGE_S."""
    if not token or "." not in token:
        return False
    issued_text, _, mac = token.partition(".")
    if not issued_text.isdigit():
        return False
    issued = int(issued_text)
    age = (time.time() if now is None else now) - issued
    return 0 <= age <= MAX_AGE_S and hmac.compare_digest(mac, _mac(key, user, issued))
