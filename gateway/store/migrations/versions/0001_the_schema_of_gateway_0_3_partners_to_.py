"""the schema of gateway 0.3: partners to the blacklist log

Revision ID: 0001
Revises: (none: the first revision)
Create Date: 2026-11-28 12:46:06.021969
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "blacklist_changes",
        sa.Column("log_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("change_type", sa.String(length=16), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("log_index"),
    )
    with op.batch_alter_table("blacklist_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_blacklist_changes_entry_id"), ["entry_id"], unique=False
        )

    op.create_table(
        "blacklist_entries",
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("pseudonym", sa.LargeBinary(), nullable=False),
        sa.Column("identifier_kind", sa.String(length=8), nullable=False),
        sa.Column("reporter_bank_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("outstanding_fen", sa.BigInteger(), nullable=False),
        sa.Column("default_date", sa.Date(), nullable=False),
        sa.Column("evidence_case_id", sa.String(length=40), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("appeal_json", sa.Text(), nullable=True),
        sa.Column("appeal_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removal_reason", sa.String(length=2100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    with op.batch_alter_table("blacklist_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_blacklist_entries_appeal_deadline"), ["appeal_deadline"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_blacklist_entries_evidence_case_id"), ["evidence_case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_blacklist_entries_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            "ix_blacklist_entries_pseudonym_status", ["pseudonym", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_blacklist_entries_reporter_bank_id"), ["reporter_bank_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_blacklist_entries_status"), ["status"], unique=False)

    op.create_table(
        "case_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=True),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("loan_event_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_events_case_id"), ["case_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column("consent_id", sa.String(length=40), nullable=False),
        sa.Column("platform_merchant_id", sa.String(length=64), nullable=False),
        sa.Column("bank_ids_json", sa.Text(), nullable=False),
        sa.Column("data_scopes_json", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence_reference", sa.String(length=256), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("consent_id"),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consents_platform_merchant_id"), ["platform_merchant_id"], unique=False
        )

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.String(length=32), nullable=False),
        sa.Column("latency_micros", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_attempts_task_id"), ["task_id"], unique=False)

    op.create_table(
        "delivery_tasks",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("bank_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint", sa.String(length=300), nullable=False),
        sa.Column("ordered", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bank_reference", sa.String(length=128), nullable=False),
        sa.Column("last_error", sa.String(length=400), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("case_id"),
        sa.UniqueConstraint("task_id"),
    )
    with op.batch_alter_table("delivery_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_tasks_bank_id"), ["bank_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_delivery_tasks_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_delivery_tasks_referral_id"), ["referral_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_delivery_tasks_state"), ["state"], unique=False)

    op.create_table(
        "enforcement_events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("platform_merchant_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("blacklist_entry_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("enforcement_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_enforcement_events_blacklist_entry_id"),
            ["blacklist_entry_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_enforcement_events_platform_merchant_id"),
            ["platform_merchant_id"],
            unique=False,
        )

    op.create_table(
        "financing_cases",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("bank_id", sa.String(length=40), nullable=False),
        sa.Column("platform_merchant_id", sa.String(length=64), nullable=False),
        sa.Column("consent_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("envelope_payload", sa.LargeBinary(), nullable=False),
        sa.Column("envelope_type", sa.String(length=100), nullable=False),
        sa.Column("envelope_signatures_json", sa.Text(), nullable=False),
        sa.Column("offer_json", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bank_reference", sa.String(length=128), nullable=False),
        sa.Column("decision_json", sa.Text(), nullable=True),
        sa.Column("agreed_terms_json", sa.Text(), nullable=True),
        sa.Column("bank_exposure_fen", sa.BigInteger(), nullable=False),
        sa.Column("ledger_json", sa.Text(), nullable=True),
        sa.Column("merchant_pseudonym", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("case_id"),
    )
    with op.batch_alter_table("financing_cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_financing_cases_bank_id"), ["bank_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_financing_cases_merchant_pseudonym"),
            ["merchant_pseudonym"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_financing_cases_platform_merchant_id"),
            ["platform_merchant_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_financing_cases_referral_id"), ["referral_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_financing_cases_state"), ["state"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.String(length=80), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("caller", "method", "request_id"),
    )
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    op.create_table(
        "partners",
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("endpoint", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("policy_json", sa.Text(), nullable=False),
        sa.Column("decision_public_key", sa.LargeBinary(), nullable=False),
        sa.Column("suspension_reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner_id"),
    )
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_partners_state"), ["state"], unique=False)

    op.create_table(
        "referrals",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("platform_merchant_id", sa.String(length=64), nullable=False),
        sa.Column("consent_id", sa.String(length=40), nullable=False),
        sa.Column("assessment_json", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("withdrawal_reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("referral_id"),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referrals_consent_id"), ["consent_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_referrals_platform_merchant_id"), ["platform_merchant_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_platform_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_referrals_consent_id"))

    op.drop_table("referrals")
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_partners_state"))

    op.drop_table("partners")
    op.drop_table("log_nodes")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("financing_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_financing_cases_state"))
        batch_op.drop_index(batch_op.f("ix_financing_cases_referral_id"))
        batch_op.drop_index(batch_op.f("ix_financing_cases_platform_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_financing_cases_merchant_pseudonym"))
        batch_op.drop_index(batch_op.f("ix_financing_cases_bank_id"))

    op.drop_table("financing_cases")
    with op.batch_alter_table("enforcement_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enforcement_events_platform_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_enforcement_events_blacklist_entry_id"))

    op.drop_table("enforcement_events")
    with op.batch_alter_table("delivery_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_tasks_state"))
        batch_op.drop_index(batch_op.f("ix_delivery_tasks_referral_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_tasks_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_delivery_tasks_bank_id"))

    op.drop_table("delivery_tasks")
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_task_id"))

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_platform_merchant_id"))

    op.drop_table("consents")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_events_case_id"))

    op.drop_table("case_events")
    with op.batch_alter_table("blacklist_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blacklist_entries_status"))
        batch_op.drop_index(batch_op.f("ix_blacklist_entries_reporter_bank_id"))
        batch_op.drop_index("ix_blacklist_entries_pseudonym_status")
        batch_op.drop_index(batch_op.f("ix_blacklist_entries_expires_at"))
        batch_op.drop_index(batch_op.f("ix_blacklist_entries_evidence_case_id"))
        batch_op.drop_index(batch_op.f("ix_blacklist_entries_appeal_deadline"))

    op.drop_table("blacklist_entries")
    with op.batch_alter_table("blacklist_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blacklist_changes_entry_id"))

    op.drop_table("blacklist_changes")
