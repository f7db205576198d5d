"""Data access of the users service: PostgreSQL (accounts, profiles) and DynamoDB (tokens).

The only module of the service that imports SQLAlchemy or PynamoDB. Adapters
translate provider errors into domain errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    and_,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from functions.users import errors
from functions.users.domain import (
    Identity,
    MenteeProfile,
    MentorProfile,
    MentorQuery,
    MentorSort,
    OneTimeToken,
    RefreshRecord,
    User,
)
from lwm_core.db import UnitOfWork
from lwm_core.dynamo import LwmModel
from lwm_core.pagination import Page, decode_cursor, encode_cursor

SCHEMA = "users"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    timezone: Mapped[str] = mapped_column(String(64))
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    password_hash: Mapped[str | None] = mapped_column(Text)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    mentee_goals: Mapped[str | None] = mapped_column(Text)
    mentee_interests: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))


class MentorRow(Base):
    __tablename__ = "mentor_profiles"

    user_id: Mapped[str] = mapped_column(
        String(26), ForeignKey(f"{SCHEMA}.accounts.id", ondelete="CASCADE"), primary_key=True
    )
    headline: Mapped[str] = mapped_column(String(140), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(16)), default=list)
    hourly_rate_minor: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str | None] = mapped_column(String(3))
    timezone: Mapped[str | None] = mapped_column(String(64))
    years_experience: Mapped[int] = mapped_column(Integer, default=0)
    links: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # Set while the mentor is listed in discovery; every directory index is partial on it.
    listed: Mapped[bool] = mapped_column(Boolean, default=False)
    listed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_mentor_skills", "skills", postgresql_using="gin", postgresql_where="listed"),
        Index(
            "ix_mentor_languages", "languages", postgresql_using="gin", postgresql_where="listed"
        ),
        Index(
            "ix_mentor_price", "currency", "hourly_rate_minor", "user_id", postgresql_where="listed"
        ),
        Index("ix_mentor_experience", "years_experience", "user_id", postgresql_where="listed"),
        Index("ix_mentor_newest", "listed_at", "user_id", postgresql_where="listed"),
    )


class IdentityRow(Base):
    __tablename__ = "identities"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(26), ForeignKey(f"{SCHEMA}.accounts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- PostgreSQL repository ---------------------------------------------------------


def _to_domain(account: AccountRow, mentor: MentorRow | None) -> User:
    mentee = None
    if account.mentee_goals is not None or account.mentee_interests is not None:
        mentee = MenteeProfile(account.mentee_goals or "", list(account.mentee_interests or []))
    elif "mentee" in account.roles:
        mentee = MenteeProfile()
    return User(
        id=account.id,
        email=account.email,
        display_name=account.display_name,
        timezone=account.timezone,
        roles=set(account.roles),
        created_at=account.created_at,
        password_hash=account.password_hash,
        email_verified_at=account.email_verified_at,
        deleted_at=account.deleted_at,
        mentee=mentee,
        mentor=None
        if mentor is None
        else MentorProfile(
            headline=mentor.headline,
            bio=mentor.bio,
            skills=list(mentor.skills),
            languages=list(mentor.languages),
            hourly_rate_minor=mentor.hourly_rate_minor,
            currency=mentor.currency,
            timezone=mentor.timezone,
            years_experience=mentor.years_experience,
            links=list(mentor.links),
            listed_at=mentor.listed_at,
        ),
    )


class PostgresUserRepository:
    """Accounts, profiles and identities in the ``users`` schema."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    @property
    def _s(self) -> Any:
        return self._uow.session

    def add(self, user: User) -> None:
        self._s.add(self._account_row(AccountRow(), user))
        if user.mentor is not None:
            self._s.add(self._mentor_row(MentorRow(user_id=user.id), user))
        try:
            self._s.flush()
        except IntegrityError as e:
            raise errors.EmailTakenError("an account with this email already exists") from e

    def get(self, user_id: str) -> User | None:
        account = self._s.get(AccountRow, user_id)
        if account is None:
            return None
        return _to_domain(account, self._s.get(MentorRow, user_id))

    def get_by_email(self, email: str) -> User | None:
        account = self._s.scalars(select(AccountRow).where(AccountRow.email == email)).first()
        if account is None:
            return None
        return _to_domain(account, self._s.get(MentorRow, account.id))

    def save(self, user: User) -> None:
        account = self._s.get(AccountRow, user.id)
        self._account_row(account, user)
        account.updated_at = func.now()
        mentor = self._s.get(MentorRow, user.id)
        if user.mentor is None:
            if mentor is not None:
                self._s.delete(mentor)
        else:
            if mentor is None:
                mentor = MentorRow(user_id=user.id)
                self._s.add(mentor)
            self._mentor_row(mentor, user)
        try:
            self._s.flush()
        except IntegrityError as e:
            raise errors.EmailTakenError("an account with this email already exists") from e

    @staticmethod
    def _account_row(row: AccountRow, user: User) -> AccountRow:
        row.id = user.id
        row.email = user.email
        row.display_name = user.display_name
        row.timezone = user.timezone
        row.roles = sorted(user.roles)
        row.password_hash = user.password_hash
        row.email_verified_at = user.email_verified_at
        row.created_at = user.created_at
        row.deleted_at = user.deleted_at
        row.mentee_goals = user.mentee.goals if user.mentee else None
        row.mentee_interests = list(user.mentee.interests) if user.mentee else None
        return row

    @staticmethod
    def _mentor_row(row: MentorRow, user: User) -> MentorRow:
        m = user.mentor
        assert m is not None
        row.headline = m.headline
        row.bio = m.bio
        row.skills = list(m.skills)
        row.languages = list(m.languages)
        row.hourly_rate_minor = m.hourly_rate_minor
        row.currency = m.currency
        row.timezone = m.timezone
        row.years_experience = m.years_experience
        row.links = list(m.links)
        row.listed = user.listed
        row.listed_at = m.listed_at
        return row

    def list_users(self, limit: int, cursor: str | None) -> Page[User]:
        stmt = select(AccountRow).order_by(AccountRow.id.desc()).limit(limit + 1)
        if cursor:
            (last_id,) = decode_cursor(cursor, "users", 1)
            stmt = stmt.where(AccountRow.id < str(last_id))
        rows = list(self._s.scalars(stmt))
        more = len(rows) > limit
        rows = rows[:limit]
        mentors = self._mentors_of([r.id for r in rows])
        users = [_to_domain(r, mentors.get(r.id)) for r in rows]
        nxt = encode_cursor("users", [rows[-1].id]) if more and rows else None
        return Page(users, nxt)

    def _mentors_of(self, ids: Sequence[str]) -> dict[str, MentorRow]:
        if not ids:
            return {}
        found = self._s.scalars(select(MentorRow).where(MentorRow.user_id.in_(ids)))
        return {m.user_id: m for m in found}

    def search_mentors(self, query: MentorQuery) -> Page[User]:
        m = MentorRow
        conditions: list[Any] = [m.listed.is_(True)]
        if query.skill:
            conditions.append(m.skills.contains([query.skill]))
        if query.language:
            conditions.append(m.languages.contains([query.language]))
        if query.currency:
            conditions.append(m.currency == query.currency)
        if query.min_price is not None:
            conditions.append(m.hourly_rate_minor >= query.min_price)
        if query.max_price is not None:
            conditions.append(m.hourly_rate_minor <= query.max_price)

        sort_col: Any
        descending = False
        if query.sort is MentorSort.PRICE_ASC:
            sort_col = m.hourly_rate_minor
        elif query.sort is MentorSort.PRICE_DESC:
            sort_col, descending = m.hourly_rate_minor, True
        elif query.sort is MentorSort.EXPERIENCE:
            sort_col, descending = m.years_experience, True
        else:
            sort_col, descending = m.listed_at, True
        scope = f"mentors:{query.sort.value}"
        if query.cursor:
            last_value, last_id = decode_cursor(query.cursor, scope, 2)
            value: Any = (
                datetime.fromisoformat(str(last_value))
                if query.sort is MentorSort.NEWEST
                else last_value
            )
            if descending:
                conditions.append(
                    or_(sort_col < value, and_(sort_col == value, m.user_id < str(last_id)))
                )
            else:
                conditions.append(tuple_(sort_col, m.user_id) > tuple_(value, str(last_id)))
        order = (
            (sort_col.desc(), m.user_id.desc()) if descending else (sort_col.asc(), m.user_id.asc())
        )
        stmt = (
            select(AccountRow, MentorRow)
            .join(MentorRow, MentorRow.user_id == AccountRow.id)
            .where(*conditions)
            .order_by(*order)
            .limit(query.limit + 1)
        )
        rows = list(self._s.execute(stmt).all())
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        users = [_to_domain(a, mr) for a, mr in rows]
        nxt = None
        if more and rows:
            last = rows[-1][1]
            raw = getattr(last, sort_col.key)
            encoded = raw.isoformat() if isinstance(raw, datetime) else raw
            nxt = encode_cursor(scope, [encoded, last.user_id])
        return Page(users, nxt)

    def get_identity(self, provider: str, subject: str) -> Identity | None:
        row = self._s.get(IdentityRow, (provider, subject))
        return None if row is None else Identity(row.provider, row.subject, row.user_id, row.email)

    def add_identity(self, identity: Identity) -> None:
        self._s.add(
            IdentityRow(
                provider=identity.provider,
                subject=identity.subject,
                user_id=identity.user_id,
                email=identity.email,
            )
        )
        self._s.flush()

    def identities_of(self, user_id: str) -> Sequence[Identity]:
        rows = self._s.scalars(select(IdentityRow).where(IdentityRow.user_id == user_id))
        return [Identity(r.provider, r.subject, r.user_id, r.email) for r in rows]

    def delete_identities(self, user_id: str) -> None:
        for row in self._s.scalars(select(IdentityRow).where(IdentityRow.user_id == user_id)):
            self._s.delete(row)


