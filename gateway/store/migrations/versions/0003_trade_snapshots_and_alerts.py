"""post-loan monitoring: trade snapshots, the signed alerts they raise, alert pushes in the outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Alerts are pushed through the referral outbox; rows before this are referral pushes.
    with op.batch_alter_table("delivery_tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="referral")
        )
    op.create_table(
        "trade_snapshots",
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("snapshot_id", sa.String(length=40), nullable=False),
        sa.Column("platform_merchant_id", sa.String(length=64), nullable=False),
        sa.Column("consent_id", sa.String(length=40), nullable=False),
        sa.Column("bank_ids_json", sa.Text(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("reputation_json", sa.Text(), nullable=False),
        sa.Column("store_restricted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("snapshot_id"),
    )
    with op.batch_alter_table("trade_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trade_snapshots_merchant_as_of", ["platform_merchant_id", "as_of"], unique=False
        )
    op.create_table(
        "alerts",
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("alert_id", sa.String(length=40), nullable=False),
        sa.Column("bank_id", sa.String(length=40), nullable=False),
        sa.Column("platform_merchant_id", sa.String(length=64), nullable=False),
        sa.Column("snapshot_id", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("envelope_payload", sa.LargeBinary(), nullable=False),
        sa.Column("envelope_type", sa.String(length=100), nullable=False),
        sa.Column("envelope_signatures_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("alert_id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_bank_seq", ["bank_id", "seq"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_alerts_platform_merchant_id"), ["platform_merchant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_alerts_snapshot_id"), ["snapshot_id"], unique=False)


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("trade_snapshots")
    with op.batch_alter_table("delivery_tasks", schema=None) as batch_op:
        batch_op.drop_column("kind")
