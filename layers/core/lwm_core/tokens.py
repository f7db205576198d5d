"""Access tokens: ES256 JWTs signed by KMS, verified with pyjwt against a JWKS.

The private key never leaves KMS: the signer sends the JWS signing input to
``kms:Sign`` (``MessageType=RAW``: KMS hashes it) and converts the DER
signature to JWS form. Several keys may be configured (comma-separated ids,
the first signs); every one is published in the JWKS so tokens signed before
a rotation stay valid until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lwm_core.errors import UnauthorizedError

ALGORITHM = "ES256"
KMS_RAW_MESSAGE_LIMIT = 4096  # bytes KMS Sign accepts with MessageType RAW


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK: a stable, non-revealing ``kid``."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk_from_der(der: bytes) -> dict[str, Any]:
    """The public JWK (with ``kid``, ``use``, ``alg``) of a DER SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from jwt.algorithms import ECAlgorithm

    key = load_der_public_key(der)
    if not isinstance(key, EllipticCurvePublicKey):
        raise ValueError("the signing key is not an EC key")
    jwk: dict[str, Any] = dict(ECAlgorithm.to_jwk(key, as_dict=True))
    jwk.update({"kid": jwk_thumbprint(jwk), "use": "sig", "alg": ALGORITHM})
    return jwk


class KmsKeyRing:
    """The signing keys of one purpose: the first signs, all are published."""

    def __init__(self, key_ids: Sequence[str], kms: Any | None = None) -> None:
        if not key_ids:
            raise ValueError("at least one KMS key id is needed")
        self._key_ids = list(key_ids)
        self._kms = kms
        self._jwks: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_setting(cls, value: str, kms: Any | None = None) -> KmsKeyRing:
        """Build from a comma-separated setting such as ``alias/new,alias/old``."""
        return cls([k.strip() for k in value.split(",") if k.strip()], kms)

    @property
    def kms(self) -> Any:
        if self._kms is None:
            from lwm_core.aws import client

            self._kms = client("kms")
        return self._kms

    def jwks(self) -> list[dict[str, Any]]:
        """Public JWKs of every configured key (fetched once per sandbox)."""
        with self._lock:
            if self._jwks is None:
                self._jwks = [
                    public_jwk_from_der(self.kms.get_public_key(KeyId=k)["PublicKey"])
                    for k in self._key_ids
                ]
            return self._jwks

    def sign(self, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
        """A compact JWS of ``claims`` signed by the active key."""
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.jwks()[0]["kid"], **(headers or {})}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":"), default=str).encode())
        )
        message = signing_input.encode()
        if len(message) > KMS_RAW_MESSAGE_LIMIT:
            raise ValueError(f"token claims too large to sign ({len(message)} bytes)")
        # RAW: KMS hashes the signing input itself (SHA-256). A token is far below the
        # 4 KiB RAW limit, and the local KMS (moto) implements RAW only, not DIGEST.
        der = self.kms.sign(
            KeyId=self._key_ids[0],
            Message=message,
            MessageType="RAW",
            SigningAlgorithm="ECDSA_SHA_256",
        )["Signature"]
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


@dataclass(frozen=True)
class TokenPolicy:
    """What a valid access token must satisfy."""

    issuer: str
    audience: str
    leeway_s: int = 30


class TokenVerifier:
    """Verifies access tokens against a JWKS (ES256 only: ``none`` and HS* are refused)."""

    def __init__(
        self,
        policy: TokenPolicy,
        jwks: Callable[[], Sequence[Mapping[str, Any]]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policy = policy
        self._jwks = jwks
        self._clock = clock

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or UnauthorizedError."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise UnauthorizedError("malformed token") from e
        if header.get("alg") != ALGORITHM:
            raise UnauthorizedError("token algorithm not accepted")
        jwk = next((k for k in self._jwks() if k.get("kid") == header.get("kid")), None)
        if jwk is None:
            raise UnauthorizedError("token signed by an unknown key")
        key = jwt.PyJWK(dict(jwk), algorithm=ALGORITHM)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self._policy.audience,
                issuer=self._policy.issuer,
                # Times are judged below by the injected clock, not pyjwt's wall clock.
                options={
                    "require": ["exp", "iat", "sub", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as e:
            raise UnauthorizedError(f"invalid token: {e}") from e
        self._check_times(claims)
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now, leeway = self._clock(), self._policy.leeway_s
        times = {k: claims.get(k) for k in ("exp", "nbf", "iat")}
        for name, value in times.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise UnauthorizedError(f"invalid token: {name} is not a number")
        exp, nbf, iat = times["exp"], times["nbf"], times["iat"]
        assert exp is not None and iat is not None  # required above
        if exp <= now - leeway:
            raise UnauthorizedError("invalid token: Signature has expired")
        if nbf is not None and nbf > now + leeway:
            raise UnauthorizedError("invalid token: The token is not yet valid (nbf)")
        if iat > now + leeway:
            raise UnauthorizedError("invalid token: The token is not yet valid (iat)")
