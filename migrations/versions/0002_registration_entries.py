"""Registration entries: the entries, their revision counter and the tree-change log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-06-02 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registration_entries",
        sa.Column("entry_id", sa.String(128), nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("parent_id", sa.String(2048), nullable=False),
        sa.Column("selectors_json", sa.Text(), nullable=False),
        sa.Column("ttl_seconds", sa.BigInteger(), nullable=True),
        sa.Column("dns_names_json", sa.Text(), nullable=False),
        sa.Column("hint", sa.Text(), nullable=False),
        sa.Column("match_key", sa.String(64), nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("deleted_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("entry_id", name="pk_registration_entries"),
    )
    op.create_index("ix_registration_entries_revision", "registration_entries", ["revision"])
    op.create_index("ix_registration_entries_parent_id", "registration_entries", ["parent_id"])
    op.create_index(
        "ix_registration_entries_match_key", "registration_entries", ["match_key"], unique=True
    )
    op.create_table(
        "registration_tree_changes",
        sa.Column("revision", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.PrimaryKeyConstraint("revision", "spiffe_id", name="pk_registration_tree_changes"),
    )
    head = op.create_table(
        "registration_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registration_head"),
    )
    op.bulk_insert(head, [{"id": 1, "last_revision": 0}])


def downgrade() -> None:
    op.drop_table("registration_head")
    op.drop_table("registration_tree_changes")
    op.drop_index("ix_registration_entries_match_key", table_name="registration_entries")
    op.drop_index("ix_registration_entries_parent_id", table_name="registration_entries")
    op.drop_index("ix_registration_entries_revision", table_name="registration_entries")
    op.drop_table("registration_entries")
