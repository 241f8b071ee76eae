"""Who may talk to the update server: per-robot tokens from a token file, read again when it changes.

The file (`update_server --token-file F`) holds one `robot_id token` per line, `#` comments and blank
lines ignored; `* token` is a fleet-wide token that speaks for any robot. A request carries its token as
`Authorization: Bearer <token>` (or `Api-Key <token>`, as the cloud server accepts); it is compared with
every configured token in constant time, so neither a wrong token nor a missing one is faster to refuse.
The robot's side keeps its one token in a file of its own (`load_token`).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger(__name__)
SCHEMES = ("bearer", "api-key")
FLEET_WIDE = "*"
MAX_FILE_BYTES = 1 << 20
MAX_TOKEN_BYTES = 4096


class TokenFileError(ValueError):
    """A token file that is unreadable or malformed; the message names the file (and the line)."""


@dataclass(frozen=True)
class Identity:
    """Whom a valid token speaks for: one robot, or (robot_id "*") the whole fleet."""
    robot_id: str

    def speaks_for(self, robot_id: str) -> bool:
        return self.robot_id == FLEET_WIDE or hmac.compare_digest(self.robot_id.encode(), robot_id.encode())


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is rewritten or replaced (mtime alone can repeat within a tick)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc.strerror}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise TokenFileError(f"token file {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenFileError(f"token file {path} is not UTF-8 text") from exc


def parse_tokens(text: str, source: str = "token file") -> dict[str, str]:
    """robot_id (or "*") -> token; refuses malformed lines, a robot named twice, an empty or shared token."""
    tokens: dict[str, str] = {}
    owners: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 1:
            raise TokenFileError(f"{source}:{number}: {fields[0]} has an empty token")
        if len(fields) != 2:
            raise TokenFileError(f"{source}:{number}: expected `robot_id token` (or `* token`), "
                                 f"found {len(fields)} field{'s' if len(fields) != 1 else ''}")
        robot_id, token = fields
        if len(token.encode()) > MAX_TOKEN_BYTES:
            raise TokenFileError(f"{source}:{number}: the token is longer than {MAX_TOKEN_BYTES} bytes")
        if robot_id in tokens:
            raise TokenFileError(f"{source}:{number}: {robot_id} has a token already")
        if token in owners:  # one token for two robots would let each speak for the other
            raise TokenFileError(f"{source}:{number}: {robot_id}'s token is {owners[token]}'s too")
        tokens[robot_id] = token
        owners[token] = robot_id
    if not tokens:
        raise TokenFileError(f"{source}: no tokens (an empty token file would lock every robot out)")
    return tokens


def load_tokens(path: str | Path) -> dict[str, str]:
    path = Path(path).expanduser()
    return parse_tokens(_read(path), str(path))


def load_token(path: str | Path) -> str:
    """A robot's own token: the whole file, surrounding whitespace ignored."""
    path = Path(path).expanduser()
    token = _read(path).strip()
    if not token:
        raise TokenFileError(f"token file {path} is empty")
    if len(token.encode()) > MAX_TOKEN_BYTES or any(c.isspace() for c in token):
        raise TokenFileError(f"token file {path} holds more than one token of at most {MAX_TOKEN_BYTES} bytes")
    return token


def readable_by_others(path: str | Path) -> bool:
    """Whether group or others may read the file (a token file should be 0600, like a private key)."""
    try:
        return bool(os.stat(Path(path).expanduser()).st_mode & 0o077)
    except OSError:
        return False


def presented(authorization: str | None) -> str | None:
    """The token of an `Authorization` header, or None without one in a known scheme."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() in SCHEMES and value else None


class RobotTokens:
    """The server's tokens from path, read again at the first request after the file changed.

    A changed file that is bad is refused as a whole: the tokens read before stay in force (a typo while
    rotating must neither lock the fleet out nor let anyone in), and the error is logged once per change.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._stamp = _file_stamp(self.path)
        self._tokens = load_tokens(self.path)  # at start a bad file is fatal: the caller says so and exits
        self._refused_stamp: tuple[int, int, int] | None = None
        self.reloads = 0

    @property
    def count(self) -> int:
        return len(self._tokens)

    def _refresh(self) -> dict[str, str]:
        stamp = _file_stamp(self.path)
        with self._lock:
            if stamp != self._stamp and stamp != self._refused_stamp:
                try:
                    tokens = load_tokens(self.path)
                except TokenFileError as exc:
                    self._refused_stamp = stamp
                    _log.error("%s; the tokens read before stay in force", exc)
                else:
                    self._tokens, self._stamp, self._refused_stamp = tokens, stamp, None
                    self.reloads += 1
                    _log.info("token file %s read again: %d tokens", self.path, len(tokens))
            return self._tokens

    def identify(self, authorization: str | None) -> Identity | None:
        """Whom the header's token speaks for, or None (no token, or no such token)."""
        tokens = self._refresh()
        token = (presented(authorization) or "").encode()
        found = None
        for robot_id, known in tokens.items():  # every entry compared: the time says nothing about which
            if hmac.compare_digest(token, known.encode()) and token:
                found = robot_id
        return Identity(found) if found is not None else None


class RobotToken:
    """A robot's own token from path (`load_token`), read again when the file changed: a token rotated on the
    server and on the robot needs no restart of the node. A changed file that is bad keeps the old token."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._stamp = _file_stamp(self.path)
        self._token = load_token(self.path)
        self._refused_stamp: tuple[int, int, int] | None = None

    def __call__(self) -> str:
        stamp = _file_stamp(self.path)
        with self._lock:
            if stamp != self._stamp and stamp != self._refused_stamp:
                try:
                    self._token, self._stamp, self._refused_stamp = load_token(self.path), stamp, None
                    _log.info("token file %s read again", self.path)
                except TokenFileError as exc:
                    self._refused_stamp = stamp
                    _log.error("%s; the token read before stays in use", exc)
            return self._token
