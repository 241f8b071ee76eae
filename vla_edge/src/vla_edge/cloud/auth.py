"""The service's optional shared token: `Authorization: Bearer <token>` or openpi-client's
`Authorization: Api-Key <token>`, compared in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

SCHEMES = ("bearer", "api-key")
MAX_TOKEN_BYTES = 4096


class TokenError(ValueError):
    """The token file is missing, empty or too long."""


def load_token(path: str | Path) -> str:
    """The token in a file (surrounding whitespace ignored)."""
    try:
        raw = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise TokenError(f"cannot read token file {path}: {exc.strerror}") from exc
    if len(raw) > MAX_TOKEN_BYTES:
        raise TokenError(f"token file {path} is larger than {MAX_TOKEN_BYTES} bytes")
    token = raw.decode("utf-8", errors="strict").strip()
    if not token:
        raise TokenError(f"token file {path} is empty")
    return token


class TokenAuth:
    """`allows(header)` is True when no token is configured, or the header carries it."""

    def __init__(self, token: str | None = None):
        self._token = token.encode("utf-8") if token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def allows(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        scheme, _, value = (authorization or "").strip().partition(" ")
        if scheme.lower() not in SCHEMES:
            # still one comparison, so a missing header costs what a wrong one does
            hmac.compare_digest(self._token, self._token[::-1])
            return False
        return hmac.compare_digest(value.strip().encode("utf-8"), self._token)
