"""GetPortfolioStats against a small book whose figures are computed by hand."""

from __future__ import annotations

from typing import Any

import grpc
from colending.v1 import admin_service_pb2 as ad
from colending.v1 import financing_pb2 as E  # noqa: N812
from colending.v1 import referral_service_pb2 as rs
from test_decision_api import acknowledged_case, approve, counter, decide, terms
from test_loan_event_api import D0, day, disbursed, repayment, report
from testkit import request_id

YUAN = 100


def answer(api: Any, case_id: str, value: int) -> None:
    request = rs.RespondToCounterOfferRequest(
        request_id=request_id(), case_id=case_id, answer=value
    )
    api.platform("RespondToCounterOffer", request).expect_ok()


def build_book(api: Any) -> None:
    api.register("bank-a")
    api.register("bank-b")
    # bank-a: 300k repaying (100k repaid), a decline, 200k defaulted, one undecided referral.
    c1, _ = acknowledged_case(api, "m-1")
    decide(api, c1, approve(terms(300_000))).expect_ok()
    report(api, c1, disbursed(300_000)).expect_ok()
    report(api, c1, repayment(100_000 * YUAN, 0, 1)).expect_ok()
    c2, _ = acknowledged_case(api, "m-2")
    decline = E.Decision(outcome=E.DECISION_OUTCOME_DECLINE, decline_reason_codes=["THIN_FILE"])
    decide(api, c2, decline).expect_ok()
    c3, _ = acknowledged_case(api, "m-3")
    decide(api, c3, approve(terms(200_000))).expect_ok()
    report(api, c3, disbursed(200_000)).expect_ok()
    overdue = E.LoanEvent(type=E.LOAN_EVENT_TYPE_OVERDUE, event_date=day(10), days_overdue=9)
    report(api, c3, overdue).expect_ok()
    report(api, c3, E.LoanEvent(type=E.LOAN_EVENT_TYPE_DEFAULT, event_date=day(20))).expect_ok()
    api.referral_for("m-4", bank_ids=("bank-a",))
    # bank-b: an accepted counter of 150k, overdue; a rejected counter.
    c5, _ = acknowledged_case(api, "m-5", bank_id="bank-b")
    decide(api, c5, counter(terms(150_000)), bank_id="bank-b").expect_ok()
    answer(api, c5, rs.COUNTER_OFFER_ANSWER_ACCEPT)
    report(api, c5, disbursed(150_000), bank_id="bank-b").expect_ok()
    overdue = E.LoanEvent(type=E.LOAN_EVENT_TYPE_OVERDUE, event_date=day(3), days_overdue=2)
    report(api, c5, overdue, bank_id="bank-b").expect_ok()
    c6, _ = acknowledged_case(api, "m-6", bank_id="bank-b")
    decide(api, c6, counter(terms(150_000)), bank_id="bank-b").expect_ok()
    answer(api, c6, rs.COUNTER_OFFER_ANSWER_REJECT)


def figures(stats: E.PortfolioStats) -> dict[str, int]:
    return {
        "referred": stats.referred_count,
        "approved": stats.approved_count,
        "declined": stats.declined_count,
        "disbursed": stats.disbursed.amount_minor // YUAN,
        "outstanding": stats.outstanding.amount_minor // YUAN,
        "overdue": stats.overdue.amount_minor // YUAN,
        "defaulted": stats.defaulted_count,
        "approval_bps": stats.approval_rate_bps,
        "npl_bps": stats.non_performing_ratio_bps,
    }


def test_portfolio_stats_match_the_hand_computed_book(api: Any) -> None:
    build_book(api)
    response = api.admin("GetPortfolioStats", ad.GetPortfolioStatsRequest()).expect_ok().response
    by_bank = {s.bank_id: figures(s) for s in response.banks}
    assert by_bank == {
        "bank-a": {
            "referred": 4, "approved": 2, "declined": 1, "disbursed": 500_000,
            "outstanding": 400_000, "overdue": 0, "defaulted": 1,
            "approval_bps": 6666,  # 2 approved of 3 decided
            "npl_bps": 5000,  # 200,000 defaulted of 400,000 outstanding
        },
        "bank-b": {
            "referred": 2, "approved": 1, "declined": 0, "disbursed": 150_000,
            "outstanding": 150_000, "overdue": 150_000, "defaulted": 0,
            "approval_bps": 5000, "npl_bps": 0,
        },
    }  # fmt: skip
    assert figures(response.overall) == {
        "referred": 6, "approved": 3, "declined": 1, "disbursed": 650_000,
        "outstanding": 550_000, "overdue": 150_000, "defaulted": 1,
        "approval_bps": 6000,  # 3 of 5
        "npl_bps": 3636,  # 200,000 / 550,000, rounded down
    }  # fmt: skip
    assert response.overall.bank_id == ""
    assert response.HasField("computed_at")
    # Buckets: bank-b's loan is 2 days past due (M1); the default is not an overdue bucket.
    overall = response.overall
    buckets = [overall.overdue_m1, overall.overdue_m2, overall.overdue_m3_plus]
    assert [b.amount_minor // YUAN for b in buckets] == [150_000, 0, 0]
    # One vintage: every loan was paid out on the same day.
    [vintage] = overall.vintages
    assert vintage.month == D0.strftime("%Y-%m")
    assert (
        vintage.loans,
        vintage.disbursed.amount_minor // YUAN,
        vintage.outstanding.amount_minor // YUAN,
        vintage.overdue.amount_minor // YUAN,
        vintage.defaulted_count,
        vintage.defaulted_outstanding.amount_minor // YUAN,
    ) == (3, 650_000, 550_000, 150_000, 1, 200_000)

    only_b = api.admin("GetPortfolioStats", ad.GetPortfolioStatsRequest(bank_id="bank-b"))
    response = only_b.expect_ok().response
    assert [s.bank_id for s in response.banks] == ["bank-b"]
    assert figures(response.overall) == by_bank["bank-b"]


def test_portfolio_stats_bad_bank(api: Any) -> None:
    api.admin("GetPortfolioStats", ad.GetPortfolioStatsRequest(bank_id="Bad!")).expect_invalid(
        "bank_id"
    )
    result = api.admin("GetPortfolioStats", ad.GetPortfolioStatsRequest(bank_id="bank-zz"))
    result.expect(grpc.StatusCode.NOT_FOUND)


def test_empty_book_has_zero_rates(api: Any) -> None:
    response = api.admin("GetPortfolioStats", ad.GetPortfolioStatsRequest()).expect_ok().response
    assert list(response.banks) == []
    assert figures(response.overall)["approval_bps"] == 0
    assert figures(response.overall)["npl_bps"] == 0
