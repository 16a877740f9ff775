"""JSON columns for the few domain values stored whole (policies, assessments, offers).

Hand-written both ways so a stored row never depends on dataclass field order, and a renamed
field fails loudly in a test instead of silently reading a default.
"""

from __future__ import annotations

import base64
import json
from datetime import date
from typing import Any

from gateway.domain.decision import Decision, DecisionOutcome, LoanTerms
from gateway.domain.evidence import Evidence
from gateway.domain.ledger import Ledger, LoanEvent, LoanEventType
from gateway.domain.merchant import DataScope, MembershipTier, TransactionReputation
from gateway.domain.policy import (
    DEFAULT_POLICY,
    BlacklistAction,
    CollectionOrder,
    EligibilityPolicy,
    MonitoringPolicy,
)
from gateway.domain.referral import SignedPayload
from gateway.domain.schedule import RepaymentMethod
from gateway.domain.scoring import Assessment, CreditOffer, Grade, ProductType, Reason


def dump_policy(policy: EligibilityPolicy) -> str:
    m = policy.monitoring
    return json.dumps(
        {
            "allowed_region_codes": list(policy.allowed_region_codes),
            "excluded_region_codes": list(policy.excluded_region_codes),
            "min_years_registered": policy.min_years_registered,
            "allowed_tiers": sorted(t.value for t in policy.allowed_tiers),
            "min_score": policy.min_score,
            "min_credit_line_fen": policy.min_credit_line_fen,
            "max_credit_line_fen": policy.max_credit_line_fen,
            "allow_amount_above_offer": policy.allow_amount_above_offer,
            "platform_share_floor_bps": policy.platform_share_floor_bps,
            "platform_share_ceiling_bps": policy.platform_share_ceiling_bps,
            "exposure_cap_fen": policy.exposure_cap_fen,
            "blacklist_action": policy.blacklist_action.value,
            "referral_ttl_days": policy.referral_ttl_days,
            "ordered_delivery": policy.ordered_delivery,
            "monitoring": {
                "gmv_decline_warning_bps": m.gmv_decline_warning_bps,
                "gmv_decline_critical_bps": m.gmv_decline_critical_bps,
                "gmv_trailing_months": m.gmv_trailing_months,
                "dispute_rate_alert_bps": m.dispute_rate_alert_bps,
                "refund_rate_alert_bps": m.refund_rate_alert_bps,
            },
            "order_advance_cap_bps": policy.order_advance_cap_bps,
            "default_after_days": policy.default_after_days,
            "collection_order": policy.collection_order.value,
            "penalty_rate_bps": policy.penalty_rate_bps,
        },
        sort_keys=True,
    )


def load_policy(text: str) -> EligibilityPolicy:
    d: dict[str, Any] = json.loads(text)
    return EligibilityPolicy(
        allowed_region_codes=tuple(d["allowed_region_codes"]),
        excluded_region_codes=tuple(d["excluded_region_codes"]),
        min_years_registered=d["min_years_registered"],
        allowed_tiers=frozenset(MembershipTier(t) for t in d["allowed_tiers"]),
        min_score=d["min_score"],
        min_credit_line_fen=d["min_credit_line_fen"],
        max_credit_line_fen=d["max_credit_line_fen"],
        allow_amount_above_offer=d["allow_amount_above_offer"],
        platform_share_floor_bps=d["platform_share_floor_bps"],
        platform_share_ceiling_bps=d["platform_share_ceiling_bps"],
        exposure_cap_fen=d["exposure_cap_fen"],
        blacklist_action=BlacklistAction(d["blacklist_action"]),
        referral_ttl_days=d["referral_ttl_days"],
        ordered_delivery=d["ordered_delivery"],
        # Rows written before monitoring existed take the defaults.
        monitoring=MonitoringPolicy(**d["monitoring"]) if "monitoring" in d else MonitoringPolicy(),
        order_advance_cap_bps=d.get("order_advance_cap_bps", DEFAULT_POLICY.order_advance_cap_bps),
        default_after_days=d.get("default_after_days", DEFAULT_POLICY.default_after_days),
        penalty_rate_bps=d.get("penalty_rate_bps", DEFAULT_POLICY.penalty_rate_bps),
        collection_order=CollectionOrder(
            d.get("collection_order", DEFAULT_POLICY.collection_order.value)
        ),
    )


def dump_assessment(assessment: Assessment) -> str:
    return json.dumps(
        {
            "score": assessment.score,
            "grade": assessment.grade.value,
            "reasons": [
                [r.code, r.description, r.points, r.scope.value] for r in assessment.reasons
            ],
            "scorecard_version": assessment.scorecard_version,
        }
    )


