"""Index issued certificates by issuer and expiry (who still holds an authority in place).

Revision ID: 0003
Revises: 0002
Create Date: 2026-06-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_issued_certificates_issuer_not_after",
        "issued_certificates",
        ["issuer_fingerprint", "not_after"],
    )


def downgrade() -> None:
    op.drop_index("ix_issued_certificates_issuer_not_after", table_name="issued_certificates")
