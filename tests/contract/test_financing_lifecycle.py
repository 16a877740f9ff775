"""Whole co-lending cases over real sockets, driven with the SDK against a mock bank: one from
referral to settlement, one to default, whose borrower then reaches the other bank's blacklist
copy and the platform's enforcement feed. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from colending.v1 import common_pb2, enforcement_pb2, financing_pb2
from contract.harness import Network, mock_bank, network
from testkit import FAST_DELIVERY, dispatching, eventually, merchant

from gateway._transactions import business_date
from partners.mock import Decision, Script
from partners.sdk import (
    BlacklistClient,
    FailedPreconditionError,
    IdentifierKind,
    LocalBlacklist,
    public_key_from_raw,
)

FS = financing_pb2
assert FAST_DELIVERY.max_attempts > 1  # the mock bank is pushed to with fast retries


def _today() -> common_pb2.Date:
    today = business_date(datetime.now(UTC))
    return common_pb2.Date(year=today.year, month=today.month, day=today.day)


def _cny(fen: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=fen)


def _approved_case(net: Network, merchant_id: str) -> tuple[str, int]:
    """Refer ``merchant_id`` to bank-a, let the mock bank receive it by push and approve it."""
    with mock_bank(net, "bank-a", Script(decision=Decision.APPROVE)) as bank:
        with dispatching(net.running.gateway):
            referral_id = net.refer(merchant_id, ["bank-a"])
            eventually(lambda: len(bank.received()) == 1, what="the pushed referral")
        [case] = bank.decide_pending(net.bank_client("bank-a"))
    assert case.state == FS.FINANCING_STATE_APPROVED
    assert net.platform.get_referral(referral_id).deliveries[0].state == FS.FINANCING_STATE_APPROVED
    return case.case_id, case.agreed_terms.amount.amount_minor


def test_a_case_from_referral_to_settlement(data_dir: Path, database_url: str | None) -> None:
    with network(data_dir, database_url) as net:
        case_id, amount = _approved_case(net, "m-2001")
        bank = net.bank_client("bank-a")
        bank.report_loan_event(
            case_id,
            FS.LoanEvent(
                type=FS.LOAN_EVENT_TYPE_DISBURSED,
                event_date=_today(),
                bank_loan_reference="A-LN-0001",
                disbursed_amount=_cny(amount),
            ),
        )
        # Repaid the same day: no interest has accrued, so the principal settles it.
        repaid = bank.report_loan_event(
            case_id,
            FS.LoanEvent(
                type=FS.LOAN_EVENT_TYPE_REPAYMENT,
                event_date=_today(),
                principal=_cny(amount),
                interest=_cny(0),
            ),
        )
        assert repaid.ledger.principal_outstanding.amount_minor == 0
        # Each lender's share of the repayment follows the 70/30 split exactly.
        shares = (
            repaid.ledger.bank_share_repaid.amount_minor,
            (repaid.ledger.platform_share_repaid.amount_minor),
        )
        assert sum(shares) == amount
        assert shares[1] == amount * 3000 // 10_000
        settled = bank.report_loan_event(
            case_id, FS.LoanEvent(type=FS.LOAN_EVENT_TYPE_SETTLED, event_date=_today())
        )
        assert settled.state == FS.FINANCING_STATE_SETTLED
        assert [e.to_state for e in settled.history][-4:] == [
            FS.FINANCING_STATE_APPROVED,
            FS.FINANCING_STATE_DISBURSED,
            FS.FINANCING_STATE_REPAYING,
            FS.FINANCING_STATE_SETTLED,
        ]
        # A settled case cannot move again.
        with pytest.raises(FailedPreconditionError, match="SETTLED"):
            bank.report_loan_event(
                case_id,
                FS.LoanEvent(type=FS.LOAN_EVENT_TYPE_OVERDUE, event_date=_today(), days_overdue=1),
            )


def test_a_default_reaches_the_blacklist_and_the_platform(
    data_dir: Path, database_url: str | None
) -> None:
    with network(data_dir, database_url) as net:
        net.register("bank-b")
        case_id, amount = _approved_case(net, "m-3001")
        bank = net.bank_client("bank-a")
        for event in (
            FS.LoanEvent(
                type=FS.LOAN_EVENT_TYPE_DISBURSED,
                event_date=_today(),
                bank_loan_reference="A-LN-0002",
                disbursed_amount=_cny(amount),
            ),
            FS.LoanEvent(type=FS.LOAN_EVENT_TYPE_OVERDUE, event_date=_today(), days_overdue=91),
            FS.LoanEvent(type=FS.LOAN_EVENT_TYPE_DEFAULT, event_date=_today()),
        ):
            case = bank.report_loan_event(case_id, event)
        assert case.state == FS.FINANCING_STATE_DEFAULTED

        # The other bank's verified copy of the list now names this borrower...
        running = net.running
        network_key = bytes.fromhex(
            (running.data_dir / "network-key" / "network.key").read_text().strip()
        )
        log_keys = {
            k.keyid: public_key_from_raw(k.public_key)
            for k in running.gateway.blacklist.log.published_keys()
        }
        with BlacklistClient(
            channel=net.channel_for("partner/bank-b"), network_key=network_key, log_keys=log_keys
        ) as bank_b:
            copy = LocalBlacklist()
            bank_b.sync(copy)
            code = merchant(merchant_id="m-3001").identity.unified_social_credit_code
            [entry] = copy.in_force(
                bank_b.pseudonym(IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, code)
            )
        assert entry.reporter == "bank-a"
        assert entry.evidence_case_id == case_id
        assert entry.reason == "default_overdue"
        assert entry.outstanding_minor == amount
        assert entry.expires_at is None  # the default has not ended

        # ...and the platform is told to restrict the merchant's store.
        events, token = net.platform.enforcement_events()
        [restrict] = events
        assert restrict.action == enforcement_pb2.ENFORCEMENT_ACTION_RESTRICT_STORE
        assert restrict.platform_merchant_id == "m-3001"
        assert restrict.case_id == case_id
        assert restrict.blacklist_entry_id == entry.entry_id
        assert net.platform.enforcement_events(page_token=token) == ([], token)

        # A new referral of the merchant to a bank that refuses listed merchants is refused.
        with pytest.raises(FailedPreconditionError) as refused:
            net.refer("m-3001", ["bank-b"])
        assert "BLACKLISTED" in {v.type for v in refused.value.violations}
