"""Consent: a merchant's authorisation to share named data with named banks until an expiry."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.domain.merchant import DataScope
from gateway.errors import PreconditionViolation

MAX_CONSENT_DURATION = timedelta(days=3 * 365)


class ConsentPurpose(enum.Enum):
    CREDIT_REFERRAL = "credit_referral"
    MONITORING = "monitoring"


class ConsentState(enum.Enum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class Consent:
    consent_id: str
    platform_merchant_id: str
    bank_ids: tuple[str, ...]
    data_scopes: frozenset[DataScope]
    purpose: ConsentPurpose
    granted_at: datetime
    expires_at: datetime
    evidence_reference: str
    revoked_at: datetime | None = None
    revocation_reason: str = ""

    def state(self, now: datetime) -> ConsentState:
        if self.revoked_at is not None:
            return ConsentState.REVOKED
        if now >= self.expires_at:
            return ConsentState.EXPIRED
        return ConsentState.ACTIVE


def coverage_problems(
    consent: Consent,
    *,
    merchant_id: str,
    bank_id: str,
    now: datetime,
    purpose: ConsentPurpose = ConsentPurpose.CREDIT_REFERRAL,
) -> list[PreconditionViolation]:
    """Every reason ``consent`` does not let the merchant's data go to ``bank_id`` now for
    ``purpose``."""
    subject = f"consents/{consent.consent_id}"
    problems = []
    if consent.platform_merchant_id != merchant_id:
        problems.append(
            PreconditionViolation(
                "CONSENT_MERCHANT_MISMATCH",
                subject,
                f"consent was given by merchant {consent.platform_merchant_id!r}, "
                f"not {merchant_id!r}",
            )
        )
    state = consent.state(now)
    if state is not ConsentState.ACTIVE:
        problems.append(
            PreconditionViolation(
                "CONSENT_NOT_LIVE", subject, f"consent is {state.name}, it must be ACTIVE"
            )
        )
    if bank_id not in consent.bank_ids:
        problems.append(
            PreconditionViolation(
                "CONSENT_BANK_NOT_COVERED",
                subject,
                f"consent does not cover bank {bank_id!r} (covers {', '.join(consent.bank_ids)})",
            )
        )
    if consent.purpose is not purpose:
        problems.append(
            PreconditionViolation(
                "CONSENT_PURPOSE",
                subject,
                f"consent purpose is {consent.purpose.name}, it must be {purpose.name}",
            )
        )
    return problems
