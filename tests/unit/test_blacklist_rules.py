"""The blacklist's pure rules: retention arithmetic, appeals, the end of a default, leaves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from colending_core import IdentifierKind, decode_leaf
from gateway._transactions import BUSINESS_TZ
from gateway.domain import blacklist as rules
from gateway.domain.blacklist import (
    AppealOutcome,
    BlacklistEntry,
    BlacklistRules,
    ChangeType,
    EntryStatus,
    ListingReason,
)
from gateway.errors import FailedPrecondition

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
RULES = BlacklistRules()


def entry(
    *, default_ended_on: date | None = None, default_date: date = date(2026, 3, 1)
) -> BlacklistEntry:
    return rules.new_entry(
        entry_id="bl_1",
        pseudonym=b"\x07" * 32,
        identifier_kind=IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE,
        reporter_bank_id="bank-a",
        reason=ListingReason.DEFAULT_OVERDUE,
        outstanding_fen=1_000_00,
        default_date=default_date,
        evidence_case_id="case_1",
        default_ended_on=default_ended_on,
        now=NOW,
        rules=RULES,
        tz=BUSINESS_TZ,
    )


def test_retention_is_five_calendar_years_from_midnight_business_time() -> None:
    until = rules.retained_until(date(2026, 3, 1), RULES, BUSINESS_TZ)
    assert until == datetime(2031, 3, 1, tzinfo=BUSINESS_TZ)
    assert until.astimezone(UTC) == datetime(2031, 2, 28, 16, 0, tzinfo=UTC)
    # 29 February has no anniversary in 2029: the last day of February stands in.
    assert rules.retained_until(date(2024, 2, 29), RULES, BUSINESS_TZ).date() == date(2029, 2, 28)


def test_an_open_default_has_no_expiry_until_it_ends() -> None:
    assert entry().expires_at is None
    ended = entry(default_ended_on=date(2026, 3, 1)).expires_at
    assert ended == datetime(2031, 3, 1, tzinfo=BUSINESS_TZ)
    step = rules.end_default(
        entry(), ended_on=date(2027, 6, 30), recovered=False, rules=RULES, tz=BUSINESS_TZ
    )
    assert step is not None
    change, ended = step
    assert change is ChangeType.RETENTION_SET
    assert ended.status is EntryStatus.ACTIVE
    assert ended.expires_at == datetime(2032, 6, 30, tzinfo=BUSINESS_TZ)
    # Ending it again on the same day changes nothing, so nothing is logged twice.
    again = rules.end_default(
        ended, ended_on=date(2027, 6, 30), recovered=False, rules=RULES, tz=BUSINESS_TZ
    )
    assert again is None


def test_recovery_removes_the_entry_only_where_the_rules_say_so() -> None:
    lifting = BlacklistRules(remove_on_recovery=True)
    step = rules.end_default(
        entry(), ended_on=date(2027, 1, 5), recovered=True, rules=lifting, tz=BUSINESS_TZ
    )
    assert step is not None
    assert step[0] is ChangeType.REMOVED
    assert step[1].status is EntryStatus.REMOVED
    kept = rules.end_default(
        entry(), ended_on=date(2027, 1, 5), recovered=True, rules=RULES, tz=BUSINESS_TZ
    )
    assert kept is not None
    assert kept[0] is ChangeType.RETENTION_SET
    removed = step[1]
    assert (
        rules.end_default(
            removed, ended_on=date(2027, 1, 5), recovered=True, rules=RULES, tz=BUSINESS_TZ
        )
        is None
    )


def test_appeal_life() -> None:
    appealed = rules.file_appeal(
        entry(), appeal_id="apl_1", filed_by="platform", grounds="paid", now=NOW, rules=RULES
    )
    assert appealed.status is EntryStatus.UNDER_APPEAL
    assert appealed.in_force
    assert appealed.appeal is not None
    assert appealed.appeal.deadline == NOW + timedelta(days=20)
    with pytest.raises(FailedPrecondition, match="already under appeal"):
        rules.file_appeal(
            appealed, appeal_id="apl_2", filed_by="platform", grounds="x", now=NOW, rules=RULES
        )
    change, upheld = rules.resolve_appeal(
        appealed, outcome=AppealOutcome.UPHELD, resolved_by="partner/bank-a", reason="r", now=NOW
    )
    assert change is ChangeType.APPEAL_UPHELD
    assert upheld.status is EntryStatus.ACTIVE
    with pytest.raises(FailedPrecondition, match="no open appeal"):
        rules.resolve_appeal(
            upheld, outcome=AppealOutcome.REMOVED, resolved_by="admin", reason="r", now=NOW
        )
    lapsed = rules.lapse_appeal(appealed, now=NOW + timedelta(days=21))
    assert lapsed.status is EntryStatus.REMOVED
    assert lapsed.appeal is not None
    assert lapsed.appeal.resolution_reason == rules.LAPSED_APPEAL_REASON
    with pytest.raises(FailedPrecondition, match="only an ACTIVE entry"):
        rules.file_appeal(
            lapsed, appeal_id="apl_3", filed_by="admin", grounds="x", now=NOW, rules=RULES
        )


def test_the_leaf_states_the_entry_and_leaves_free_text_out() -> None:
    appealed = rules.file_appeal(
        entry(),
        appeal_id="apl_1",
        filed_by="platform",
        grounds="Zhang San repaid at the Hangzhou branch",
        now=NOW,
        rules=RULES,
    )
    leaf = rules.leaf_of(
        log_index=7, change_type=ChangeType.APPEALED, entry=appealed, logged_at=NOW
    )
    assert b"Zhang San" not in leaf
    change = decode_leaf(leaf)
    assert change.log_index == 7
    assert change.change == "appealed"
    assert change.entry.status == "under_appeal"
    assert change.entry.pseudonym == appealed.pseudonym
    assert change.entry.appeal is not None
    assert change.entry.appeal.deadline == NOW + timedelta(days=20)


@pytest.mark.parametrize(
    ("outstanding", "default_date", "fields"),
    [
        (-1, date(2026, 1, 1), ["outstanding.amount_minor"]),
        (10**15 + 1, date(2026, 1, 1), ["outstanding.amount_minor"]),
        (0, None, ["default_date"]),
        (0, date(2026, 11, 29), ["default_date"]),
        (0, date(1989, 12, 31), ["default_date"]),
    ],
)
def test_report_problems(outstanding: int, default_date: date | None, fields: list[str]) -> None:
    problems = rules.report_problems(
        outstanding_fen=outstanding, default_date=default_date, today=date(2026, 11, 28)
    )
    assert [p.field for p in problems] == fields


def test_the_sweep_applies_whichever_deadline_came_first() -> None:
    ended = rules.end_default(
        entry(), ended_on=date(2026, 3, 1), recovered=False, rules=RULES, tz=BUSINESS_TZ
    )
    assert ended is not None
    listed = ended[1]  # expires 2031-03-01
    appealed = rules.file_appeal(
        listed, appeal_id="apl_1", filed_by="platform", grounds="g", now=NOW, rules=RULES
    )
    assert rules.sweep_step(appealed, now=NOW) is None  # nothing due yet
    # The appeal lapses first: decided for the borrower, not expired.
    lapse = rules.sweep_step(appealed, now=NOW + timedelta(days=21))
    assert lapse is not None
    assert lapse[0] is ChangeType.REMOVED
    # An appeal filed just before expiry: the expiry comes first.
    late = rules.file_appeal(
        listed,
        appeal_id="apl_2",
        filed_by="platform",
        grounds="g",
        now=datetime(2031, 2, 27, tzinfo=UTC),
        rules=RULES,
    )
    both_due = rules.sweep_step(late, now=datetime(2031, 6, 1, tzinfo=UTC))
    assert both_due is not None
    assert both_due[0] is ChangeType.EXPIRED


def test_recovery_never_lifts_a_fraud_entry() -> None:
    lifting = BlacklistRules(remove_on_recovery=True)
    fraud = rules.new_entry(
        entry_id="bl_2",
        pseudonym=b"\x08" * 32,
        identifier_kind=IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE,
        reporter_bank_id="bank-a",
        reason=ListingReason.FRAUD,
        outstanding_fen=0,
        default_date=date(2026, 3, 1),
        evidence_case_id="case_2",
        default_ended_on=None,
        now=NOW,
        rules=lifting,
        tz=BUSINESS_TZ,
    )
    step = rules.end_default(
        fraud, ended_on=date(2027, 1, 5), recovered=True, rules=lifting, tz=BUSINESS_TZ
    )
    assert step is not None
    assert step[0] is ChangeType.RETENTION_SET  # kept, with its retention clock started
