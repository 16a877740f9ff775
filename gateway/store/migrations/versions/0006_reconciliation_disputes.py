"""reconciliation disputes: a bank's dispute of a statement line, resolved by the platform

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reconciliation_disputes",
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("dispute_id", sa.String(length=40), nullable=False),
        sa.Column("statement_id", sa.String(length=40), nullable=False),
        sa.Column("bank_id", sa.String(length=40), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("disputed_fields_json", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("open_key", sa.String(length=100), nullable=True),
        sa.Column("filed_by", sa.String(length=60), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolution_note", sa.Text(), nullable=False),
        sa.Column("resolved_by", sa.String(length=60), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("dispute_id"),
    )
    with op.batch_alter_table("reconciliation_disputes", schema=None) as batch_op:
        batch_op.create_index("ix_reconciliation_disputes_bank", ["bank_id", "seq"])
        batch_op.create_index("ux_reconciliation_disputes_open", ["open_key"], unique=True)


def downgrade() -> None:
    op.drop_table("reconciliation_disputes")
