"""Ed25519 keys and detached package signatures (PyNaCl over libsodium), computed in streamed passes.

A signature is plain Ed25519 (RFC 8032) over the package bytes, as INTERFACES says: any verifier
(`nacl.signing.VerifyKey.verify(package_bytes, signature)`, `openssl pkeyutl`) accepts it. Ed25519
hashes the message with SHA-512 only, so the signer (two passes: the nonce hash, then the challenge
hash) and the verifier (one pass: the challenge hash) stream the file in chunks and finish with
libsodium's group operations: memory is flat in the package size. Tests check the streamed signature
equals libsodium's one-shot `crypto_sign` and that libsodium's own verify accepts it. Digests are
always computed here from the bytes on disk, never taken from a server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from nacl import bindings as sodium
from nacl.signing import SigningKey, VerifyKey

PRIVATE_KEY_NAME = "ota_ed25519"
PUBLIC_KEY_NAME = "ota_ed25519.pub"
CHUNK_BYTES = 1 << 20


class SignatureError(ValueError):
    """A signature or key that does not verify or cannot be read; the message says which."""


@dataclass(frozen=True)
class Digests:
    size: int
    sha256: str      # hex, what the server's `checksum` must equal


def digest_file(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Digests:
    """Size and SHA-256 of a file in one streamed pass (memory flat in the file's size)."""
    sha256, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            sha256.update(block)
            size += len(block)
    return Digests(size, sha256.hexdigest())


def _sha512_scalar(prefix: bytes, path: Path, chunk_bytes: int = CHUNK_BYTES) -> bytes:
    """SHA-512(prefix || file) reduced mod the group order L (32 bytes little-endian), streamed."""
    h = hashlib.sha512(prefix)
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return sodium.crypto_core_ed25519_scalar_reduce(h.digest())


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


def sign_file(key: SigningKey, path: Path) -> str:
    """The base64 detached Ed25519 signature of the file's bytes (RFC 8032, deterministic), in two
    streamed passes: r = H(prefix || M), R = rB, k = H(R || A || M), S = r + k a (mod L)."""
    expanded = hashlib.sha512(bytes(key)).digest()
    a = bytearray(expanded[:32])            # the clamped secret scalar of RFC 8032 5.1.5
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    a = sodium.crypto_core_ed25519_scalar_reduce(bytes(a) + bytes(32))
    public = bytes(key.verify_key)
    r = _sha512_scalar(expanded[32:], path)
    big_r = sodium.crypto_scalarmult_ed25519_base_noclamp(r)
    k = _sha512_scalar(big_r + public, path)
    s = sodium.crypto_core_ed25519_scalar_add(r, sodium.crypto_core_ed25519_scalar_mul(k, a))
    return base64.b64encode(big_r + s).decode()


# the group order L: S must be below it (RFC 8032 5.1.7, libsodium refuses larger S too)
_L = 2 ** 252 + 27742317777372353535851937790883648493


def verify_file(key: VerifyKey, path: Path, signature_b64: str) -> None:
    """Raises SignatureError unless signature_b64 is key's Ed25519 signature of the file's bytes;
    one streamed pass: [S]B == R + [k]A with k = H(R || A || M)."""
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"signature is not base64: {exc}") from exc
    if len(signature) != 64:
        raise SignatureError(f"signature has {len(signature)} bytes, an ed25519 signature has 64")
    big_r, s = signature[:32], signature[32:]
    public = bytes(key)
    bad = SignatureError("bad signature: the package was not signed by the trusted key")
    if int.from_bytes(s, "little") >= _L:
        raise bad
    if not (sodium.crypto_core_ed25519_is_valid_point(big_r) and sodium.crypto_core_ed25519_is_valid_point(public)):
        raise bad                                           # small-order or off-curve R or key
    k = _sha512_scalar(big_r + public, path)
    try:
        left = sodium.crypto_scalarmult_ed25519_base_noclamp(s)
        right = sodium.crypto_core_ed25519_add(big_r, sodium.crypto_scalarmult_ed25519_noclamp(k, public))
    except Exception as exc:  # libsodium refuses degenerate points or a zero scalar with RuntimeError
        raise bad from exc
    if not hmac.compare_digest(left, right):
        raise bad
