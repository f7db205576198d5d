"""Access tokens signed by KMS and verified against the JWKS (``lwm_core.tokens``).

KMS is moto, in process: the ring signs with ``kms:Sign`` (RAW, ECDSA_SHA_256)
exactly as it does in AWS, and the public keys come from ``kms:GetPublicKey``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from moto import mock_aws

from lwm_core.errors import UnauthorizedError
from lwm_core.tokens import (
    KMS_RAW_MESSAGE_LIMIT,
    KmsKeyRing,
    TokenPolicy,
    TokenVerifier,
    jwk_thumbprint,
)

ISSUER = "https://auth.test.linkwithmentor.dev"
AUDIENCE = "linkwithmentor-api"
POLICY = TokenPolicy(ISSUER, AUDIENCE)


class CountingKms:
    """A KMS client that counts ``GetPublicKey`` calls (the ring should cache the JWKS)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.public_key_calls = 0

    def get_public_key(self, **kwargs: Any) -> Any:
        self.public_key_calls += 1
        return self._client.get_public_key(**kwargs)

    def sign(self, **kwargs: Any) -> Any:
        return self._client.sign(**kwargs)


@pytest.fixture(scope="module")
def kms() -> Iterator[Any]:
    """An in-process moto KMS client (never a real endpoint); each test makes its own keys."""
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"):
            mp.delenv(name, raising=False)
        yield boto3.client("kms", region_name="us-east-1")


def _new_key(kms: Any, alias: str | None = None) -> str:
    key_id: str = kms.create_key(
        KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description="access tokens"
    )["KeyMetadata"]["KeyId"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "01HUSER", "iat": now, "exp": now + 900}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture
def ring(kms: Any) -> KmsKeyRing:
    return KmsKeyRing([_new_key(kms)], kms)


