"""In-memory fakes of the users ports (``functions.users.domain``).

Each fake keeps the semantics of its real adapter in ``functions.users.data``
so logic tests exercise the same rules: the repository stores copies (a change
not saved is lost), the unit of work discards what it did not commit, and the
token store's conditional writes succeed once only. ``test_fakes.py`` pins
these semantics down so the fakes cannot quietly drift.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from functions.users import errors, logic
from functions.users.domain import (
    Identity,
    MentorQuery,
    MentorSort,
    OneTimeToken,
    RefreshRecord,
    User,
)
from lwm_core import constants as c
from lwm_core.errors import InvalidCursorError
from lwm_core.pagination import Page, decode_cursor, encode_cursor

ISSUER = "https://auth.test.linkwithmentor.dev"
BASE_URL = "https://api.test.linkwithmentor.dev"


# --- accounts: repository and unit of work -----------------------------------------


@dataclass
class InMemoryDatabase:
    """The committed state, shared by every unit of work of one test."""

    users: dict[str, User] = field(default_factory=dict)
    identities: dict[tuple[str, str], Identity] = field(default_factory=dict)

    def snapshot(self) -> InMemoryDatabase:
        return InMemoryDatabase(copy.deepcopy(self.users), dict(self.identities))


_SORT_ATTR = {
    MentorSort.PRICE_ASC: "hourly_rate_minor",
    MentorSort.PRICE_DESC: "hourly_rate_minor",
    MentorSort.EXPERIENCE: "years_experience",
    MentorSort.NEWEST: "listed_at",
}
_DESCENDING = {MentorSort.PRICE_DESC, MentorSort.EXPERIENCE, MentorSort.NEWEST}


def mentor_sort_value(user: User, sort: MentorSort) -> Any:
    """The value a listed mentor is ordered by under ``sort``."""
    assert user.mentor is not None
    return getattr(user.mentor, _SORT_ATTR[sort])


class InMemoryUserRepository:
    """``UserRepository`` over dicts, with the SQL repository's filters, orders and cursors."""

    def __init__(self, data: InMemoryDatabase) -> None:
        self._data = data

    # Objects go in and out as copies, like rows mapped to fresh domain objects.
    def add(self, user: User) -> None:
        if user.id in self._data.users:
            raise ValueError(f"duplicate primary key {user.id}")
        self._check_unique_email(user)
        self._data.users[user.id] = copy.deepcopy(user)

    def get(self, user_id: str) -> User | None:
        user = self._data.users.get(user_id)
        return copy.deepcopy(user) if user else None

    def get_by_email(self, email: str) -> User | None:
        found = next((u for u in self._data.users.values() if u.email == email), None)
        return copy.deepcopy(found) if found else None

    def save(self, user: User) -> None:
        if user.id not in self._data.users:
            raise KeyError(f"no account {user.id} to save")
        self._check_unique_email(user)
        self._data.users[user.id] = copy.deepcopy(user)

    def _check_unique_email(self, user: User) -> None:
        if any(u.email == user.email and u.id != user.id for u in self._data.users.values()):
            raise errors.EmailTakenError("an account with this email already exists")

    def list_users(self, limit: int, cursor: str | None) -> Page[User]:
        users = sorted(self._data.users.values(), key=lambda u: u.id, reverse=True)
        if cursor:
            (last_id,) = decode_cursor(cursor, "users", 1)
            users = [u for u in users if u.id < str(last_id)]
        page = users[: limit + 1]
        more = len(page) > limit
        page = page[:limit]
        nxt = encode_cursor("users", [page[-1].id]) if more and page else None
        return Page([copy.deepcopy(u) for u in page], nxt)

    def search_mentors(self, query: MentorQuery) -> Page[User]:
        scope = f"mentors:{query.sort.value}"
        descending = query.sort in _DESCENDING
        matches = [u for u in self._data.users.values() if u.listed and _matches(u, query)]
        if query.cursor:
            after = _cursor_key(query.cursor, scope, query.sort)
            if descending:
                matches = [u for u in matches if _key(u, query.sort) < after]
            else:
                matches = [u for u in matches if _key(u, query.sort) > after]
        matches.sort(key=lambda u: _key(u, query.sort), reverse=descending)
        rows = matches[: query.limit + 1]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        nxt = None
        if more and rows:
            value = mentor_sort_value(rows[-1], query.sort)
            encoded = value.isoformat() if isinstance(value, datetime) else value
            nxt = encode_cursor(scope, [encoded, rows[-1].id])
        return Page([copy.deepcopy(u) for u in rows], nxt)

    def get_identity(self, provider: str, subject: str) -> Identity | None:
        return self._data.identities.get((provider, subject))

    def add_identity(self, identity: Identity) -> None:
        key = (identity.provider, identity.subject)
        if key in self._data.identities:
            raise ValueError(f"duplicate primary key {key}")
        if identity.user_id not in self._data.users:
            raise ValueError(f"foreign key: no account {identity.user_id}")
        self._data.identities[key] = identity

    def identities_of(self, user_id: str) -> Sequence[Identity]:
        return [i for i in self._data.identities.values() if i.user_id == user_id]

    def delete_identities(self, user_id: str) -> None:
        for key in [k for k, i in self._data.identities.items() if i.user_id == user_id]:
            del self._data.identities[key]


