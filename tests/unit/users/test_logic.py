"""The users business rules (``functions.users.logic``) over the in-memory fakes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from functions.users import errors, logic
from functions.users.domain import MentorQuery, MentorSort, User
from functions.users.schemas import MentorOut
from lwm_core import constants as c
from lwm_core.errors import (
    BadRequestError,
    DependencyUnavailableError,
    ForbiddenError,
    InvalidCursorError,
)
from lwm_core.errors import RequestValidationError as ProblemValidationError

from .fakes import ISSUER, FakeWorld, mentor_sort_value

PASSWORD = "correct horse battery staple"
COMPLETE_MENTOR = {
    "headline": "Staff engineer, 15 years of Python",
    "skills": ["python", "aws"],
    "languages": ["en", "de"],
    "hourly_rate_minor": 9000,
    "currency": "EUR",
}


# --- helpers ---------------------------------------------------------------------------


class DownMailer:
    """A mail service that cannot be reached."""

    def send_mail(self, to: str, subject: str, text: str) -> None:
        raise errors.MailNotSentError("the mail service is unreachable")


def register(
    deps: logic.Deps,
    email: str = "ada@example.com",
    *,
    roles: Iterable[str] = ("mentee",),
    password: str = PASSWORD,
    timezone: str = "Europe/Berlin",
    name: str = "Ada",
) -> User:
    return logic.register(
        deps,
        email=email,
        password=password,
        display_name=name,
        timezone=timezone,
        roles=set(roles),
    )


def verify(world: FakeWorld, user: User) -> User:
    """Open the newest verification link mailed to ``user``."""
    return logic.verify_email(world.deps, world.mailer.last_token(user.email))


def reset_token(world: FakeWorld, email: str) -> str:
    """The token of the newest password-reset mail to ``email`` (``token=...`` in the text)."""
    mails = [m for m in world.mailer.to(email) if "Reset" in m.subject]
    assert mails, f"no reset mail was sent to {email}"
    tokens = re.findall(r"\btoken=([\w-]{32,})", mails[-1].text)
    assert len(tokens) == 1, mails[-1].text
    return tokens[0]


def verified_user(world: FakeWorld, email: str = "ada@example.com", **kw: Any) -> User:
    return verify(world, register(world.deps, email, **kw))


def listed_mentor(world: FakeWorld, email: str, **profile: Any) -> User:
    """A verified mentor with a complete profile (``profile`` overrides the defaults)."""
    user = register(world.deps, email, roles={"mentor"})
    logic.update_profile(
        world.deps, user.id, logic.ProfilePatch(mentor={**COMPLETE_MENTOR, **profile})
    )
    return verify(world, user)


def claims_of(world: FakeWorld, pair: logic.TokenPair) -> dict[str, Any]:
    """The verified claims of an access token (expiry is not checked: the clock is fake)."""
    return jwt.decode(
        pair.access_token,
        key=jwt.PyJWK(world.signer.jwk),
        algorithms=["ES256"],
        audience=c.TOKEN_AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )


def search_ids(deps: logic.Deps, **query: Any) -> list[str]:
    return [u.id for u in logic.search_mentors(deps, MentorQuery(**query)).items]


# --- registration -------------------------------------------------------------------


class TestRegister:
    def test_creates_an_unverified_account_and_mails_a_verification_link(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given nobody uses the address
        # When someone registers as mentee and mentor
        user = register(deps, roles={"mentee", "mentor"})
        # Then the account is stored unverified with both profiles and a hashed password
        stored = world.stored(user.id)
        assert stored.roles == {"mentee", "mentor"}
        assert stored.email_verified_at is None
        assert stored.mentee is not None
        assert stored.mentor is not None and stored.mentor.timezone == "Europe/Berlin"
        assert stored.password_hash is not None and PASSWORD not in stored.password_hash
        assert stored.created_at == world.clock.now
        # And a verification link to the API was mailed
        (mail,) = world.mailer.to("ada@example.com")
        assert f"{world.config.base_url}/auth/verify-email?token=" in mail.text
        assert world.uows.opened[-1].committed

    def test_email_is_normalized(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given an address typed with capitals and spaces
        # When it registers
        user = register(deps, "  Ada.Lovelace@Example.COM ")
        # Then it is stored (and mailed) lower-case and trimmed
        assert world.stored(user.id).email == "ada.lovelace@example.com"
        assert world.mailer.to("ada.lovelace@example.com")

    def test_duplicate_email_is_refused_whatever_its_case(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given an account
        register(deps, "ada@example.com")
        # When the same address registers again in another case
        # Then EmailTakenError (409), and still one account
        with pytest.raises(errors.EmailTakenError) as caught:
            register(deps, "ADA@example.com ")
        assert caught.value.status == 409
        assert caught.value.code == "email_taken"
        assert len(world.db.users) == 1

    def test_bad_timezone_is_a_422_field_error(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a time zone that is not an IANA name
        # When someone registers with it
        with pytest.raises(ProblemValidationError) as caught:
            register(deps, timezone="Mars/Olympus_Mons")
        # Then a 422 names the timezone field, and nothing was stored or mailed
        error = caught.value
        assert error.status == 422
        assert [(e.loc, e.code) for e in error.errors] == [
            (("body", "timezone"), "invalid_timezone")
        ]
        assert world.db.users == {}
        assert world.mailer.sent == []

    def test_a_mail_outage_does_not_lose_the_registration(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given the mail service is down
        deps.mailer = DownMailer()
        # When someone registers
        user = register(deps)
        # Then the account is kept, unverified
        assert world.stored(user.id).email_verified_at is None
        # When the mail service is back and a new link is asked for
        deps.mailer = world.mailer
        assert logic.send_verification(deps, user) is True
        # Then that link verifies the account
        assert verify(world, user).email_verified

    def test_send_verification_says_when_the_mail_was_not_sent(self, deps: logic.Deps) -> None:
        # Given an account and a mail outage
        user = register(deps)
        deps.mailer = DownMailer()
        # When a link is sent
        # Then it reports failure instead of raising
        assert logic.send_verification(deps, user) is False

    def test_no_role_given_means_mentee(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given no role asked for
        # When someone registers
        user = register(deps, roles=())
        # Then they are a mentee
        assert world.stored(user.id).roles == {"mentee"}


class TestPasswordPolicy:
    @pytest.mark.parametrize(
        ("password", "why"),
        [
            ("short1234", "at least 10"),  # 9 characters
            ("x" * 64 + "y" * 64 + "z", "at most 128"),  # 129 characters
            ("password123", "too common"),
            ("PassWord123", "too common"),  # common passwords compare case-insensitively
            ("1q2w3e4r5t", "too common"),
            ("abababababab", "too simple"),  # fewer than 4 distinct characters
            ("my-adalovelace-passphrase", "email"),
            ("MY-ADALOVELACE-PASSPHRASE", "email"),
        ],
    )
    def test_weak_passwords_are_refused_with_a_field_error(
        self, world: FakeWorld, deps: logic.Deps, password: str, why: str
    ) -> None:
        # Given a password that breaks the policy
        # When someone registers with it
        with pytest.raises(errors.WeakPasswordError) as caught:
            register(deps, "adalovelace@example.com", password=password)
        # Then a 422 weak_password says what is wrong, on the password field
        error = caught.value
        assert (error.status, error.code) == (422, "weak_password")
        (field,) = error.errors
        assert field.loc == ("body", "password")
        assert field.code == "weak_password"
        assert why in field.msg
        assert world.db.users == {}

    @pytest.mark.parametrize(
        "password",
        [
            "abcd567890",  # exactly 10
            "Tr0ub4dor&3" + "q" * 117,  # exactly 128
            "lovelace-is-fine-ada",  # an email name under 4 characters is not checked
        ],
    )
    def test_boundary_passwords_are_accepted(self, password: str) -> None:
        # Given a password at the edges of the policy
        # When it is checked for ada@example.com
        # Then it passes
        logic.check_password_policy(password, "ada@example.com")

    @given(
        password=st.text(
            alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S"]),
            min_size=10,
            max_size=128,
        ).filter(lambda p: len(set(p)) >= 4)
    )
    def test_any_long_enough_varied_password_without_the_email_name_passes(
        self, password: str
    ) -> None:
        # Given a 10-128 character password with 4+ distinct characters, not a common one,
        # not containing the email's name
        email = "zq9xv@example.com"
        assume("zq9xv" not in password.lower())
        assume(password.lower() not in logic._COMMON_PASSWORDS)
        # When it is checked
        # Then it passes
        logic.check_password_policy(password, email)

    @given(length=st.integers(min_value=0, max_value=300))
    def test_length_alone_decides_between_10_and_128(self, length: int) -> None:
        # Given a varied password of some length
        password = ("abcdefghij" * 31)[:length]
        # When it is checked
        # Then it passes exactly when 10 <= length <= 128
        if 10 <= length <= 128:
            logic.check_password_policy(password, "zq9xv@example.com")
        else:
            with pytest.raises(errors.WeakPasswordError):
                logic.check_password_policy(password, "zq9xv@example.com")


# --- email verification ---------------------------------------------------------------


class TestVerification:
    def test_the_token_verifies_once(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a registered account and its mailed token
        user = register(deps)
        token = world.mailer.last_token(user.email)
        world.clock.advance(minutes=5)
        # When the token is used
        verified = logic.verify_email(deps, token)
        # Then the account is verified at that moment
        assert verified.email_verified
        assert world.stored(user.id).email_verified_at == world.clock.now
        # And the same token is refused the second time
        with pytest.raises(errors.InvalidOneTimeTokenError) as caught:
            logic.verify_email(deps, token)
        assert (caught.value.status, caught.value.code) == (400, "invalid_token")

    def test_an_expired_token_is_refused(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a verification token mailed 48 hours ago
        user = register(deps)
        token = world.mailer.last_token(user.email)
        world.clock.advance(hours=48)
        # When it is used
        # Then it is refused and the account stays unverified
        with pytest.raises(errors.InvalidOneTimeTokenError):
            logic.verify_email(deps, token)
        assert world.stored(user.id).email_verified_at is None

    def test_a_token_is_good_until_just_before_expiry(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a verification token mailed 48 hours minus a second ago
        user = register(deps)
        token = world.mailer.last_token(user.email)
        world.clock.advance(hours=48, seconds=-1)
        # When it is used
        # Then it still works
        assert logic.verify_email(deps, token).email_verified

    def test_an_unknown_token_is_refused(self, deps: logic.Deps) -> None:
        # Given no such token was ever mailed
        # When it is used
        # Then it is refused
        with pytest.raises(errors.InvalidOneTimeTokenError):
            logic.verify_email(deps, "not-a-token")

    def test_a_resent_link_verifies(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given an account whose first link got lost
        user = register(deps)
        # When a new link is sent and used
        logic.send_verification(deps, user)
        assert len(world.mailer.to(user.email)) == 2
        # Then the account is verified
        assert verify(world, user).email_verified

    def test_a_complete_mentor_is_listed_only_after_verification(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a mentor who completed their profile but did not verify their email
        user = register(deps, "grace@example.com", roles={"mentor"})
        logic.update_profile(deps, user.id, logic.ProfilePatch(mentor=COMPLETE_MENTOR))
        # Then they are not listed, not found and not searchable
        assert not world.stored(user.id).listed
        assert world.stored(user.id).mentor.listed_at is None  # type: ignore[union-attr]
        assert search_ids(deps) == []
        with pytest.raises(errors.MentorNotFoundError):
            logic.get_mentor(deps, user.id)
        # When they verify
        world.clock.advance(hours=1)
        verify(world, user)
        # Then they are listed from that moment
        stored = world.stored(user.id)
        assert stored.listed
        assert stored.mentor is not None and stored.mentor.listed_at == world.clock.now
        assert search_ids(deps) == [user.id]


# --- sign-in ---------------------------------------------------------------------------


class TestAuthenticate:
    def test_right_password_signs_in_whatever_the_email_case(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given an account
        user = register(deps)
        # When it signs in with its password and the email in another case
        # Then it is that account
        assert logic.authenticate(deps, " ADA@example.com", PASSWORD).id == user.id

    def test_wrong_password_is_refused(self, deps: logic.Deps) -> None:
        # Given an account
        register(deps)
        # When it signs in with another password
        # Then InvalidCredentialsError (401, not saying which part is wrong)
        with pytest.raises(errors.InvalidCredentialsError) as caught:
            logic.authenticate(deps, "ada@example.com", PASSWORD + "!")
        assert (caught.value.status, caught.value.code) == (401, "invalid_credentials")

    def test_unknown_email_is_refused_after_spending_a_hash(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given no account for the address
        before = world.hasher.hash_calls
        # When someone signs in with it
        # Then it is refused like a wrong password, after hashing as a real check would
        with pytest.raises(errors.InvalidCredentialsError):
            logic.authenticate(deps, "nobody@example.com", PASSWORD)
        assert world.hasher.hash_calls == before + 1

    def test_deleted_account_cannot_sign_in(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a deleted account
        user = register(deps)
        logic.delete_account(deps, user.id)
        # When it signs in with its old email and password, or its anonymised email
        # Then both are refused
        with pytest.raises(errors.InvalidCredentialsError):
            logic.authenticate(deps, "ada@example.com", PASSWORD)
        with pytest.raises(errors.InvalidCredentialsError):
            logic.authenticate(deps, world.stored(user.id).email, PASSWORD)

    def test_external_only_account_has_no_password(self, deps: logic.Deps) -> None:
        # Given an account created by an external sign-in (no password)
        logic.sign_in_external(
            deps, logic.ExternalIdentity("idp", "s1", "ada@example.com", True, None)
        )
        # When someone tries a password for it
        # Then it is refused
        with pytest.raises(errors.InvalidCredentialsError):
            logic.authenticate(deps, "ada@example.com", PASSWORD)

    def test_an_outdated_hash_is_upgraded_on_sign_in(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given an account hashed with older parameters
        user = register(deps)
        old_hash = world.stored(user.id).password_hash
        world.hasher.version = 2
        # When it signs in
        logic.authenticate(deps, "ada@example.com", PASSWORD)
        # Then the stored hash was replaced by a current one that still verifies
        new_hash = world.stored(user.id).password_hash
        assert new_hash != old_hash and new_hash is not None
        assert not world.hasher.needs_rehash(new_hash)
        assert world.hasher.verify(new_hash, PASSWORD)


class TestIssueTokens:
    def test_access_token_claims(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a verified mentee and mentor
        user = verified_user(world, roles={"mentor", "mentee"})
        # When tokens are issued
        pair = logic.issue_tokens(deps, user)
        # Then the access token is an ES256 JWT with the platform's claims
        claims = claims_of(world, pair)
        assert claims["sub"] == user.id
        assert claims["iss"] == ISSUER
        assert claims["aud"] == c.TOKEN_AUDIENCE
        assert claims["roles"] == ["mentee", "mentor"]
        assert claims["scope"] == "mentee mentor"
        assert claims["active_role"] == "mentee"  # mentee is the default when held
        assert claims["email_verified"] is True
        assert claims["token_use"] == "access"
        assert claims["iat"] == claims["nbf"] == world.clock.epoch
        assert claims["exp"] == claims["iat"] + 15 * 60
        # And the pair says the same
        assert pair.expires_in == 15 * 60
        assert pair.token_type == "Bearer"
        assert pair.active_role == "mentee"
        assert pair.refresh_token.startswith("mentee.")

    def test_unverified_mentor_only_account_acts_as_mentor(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given an unverified account holding only the mentor role
        user = register(deps, roles={"mentor"})
        # When tokens are issued
        claims = claims_of(world, logic.issue_tokens(deps, user))
        # Then it acts as mentor, unverified
        assert claims["active_role"] == "mentor"
        assert claims["email_verified"] is False
        assert claims["scope"] == "mentor"

    def test_each_token_has_its_own_id(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given an account
        user = register(deps)
        # When two pairs are issued in the same second
        a, b = logic.issue_tokens(deps, user), logic.issue_tokens(deps, user)
        # Then the jti and the refresh tokens differ
        assert claims_of(world, a)["jti"] != claims_of(world, b)["jti"]
        assert a.refresh_token != b.refresh_token

    def test_a_role_not_held_cannot_be_the_active_role(self, deps: logic.Deps) -> None:
        # Given a mentee
        user = register(deps)
        # When tokens acting as mentor are asked for
        # Then RoleNotHeldError (403)
        with pytest.raises(errors.RoleNotHeldError) as caught:
            logic.issue_tokens(deps, user, active_role="mentor")
        assert caught.value.status == 403


class TestRefresh:
    def test_rotation_spends_the_old_token_and_keeps_the_family(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a signed-in user
        user = register(deps)
        first = logic.issue_tokens(deps, user)
        world.clock.advance(minutes=14)
        # When the refresh token is rotated
        second = logic.refresh(deps, first.refresh_token)
        # Then a new pair is issued now, in the same family
        assert second.refresh_token != first.refresh_token
        assert claims_of(world, second)["iat"] == world.clock.epoch
        assert world.tokens.live_families_of(user.id) and len(world.tokens.families) == 1
        # And the old refresh token was spent
        records = list(world.tokens.refresh.values())
        assert sorted(r.used for r in records) == [False, True]

    def test_reuse_revokes_the_whole_family_including_its_newest_token(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a session rotated twice, and a second session of the same user
        user = register(deps)
        first = logic.issue_tokens(deps, user)
        other_session = logic.issue_tokens(deps, user)
        second = logic.refresh(deps, first.refresh_token)
        newest = logic.refresh(deps, second.refresh_token)
        # When an already spent token is presented again (it was stolen)
        with pytest.raises(errors.RefreshTokenReusedError) as caught:
            logic.refresh(deps, first.refresh_token)
        assert (caught.value.status, caught.value.code) == (401, "refresh_token_reused")
        # Then the newest token of that family fails too
        with pytest.raises(errors.InvalidRefreshTokenError):
            logic.refresh(deps, newest.refresh_token)
        # And the user's other session is untouched
        assert logic.refresh(deps, other_session.refresh_token).access_token

    def test_an_expired_refresh_token_is_refused(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a refresh token issued 30 days ago
        pair = logic.issue_tokens(deps, register(deps))
        world.clock.advance(days=30)
        # When it is used
        # Then it is refused
        with pytest.raises(errors.InvalidRefreshTokenError):
            logic.refresh(deps, pair.refresh_token)

    def test_a_refresh_token_is_good_until_just_before_expiry(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a refresh token issued 30 days minus a second ago
        pair = logic.issue_tokens(deps, register(deps))
        world.clock.advance(days=30, seconds=-1)
        # When it is used
        # Then it rotates
        assert logic.refresh(deps, pair.refresh_token).refresh_token

    @pytest.mark.parametrize(
        "token", ["", "no-dot-at-all", "mentee.", "superuser.abc", "mentee.never-issued"]
    )
    def test_malformed_or_unknown_tokens_are_refused(self, deps: logic.Deps, token: str) -> None:
        # Given a token the API did not issue
        # When it is used
        # Then InvalidRefreshTokenError
        with pytest.raises(errors.InvalidRefreshTokenError):
            logic.refresh(deps, token)

    def test_the_active_role_survives_rotation(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a mentee-and-mentor acting as mentor
        user = register(deps, roles={"mentee", "mentor"})
        pair = logic.switch_role(deps, user.id, "mentor")
        # When the session is refreshed
        rotated = logic.refresh(deps, pair.refresh_token)
        # Then it still acts as mentor
        assert rotated.active_role == "mentor"
        assert claims_of(world, rotated)["active_role"] == "mentor"
        assert rotated.refresh_token.startswith("mentor.")

    def test_refresh_reflects_a_role_gained_since_sign_in(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a mentee who signed in, then added the mentor role
        user = register(deps)
        pair = logic.issue_tokens(deps, user)
        logic.add_role(deps, user.id, "mentor")
        # When the session is refreshed
        rotated = logic.refresh(deps, pair.refresh_token)
        # Then the new access token carries both roles
        assert claims_of(world, rotated)["scope"] == "mentee mentor"


class TestLogout:
    def test_logout_revokes_that_session_only(self, deps: logic.Deps) -> None:
        # Given two sessions of one user
        user = register(deps)
        this, other = logic.issue_tokens(deps, user), logic.issue_tokens(deps, user)
        # When one signs out
        logic.logout(deps, this.refresh_token)
        # Then its refresh token is dead and the other still works
        with pytest.raises(errors.InvalidRefreshTokenError):
            logic.refresh(deps, this.refresh_token)
        assert logic.refresh(deps, other.refresh_token).access_token

    def test_logout_revokes_tokens_rotated_from_the_same_session(self, deps: logic.Deps) -> None:
        # Given a session rotated once
        first = logic.issue_tokens(deps, register(deps))
        second = logic.refresh(deps, first.refresh_token)
        # When it signs out with its old (spent) token
        logic.logout(deps, first.refresh_token)
        # Then the current token of the session is dead too
        with pytest.raises(errors.InvalidRefreshTokenError):
            logic.refresh(deps, second.refresh_token)

    @pytest.mark.parametrize("token", ["", "garbage", "mentee.never-issued"])
    def test_logout_is_idempotent_and_ignores_unknown_tokens(
        self, deps: logic.Deps, token: str
    ) -> None:
        # Given a token that is not a live session
        # When it signs out (twice)
        # Then nothing is raised
        logic.logout(deps, token)
        logic.logout(deps, token)


class TestRoles:
    def test_switch_to_a_held_role(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a mentee and mentor
        user = register(deps, roles={"mentee", "mentor"})
        # When they switch to mentor
        pair = logic.switch_role(deps, user.id, "mentor")
        # Then the new tokens act as mentor
        assert pair.active_role == "mentor"
        assert claims_of(world, pair)["active_role"] == "mentor"

    def test_switch_to_a_role_not_held_is_refused(self, deps: logic.Deps) -> None:
        # Given a mentee
        user = register(deps)
        # When they switch to mentor or admin
        # Then RoleNotHeldError
        for role in ("mentor", "admin"):
            with pytest.raises(errors.RoleNotHeldError):
                logic.switch_role(deps, user.id, role)

    def test_adding_the_mentor_role_adds_an_empty_unlisted_profile(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a verified mentee
        user = verified_user(world)
        # When they become a mentor (twice: it is idempotent)
        logic.add_role(deps, user.id, "mentor")
        again = logic.add_role(deps, user.id, "mentor")
        # Then they hold both roles and an empty mentor profile in their time zone, not listed
        stored = world.stored(user.id)
        assert stored.roles == again.roles == {"mentee", "mentor"}
        assert stored.mentor is not None and stored.mentor.timezone == "Europe/Berlin"
        assert not stored.listed
        # And they can now switch to it
        assert logic.switch_role(deps, user.id, "mentor").active_role == "mentor"

    def test_a_mentor_can_add_the_mentee_role(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a mentor only
        user = register(deps, roles={"mentor"})
        # When they add the mentee role
        logic.add_role(deps, user.id, "mentee")
        # Then they have a mentee profile
        assert world.stored(user.id).mentee is not None

    def test_admin_cannot_be_self_assigned(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a mentee
        user = register(deps)
        # When they ask for the admin role
        # Then ForbiddenError, and nothing changed
        with pytest.raises(ForbiddenError) as caught:
            logic.add_role(deps, user.id, "admin")
        assert caught.value.status == 403
        assert world.stored(user.id).roles == {"mentee"}

    def test_grant_admin_by_email(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a mentee
        user = register(deps)
        # When the operator grants admin with the email in another case
        logic.grant_admin(world.uows, "ADA@example.com")
        # Then the account is admin and its next tokens say so (still acting as mentee)
        assert world.stored(user.id).roles == {"mentee", "admin"}
        pair = logic.issue_tokens(deps, world.stored(user.id))
        assert claims_of(world, pair)["scope"] == "admin mentee"
        assert pair.active_role == "mentee"

    def test_grant_admin_to_an_unknown_or_deleted_account_fails(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a deleted account
        user = register(deps)
        logic.delete_account(deps, user.id)
        # When admin is granted to it or to an unknown address
        # Then UserNotFoundError
        for email in ("nobody@example.com", world.stored(user.id).email):
            with pytest.raises(errors.UserNotFoundError):
                logic.grant_admin(world.uows, email)

    def test_only_the_owner_or_an_admin_may_manage(self) -> None:
        # Given two users and an admin
        # When each acts on the first user's account
        # Then only the owner and the admin may
        logic.ensure_can_manage("u1", False, "u1")
        logic.ensure_can_manage("admin", True, "u1")
        with pytest.raises(errors.NotYourAccountError):
            logic.ensure_can_manage("u2", False, "u1")


# --- profiles ----------------------------------------------------------------------------


class TestUpdateProfile:
    def test_name_and_time_zone_change(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given an account
        user = register(deps)
        # When the owner renames it and moves to Tokyo
        logic.update_profile(
            deps, user.id, logic.ProfilePatch(display_name="Countess", timezone="Asia/Tokyo")
        )
        # Then both are stored
        stored = world.stored(user.id)
        assert (stored.display_name, stored.timezone) == ("Countess", "Asia/Tokyo")

    def test_an_unknown_time_zone_is_refused(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given an account
        user = register(deps)
        # When the owner sets a time zone that does not exist, with a new name
        # Then 422 and nothing changed (not even the name)
        with pytest.raises(ProblemValidationError):
            logic.update_profile(
                deps, user.id, logic.ProfilePatch(display_name="X", timezone="Europe/Atlantis")
            )
        assert world.stored(user.id).display_name == "Ada"

    def test_the_mentor_section_needs_the_mentor_role(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a mentee
        user = register(deps)
        # When they edit a mentor profile along with their name
        # Then RoleNotHeldError, and the whole change was rolled back
        with pytest.raises(errors.RoleNotHeldError):
            logic.update_profile(
                deps, user.id, logic.ProfilePatch(display_name="X", mentor={"headline": "Hi"})
            )
        stored = world.stored(user.id)
        assert stored.mentor is None and stored.display_name == "Ada"

    def test_the_mentee_section_needs_the_mentee_role(self, deps: logic.Deps) -> None:
        # Given a mentor only
        user = register(deps, roles={"mentor"})
        # When they edit a mentee profile
        # Then RoleNotHeldError
        with pytest.raises(errors.RoleNotHeldError):
            logic.update_profile(deps, user.id, logic.ProfilePatch(mentee={"goals": "learn"}))

    def test_the_mentor_time_zone_is_checked(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a mentor
        user = register(deps, roles={"mentor"})
        # When their mentor profile gets a time zone that does not exist
        # Then 422
        with pytest.raises(ProblemValidationError):
            logic.update_profile(
                deps, user.id, logic.ProfilePatch(mentor={"timezone": "Nowhere/Land"})
            )
        # And a real one is stored
        logic.update_profile(deps, user.id, logic.ProfilePatch(mentor={"timezone": "Asia/Tokyo"}))
        assert world.stored(user.id).mentor.timezone == "Asia/Tokyo"  # type: ignore[union-attr]

    def test_a_mentor_patch_merges_into_the_profile(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a mentor with a headline
        user = register(deps, roles={"mentor"})
        logic.update_profile(deps, user.id, logic.ProfilePatch(mentor={"headline": "Hi"}))
        # When only their skills change
        logic.update_profile(deps, user.id, logic.ProfilePatch(mentor={"skills": ["go"]}))
        # Then the headline is kept
        mentor = world.stored(user.id).mentor
        assert mentor is not None
        assert (mentor.headline, mentor.skills) == ("Hi", ["go"])

    def test_mentee_goals_are_stored(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a mentee
        user = register(deps)
        # When they set goals and interests
        logic.update_profile(
            deps, user.id, logic.ProfilePatch(mentee={"goals": "ship", "interests": ["go"]})
        )
        # Then both are stored
        mentee = world.stored(user.id).mentee
        assert mentee is not None and (mentee.goals, mentee.interests) == ("ship", ["go"])

    def test_listing_time_is_kept_across_edits_and_cleared_when_incomplete(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a listed mentor
        user = listed_mentor(world, "grace@example.com")
        listed_at = world.stored(user.id).mentor.listed_at  # type: ignore[union-attr]
        assert listed_at == world.clock.now
        # When they edit their bio a day later
        world.clock.advance(days=1)
        logic.update_profile(deps, user.id, logic.ProfilePatch(mentor={"bio": "More"}))
        # Then their listing time is unchanged
        assert world.stored(user.id).mentor.listed_at == listed_at  # type: ignore[union-attr]
        # When they empty their skills, the profile is incomplete: unlisted
        logic.update_profile(deps, user.id, logic.ProfilePatch(mentor={"skills": []}))
        assert not world.stored(user.id).listed
        assert world.stored(user.id).mentor.listed_at is None  # type: ignore[union-attr]
        # And when they complete it again, they are listed anew
        world.clock.advance(days=1)
        logic.update_profile(deps, user.id, logic.ProfilePatch(mentor={"skills": ["python"]}))
        assert world.stored(user.id).mentor.listed_at == world.clock.now  # type: ignore[union-attr]

    def test_a_deleted_account_cannot_be_updated(self, deps: logic.Deps) -> None:
        # Given a deleted account
        user = register(deps)
        logic.delete_account(deps, user.id)
        # When it is updated
        # Then AccountDeletedError
        with pytest.raises(errors.AccountDeletedError):
            logic.update_profile(deps, user.id, logic.ProfilePatch(display_name="X"))

    def test_an_unknown_account_cannot_be_updated(self, deps: logic.Deps) -> None:
        # Given no such account
        # When it is updated
        # Then UserNotFoundError
        with pytest.raises(errors.UserNotFoundError):
            logic.update_profile(deps, "01NOSUCHUSER", logic.ProfilePatch(display_name="X"))


# --- password reset --------------------------------------------------------------------


class TestPasswordReset:
    def test_reset_changes_the_password_and_signs_out_everywhere(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a signed-in account that forgot its password
        user = register(deps)
        session = logic.issue_tokens(deps, user)
        logic.forgot_password(deps, "Ada@Example.com")
        token = reset_token(world, "ada@example.com")
        # When it resets the password with the mailed token
        logic.reset_password(deps, token, "a brand new passphrase")
        # Then the new password works, the old does not, and old sessions are dead
        assert logic.authenticate(deps, "ada@example.com", "a brand new passphrase").id == user.id
        with pytest.raises(errors.InvalidCredentialsError):
            logic.authenticate(deps, "ada@example.com", PASSWORD)
        with pytest.raises(errors.InvalidRefreshTokenError):
            logic.refresh(deps, session.refresh_token)
        # And the mailed token proved the address
        assert world.stored(user.id).email_verified
        # And the token works once only
        with pytest.raises(errors.InvalidOneTimeTokenError):
            logic.reset_password(deps, token, "yet another passphrase")

    def test_forgot_password_for_an_unknown_email_sends_nothing(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given no account for the address
        # When a reset is asked for
        logic.forgot_password(deps, "nobody@example.com")
        # Then nothing is mailed (and nothing is raised)
        assert world.mailer.sent == []

    def test_a_mail_outage_is_a_retryable_503(self, deps: logic.Deps) -> None:
        # Given an account and a mail outage
        register(deps)
        deps.mailer = DownMailer()
        # When a reset is asked for
        # Then DependencyUnavailableError: the person is told to retry (unlike registration,
        # nothing else would ever deliver the token)
        with pytest.raises(DependencyUnavailableError) as caught:
            logic.forgot_password(deps, "ada@example.com")
        assert (caught.value.status, caught.value.code) == (503, "dependency_unavailable")

    def test_a_reset_token_expires_after_an_hour(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a reset token mailed an hour ago
        register(deps)
        logic.forgot_password(deps, "ada@example.com")
        token = reset_token(world, "ada@example.com")
        world.clock.advance(hours=1)
        # When it is used
        # Then it is refused
        with pytest.raises(errors.InvalidOneTimeTokenError):
            logic.reset_password(deps, token, "a brand new passphrase")

    def test_a_verification_token_is_not_a_reset_token(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given the verification token of a new account
        register(deps)
        token = world.mailer.last_token("ada@example.com")
        # When it is used to reset the password
        # Then it is refused
        with pytest.raises(errors.InvalidOneTimeTokenError):
            logic.reset_password(deps, token, "a brand new passphrase")

    def test_a_weak_new_password_does_not_burn_the_token(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a reset token
        register(deps)
        logic.forgot_password(deps, "ada@example.com")
        token = reset_token(world, "ada@example.com")
        # When a common password (long enough for the API schema) is refused by the policy
        with pytest.raises(errors.WeakPasswordError):
            logic.reset_password(deps, token, "password123")
        # Then the same token still sets a good password
        logic.reset_password(deps, token, "a brand new passphrase")

    def test_a_mentor_verified_by_a_reset_is_listed_with_a_listing_time(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given an unverified mentor with a complete profile
        user = register(deps, "grace@example.com", roles={"mentor"})
        logic.update_profile(deps, user.id, logic.ProfilePatch(mentor=COMPLETE_MENTOR))
        # When they reset their password (the mailed token proves the address)
        logic.forgot_password(deps, "grace@example.com")
        world.clock.advance(minutes=1)
        logic.reset_password(deps, reset_token(world, "grace@example.com"), "new passphrase!")
        # Then they are listed, from now
        stored = world.stored(user.id)
        assert stored.listed
        assert stored.mentor is not None and stored.mentor.listed_at == world.clock.now


# --- discovery -------------------------------------------------------------------------


class TestSearchMentors:
    @pytest.mark.parametrize(
        "query",
        [
            MentorQuery(min_price=1),
            MentorQuery(max_price=1),
            MentorQuery(sort=MentorSort.PRICE_ASC),
            MentorQuery(sort=MentorSort.PRICE_DESC),
        ],
    )
    def test_price_filters_and_orders_need_a_currency(
        self, deps: logic.Deps, query: MentorQuery
    ) -> None:
        # Given a price filter or order without a currency
        # When mentors are searched
        # Then CurrencyRequiredError (400)
        with pytest.raises(errors.CurrencyRequiredError) as caught:
            logic.search_mentors(deps, query)
        assert (caught.value.status, caught.value.code) == (400, "currency_required")

    def test_min_price_above_max_price_is_refused(self, deps: logic.Deps) -> None:
        # Given a price range that is empty by construction
        # When mentors are searched
        # Then a 400
        with pytest.raises(BadRequestError) as caught:
            logic.search_mentors(deps, MentorQuery(currency="EUR", min_price=100, max_price=99))
        assert caught.value.status == 400

    def test_an_equal_min_and_max_price_is_fine(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a mentor at 9000
        m = listed_mentor(world, "m@example.com", hourly_rate_minor=9000)
        # When searched at exactly that price
        # Then found
        assert search_ids(deps, currency="EUR", min_price=9000, max_price=9000) == [m.id]

    def test_filters(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given mentors with different skills, languages, prices and currencies
        py_en = listed_mentor(world, "a@example.com", skills=["python"], languages=["en"])
        go_de = listed_mentor(
            world, "b@example.com", skills=["go"], languages=["de"], hourly_rate_minor=5000
        )
        py_de_usd = listed_mentor(
            world, "c@example.com", skills=["python", "go"], languages=["de"], currency="USD"
        )
        register(deps, "unlisted@example.com", roles={"mentor"})  # incomplete and unverified
        verified_user(world, "mentee@example.com")
        # When searched by each filter
        # Then only the matching listed mentors come back
        assert set(search_ids(deps)) == {py_en.id, go_de.id, py_de_usd.id}
        assert set(search_ids(deps, skill="python")) == {py_en.id, py_de_usd.id}
        assert set(search_ids(deps, language="de")) == {go_de.id, py_de_usd.id}
        assert set(search_ids(deps, skill="go", language="de")) == {go_de.id, py_de_usd.id}
        assert set(search_ids(deps, currency="USD")) == {py_de_usd.id}
        assert search_ids(deps, currency="EUR", max_price=6000) == [go_de.id]
        assert search_ids(deps, currency="EUR", min_price=6000) == [py_en.id]
        assert search_ids(deps, skill="rust") == []

    def test_orders(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given three mentors listed a minute apart with different prices and experience
        cheap = listed_mentor(world, "a@example.com", hourly_rate_minor=1000, years_experience=20)
        world.clock.advance(minutes=1)
        dear = listed_mentor(world, "b@example.com", hourly_rate_minor=9000, years_experience=5)
        world.clock.advance(minutes=1)
        middle = listed_mentor(world, "c@example.com", hourly_rate_minor=5000, years_experience=10)
        # When searched in each order
        # Then the order is price up, price down, most experienced, newest first
        eur = {"currency": "EUR"}
        assert search_ids(deps, sort=MentorSort.PRICE_ASC, **eur) == [cheap.id, middle.id, dear.id]
        assert search_ids(deps, sort=MentorSort.PRICE_DESC, **eur) == [dear.id, middle.id, cheap.id]
        assert search_ids(deps, sort=MentorSort.EXPERIENCE) == [cheap.id, middle.id, dear.id]
        assert search_ids(deps, sort=MentorSort.NEWEST) == [middle.id, dear.id, cheap.id]
        assert search_ids(deps) == search_ids(deps, sort=MentorSort.NEWEST)

    def test_a_cursor_of_another_order_is_refused(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a first page in price order
        for i in range(3):
            listed_mentor(world, f"m{i}@example.com", hourly_rate_minor=1000 * i)
        page = logic.search_mentors(
            deps, MentorQuery(currency="EUR", sort=MentorSort.PRICE_ASC, limit=1)
        )
        assert page.next_cursor is not None
        # When its cursor is used for the newest order, or tampered with
        # Then InvalidCursorError
        for cursor in (page.next_cursor, page.next_cursor[:-2], "garbage"):
            with pytest.raises(InvalidCursorError):
                logic.search_mentors(deps, MentorQuery(cursor=cursor))

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        mentors=st.lists(
            st.tuples(
                st.integers(0, 3),  # price step: ties are likely
                st.integers(0, 3),  # years of experience
                st.sampled_from(["EUR", "USD"]),
                st.integers(0, 1),  # seconds before listing: same-second listings tie
                st.booleans(),  # knows python
            ),
            max_size=12,
        ),
        sort=st.sampled_from(list(MentorSort)),
        limit=st.integers(1, 5),
        python_only=st.booleans(),
    )
    def test_cursor_pagination_returns_every_match_exactly_once_in_order(
        self,
        mentors: list[tuple[int, int, str, int, bool]],
        sort: MentorSort,
        limit: int,
        python_only: bool,
    ) -> None:
        # Given listed mentors with many ties in every sort key
        world = FakeWorld()
        expected: set[str] = set()
        currency = "EUR" if sort in (MentorSort.PRICE_ASC, MentorSort.PRICE_DESC) else None
        for i, (price, years, cur, gap, python) in enumerate(mentors):
            world.clock.advance(seconds=gap)
            m = listed_mentor(
                world,
                f"mentor{i}@example.com",
                hourly_rate_minor=price * 1000,
                years_experience=years,
                currency=cur,
                skills=["python"] if python else ["go"],
            )
            if (currency is None or cur == currency) and (python or not python_only):
                expected.add(m.id)
        # When every page is fetched, following next_cursor
        query = MentorQuery(
            skill="python" if python_only else None, currency=currency, sort=sort, limit=limit
        )
        seen: list[User] = []
        cursor: str | None = None
        for _ in range(len(mentors) + 2):
            page = logic.search_mentors(
                world.deps, MentorQuery(**{**vars(query), "cursor": cursor})
            )
            assert len(page.items) <= limit
            seen += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
            assert len(page.items) == limit  # only the last page may be short
        assert cursor is None, "pagination did not end"
        # Then every matching mentor came exactly once
        ids = [u.id for u in seen]
        assert len(ids) == len(set(ids))
        assert set(ids) == expected
        # And in the order asked for (ties broken by id, in the same direction)
        keys = [(mentor_sort_value(u, sort), u.id) for u in seen]
        descending = sort is not MentorSort.PRICE_ASC
        assert keys == sorted(keys, reverse=descending)


class TestGetMentor:
    def test_public_view_of_a_listed_mentor(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a listed mentor
        user = listed_mentor(world, "grace@example.com", years_experience=12)
        # When anyone looks them up
        mentor = logic.get_mentor(deps, user.id)
        # Then the public view shows the profile but no private data
        public = MentorOut.from_domain(mentor).model_dump()
        assert public["id"] == user.id
        assert public["hourly_rate"] == {"amount_minor": 9000, "currency": "EUR"}
        assert public["years_experience"] == 12
        assert public["timezone"] == "Europe/Berlin"
        assert "email" not in public and "grace@example.com" not in str(public)
        assert not {"roles", "password_hash", "created_at"} & set(public)

    def test_unlisted_users_are_not_found(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a mentee, an incomplete mentor, an unverified complete mentor and a deleted one
        mentee = verified_user(world, "mentee@example.com")
        incomplete = verified_user(world, "incomplete@example.com", roles={"mentor"})
        unverified = register(deps, "unverified@example.com", roles={"mentor"})
        logic.update_profile(deps, unverified.id, logic.ProfilePatch(mentor=COMPLETE_MENTOR))
        deleted = listed_mentor(world, "deleted@example.com")
        logic.delete_account(deps, deleted.id)
        # When each is looked up as a mentor, or an id that does not exist
        # Then MentorNotFoundError (404)
        for user_id in (mentee.id, incomplete.id, unverified.id, deleted.id, "01NOSUCHID"):
            with pytest.raises(errors.MentorNotFoundError) as caught:
                logic.get_mentor(deps, user_id)
            assert caught.value.status == 404


# --- external sign-in ------------------------------------------------------------------


def _ext(
    subject: str = "sub-1",
    email: str | None = "Ada@Example.com",
    verified: bool = True,
    name: str | None = "Ada Lovelace",
) -> logic.ExternalIdentity:
    return logic.ExternalIdentity("example-idp", subject, email, verified, name)


class TestSignInExternal:
    def test_a_new_person_gets_a_verified_mentee_account(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given nobody with this email
        # When they sign in with a provider that verified their email
        user = logic.sign_in_external(deps, _ext(), default_timezone="Europe/London")
        # Then a verified mentee account without password is created and linked
        stored = world.stored(user.id)
        assert stored.email == "ada@example.com"
        assert stored.display_name == "Ada Lovelace"
        assert stored.timezone == "Europe/London"
        assert stored.roles == {"mentee"} and stored.mentee is not None
        assert stored.email_verified_at == world.clock.now
        assert stored.password_hash is None
        assert [i.subject for i in world.db.identities.values()] == ["sub-1"]

    def test_a_nameless_identity_is_named_after_the_email(self, deps: logic.Deps) -> None:
        # Given a provider that sends no name
        # When a new person signs in
        user = logic.sign_in_external(deps, _ext(name=None))
        # Then they are named after their email's local part
        assert user.display_name == "Ada"

    def test_an_existing_link_signs_in_to_the_linked_account(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a linked identity
        first = logic.sign_in_external(deps, _ext())
        # When the same subject signs in again, even with another (unverified) email now
        again = logic.sign_in_external(deps, _ext(email="new@example.com", verified=False))
        # Then it is the same account, and nothing new was created
        assert again.id == first.id
        assert len(world.db.users) == 1 and len(world.db.identities) == 1

    def test_a_verified_email_links_to_the_existing_account(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a verified password account
        user = verified_user(world)
        # When the same person signs in with a provider that verified the same email
        linked = logic.sign_in_external(deps, _ext())
        # Then the provider identity is linked to that account, and the password still works
        assert linked.id == user.id
        assert len(world.db.users) == 1
        assert world.db.identities[("example-idp", "sub-1")].user_id == user.id
        assert logic.authenticate(deps, "ada@example.com", PASSWORD).id == user.id

    def test_linking_verifies_an_unverified_account(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given an unverified account
        user = register(deps)
        # When its owner signs in with a provider that verified the email
        logic.sign_in_external(deps, _ext())
        # Then the account is verified
        assert world.stored(user.id).email_verified_at == world.clock.now

    @pytest.mark.parametrize("ext", [_ext(verified=False), _ext(email=None)])
    def test_an_unconfirmed_email_is_refused(
        self, world: FakeWorld, deps: logic.Deps, ext: logic.ExternalIdentity
    ) -> None:
        # Given an account with the same email, and a provider that did not confirm the email
        user = register(deps)
        # When someone signs in with that provider
        # Then OidcLoginError, no link and no new account
        with pytest.raises(errors.OidcLoginError) as caught:
            logic.sign_in_external(deps, ext)
        assert caught.value.status == 400
        assert world.db.identities == {}
        assert list(world.db.users) == [user.id]

    def test_adopting_an_unverified_account_drops_its_unproven_password(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given someone registered the victim's email with their own password, never verified,
        # and holds a session
        squatter = register(deps, "victim@example.com", password="the squatters password")
        session = logic.issue_tokens(deps, squatter)
        # When the victim signs in with a provider that verified the address
        logic.sign_in_external(deps, _ext(email="victim@example.com"))
        # Then the squatter's password and session no longer reach the account
        with pytest.raises(errors.InvalidCredentialsError):
            logic.authenticate(deps, "victim@example.com", "the squatters password")
        with pytest.raises(errors.InvalidRefreshTokenError):
            logic.refresh(deps, session.refresh_token)

    def test_a_mentor_verified_by_linking_is_listed_with_a_listing_time(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given an unverified mentor with a complete profile
        user = register(deps, "grace@example.com", roles={"mentor"})
        logic.update_profile(deps, user.id, logic.ProfilePatch(mentor=COMPLETE_MENTOR))
        # When they sign in with a provider that verified their email
        logic.sign_in_external(deps, _ext(email="grace@example.com"))
        # Then they are listed, from now
        stored = world.stored(user.id)
        assert stored.listed
        assert stored.mentor is not None and stored.mentor.listed_at == world.clock.now


# --- GDPR -------------------------------------------------------------------------------


class TestDeleteAccount:
    def test_personal_data_is_anonymised_and_access_removed(
        self, world: FakeWorld, deps: logic.Deps
    ) -> None:
        # Given a listed mentor with a linked identity and two sessions
        user = listed_mentor(world, "grace@example.com")
        logic.sign_in_external(deps, _ext(email="grace@example.com"))
        sessions = [logic.issue_tokens(deps, world.stored(user.id)) for _ in range(2)]
        world.clock.advance(days=3)
        # When the account is deleted
        logic.delete_account(deps, user.id)
        # Then the row is kept (its id stays valid) but holds no personal data
        stored = world.stored(user.id)
        assert stored.email == f"deleted-{user.id}@deleted.invalid"
        assert stored.display_name == "Deleted user"
        assert stored.password_hash is None
        assert stored.mentor is None and stored.mentee is None
        assert stored.roles == set()
        assert stored.deleted_at == world.clock.now
        # And its identities are gone and every session is revoked
        assert world.db.identities == {}
        assert world.tokens.live_families_of(user.id) == []
        for session in sessions:
            with pytest.raises(errors.InvalidRefreshTokenError):
                logic.refresh(deps, session.refresh_token)
        # And it is gone from discovery and cannot be read
        assert search_ids(deps) == []
        with pytest.raises(errors.AccountDeletedError):
            logic.get_user(deps, user.id)

    def test_the_email_is_free_again(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a deleted account
        user = register(deps)
        logic.delete_account(deps, user.id)
        # When the same person registers again, or signs in externally
        again = register(deps)
        # Then it is a new account
        assert again.id != user.id
        assert logic.sign_in_external(deps, _ext()).id == again.id

    def test_deleting_twice_is_refused(self, deps: logic.Deps) -> None:
        # Given a deleted account
        user = register(deps)
        logic.delete_account(deps, user.id)
        # When it is deleted again
        # Then AccountDeletedError
        with pytest.raises(errors.AccountDeletedError):
            logic.delete_account(deps, user.id)


class TestExportAccount:
    def test_export_holds_everything_we_keep(self, world: FakeWorld, deps: logic.Deps) -> None:
        # Given a verified mentee-and-mentor with a linked identity
        user = register(deps, roles={"mentee", "mentor"})
        logic.update_profile(
            deps,
            user.id,
            logic.ProfilePatch(mentor=COMPLETE_MENTOR, mentee={"goals": "grow"}),
        )
        verify(world, user)
        logic.sign_in_external(deps, _ext())
        world.clock.advance(hours=2)
        # When they export their data
        export = logic.export_account(deps, user.id)
        # Then the account, both profiles and the identity are there, JSON-ready
        assert export["account"] == {
            "id": user.id,
            "email": "ada@example.com",
            "display_name": "Ada",
            "timezone": "Europe/Berlin",
            "roles": ["mentee", "mentor"],
            "email_verified": True,
            "created_at": user.created_at.isoformat(),
        }
        mentor = export["mentor_profile"]
        assert mentor["headline"] == COMPLETE_MENTOR["headline"]
        assert mentor["listed_at"] == (world.clock.now - timedelta(hours=2)).isoformat()
        assert export["mentee_profile"] == {"goals": "grow", "interests": []}
        assert export["linked_identities"] == [
            {"provider": "example-idp", "subject": "sub-1", "email": "Ada@Example.com"}
        ]
        assert export["exported_at"] == world.clock.now.isoformat()
        assert "password_hash" not in str(export)

    def test_export_of_a_plain_mentee(self, deps: logic.Deps) -> None:
        # Given a mentee with no mentor profile and no identity
        user = register(deps)
        # When they export
        export = logic.export_account(deps, user.id)
        # Then the mentor profile is null and there are no identities
        assert export["mentor_profile"] is None
        assert export["linked_identities"] == []

    def test_a_deleted_account_has_nothing_to_export(self, deps: logic.Deps) -> None:
        # Given a deleted account
        user = register(deps)
        logic.delete_account(deps, user.id)
        # When it is exported
        # Then AccountDeletedError
        with pytest.raises(errors.AccountDeletedError):
            logic.export_account(deps, user.id)
