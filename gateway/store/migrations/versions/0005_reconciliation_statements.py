"""daily reconciliation: signed statements per bank and business date

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reconciliation_statements",
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("statement_id", sa.String(length=40), nullable=False),
        sa.Column("bank_id", sa.String(length=40), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("envelope_payload", sa.LargeBinary(), nullable=False),
        sa.Column("envelope_type", sa.String(length=100), nullable=False),
        sa.Column("envelope_signatures_json", sa.Text(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("statement_id"),
    )
    with op.batch_alter_table("reconciliation_statements", schema=None) as batch_op:
        batch_op.create_index(
            "ux_reconciliation_statements_bank_date", ["bank_id", "business_date"], unique=True
        )


def downgrade() -> None:
    op.drop_table("reconciliation_statements")