class PostgresUow(UnitOfWork):
    """The users unit of work: one transaction, one repository."""

    users: PostgresUserRepository

    def __enter__(self) -> PostgresUow:
        super().__enter__()
        self.users = PostgresUserRepository(self)
        return self


# --- DynamoDB token store ------------------------------------------------------------


class AuthByUser(GlobalSecondaryIndex["AuthItem"]):  # type: ignore[no-untyped-call]
    """gsi1: a user's refresh-token families."""

    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class AuthItem(LwmModel):
    """One item of the auth table (single-table: refresh tokens, families, one-time tokens)."""

    class Meta:
        table_name = ""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    user_id = UnicodeAttribute(null=True)
    family_id = UnicodeAttribute(null=True)
    used = BooleanAttribute(null=True)
    revoked = BooleanAttribute(null=True)
    data = UnicodeAttribute(null=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    expires_at = NumberAttribute(null=True)
    gsi1 = AuthByUser()


class DynamoTokenStore:
    """Refresh-token families and one-time tokens in the ``auth`` table."""

    def put_refresh(self, record: RefreshRecord, created_at: int) -> None:
        AuthItem(
            f"RT#{record.token_hash}",
            "RT",
            user_id=record.user_id,
            family_id=record.family_id,
            used=False,
            expires_at=record.expires_at,
        ).save()
        # The family outlives each token; the user index lets us revoke all of a user's sessions.
        AuthItem(f"FAM#{record.family_id}", "FAM").update(
            actions=[
                AuthItem.user_id.set(record.user_id),
                AuthItem.gsi1pk.set(f"USER#{record.user_id}"),
                AuthItem.gsi1sk.set(f"FAM#{record.family_id}"),
                AuthItem.expires_at.set(record.expires_at),
                AuthItem.revoked.set(AuthItem.revoked | False),
            ]
        )

    def get_refresh(self, token_hash: str) -> RefreshRecord | None:
        try:
            item = AuthItem.get(f"RT#{token_hash}", "RT", consistent_read=True)
        except AuthItem.DoesNotExist:
            return None
        return RefreshRecord(
            token_hash,
            item.family_id or "",
            item.user_id or "",
            int(item.expires_at or 0),
            bool(item.used),
        )

    def mark_refresh_used(self, token_hash: str) -> bool:
        try:
            AuthItem(f"RT#{token_hash}", "RT").update(
                actions=[AuthItem.used.set(True)],
                condition=AuthItem.used == False,  # noqa: E712 (PynamoDB condition)
            )
        except UpdateError as e:
            if e.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def family_revoked(self, family_id: str) -> bool:
        try:
            item = AuthItem.get(f"FAM#{family_id}", "FAM", consistent_read=True)
        except AuthItem.DoesNotExist:
            return True
        return bool(item.revoked)

    def revoke_family(self, family_id: str) -> None:
        AuthItem(f"FAM#{family_id}", "FAM").update(actions=[AuthItem.revoked.set(True)])

    def revoke_user(self, user_id: str) -> int:
        families = AuthItem.gsi1.query(f"USER#{user_id}")
        count = 0
        for fam in families:
            self.revoke_family(fam.pk.removeprefix("FAM#"))
            count += 1
        return count

    def put_one_time(self, token: OneTimeToken) -> None:
        AuthItem(
            f"OTT#{token.token_hash}",
            token.purpose,
            user_id=token.user_id,
            expires_at=token.expires_at,
            used=False,
        ).save()

    def consume_one_time(self, token_hash: str, purpose: str, now: int) -> OneTimeToken | None:
        condition: Condition = (AuthItem.used == False) & (AuthItem.expires_at > now)  # noqa: E712
        item = AuthItem(f"OTT#{token_hash}", purpose)
        try:
            item.update(actions=[AuthItem.used.set(True)], condition=condition)
        except UpdateError as e:
            if e.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return OneTimeToken(token_hash, purpose, item.user_id, int(item.expires_at or 0))

    def put_login_state(self, state: str, data: dict[str, str], expires_at: int) -> None:
        import json

        try:
            AuthItem(
                f"OIDC#{state}", "STATE", data=json.dumps(data), expires_at=expires_at, used=False
            ).save(condition=AuthItem.pk.does_not_exist())
        except PutError as e:
            raise errors.OidcLoginError("duplicate login state") from e

    def pop_login_state(self, state: str, now: int) -> dict[str, str] | None:
        import json

        item = AuthItem(f"OIDC#{state}", "STATE")
        condition: Condition = (AuthItem.used == False) & (AuthItem.expires_at > now)  # noqa: E712
        try:
            item.update(actions=[AuthItem.used.set(True)], condition=condition)
        except UpdateError as e:
            if e.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        data: dict[str, str] = json.loads(item.data or "{}")
        return data
