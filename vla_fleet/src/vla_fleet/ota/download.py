"""Talking to the update server: the `latest` query, the streamed download with resume, the report.

Standard library HTTP (urllib): the package is streamed to a `.part` file in the staging directory,
never held in memory; a `.part` left by an interrupted download is resumed with an HTTP Range request.
Every request has a timeout; the download stops at the size the server declared, capped by the caller.
With a token every request (latest, download and its Range resume, report) carries `Authorization: Bearer`.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 16


class DownloadError(RuntimeError):
    """The server unreachable, an HTTP error, or a package larger than allowed; the message says which."""


class AuthError(DownloadError):
    """The server refused this robot's token (HTTP 401) or what it asked for with it (HTTP 403)."""


@dataclass(frozen=True)
class Offer:
    """What GET /api/updates/latest answered."""
    available: bool
    version: str = ""
    download_url: str = ""
    checksum: str = ""
    signature: str = ""
    size: int = 0
    reason: str = ""


@dataclass
class Fetched:
    path: Path
    size: int
    resumed_from: int


class ServerClient:
    """One update server at base_url (http:// or https://, with an optional CA file for a private cert)."""

    def __init__(self, base_url: str, timeout_s: float = 30.0, ca_file: str = "",
                 token: Callable[[], str] | str = ""):
        """token: the robot's token, or a callable giving it at each request (a file read again on change)."""
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._ssl = ssl.create_default_context(cafile=ca_file or None) if base_url.startswith("https") else None
        self._token = token if callable(token) else (lambda: token)
        self.auth_failures = 0  # 401/403 answers, for the node's diagnostics

    def _open(self, request: urllib.request.Request):
        if token := self._token():
            request.add_header("Authorization", f"Bearer {token}")
        try:
            return urllib.request.urlopen(request, timeout=self.timeout_s, context=self._ssl)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                self.auth_failures += 1
                why = "no valid token" if exc.code == 401 else "the token does not speak for this robot"
                raise AuthError(f"{request.full_url}: HTTP {exc.code} {exc.reason}: the server refused us "
                                f"({why}; see ~token_file)") from exc
            raise DownloadError(f"{request.full_url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise DownloadError(f"{request.full_url}: {exc}") from exc

    def latest(self, current_version: str, robot_id: str) -> Offer:
        query = urllib.parse.urlencode({"current_version": current_version, "robot_id": robot_id})
        with self._open(urllib.request.Request(f"{self.base_url}/api/updates/latest?{query}")) as resp:
            body = resp.read(1 << 20)
        try:
            doc = json.loads(body)
            return Offer(bool(doc["available"]), str(doc.get("version") or ""), str(doc.get("download_url") or ""),
                         str(doc.get("checksum") or ""), str(doc.get("signature") or ""), int(doc.get("size") or 0),
                         str(doc.get("reason") or ""))
        except (ValueError, KeyError, TypeError) as exc:
            raise DownloadError(f"latest: malformed answer: {exc}") from exc

    def report(self, robot_id: str, version: str, previous_version: str, status: str, message: str) -> None:
        body = json.dumps({"robot_id": robot_id, "version": version, "previous_version": previous_version,
                           "status": status, "message": message}).encode()
        request = urllib.request.Request(f"{self.base_url}/api/updates/report", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with self._open(request) as resp:
            resp.read(1 << 16)

    def download(self, offer: Offer, dest: Path, max_bytes: int,
                 on_chunk: Callable[[int, int], None] | None = None) -> Fetched:
        """Streams the offered package to dest (resuming dest's bytes so far); returns what was fetched.

        Stops with DownloadError when the declared size passes max_bytes or the server sends more than it
        declared. `on_chunk(done, total)` is called after each chunk written.
        """
        if offer.size <= 0 or offer.size > max_bytes:
            raise DownloadError(f"package of {offer.size} bytes refused: the cap is {max_bytes} bytes")
        url = urllib.parse.urljoin(self.base_url + "/", offer.download_url)
        have = dest.stat().st_size if dest.exists() else 0
        if have > offer.size:  # a stale .part of another package under the same name
            dest.unlink()
            have = 0
        resumed_from = have
        if have == offer.size:
            return Fetched(dest, have, resumed_from)
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self._open(urllib.request.Request(url, headers=headers)) as resp:
            if have and resp.status != 206:  # the server ignored the Range: start again from the first byte
                have = resumed_from = 0
            with open(dest, "ab" if have else "wb") as out:
                try:
                    while block := resp.read(CHUNK_BYTES):
                        have += len(block)
                        if have > offer.size:
                            raise DownloadError(f"server sent more than the declared {offer.size} bytes")
                        out.write(block)
                        if on_chunk is not None:
                            out.flush()
                            on_chunk(have, offer.size)
                except (http.client.HTTPException, OSError) as exc:
                    raise DownloadError(f"download broke off at {have} of {offer.size} bytes "
                                        f"(resumed at the next check): {exc}") from exc
                finally:
                    out.flush()
                    os.fsync(out.fileno())
        if have != offer.size:
            raise DownloadError(f"download ended at {have} of {offer.size} bytes (resumed at the next check)")
        return Fetched(dest, have, resumed_from)
