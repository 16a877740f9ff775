"""The merchant profile the platform submits, as plain typed values.

Field names mirror the proto messages (``colending.v1.MerchantProfile``) so that validation
errors can name request paths such as ``merchant.reputation.dispute_rate_bps``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date


class MembershipTier(enum.Enum):
    FREE = "free"
    TRUSTPASS = "trustpass"
    GOLD_SUPPLIER = "gold_supplier"


class DataScope(enum.Enum):
    """A section of the profile a merchant can consent to share."""

    IDENTITY = "identity"
    QUALIFICATION = "qualification"
    TRANSACTION_REPUTATION = "transaction_reputation"
    VERIFICATION = "verification"


@dataclass(frozen=True, slots=True, kw_only=True)
class MerchantIdentity:
    platform_merchant_id: str = ""
    legal_name: str = ""
    unified_social_credit_code: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Qualification:
    membership_tier: MembershipTier | None = None
    paid_member_since: date | None = None  # None for free members
    business_registration_date: date | None = None
    region_code: str = ""  # GB/T 2260, six digits


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionReputation:
    # Gross merchandise value per month in fen (CNY minor units), oldest month first; the
    # tuple's length is the trailing window.
    monthly_gmv_fen: tuple[int, ...] = ()
    order_count: int = 0
    distinct_buyer_count: int = 0
    # Rates are basis points (0..10000) so no float ever enters a score.
    positive_feedback_bps: int = 0
    dispute_rate_bps: int = 0
    refund_rate_bps: int = 0
    on_time_shipment_bps: int = 0
    prior_loans_repaid: int = 0
    prior_loans_overdue: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    business_license_verified: bool = False
    legal_representative_verified: bool = False
    bank_account_verified: bool = False
    onsite_inspection_passed: bool = False
    video_interview_completed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MerchantProfile:
    identity: MerchantIdentity = field(default_factory=MerchantIdentity)
    qualification: Qualification = field(default_factory=Qualification)
    reputation: TransactionReputation = field(default_factory=TransactionReputation)
    verification: Verification = field(default_factory=Verification)