def _matches(user: User, q: MentorQuery) -> bool:
    m = user.mentor
    assert m is not None and m.hourly_rate_minor is not None
    return (
        (q.skill is None or q.skill in m.skills)
        and (q.language is None or q.language in m.languages)
        and (q.currency is None or m.currency == q.currency)
        and (q.min_price is None or m.hourly_rate_minor >= q.min_price)
        and (q.max_price is None or m.hourly_rate_minor <= q.max_price)
    )


def _key(user: User, sort: MentorSort) -> tuple[Any, str]:
    return (mentor_sort_value(user, sort), user.id)


def _cursor_key(cursor: str, scope: str, sort: MentorSort) -> tuple[Any, str]:
    """The (value, id) position of a cursor; a forged value type is an invalid cursor."""
    value, last_id = decode_cursor(cursor, scope, 2)
    if not isinstance(last_id, str):
        raise InvalidCursorError("cursor is not one this API issued")
    if sort is MentorSort.NEWEST:
        try:
            return datetime.fromisoformat(str(value)), last_id
        except ValueError as e:
            raise InvalidCursorError("cursor is not one this API issued") from e
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidCursorError("cursor is not one this API issued")
    return value, last_id


class FakeUow:
    """A transaction over an :class:`InMemoryDatabase`: uncommitted work is discarded."""

    def __init__(self, db: InMemoryDatabase) -> None:
        self._db = db
        self._work: InMemoryDatabase | None = None
        self.committed = False
        self.commits = 0

    @property
    def users(self) -> InMemoryUserRepository:
        if self._work is None:
            raise RuntimeError("use the unit of work inside `with uow:`")
        return InMemoryUserRepository(self._work)

    def __enter__(self) -> Self:
        self._work = self._db.snapshot()
        self.committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever was not committed is rolled back: the working copy is dropped.
        self._work = None

    def commit(self) -> None:
        assert self._work is not None
        committed = self._work.snapshot()
        self._db.users, self._db.identities = committed.users, committed.identities
        self.committed = True
        self.commits += 1


class FakeUowFactory:
    """``Deps.uow``: a new :class:`FakeUow` per call, each remembered for assertions."""

    def __init__(self, db: InMemoryDatabase) -> None:
        self.db = db
        self.opened: list[FakeUow] = []

    def __call__(self) -> FakeUow:
        uow = FakeUow(self.db)
        self.opened.append(uow)
        return uow


# --- tokens ----------------------------------------------------------------------


@dataclass
class _Family:
    user_id: str
    revoked: bool = False


class InMemoryTokenStore:
    """``TokenStore`` with ``DynamoTokenStore``'s conditional-write semantics."""

    def __init__(self) -> None:
        self.refresh: dict[str, RefreshRecord] = {}
        self.families: dict[str, _Family] = {}
        self.one_time: dict[tuple[str, str], tuple[OneTimeToken, bool]] = {}
        self.login_states: dict[str, tuple[dict[str, str], int, bool]] = {}

    def put_refresh(self, record: RefreshRecord, created_at: int) -> None:
        self.refresh[record.token_hash] = replace(record, used=False)
        family = self.families.setdefault(record.family_id, _Family(record.user_id))
        family.user_id = record.user_id  # `revoked` is kept: if_not_exists(revoked, false)

    def get_refresh(self, token_hash: str) -> RefreshRecord | None:
        return self.refresh.get(token_hash)

    def mark_refresh_used(self, token_hash: str) -> bool:
        # Condition `used = false`: fails when the item is missing or already used.
        record = self.refresh.get(token_hash)
        if record is None or record.used:
            return False
        self.refresh[token_hash] = replace(record, used=True)
        return True

    def family_revoked(self, family_id: str) -> bool:
        family = self.families.get(family_id)
        return True if family is None else family.revoked

    def revoke_family(self, family_id: str) -> None:
        # DynamoDB UpdateItem creates the item when it is missing.
        self.families.setdefault(family_id, _Family(user_id="")).revoked = True

    def revoke_user(self, user_id: str) -> int:
        mine = [fid for fid, fam in self.families.items() if fam.user_id == user_id]
        for fid in mine:
            self.revoke_family(fid)
        return len(mine)

    def put_one_time(self, token: OneTimeToken) -> None:
        self.one_time[(token.token_hash, token.purpose)] = (token, False)

    def consume_one_time(self, token_hash: str, purpose: str, now: int) -> OneTimeToken | None:
        # Condition `used = false AND expires_at > now`.
        entry = self.one_time.get((token_hash, purpose))
        if entry is None:
            return None
        token, used = entry
        if used or token.expires_at <= now:
            return None
        self.one_time[(token_hash, purpose)] = (token, True)
        return token

    def put_login_state(self, state: str, data: dict[str, str], expires_at: int) -> None:
        if state in self.login_states:
            raise errors.OidcLoginError("duplicate login state")
        self.login_states[state] = (dict(data), expires_at, False)

    def pop_login_state(self, state: str, now: int) -> dict[str, str] | None:
        entry = self.login_states.get(state)
        if entry is None:
            return None
        data, expires_at, used = entry
        if used or expires_at <= now:
            return None
        self.login_states[state] = (data, expires_at, True)
        return dict(data)

    def live_families_of(self, user_id: str) -> list[str]:
        """Test helper: the user's families that are not revoked."""
        return [f for f, fam in self.families.items() if fam.user_id == user_id and not fam.revoked]


