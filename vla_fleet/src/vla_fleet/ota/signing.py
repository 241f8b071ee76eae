"""Ed25519 keys and detached package signatures (PyNaCl), and the one streamed pass over a package file.

A signature covers the package bytes prehashed: ed25519 over `PREHASH_TAG + sha512(package)`, the
scheme of minisign's prehashed signatures, so a 100 MB package is signed and verified in constant
memory. The digest is always computed here from the bytes on disk, never taken from a server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

PRIVATE_KEY_NAME = "ota_ed25519"
PUBLIC_KEY_NAME = "ota_ed25519.pub"
PREHASH_TAG = b"vla-ota-package-v1\n"
CHUNK_BYTES = 1 << 20


class SignatureError(ValueError):
    """A signature or key that does not verify or cannot be read; the message says which."""


@dataclass(frozen=True)
class Digests:
    size: int
    sha256: str      # hex, what the server's `checksum` must equal
    sha512: bytes    # raw, what the signature covers


def digest_file(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Digests:
    """Size, SHA-256 and SHA-512 of a file in one streamed pass (memory flat in the file's size)."""
    sha256, sha512, size = hashlib.sha256(), hashlib.sha512(), 0
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            sha256.update(block)
            sha512.update(block)
            size += len(block)
    return Digests(size, sha256.hexdigest(), sha512.digest())


def keygen(out_dir: Path) -> tuple[Path, Path]:
    """Writes a new key pair into out_dir (the private key 0600 from its creation); refuses to overwrite."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private, public = out_dir / PRIVATE_KEY_NAME, out_dir / PUBLIC_KEY_NAME
    key = SigningKey.generate()
    # O_EXCL and the mode at open: the secret is never readable by others, not even for a moment
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(bytes(key)).decode() + "\n")
    public.write_text(base64.b64encode(bytes(key.verify_key)).decode() + "\n")
    return private, public


def _read_key(path: Path, what: str) -> bytes:
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
    except (OSError, binascii.Error, UnicodeDecodeError) as exc:
        raise SignatureError(f"cannot read the {what} key {path}: {exc}") from exc
    if len(raw) != 32:
        raise SignatureError(f"{path} is not an ed25519 {what} key (32 bytes base64, got {len(raw)} bytes)")
    return raw


def load_signing_key(path: Path) -> SigningKey:
    mode = path.stat().st_mode & 0o077
    if mode:
        raise SignatureError(f"private key {path} is readable by others (mode {oct(path.stat().st_mode & 0o777)});"
                             " chmod 600 it")
    return SigningKey(_read_key(path, "private"))


def load_verify_key(path: Path) -> VerifyKey:
    return VerifyKey(_read_key(path, "public"))


def sign_digest(key: SigningKey, digests: Digests) -> str:
    """The base64 detached signature of a package with these digests."""
    return base64.b64encode(key.sign(PREHASH_TAG + digests.sha512).signature).decode()


def verify_digest(key: VerifyKey, digests: Digests, signature_b64: str) -> None:
    """Raises SignatureError unless signature_b64 is key's signature of the package with these digests."""
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"signature is not base64: {exc}") from exc
    if len(signature) != 64:
        raise SignatureError(f"signature has {len(signature)} bytes, an ed25519 signature has 64")
    try:
        key.verify(PREHASH_TAG + digests.sha512, signature)
    except BadSignatureError as exc:
        raise SignatureError("bad signature: the package was not signed by the trusted key") from exc
