"""The fakes keep their real adapters' semantics (so logic tests mean something)."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
import pytest

from functions.users import errors
from functions.users.domain import OneTimeToken, RefreshRecord, User

from .fakes import FakeHasher, FakeWorld, InMemorySigner, InMemoryTokenStore

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _user(user_id: str = "u1", email: str = "ada@example.com") -> User:
    return User(user_id, email, "Ada", "UTC", {"mentee"}, NOW)


def _refresh(token_hash: str, family: str = "f1", user_id: str = "u1") -> RefreshRecord:
    return RefreshRecord(token_hash, family, user_id, expires_at=2_000_000_000, used=False)


class TestUnitOfWork:
    def test_uncommitted_work_is_discarded(self, world: FakeWorld) -> None:
        # Given a unit of work that adds an account
        # When it ends without commit
        with world.uows() as uow:
            uow.users.add(_user())
        # Then nothing was stored and the uow says so
        assert world.db.users == {}
        assert world.uows.opened[-1].committed is False

    def test_commit_persists_and_later_changes_need_another_commit(self, world: FakeWorld) -> None:
        # Given an account added and committed
        with world.uows() as uow:
            uow.users.add(_user())
            uow.commit()
            # When the same transaction changes it again without committing
            user = uow.users.get("u1")
            assert user is not None
            user.display_name = "Changed"
            uow.users.save(user)
        # Then only the committed state survives
        assert world.stored("u1").display_name == "Ada"
        assert world.uows.opened[-1].committed is True

    def test_objects_are_copies_so_unsaved_changes_are_lost(self, world: FakeWorld) -> None:
        # Given a stored account
        with world.uows() as uow:
            uow.users.add(_user())
            uow.commit()
        # When a read copy is changed and committed without save()
        with world.uows() as uow:
            user = uow.users.get("u1")
            assert user is not None
            user.roles.add("mentor")
            uow.commit()
        # Then the change did not reach the store
        assert world.stored("u1").roles == {"mentee"}

    def test_email_is_unique(self, world: FakeWorld) -> None:
        # Given an account with an email
        with world.uows() as uow:
            uow.users.add(_user("u1"))
            # When another account uses the same email
            # Then the unique constraint is reported as EmailTakenError
            with pytest.raises(errors.EmailTakenError):
                uow.users.add(_user("u2"))


class TestTokenStore:
    def test_refresh_token_can_be_marked_used_once(self) -> None:
        # Given a stored refresh token
        store = InMemoryTokenStore()
        store.put_refresh(_refresh("h1"), created_at=0)
        # When it is marked used twice
        # Then only the first succeeds, and unknown tokens never do
        assert store.mark_refresh_used("h1") is True
        assert store.mark_refresh_used("h1") is False
        assert store.mark_refresh_used("unknown") is False
        assert store.get_refresh("h1") == RefreshRecord("h1", "f1", "u1", 2_000_000_000, True)

    def test_unknown_family_counts_as_revoked_and_revocation_sticks(self) -> None:
        # Given a revoked family
        store = InMemoryTokenStore()
        store.put_refresh(_refresh("h1"), created_at=0)
        store.revoke_family("f1")
        # When a new token is put into the same family
        store.put_refresh(_refresh("h2"), created_at=1)
        # Then the family stays revoked (if_not_exists), and unknown families are revoked
        assert store.family_revoked("f1") is True
        assert store.family_revoked("never-seen") is True

    def test_revoke_user_revokes_only_that_users_families(self) -> None:
        # Given two families of one user and one of another
        store = InMemoryTokenStore()
        store.put_refresh(_refresh("a", "fa"), created_at=0)
        store.put_refresh(_refresh("b", "fb"), created_at=0)
        store.put_refresh(_refresh("c", "fc", user_id="u2"), created_at=0)
        # When the first user is signed out everywhere
        count = store.revoke_user("u1")
        # Then both of their families are revoked, the other user's is not
        assert count == 2
        assert store.family_revoked("fa") and store.family_revoked("fb")
        assert not store.family_revoked("fc")

    def test_one_time_token_is_consumed_once_before_expiry_for_its_purpose(self) -> None:
        # Given a one-time token expiring at t=100
        store = InMemoryTokenStore()
        token = OneTimeToken("h", "verify-email", "u1", expires_at=100)
        store.put_one_time(token)
        # When it is consumed for another purpose, at expiry, then in time, then again
        # Then only the in-time, right-purpose, first use succeeds
        assert store.consume_one_time("h", "password-reset", now=0) is None
        assert store.consume_one_time("h", "verify-email", now=100) is None
        assert store.consume_one_time("h", "verify-email", now=99) == token
        assert store.consume_one_time("h", "verify-email", now=0) is None

    def test_login_state_pops_once_and_refuses_duplicates(self) -> None:
        # Given a stored login state
        store = InMemoryTokenStore()
        store.put_login_state("s", {"nonce": "n"}, expires_at=100)
        # When it is stored again, popped late, popped in time and popped again
        with pytest.raises(errors.OidcLoginError):
            store.put_login_state("s", {}, expires_at=100)
        # Then only the in-time first pop returns the data
        assert store.pop_login_state("s", now=100) is None
        assert store.pop_login_state("s", now=1) == {"nonce": "n"}
        assert store.pop_login_state("s", now=1) is None


def test_signer_signs_es256_verifiable_with_its_jwk() -> None:
    # Given the fake signer
    signer = InMemorySigner()
    # When it signs claims
    token = signer.sign({"sub": "u1"})
    # Then the token is ES256 with the signer's kid and verifies with the published JWK
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "JWT", "kid": signer.kid}
    key = jwt.PyJWK(signer.jwk)
    assert jwt.decode(token, key=key, algorithms=["ES256"]) == {"sub": "u1"}
    assert "d" not in signer.jwk


def test_hasher_verifies_and_asks_for_rehash_after_an_upgrade() -> None:
    # Given a hash made with version 1
    hasher = FakeHasher(version=1)
    hashed = hasher.hash("correct horse battery")
    # When the hasher is upgraded
    hasher.version = 2
    # Then the old hash still verifies but needs a rehash
    assert hasher.verify(hashed, "correct horse battery")
    assert not hasher.verify(hashed, "wrong horse battery")
    assert hasher.needs_rehash(hashed)
    assert not hasher.needs_rehash(hasher.hash("x"))
