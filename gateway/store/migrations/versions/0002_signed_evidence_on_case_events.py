"""signed evidence on case events: the bank's envelope and its nonce, used once per bank

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("evidence_nonce", sa.String(length=128), nullable=True))
        batch_op.create_index(
            "ux_case_events_actor_evidence_nonce", ["actor", "evidence_nonce"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index("ux_case_events_actor_evidence_nonce")
        batch_op.drop_column("evidence_nonce")
        batch_op.drop_column("evidence_json")
