"""Protobuf <-> domain conversion of partners and their eligibility policies."""

from __future__ import annotations

from colending.v1 import monitoring_pb2, partner_pb2

from gateway.api.convert import (
    TIER_NUMBERS,
    TIERS,
    enum_value,
    inverse_of,
    money,
    money_from_proto,
    timestamp,
)
from gateway.domain.partner import Partner, PartnerState
from gateway.domain.policy import (
    BlacklistAction,
    CollectionOrder,
    EligibilityPolicy,
    MonitoringPolicy,
)
from gateway.errors import FieldViolation

BLACKLIST_ACTIONS = {
    partner_pb2.BLACKLIST_ACTION_REFUSE: BlacklistAction.REFUSE,
    partner_pb2.BLACKLIST_ACTION_FLAG: BlacklistAction.FLAG,
}
PARTNER_STATES = {
    partner_pb2.PARTNER_STATE_ACTIVE: PartnerState.ACTIVE,
    partner_pb2.PARTNER_STATE_SUSPENDED: PartnerState.SUSPENDED,
}
BLACKLIST_ACTION_NUMBERS = inverse_of(BLACKLIST_ACTIONS)
COLLECTION_ORDERS = {
    partner_pb2.COLLECTION_ORDER_INTEREST_FIRST: CollectionOrder.INTEREST_FIRST,
    partner_pb2.COLLECTION_ORDER_PRINCIPAL_FIRST: CollectionOrder.PRINCIPAL_FIRST,
}
COLLECTION_ORDER_NUMBERS = inverse_of(COLLECTION_ORDERS)
PARTNER_STATE_NUMBERS = inverse_of(PARTNER_STATES)


def policy_from_proto(
    message: partner_pb2.EligibilityPolicy, field: str, problems: list[FieldViolation]
) -> EligibilityPolicy:
    """A set policy is taken as given; unset money fields and enums take the defaults."""
    defaults = EligibilityPolicy()
    tiers = [
        enum_value(t, TIERS, f"{field}.allowed_tiers[{i}]", problems)
        for i, t in enumerate(message.allowed_tiers)
    ]
    if any(t is None and n == 0 for t, n in zip(tiers, message.allowed_tiers, strict=True)):
        problems.append(
            FieldViolation(f"{field}.allowed_tiers", "MEMBERSHIP_TIER_UNSPECIFIED is not a tier")
        )
    min_line = money_from_proto(message.min_credit_line, f"{field}.min_credit_line", problems)
    max_line = money_from_proto(message.max_credit_line, f"{field}.max_credit_line", problems)
    cap = money_from_proto(message.exposure_cap, f"{field}.exposure_cap", problems)
    action = enum_value(
        message.blacklist_action, BLACKLIST_ACTIONS, f"{field}.blacklist_action", problems
    )
    return EligibilityPolicy(
        allowed_region_codes=tuple(message.allowed_region_codes),
        excluded_region_codes=tuple(message.excluded_region_codes),
        min_years_registered=message.min_years_registered,
        allowed_tiers=frozenset(t for t in tiers if t is not None),
        min_score=message.min_score,
        min_credit_line_fen=defaults.min_credit_line_fen if min_line is None else min_line,
        max_credit_line_fen=defaults.max_credit_line_fen if max_line is None else max_line,
        allow_amount_above_offer=message.allow_amount_above_offer,
        platform_share_floor_bps=message.platform_share_floor_bps,
        platform_share_ceiling_bps=message.platform_share_ceiling_bps
        or defaults.platform_share_ceiling_bps,
        exposure_cap_fen=cap or 0,
        blacklist_action=action or defaults.blacklist_action,
        referral_ttl_days=message.referral_ttl_days or defaults.referral_ttl_days,
        ordered_delivery=message.ordered_delivery,
        monitoring=monitoring_policy_from_proto(message.monitoring),
        order_advance_cap_bps=message.order_advance_cap_bps or defaults.order_advance_cap_bps,
        default_after_days=message.default_after_days or defaults.default_after_days,
        collection_order=enum_value(
            message.collection_order, COLLECTION_ORDERS, f"{field}.collection_order", problems
        )
        or defaults.collection_order,
        penalty_rate_bps=message.penalty_rate_bps or defaults.penalty_rate_bps,
    )


def policy_to_proto(policy: EligibilityPolicy) -> partner_pb2.EligibilityPolicy:
    m = policy.monitoring
    return partner_pb2.EligibilityPolicy(
        allowed_region_codes=policy.allowed_region_codes,
        excluded_region_codes=policy.excluded_region_codes,
        min_years_registered=policy.min_years_registered,
        allowed_tiers=sorted(TIER_NUMBERS[t] for t in policy.allowed_tiers),
        min_score=policy.min_score,
        min_credit_line=money(policy.min_credit_line_fen),
        max_credit_line=money(policy.max_credit_line_fen),
        allow_amount_above_offer=policy.allow_amount_above_offer,
        platform_share_floor_bps=policy.platform_share_floor_bps,
        platform_share_ceiling_bps=policy.platform_share_ceiling_bps,
        exposure_cap=money(policy.exposure_cap_fen),
        blacklist_action=BLACKLIST_ACTION_NUMBERS[policy.blacklist_action],
        referral_ttl_days=policy.referral_ttl_days,
        ordered_delivery=policy.ordered_delivery,
        monitoring=monitoring_pb2.MonitoringPolicy(
            gmv_decline_warning_bps=m.gmv_decline_warning_bps,
            gmv_decline_critical_bps=m.gmv_decline_critical_bps,
            gmv_trailing_months=m.gmv_trailing_months,
            dispute_rate_alert_bps=m.dispute_rate_alert_bps,
            refund_rate_alert_bps=m.refund_rate_alert_bps,
        ),
        order_advance_cap_bps=policy.order_advance_cap_bps,
        default_after_days=policy.default_after_days,
        collection_order=COLLECTION_ORDER_NUMBERS[policy.collection_order],
        penalty_rate_bps=policy.penalty_rate_bps,
    )


def monitoring_policy_from_proto(message: monitoring_pb2.MonitoringPolicy) -> MonitoringPolicy:
    """0 (or the field unset) takes the default; anything else is validated as given."""
    d = MonitoringPolicy()
    return MonitoringPolicy(
        gmv_decline_warning_bps=message.gmv_decline_warning_bps or d.gmv_decline_warning_bps,
        gmv_decline_critical_bps=message.gmv_decline_critical_bps or d.gmv_decline_critical_bps,
        gmv_trailing_months=message.gmv_trailing_months or d.gmv_trailing_months,
        dispute_rate_alert_bps=message.dispute_rate_alert_bps or d.dispute_rate_alert_bps,
        refund_rate_alert_bps=message.refund_rate_alert_bps or d.refund_rate_alert_bps,
    )


def partner_to_proto(partner: Partner) -> partner_pb2.Partner:
    return partner_pb2.Partner(
        partner_id=partner.partner_id,
        display_name=partner.display_name,
        endpoint=partner.endpoint,
        state=PARTNER_STATE_NUMBERS[partner.state],
        policy=policy_to_proto(partner.policy),
        decision_public_key=partner.decision_public_key,
        created_at=timestamp(partner.created_at),
        updated_at=timestamp(partner.updated_at),
        suspension_reason=partner.suspension_reason,
    )