class InMemorySigner:
    """``Signer`` that signs ES256 for real with an in-memory P-256 key."""

    def __init__(self, kid: str = "test-key-1") -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = kid
        jwk = dict(ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True))
        self.jwk: dict[str, Any] = {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}

    def sign(self, claims: dict[str, object]) -> str:
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"kid": self.kid})

    def jwks(self) -> list[dict[str, Any]]:
        return [self.jwk]


# --- mail, passwords, time --------------------------------------------------------


@dataclass(frozen=True)
class SentMail:
    to: str
    subject: str
    text: str


class RecordingMailer:
    """``Mailer`` that keeps every message."""

    def __init__(self) -> None:
        self.sent: list[SentMail] = []

    def send_mail(self, to: str, subject: str, text: str) -> None:
        self.sent.append(SentMail(to, subject, text))

    def to(self, address: str) -> list[SentMail]:
        return [m for m in self.sent if m.to == address]

    def last_token(self, address: str) -> str:
        """The ``token=`` query value of the newest message to ``address``."""
        mails = self.to(address)
        assert mails, f"no mail was sent to {address}"
        match = re.search(r"token=([A-Za-z0-9_-]+)", mails[-1].text)
        assert match, f"no token link in {mails[-1].text!r}"
        return match.group(1)


class FakeHasher:
    """``PasswordHasher`` that is fast; ``version`` bumps model a parameter upgrade."""

    def __init__(self, version: int = 1) -> None:
        self.version = version
        self.hash_calls = 0

    def hash(self, password: str) -> str:
        self.hash_calls += 1
        digest = hashlib.sha256(password.encode()).hexdigest()
        return f"fake-v{self.version}${digest}"

    def verify(self, hashed: str, password: str) -> bool:
        _, _, digest = hashed.partition("$")
        return digest == hashlib.sha256(password.encode()).hexdigest()

    def needs_rehash(self, hashed: str) -> bool:
        return not hashed.startswith(f"fake-v{self.version}$")


class FakeClock:
    """A clock that moves only when told to (whole seconds, UTC)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = (start or datetime.now(UTC)).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    @property
    def epoch(self) -> int:
        return int(self.now.timestamp())


# --- wiring -------------------------------------------------------------------------


@dataclass
class FakeWorld:
    """Every fake behind one :class:`logic.Deps`, for tests that need to look inside."""

    db: InMemoryDatabase = field(default_factory=InMemoryDatabase)
    tokens: InMemoryTokenStore = field(default_factory=InMemoryTokenStore)
    signer: InMemorySigner = field(default_factory=InMemorySigner)
    mailer: RecordingMailer = field(default_factory=RecordingMailer)
    hasher: FakeHasher = field(default_factory=FakeHasher)
    clock: FakeClock = field(default_factory=FakeClock)
    config: logic.Config = field(
        default_factory=lambda: logic.Config(
            issuer=ISSUER, audience=c.TOKEN_AUDIENCE, base_url=BASE_URL
        )
    )
    uows: FakeUowFactory = field(init=False)
    deps: logic.Deps = field(init=False)

    def __post_init__(self) -> None:
        self.uows = FakeUowFactory(self.db)
        self.deps = logic.Deps(
            config=self.config,
            uow=self.uows,
            tokens=self.tokens,
            signer=self.signer,
            mailer=self.mailer,
            hasher=self.hasher,
            clock=self.clock,
        )

    def stored(self, user_id: str) -> User:
        """The committed state of an account."""
        return self.db.users[user_id]
