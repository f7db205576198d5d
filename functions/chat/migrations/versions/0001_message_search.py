"""Message search: the unaccent extension, a language-neutral configuration, the index.

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

S = "chat"
CONFIG = f"{S}.message_search"
# Token types that may hold non-ASCII letters: unaccent first, then simple (lowercase).
_ACCENTED = "word, hword, hword_part, numword, numhword"


def upgrade() -> None:
    # unaccent ships with PostgreSQL's contrib and is on Aurora's list of extensions;
    # trusted since PostgreSQL 13, so the owner of the database may create it. It is
    # database-wide: reuse it wherever another service has created it.
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public")
    bind = op.get_bind()
    where = bind.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'unaccent'"
        )
    ).scalar_one()
    dictionary = f'"{where}".unaccent'
    op.execute(f"CREATE TEXT SEARCH CONFIGURATION {CONFIG} (COPY = pg_catalog.simple)")
    op.execute(
        f"ALTER TEXT SEARCH CONFIGURATION {CONFIG} ALTER MAPPING FOR {_ACCENTED}"
        f" WITH {dictionary}, simple"
    )
    op.create_table(
        "search_messages",
        sa.Column("conversation_id", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("author_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("edited_at", sa.DateTime(timezone=True)),
        sa.Column("body", sa.Text(), nullable=False, server_default=""),
        sa.Column("tsv", postgresql.TSVECTOR()),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        # the stream sequence number of the image the row holds (up to 40 digits)
        sa.Column("seq", sa.Numeric(precision=40, scale=0), nullable=False),
        sa.Column(
            "indexed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "deleted OR (author_id IS NOT NULL AND created_at IS NOT NULL AND tsv IS NOT NULL)",
            name="ck_search_messages_live_complete",
        ),
        schema=S,
    )
    op.create_index(
        "ix_search_messages_tsv", "search_messages", ["tsv"], schema=S, postgresql_using="gin"
    )
    op.create_index(
        "ix_search_messages_conversation",
        "search_messages",
        ["conversation_id", "created_at"],
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("search_messages", schema=S)
    op.execute(f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {CONFIG}")
    # unaccent stays: it is database-wide and may serve other schemas.
