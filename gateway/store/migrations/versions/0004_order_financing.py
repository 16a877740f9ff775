"""order financing: batches of pending orders on ORDER_LOAN cases and the orders in them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "order_batches",
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("bank_id", sa.String(length=40), nullable=False),
        sa.Column("platform_merchant_id", sa.String(length=64), nullable=False),
        sa.Column("consent_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decline_codes_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("batch_id"),
    )
    with op.batch_alter_table("order_batches", schema=None) as batch_op:
        batch_op.create_index("ix_order_batches_bank_seq", ["bank_id", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_order_batches_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_order_batches_state"), ["state"], unique=False)
    op.create_table(
        "financed_orders",
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("platform_merchant_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        # Unique while the order holds its id; NULL (never equal) once released.
        sa.Column("claim_key", sa.String(length=130), nullable=True),
        sa.Column("order_value_fen", sa.BigInteger(), nullable=False),
        sa.Column("advance_fen", sa.BigInteger(), nullable=False),
        sa.Column("expected_settlement_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("overdue_reason", sa.String(length=24), nullable=True),
        sa.Column("advance_outstanding_fen", sa.BigInteger(), nullable=False),
        sa.Column("sweep_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("claim_key"),
    )
    with op.batch_alter_table("financed_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_financed_orders_batch_position", ["batch_id", "position"], unique=True
        )
        batch_op.create_index(
            "ix_financed_orders_state_settle", ["state", "expected_settlement_date"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_financed_orders_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_financed_orders_platform_merchant_id"),
            ["platform_merchant_id"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_table("financed_orders")
    op.drop_table("order_batches")
