"""What a blacklist check reads from memory: the index of listed pseudonyms (a report is
visible to checks of the process that took it before its call returns; another process or
replica over the same database sees it once its index is older than ``max_age``; a removal is
followed the same way; every answer names the log size it reflects) and the partners' states
(a suspension refuses the bank's next check here at once, elsewhere within ``max_age``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from testkit import merchant

from colending_core import IdentifierKind
from gateway._transactions import Idempotency, business_date, utc_now
from gateway.app import Gateway
from gateway.blacklist import Borrower
from gateway.blacklist.index import ListedIndex
from gateway.domain.blacklist import AppealOutcome, ListingReason
from gateway.errors import FailedPrecondition, PermissionDenied
from gateway.partners import cache as cache_module
from gateway.partners.cache import PartnerCache

USCC = IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE


def idem(method: str, request_id: str) -> Idempotency:
    return Idempotency(caller="test", method=method, request_id=request_id, fingerprint=request_id)


def report(gateway: Gateway, merchant_id: str) -> str:
    code = merchant(merchant_id=merchant_id).identity.unified_social_credit_code
    change = gateway.blacklist.report_default(
        idem=idem("ReportDefault", f"r-{merchant_id}"),
        reporter_bank_id="bank-a",
        kind=USCC,
        raw_identifier=code,
        reason=ListingReason.FRAUD,
        outstanding_fen=100_000,
        default_date=business_date(utc_now()) - timedelta(days=30),
        evidence_case_id="",
    )
    return change.entry.entry_id


def pseudonym_of(gateway: Gateway, merchant_id: str) -> bytes:
    code = merchant(merchant_id=merchant_id).identity.unified_social_credit_code
    return gateway.blacklist.pseudonym_of(USCC, code)


def register_bank_a(gateway: Gateway) -> None:
    gateway.partners.register_partner(
        idem=idem("RegisterPartner", "reg"),
        partner_id="bank-a",
        display_name="Bank A",
        endpoint="",
        policy=None,
        decision_public_key=b"",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reports_reach_this_process_at_once_and_others_within_max_age(gateway: Gateway) -> None:
    register_bank_a(gateway)
    clock = Clock()
    other = ListedIndex(database=gateway.database, max_age=0.5, monotonic=clock)
    assert other.listed([pseudonym_of(gateway, "m-1")]) == (set(), 0)  # loads: empty log

    entry_id = report(gateway, "m-1")
    listed = pseudonym_of(gateway, "m-1")
    clear = pseudonym_of(gateway, "m-2")
    # The reporting process: listed before report_default returned.
    [hit, miss], size = gateway.blacklist.check(
        [Borrower(pseudonym=listed), Borrower(pseudonym=clear)]
    )
    assert [len(hit.entries), len(miss.entries)] == [1, 0]
    assert size == gateway.blacklist.log.size() == 1
    # Another process: its answer is the log as it last read it, and says so...
    assert other.listed([listed, clear]) == (set(), 0)
    clock.now += 0.6  # ...until it is older than max_age, when it catches up first.
    assert other.listed([listed, clear]) == ({listed}, 1)

    # A removal is followed the same way.
    gateway.blacklist.file_appeal(
        idem=idem("FileAppeal", "a1"),
        filed_by="platform",
        entry_id=entry_id,
        grounds="repaid in full before the due date",
    )
    gateway.blacklist.resolve_appeal(
        idem=idem("ResolveAppeal", "a2"),
        resolved_by="admin",
        resolver_bank_id=None,
        entry_id=entry_id,
        outcome=AppealOutcome.REMOVED,
        reason="bank statements show the repayment",
    )
    [result], size = gateway.blacklist.check([Borrower(pseudonym=listed)])
    assert result.entries == []
    assert size == gateway.blacklist.log.size() == 3
    assert other.listed([listed]) == ({listed}, 1)  # not yet older than max_age
    clock.now += 0.6
    assert other.listed([listed]) == (set(), 3)


def test_a_fresh_index_loads_what_is_listed(gateway: Gateway) -> None:
    register_bank_a(gateway)
    for n in range(3):
        report(gateway, f"m-{n}")
    index = ListedIndex(database=gateway.database)
    wanted = [pseudonym_of(gateway, f"m-{n}") for n in range(5)]
    assert index.listed(wanted) == (set(wanted[:3]), 3)


def test_a_suspended_bank_is_refused_at_once_here_and_within_max_age_elsewhere(
    gateway: Gateway,
) -> None:
    register_bank_a(gateway)
    clock = Clock()
    elsewhere = PartnerCache(database=gateway.database, max_age=0.5, monotonic=clock)
    borrower = Borrower(pseudonym=pseudonym_of(gateway, "m-1"))
    gateway.blacklist.check([borrower], partner_id="bank-a")
    elsewhere.require_active("bank-a")
    gateway.partners.suspend_partner(
        idem=idem("SuspendPartner", "s"), partner_id="bank-a", reason="audit"
    )
    with pytest.raises(FailedPrecondition, match="suspended"):
        gateway.blacklist.check([borrower], partner_id="bank-a")
    elsewhere.require_active("bank-a")  # its copy is younger than max_age
    clock.now += 0.6
    with pytest.raises(FailedPrecondition, match="suspended"):
        elsewhere.require_active("bank-a")
    with pytest.raises(PermissionDenied):
        elsewhere.require_active("bank-z")


def test_an_unknown_bank_is_looked_up_alone_and_a_new_one_is_found_at_once(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    elsewhere = PartnerCache(database=gateway.database, max_age=60, monotonic=clock)
    elsewhere.known(["bank-a"])  # the first read, of an empty table
    reloads: list[int] = []
    all_partners = cache_module.repo.all_partners
    monkeypatch.setattr(
        cache_module.repo,
        "all_partners",
        lambda session: reloads.append(1) or all_partners(session),
    )
    for _ in range(50):
        with pytest.raises(PermissionDenied):
            elsewhere.require_active("bank-z")
    assert reloads == []
    register_bank_a(gateway)  # in another process's cache's view: elsewhere was not told
    elsewhere.require_active("bank-a")
    assert reloads == [1]
