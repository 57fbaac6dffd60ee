"""Initial schema: authorities, issued certificates, audit chain, join tokens, locks.

Revision ID: 0001
Revises:
Create Date: 2026-06-01 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENESIS_HASH = "0" * 64


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "authorities",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("key_ref", sa.Text(), nullable=False),
        sa.Column("serial_hex", sa.String(128), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(128), nullable=False),
        sa.Column("parent_id", sa.String(255), nullable=True),
        sa.Column("not_before", _utc(), nullable=False),
        sa.Column("not_after", _utc(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("activated_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["authorities.id"], name="fk_authorities_parent_id_authorities"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_authorities"),
    )
    op.create_table(
        "issued_certificates",
        sa.Column("serial_hex", sa.String(128), nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("not_before", _utc(), nullable=False),
        sa.Column("not_after", _utc(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(128), nullable=False),
        sa.Column("issuer_fingerprint", sa.String(128), nullable=False),
        sa.Column("requester", sa.Text(), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("issued_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("serial_hex", name="pk_issued_certificates"),
    )
    op.create_index("ix_issued_certificates_spiffe_id", "issued_certificates", ["spiffe_id"])
    op.create_index("ix_issued_certificates_not_after", "issued_certificates", ["not_after"])
    op.create_index("ix_issued_certificates_revoked_at", "issued_certificates", ["revoked_at"])
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
    )
    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.bulk_insert(audit_head, [{"id": 1, "last_seq": 0, "last_hash": _GENESIS_HASH}])
    op.create_table(
        "join_tokens",
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("used_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_join_tokens"),
    )
    op.create_table(
        "locks",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_locks"),
    )


def downgrade() -> None:
    op.drop_table("locks")
    op.drop_table("join_tokens")
    op.drop_table("audit_head")
    op.drop_table("audit_events")
    op.drop_index("ix_issued_certificates_revoked_at", table_name="issued_certificates")
    op.drop_index("ix_issued_certificates_not_after", table_name="issued_certificates")
    op.drop_index("ix_issued_certificates_spiffe_id", table_name="issued_certificates")
    op.drop_table("issued_certificates")
    op.drop_table("authorities")
