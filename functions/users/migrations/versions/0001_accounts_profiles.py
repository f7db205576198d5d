"""Accounts, mentor profiles, external identities.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "users"


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(80), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.String(16)), nullable=False),
        sa.Column("password_hash", sa.Text()),
        sa.Column("email_verified_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("mentee_goals", sa.Text()),
        sa.Column("mentee_interests", postgresql.ARRAY(sa.String(64))),
        schema=S,
    )
    op.create_table(
        "mentor_profiles",
        sa.Column(
            "user_id",
            sa.String(26),
            sa.ForeignKey(f"{S}.accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("headline", sa.String(140), nullable=False, server_default=""),
        sa.Column("bio", sa.Text(), nullable=False, server_default=""),
        sa.Column("skills", postgresql.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        sa.Column(
            "languages", postgresql.ARRAY(sa.String(16)), nullable=False, server_default="{}"
        ),
        sa.Column("hourly_rate_minor", sa.Integer()),
        sa.Column("currency", sa.String(3)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("years_experience", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("links", postgresql.JSONB(), nullable=False, server_default="[]"),
        sa.Column("listed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("listed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "hourly_rate_minor IS NULL OR hourly_rate_minor >= 0", name="ck_rate_nonneg"
        ),
        sa.CheckConstraint("currency IS NULL OR currency ~ '^[A-Z]{3}$'", name="ck_currency_iso"),
        schema=S,
    )
    op.create_index(
        "ix_mentor_skills",
        "mentor_profiles",
        ["skills"],
        schema=S,
        postgresql_using="gin",
        postgresql_where=sa.text("listed"),
    )
    op.create_index(
        "ix_mentor_languages",
        "mentor_profiles",
        ["languages"],
        schema=S,
        postgresql_using="gin",
        postgresql_where=sa.text("listed"),
    )
    op.create_index(
        "ix_mentor_price",
        "mentor_profiles",
        ["currency", "hourly_rate_minor", "user_id"],
        schema=S,
        postgresql_where=sa.text("listed"),
    )
    op.create_index(
        "ix_mentor_experience",
        "mentor_profiles",
        ["years_experience", "user_id"],
        schema=S,
        postgresql_where=sa.text("listed"),
    )
    op.create_index(
        "ix_mentor_newest",
        "mentor_profiles",
        ["listed_at", "user_id"],
        schema=S,
        postgresql_where=sa.text("listed"),
    )
    op.create_table(
        "identities",
        sa.Column("provider", sa.String(40), primary_key=True),
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(26),
            sa.ForeignKey(f"{S}.accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("email", sa.String(320)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=S,
    )
    op.create_index("ix_identities_user", "identities", ["user_id"], schema=S)


def downgrade() -> None:
    op.drop_table("identities", schema=S)
    op.drop_table("mentor_profiles", schema=S)
    op.drop_table("accounts", schema=S)