class TestKmsKeyRing:
    def test_signs_an_es256_jws_that_verifies_against_the_published_jwk(
        self, ring: KmsKeyRing
    ) -> None:
        # Given a ring over one KMS key
        # When it signs claims
        token = ring.sign(_claims(roles=["mentee"]))
        # Then the JWS names the published key and verifies with pyjwt against it
        (jwk,) = ring.jwks()
        assert jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "JWT", "kid": jwk["kid"]}
        claims = jwt.decode(token, jwt.PyJWK(jwk), algorithms=["ES256"], audience=AUDIENCE)
        assert claims["sub"] == "01HUSER" and claims["roles"] == ["mentee"]

    def test_the_published_jwk_is_public_and_its_kid_is_its_thumbprint(
        self, ring: KmsKeyRing
    ) -> None:
        # Given a ring
        # When its JWKS is read
        (jwk,) = ring.jwks()
        # Then it is a P-256 public key for signatures, with its RFC 7638 thumbprint as kid
        assert {k: jwk[k] for k in ("kty", "crv", "use", "alg")} == {
            "kty": "EC",
            "crv": "P-256",
            "use": "sig",
            "alg": "ES256",
        }
        assert "d" not in jwk
        canonical = json.dumps(
            {"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}, separators=(",", ":")
        )
        assert jwk["kid"] == _b64(hashlib.sha256(canonical.encode()).digest())
        assert jwk_thumbprint(jwk) == jwk["kid"]

    def test_every_signature_verifies(self, ring: KmsKeyRing) -> None:
        # Given a ring
        (jwk,) = ring.jwks()
        key = jwt.PyJWK(jwk)
        # When it signs many tokens (some r or s values are short: they must be left-padded)
        # Then each one verifies
        for i in range(40):
            token = ring.sign(_claims(jti=str(i)))
            assert jwt.decode(token, key, algorithms=["ES256"], audience=AUDIENCE)["jti"] == str(i)

    def test_extra_headers_are_signed_too(self, ring: KmsKeyRing) -> None:
        # Given a ring
        # When it signs with an extra header
        token = ring.sign(_claims(), headers={"typ": "at+jwt"})
        # Then the header carries it and the token still verifies
        assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
        jwt.decode(token, jwt.PyJWK(ring.jwks()[0]), algorithms=["ES256"], audience=AUDIENCE)

    def test_the_jwks_is_fetched_once(self, kms: Any) -> None:
        # Given a ring over a KMS client that counts calls
        counting = CountingKms(kms)
        ring = KmsKeyRing([_new_key(kms), _new_key(kms)], counting)
        # When it signs and publishes several times
        for _ in range(3):
            ring.sign(_claims())
            ring.jwks()
        # Then each public key was read from KMS once
        assert counting.public_key_calls == 2

    def test_key_aliases_work(self, kms: Any) -> None:
        # Given a key known by its alias
        _new_key(kms, alias="alias/lwm-access-token")
        ring = KmsKeyRing.from_setting("alias/lwm-access-token", kms)
        # When the ring signs
        token = ring.sign(_claims())
        # Then the token verifies
        TokenVerifier(POLICY, ring.jwks).verify(token)

    def test_claims_too_large_for_kms_are_refused(self, ring: KmsKeyRing) -> None:
        # Given claims whose signing input exceeds KMS's RAW message limit
        claims = _claims(blob="x" * KMS_RAW_MESSAGE_LIMIT)
        # When the ring signs them
        # Then ValueError (not a KMS error)
        with pytest.raises(ValueError, match="too large"):
            ring.sign(claims)

    def test_from_setting_splits_a_comma_separated_list(self) -> None:
        # Given a setting with spaces and an empty item
        # When the ring is built
        ring = KmsKeyRing.from_setting(" alias/new , alias/old,, ")
        # Then both ids are kept in order, the first signing
        assert ring._key_ids == ["alias/new", "alias/old"]

    @pytest.mark.parametrize("setting", ["", " , "])
    def test_at_least_one_key_is_needed(self, setting: str) -> None:
        # Given an empty setting
        # When a ring is built
        # Then ValueError
        with pytest.raises(ValueError, match="at least one"):
            KmsKeyRing.from_setting(setting)


class TestKeyRotation:
    def test_the_first_key_signs_both_are_published_and_old_tokens_still_verify(
        self, kms: Any
    ) -> None:
        # Given a token signed before a rotation, by the old key alone
        old_key, new_key = _new_key(kms), _new_key(kms)
        before = KmsKeyRing([old_key], kms)
        old_token = before.sign(_claims())
        # When the new key is put first
        after = KmsKeyRing([new_key, old_key], kms)
        new_token = after.sign(_claims())
        # Then both keys are published, the new one first, and it signs
        new_jwk, old_jwk = after.jwks()
        assert old_jwk == before.jwks()[0]
        assert new_jwk["kid"] != old_jwk["kid"]
        assert jwt.get_unverified_header(new_token)["kid"] == new_jwk["kid"]
        # And tokens of both keys verify against the published set
        verifier = TokenVerifier(POLICY, after.jwks)
        assert verifier.verify(old_token)["sub"] == "01HUSER"
        assert verifier.verify(new_token)["sub"] == "01HUSER"

    def test_a_retired_key_no_longer_verifies(self, kms: Any) -> None:
        # Given a token of a key that was later removed from the ring
        old_key, new_key = _new_key(kms), _new_key(kms)
        old_token = KmsKeyRing([old_key], kms).sign(_claims())
        # When only the new key is published
        verifier = TokenVerifier(POLICY, KmsKeyRing([new_key], kms).jwks)
        # Then the old token is refused
        with pytest.raises(UnauthorizedError, match="unknown key"):
            verifier.verify(old_token)


class TestTokenVerifier:
    def test_a_valid_token_gives_its_claims(self, ring: KmsKeyRing) -> None:
        # Given a token the ring signed
        token = ring.sign(_claims(scope="mentee"))
        # When it is verified
        claims = TokenVerifier(POLICY, ring.jwks).verify(token)
        # Then its claims come back
        assert claims["scope"] == "mentee"

    def test_alg_none_is_refused(self, ring: KmsKeyRing) -> None:
        # Given an unsigned token naming a published kid
        kid = ring.jwks()[0]["kid"]
        token = _forge({"alg": "none", "typ": "JWT", "kid": kid}, _claims())
        # When it is verified
        # Then UnauthorizedError (401)
        with pytest.raises(UnauthorizedError) as caught:
            TokenVerifier(POLICY, ring.jwks).verify(token)
        assert caught.value.status == 401

    def test_hs256_signed_with_the_public_key_is_refused(self, ring: KmsKeyRing) -> None:
        # Given the classic key-confusion forgery: HMAC keyed with the public key's bytes
        jwk = ring.jwks()[0]
        public_pem = jwt.PyJWK(jwk).key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]}
        unsigned = _forge(header, _claims()).rsplit(".", 1)[0]
        for secret in (public_pem, json.dumps(jwk).encode()):
            signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
            token = f"{unsigned}.{_b64(signature)}"
            # When it is verified
            # Then it is refused
            with pytest.raises(UnauthorizedError, match="algorithm"):
                TokenVerifier(POLICY, ring.jwks).verify(token)

    def test_an_unknown_kid_is_refused(self, kms: Any, ring: KmsKeyRing) -> None:
        # Given a token of another KMS key
        stranger = KmsKeyRing([_new_key(kms)], kms).sign(_claims())
        # When it is verified against the ring's keys
        # Then it is refused
        with pytest.raises(UnauthorizedError, match="unknown key"):
            TokenVerifier(POLICY, ring.jwks).verify(stranger)

    def test_a_token_of_another_key_under_a_published_kid_is_refused(
        self, kms: Any, ring: KmsKeyRing
    ) -> None:
        # Given a token signed by another key but claiming the ring's kid
        stranger = KmsKeyRing([_new_key(kms)], kms)
        token = stranger.sign(_claims(), headers={"kid": ring.jwks()[0]["kid"]})
        # When it is verified
        # Then the signature does not verify
        with pytest.raises(UnauthorizedError, match="invalid token"):
            TokenVerifier(POLICY, ring.jwks).verify(token)

    def test_a_tampered_payload_is_refused(self, ring: KmsKeyRing) -> None:
        # Given a valid token whose payload was swapped for one with more roles
        header, _, signature = ring.sign(_claims(scope="mentee")).split(".")
        payload = _b64(json.dumps(_claims(scope="mentee admin")).encode())
        # When it is verified
        # Then it is refused
        with pytest.raises(UnauthorizedError):
            TokenVerifier(POLICY, ring.jwks).verify(f"{header}.{payload}.{signature}")

    def test_an_expired_token_is_refused_beyond_the_leeway(self, ring: KmsKeyRing) -> None:
        # Given a token that expired 31 seconds ago, and one that expired 15 seconds ago
        now = int(time.time())
        expired = ring.sign(_claims(iat=now - 1000, exp=now - 31))
        within_leeway = ring.sign(_claims(iat=now - 1000, exp=now - 15))
        verifier = TokenVerifier(POLICY, ring.jwks)
        # When they are verified (30 s leeway for clock skew)
        # Then the first is refused and the second accepted
        with pytest.raises(UnauthorizedError, match="expired"):
            verifier.verify(expired)
        assert verifier.verify(within_leeway)["sub"] == "01HUSER"

    @pytest.mark.parametrize(
        ("claims", "message"),
        [
            (_claims(aud="another-api"), "(?i)audience"),
            (_claims(iss="https://evil.example"), "(?i)issuer"),
            (_claims(aud=None), "aud"),
            (_claims(sub=None), "sub"),
            (_claims(exp=None), "exp"),
            (_claims(iat=None), "iat"),
        ],
    )
    def test_wrong_or_missing_audience_issuer_subject_and_times_are_refused(
        self, ring: KmsKeyRing, claims: dict[str, Any], message: str
    ) -> None:
        # Given a properly signed token with a wrong or missing claim
        token = ring.sign(claims)
        # When it is verified
        # Then it is refused, saying which claim
        with pytest.raises(UnauthorizedError, match=message):
            TokenVerifier(POLICY, ring.jwks).verify(token)

    @pytest.mark.parametrize("token", ["", "abc", "a.b.c", "not.a.jwt.at.all"])
    def test_malformed_tokens_are_refused(self, ring: KmsKeyRing, token: str) -> None:
        # Given something that is not a JWS
        # When it is verified
        # Then UnauthorizedError, not a parsing exception
        with pytest.raises(UnauthorizedError):
            TokenVerifier(POLICY, ring.jwks).verify(token)

    def test_expiry_is_judged_by_the_injected_clock(self, ring: KmsKeyRing) -> None:
        # Given a token valid for 15 minutes from now
        token = ring.sign(_claims())
        # When it is verified by a verifier whose clock reads one hour later
        later = TokenVerifier(POLICY, ring.jwks, clock=lambda: time.time() + 3600)
        # Then it has expired
        with pytest.raises(UnauthorizedError):
            later.verify(token)