def load_assessment(text: str) -> Assessment:
    d: dict[str, Any] = json.loads(text)
    return Assessment(
        score=d["score"],
        grade=Grade(d["grade"]),
        reasons=tuple(
            Reason(code=c, description=t, points=p, scope=DataScope(s))
            for c, t, p, s in d["reasons"]
        ),
        scorecard_version=d["scorecard_version"],
    )


def dump_offer(offer: CreditOffer) -> str:
    return json.dumps(
        {
            "product": offer.product.value,
            "total_limit_fen": offer.total_limit_fen,
            "revolving_limit_fen": offer.revolving_limit_fen,
            "fixed_amount_fen": offer.fixed_amount_fen,
            "term_months": offer.term_months,
            "revolving_daily_rate_ppm": offer.revolving_daily_rate_ppm,
            "fixed_daily_rate_ppm": offer.fixed_daily_rate_ppm,
        }
    )


def load_offer(text: str) -> CreditOffer:
    d: dict[str, Any] = json.loads(text)
    return CreditOffer(
        product=ProductType(d["product"]),
        total_limit_fen=d["total_limit_fen"],
        revolving_limit_fen=d["revolving_limit_fen"],
        fixed_amount_fen=d["fixed_amount_fen"],
        term_months=d["term_months"],
        revolving_daily_rate_ppm=d["revolving_daily_rate_ppm"],
        fixed_daily_rate_ppm=d["fixed_daily_rate_ppm"],
    )


def _terms_dict(terms: LoanTerms) -> dict[str, Any]:
    return {
        "product": terms.product.value if terms.product else None,
        "amount_fen": terms.amount_fen,
        "fixed_amount_fen": terms.fixed_amount_fen,
        "term_months": terms.term_months,
        "revolving_daily_rate_ppm": terms.revolving_daily_rate_ppm,
        "fixed_daily_rate_ppm": terms.fixed_daily_rate_ppm,
        "bank_share_bps": terms.bank_share_bps,
        "platform_share_bps": terms.platform_share_bps,
        "repayment_method": terms.repayment_method.value if terms.repayment_method else None,
        "penalty_rate_bps": terms.penalty_rate_bps,
    }


def _terms_from(d: dict[str, Any]) -> LoanTerms:
    return LoanTerms(
        product=ProductType(d["product"]) if d["product"] else None,
        amount_fen=d["amount_fen"],
        fixed_amount_fen=d["fixed_amount_fen"],
        term_months=d["term_months"],
        revolving_daily_rate_ppm=d["revolving_daily_rate_ppm"],
        fixed_daily_rate_ppm=d["fixed_daily_rate_ppm"],
        bank_share_bps=d["bank_share_bps"],
        platform_share_bps=d["platform_share_bps"],
        # Terms stored before schedules existed have none.
        repayment_method=RepaymentMethod(d["repayment_method"])
        if d.get("repayment_method")
        else None,
        # Terms agreed before penalty interest existed carry none.
        penalty_rate_bps=d.get("penalty_rate_bps", 0),
    )


def dump_terms(terms: LoanTerms) -> str:
    return json.dumps(_terms_dict(terms))


def load_terms(text: str) -> LoanTerms:
    return _terms_from(json.loads(text))


def dump_decision(decision: Decision) -> str:
    assert decision.outcome is not None
    return json.dumps(
        {
            "outcome": decision.outcome.value,
            "terms": _terms_dict(decision.terms) if decision.terms else None,
            "decline_reason_codes": list(decision.decline_reason_codes),
            "note": decision.note,
        }
    )


def load_decision(text: str) -> Decision:
    d: dict[str, Any] = json.loads(text)
    return Decision(
        outcome=DecisionOutcome(d["outcome"]),
        terms=_terms_from(d["terms"]) if d["terms"] else None,
        decline_reason_codes=tuple(d["decline_reason_codes"]),
        note=d["note"],
    )


def dump_ledger(ledger: Ledger) -> str:
    return json.dumps(
        {
            "principal_disbursed_fen": ledger.principal_disbursed_fen,
            "fixed_outstanding_fen": ledger.fixed_outstanding_fen,
            "revolving_outstanding_fen": ledger.revolving_outstanding_fen,
            "interest_accrued_micro": ledger.interest_accrued_micro,
            "principal_repaid_fen": ledger.principal_repaid_fen,
            "interest_repaid_fen": ledger.interest_repaid_fen,
            "bank_share_repaid_fen": ledger.bank_share_repaid_fen,
            "platform_share_repaid_fen": ledger.platform_share_repaid_fen,
            "accrued_through": ledger.accrued_through.isoformat()
            if ledger.accrued_through
            else None,
            "bank_loan_reference": ledger.bank_loan_reference,
            "disbursed_on": ledger.disbursed_on.isoformat() if ledger.disbursed_on else None,
            "days_overdue": ledger.days_overdue,
            "drawn_again_fen": ledger.drawn_again_fen,
            "penalty_accrued_exact": ledger.penalty_accrued_exact,
            "penalty_repaid_fen": ledger.penalty_repaid_fen,
            "rescheduled_on": ledger.rescheduled_on.isoformat() if ledger.rescheduled_on else None,
            "rescheduled_principal_fen": ledger.rescheduled_principal_fen,
            "interest_repaid_before_reschedule_fen": ledger.interest_repaid_before_reschedule_fen,
        }
    )


