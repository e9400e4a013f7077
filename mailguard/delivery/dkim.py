"""DKIM-signs the final bytes per sending domain: dkimpy canonicalises and builds the header;
the RSA step runs in OpenSSL (through `cryptography`), not in dkimpy's pure-Python `pow`.

Measured here: dkimpy's own RSA-2048 costs ~6.6 ms a message; OpenSSL ~0.25 ms.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim as dkimpy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from mailguard import mime
from mailguard.settings.schema import KeyProblem
from mailguard.settings.sections import DkimOptions
from mailguard.settings.shared import DkimSettings

SIGNED_HEADERS = (b"from", b"from", b"to", b"cc", b"subject", b"date", b"message-id",
                  b"reply-to", b"in-reply-to", b"references", b"mime-version",
                  b"content-type", b"content-transfer-encoding")  # "from" twice: oversigned

_OPENSSL_KEYS: dict[int, rsa.RSAPrivateKey] = {}
_dkimpy_rsa_sign = dkimpy.RSASSA_PKCS1_v1_5_sign


def _rsa_sign(digest_source: Any, private_key: Mapping[str, int]) -> bytes:
    """dkimpy's RSA signing step, done by OpenSSL for keys mailguard loaded (same bytes out)."""
    key = _OPENSSL_KEYS.get(private_key["modulus"])
    if key is None or digest_source.name != "sha256":
        return _dkimpy_rsa_sign(digest_source, private_key)
    return key.sign(digest_source.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


dkimpy.RSASSA_PKCS1_v1_5_sign = _rsa_sign
# dkimpy re-reads the PEM (ASN.1 in Python) on every signature; the key does not change.
dkimpy.parse_pem_private_key = functools.lru_cache(maxsize=256)(dkimpy.parse_pem_private_key)


@dataclass(frozen=True)
class Key:
    """One signing key: dkimpy's input form (PKCS#1 PEM, or base64 seed for ed25519)."""

    domain: str
    selector: str
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    material: bytes

    @classmethod
    def load(cls, domain: str, selector: str, path: Path) -> Key:
        """Reads PEM (PKCS#1 or PKCS#8); raises ValueError with what is wrong."""
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(private, rsa.RSAPrivateKey):
            if private.key_size < 1024:
                raise ValueError(f"an RSA key of {private.key_size} bits is too short")
            _OPENSSL_KEYS[private.private_numbers().public_numbers.n] = private
            pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
            return cls(domain, selector, "rsa-sha256", pem)
        if isinstance(private, ed25519.Ed25519PrivateKey):
            seed = private.private_bytes(serialization.Encoding.Raw,
                                         serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
            return cls(domain, selector, "ed25519-sha256", base64.b64encode(seed))
        raise ValueError("only RSA and Ed25519 keys can sign DKIM")


def signing_key(keys: Mapping[str, Key], sender: str) -> Key | None:
    """The key for the From domain, or for its nearest parent domain (DMARC relaxed alignment)."""
    labels = sender.rpartition("@")[2].lower().rstrip(".").split(".")
    for i in range(len(labels) - 1):
        key = keys.get(".".join(labels[i:]))
        if key is not None:
            return key
    return None


_NAME = re.compile(rb"[\x21-\x7e]+?:")
_NOT_CONTINUATION = re.compile(rb"\n[^ \t]")


def parse(raw: bytes) -> tuple[list[list[bytes]], bytes] | None:
    """dkimpy's rfc822_parse result, without splitting the whole body into lines: for the
    usual CRLF-only message it is the header fields as they stand and the body as is.
    None (let dkimpy parse) for anything else."""
    end = mime.header_end(raw)
    if b"\n" in raw.replace(b"\r\n", b"") or not raw[:end].endswith(b"\r\n\r\n"):
        return None
    headers = []
    for item in mime.fields(raw[:end - 2]):
        m = _NAME.match(item)
        if m is None or _NOT_CONTINUATION.search(item, 0, len(item) - 2):
            return None  # dkimpy would refuse this header block: let it say so
        headers.append([m.group(0)[:-1], item[m.end():]])
    return headers, raw[end:]


def sign(keys: Mapping[str, Key], raw: bytes, sender: str,
         canonicalization: str = "relaxed/simple") -> bytes:
    """The DKIM-Signature header field for `raw`, whose From is `sender`; b"" when no key
    covers the sender's domain."""
    key = signing_key(keys, sender)
    if key is None:
        return b""
    present = {h.partition(b":")[0].strip().lower() for h in raw[: mime.header_end(raw)]
               .splitlines() if h[:1] not in (b" ", b"\t")}
    include = [h for h in SIGNED_HEADERS if h in present or h == b"from"]
    signer = dkimpy.DKIM(signature_algorithm=key.algorithm.encode())
    parsed = parse(raw)
    if parsed is None:
        signer.set_message(raw)
    else:
        signer.headers, signer.body = parsed
    return signer.sign(key.selector.encode(), key.domain.encode(), key.material,
                       include_headers=include,
                       canonicalize=tuple(canonicalization.encode().split(b"/")))


def keygen(algorithm: str = "rsa", bits: int = 2048) -> tuple[bytes, str]:
    """A new private key (PEM) and the DNS TXT value that publishes its public half."""
    if algorithm == "ed25519":
        private: Any = ed25519.Ed25519PrivateKey.generate()
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    return pem, _public_value(private)


def _public_value(private: Any) -> str:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def public_value(key: Key) -> str:
    """The DNS TXT value a loaded signing key needs published, for `mailguard doctor`."""
    if key.algorithm == "ed25519-sha256":
        return _public_value(ed25519.Ed25519PrivateKey.from_private_bytes(
            base64.b64decode(key.material)))
    return _public_value(serialization.load_pem_private_key(key.material, password=None))


def txt_record(selector: str, domain: str, value: str) -> str:
    """A zone-file line, the value split into the 255-character strings DNS allows."""
    chunks = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {chunks} )"


def build(o: DkimOptions, base: Path) -> DkimSettings:
    """The [dkim] table's keys, loaded now so a bad key is a config error
    (`file: dkim.domains.D.key: problem`), not a failure at send time."""
    keys = {}
    for name, one in o.domains.items():
        path = Path(one.key) if Path(one.key).is_absolute() else base / one.key
        where = f"domains.{name}.key"
        try:
            keys[name] = Key.load(name, one.selector, path)
        except FileNotFoundError:
            raise KeyProblem(where, f"file {path} does not exist") from None
        except (ValueError, TypeError, OSError) as e:
            raise KeyProblem(where, f"{path} is not a usable private key: {e}") from None
    return DkimSettings(keys, o.canonicalization)