def load_ledger(text: str) -> Ledger:
    d: dict[str, Any] = json.loads(text)
    through = d.pop("accrued_through")
    disbursed = d.pop("disbursed_on", None)  # absent in ledgers stored before schedules
    rescheduled = d.pop("rescheduled_on", None)  # and before prepayments
    return Ledger(
        accrued_through=date.fromisoformat(through) if through else None,
        disbursed_on=date.fromisoformat(disbursed) if disbursed else None,
        rescheduled_on=date.fromisoformat(rescheduled) if rescheduled else None,
        **d,
    )


def dump_loan_event(event: LoanEvent) -> str:
    assert event.type is not None
    assert event.event_date is not None
    return json.dumps(
        {
            "type": event.type.value,
            "event_date": event.event_date.isoformat(),
            "bank_loan_reference": event.bank_loan_reference,
            "disbursed_fen": event.disbursed_fen,
            "principal_fen": event.principal_fen,
            "interest_fen": event.interest_fen,
            "days_overdue": event.days_overdue,
            "amount_fen": event.amount_fen,
            "penalty_fen": event.penalty_fen,
        }
    )


def load_loan_event(text: str) -> LoanEvent:
    d: dict[str, Any] = json.loads(text)
    return LoanEvent(
        type=LoanEventType(d["type"]),
        event_date=date.fromisoformat(d["event_date"]),
        bank_loan_reference=d["bank_loan_reference"],
        disbursed_fen=d["disbursed_fen"],
        principal_fen=d["principal_fen"],
        interest_fen=d["interest_fen"],
        days_overdue=d["days_overdue"],
        amount_fen=d.get("amount_fen", 0),  # absent before COLLECTION existed
        penalty_fen=d.get("penalty_fen", 0),  # and before penalty interest
    )


def dump_evidence(evidence: Evidence) -> str:
    """The envelope's bytes in base64, untouched, so the signature still verifies when read."""
    return json.dumps(
        {
            "payload_type": evidence.payload_type,
            "payload": _b64(evidence.payload),
            "signatures": [{"keyid": k, "sig": _b64(sig)} for k, sig in evidence.signatures],
            "public_key": _b64(evidence.public_key),
        },
        sort_keys=True,
    )


def load_evidence(text: str, *, nonce: bytes) -> Evidence:
    d: dict[str, Any] = json.loads(text)
    return Evidence(
        payload_type=d["payload_type"],
        payload=base64.b64decode(d["payload"]),
        signatures=tuple((s["keyid"], base64.b64decode(s["sig"])) for s in d["signatures"]),
        public_key=base64.b64decode(d["public_key"]),
        nonce=nonce,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def dump_reputation(r: TransactionReputation) -> str:
    return json.dumps(
        {
            "monthly_gmv_fen": list(r.monthly_gmv_fen),
            "order_count": r.order_count,
            "distinct_buyer_count": r.distinct_buyer_count,
            "positive_feedback_bps": r.positive_feedback_bps,
            "dispute_rate_bps": r.dispute_rate_bps,
            "refund_rate_bps": r.refund_rate_bps,
            "on_time_shipment_bps": r.on_time_shipment_bps,
            "prior_loans_repaid": r.prior_loans_repaid,
            "prior_loans_overdue": r.prior_loans_overdue,
        },
        sort_keys=True,
    )


def load_reputation(text: str) -> TransactionReputation:
    d: dict[str, Any] = json.loads(text)
    return TransactionReputation(
        monthly_gmv_fen=tuple(d["monthly_gmv_fen"]),
        order_count=d["order_count"],
        distinct_buyer_count=d["distinct_buyer_count"],
        positive_feedback_bps=d["positive_feedback_bps"],
        dispute_rate_bps=d["dispute_rate_bps"],
        refund_rate_bps=d["refund_rate_bps"],
        on_time_shipment_bps=d["on_time_shipment_bps"],
        prior_loans_repaid=d["prior_loans_repaid"],
        prior_loans_overdue=d["prior_loans_overdue"],
    )


def dump_signatures(envelope: SignedPayload) -> str:
    return json.dumps(
        [[keyid, base64.b64encode(sig).decode("ascii")] for keyid, sig in envelope.signatures]
    )


def load_signatures(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((keyid, base64.b64decode(sig)) for keyid, sig in json.loads(text))
