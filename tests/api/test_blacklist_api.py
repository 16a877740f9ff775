"""BlacklistService through grpc_testing, on both backends, with a clock the tests move.

Reports, checks, appeals and their deadline, expiry by the sweep, the default hook of
ReportLoanEvent, the platform's enforcement feed, the referral check, the Merkle proofs and the
sync stream. ``net`` below puts the BlacklistService next to the three services the ``api``
fixture serves, all on a gateway whose clock is ``net.clock``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import grpc_testing
import pytest
import sqlalchemy
from colending.v1 import (
    admin_service_pb2,
    blacklist_pb2,
    blacklist_service_pb2,
    common_pb2,
    enforcement_pb2,
    financing_pb2,
    partner_bank_service_pb2,
    referral_service_pb2,
)
from colending.v1 import blacklist_service_pb2 as bs
from colending.v1.financing_pb2 import FinancingState as FS  # noqa: N817
from google.protobuf.message import Message
from test_decision_api import acknowledged_case, approve, decide, terms
from test_loan_event_api import D0, day, disbursed, fen, repayment
from test_loan_event_api import report as loan_event
from testkit import ADMIN, PLATFORM, bank, blacklist_network, merchant, request_id, uscc

from colending_core import (
    EMPTY_ROOT,
    LOG_ORIGIN,
    IdentifierKind,
    InclusionProofError,
    pseudonym,
    resident_id_check_character,
    root_from_leaves,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from gateway.api.limits import StreamSlots
from gateway.api.servicers import (
    AdminServicer,
    BlacklistServicer,
    PartnerBankServicer,
    ReferralServicer,
)
from gateway.app import Gateway
from gateway.domain.blacklist import AppealOutcome, EntryStatus
from gateway.domain.policy import BlacklistAction, EligibilityPolicy
from gateway.monitoring.convert import encode_alert_payload
from gateway.partners.convert import policy_to_proto
from gateway.reconciliation.convert import encode_statement_payload, statement_case_ids
from gateway.referrals.convert import encode_referral_payload
from gateway.signing.keyring import KeyRing
from gateway.store import blacklist_repository
from gateway.store.db import Database, sqlite_url
from partners.sdk import Envelope, Signature, public_key_from_raw

B = blacklist_pb2
E = financing_pb2
USCC = B.IDENTIFIER_KIND_UNIFIED_SOCIAL_CREDIT_CODE
RID = B.IDENTIFIER_KIND_RESIDENT_ID
FRAUD = B.BLACKLIST_REASON_FRAUD
DEFAULT_OVERDUE = B.BLACKLIST_REASON_DEFAULT_OVERDUE
ACTIVE = B.BLACKLIST_ENTRY_STATUS_ACTIVE
UNDER_APPEAL = B.BLACKLIST_ENTRY_STATUS_UNDER_APPEAL
REMOVED = B.BLACKLIST_ENTRY_STATUS_REMOVED
UPHELD = B.APPEAL_OUTCOME_UPHELD
REMOVE = B.APPEAL_OUTCOME_REMOVED
RESTRICT = enforcement_pb2.ENFORCEMENT_ACTION_RESTRICT_STORE
LIFT = enforcement_pb2.ENFORCEMENT_ACTION_LIFT_RESTRICTION

BUSINESS = timezone(timedelta(hours=8))  # China: UTC+8 all year
BANK_A = bank("bank-a")
BLACKLIST = blacklist_service_pb2.DESCRIPTOR.services_by_name["BlacklistService"]
SERVICES = {
    "referral": referral_service_pb2.DESCRIPTOR.services_by_name["ReferralService"],
    "bank": partner_bank_service_pb2.DESCRIPTOR.services_by_name["PartnerBankService"],
    "admin": admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
}
BLACKLIST_TABLES = ("blacklist_entries", "blacklist_changes", "log_nodes", "enforcement_events")
STREAM_WATCHDOG_SECONDS = 15.0
# A Beijing (110101) resident born 1985-07-14.
RESIDENT_BODY = "11010119850714123"
RESIDENT_ID = RESIDENT_BODY + resident_id_check_character(RESIDENT_BODY)


def code(merchant_id: str) -> str:
    """The merchant's unified social credit code, as testkit.merchant() writes it."""
    return merchant(merchant_id=merchant_id).identity.unified_social_credit_code


def pdate(value: date) -> common_pb2.Date:
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def cny_fen(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=amount)


def at(stamp: Any) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def five_years_after(day_: date) -> datetime:
    """Midnight in China at the start of the day five years after ``day_``."""
    try:
        later = day_.replace(year=day_.year + 5)
    except ValueError:  # 29 February
        later = day_.replace(year=day_.year + 5, day=28)
    return datetime.combine(later, time(), tzinfo=BUSINESS)


def raw(value: str, kind: int = USCC) -> B.BorrowerIdentifier:
    return B.BorrowerIdentifier(raw=B.RawIdentifier(kind=kind, value=value))


def by_pseudonym(value: bytes) -> B.BorrowerIdentifier:
    return B.BorrowerIdentifier(pseudonym=value)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def today(self) -> date:
        """The business date (China) at the clock's now."""
        return self.now.astimezone(BUSINESS).date()


class Stream:
    """A live SyncBlacklist call: take responses one by one, then cancel and wait for it."""

    def __init__(self, server: Any, request: Message, metadata: Sequence[tuple[str, str]]) -> None:
        before = set(threading.enumerate())
        descriptor = BLACKLIST.methods_by_name["SyncBlacklist"]
        self.rpc = server.invoke_unary_stream(descriptor, tuple(metadata), request, None)
        # The servicer runs in a thread grpc_testing starts for the call; joined on close.
        self._threads = [t for t in threading.enumerate() if t not in before]
        # A stream that never sends would hang take(); cancelling ends it with "no more".
        self._watchdog = threading.Timer(STREAM_WATCHDOG_SECONDS, self.rpc.cancel)
        self._watchdog.daemon = True
        self._watchdog.start()

    def take(self, count: int) -> list[bs.SyncBlacklistResponse]:
        return [self.rpc.take_response() for _ in range(count)]

    def close(self) -> None:
        self._watchdog.cancel()
        self.rpc.cancel()
        for thread in self._threads:
            thread.join(timeout=10)
            assert not thread.is_alive(), "the sync stream did not end after cancellation"


class Net:
    """The four services over one gateway with a movable clock, plus blacklist helpers."""

    def __init__(self, api: Any, clock: Clock, data_dir: Path) -> None:
        self.api = api
        self.clock = clock
        gateway: Gateway = api.gateway
        self.network = gateway.blacklist
        self.servicer = BlacklistServicer(
            network=gateway.blacklist, streams=StreamSlots(limit=2, per_caller=2)
        )
        api.server = grpc_testing.server_from_dictionary(
            {
                SERVICES["referral"]: ReferralServicer(gateway=gateway, clock=clock),
                SERVICES["bank"]: PartnerBankServicer(gateway=gateway),
                SERVICES["admin"]: AdminServicer(gateway=gateway),
                BLACKLIST: self.servicer,
            },
            grpc_testing.strict_real_time(),
        )
        # The api conftest's Result decodes statuses and their google.rpc details. Looked up
        # through Api's own globals: several conftest modules share the name "conftest".
        self._result = type(api).__init__.__globals__["Result"]
        key_file = data_dir / "network-key" / "network.key"
        self.network_key = bytes.fromhex(key_file.read_text().strip())

    # --- raw calls ------------------------------------------------------------------------

    def call(self, method: str, request: Message, metadata: Sequence[tuple[str, str]]) -> Any:
        descriptor = BLACKLIST.methods_by_name[method]
        rpc = self.api.server.invoke_unary_unary(descriptor, tuple(metadata), request, None)
        response, trailing, code_, details = rpc.termination()
        return self._result(
            code=code_, details=details, response=response, trailing_metadata=trailing
        )

    @contextmanager
    def sync(
        self, from_log_index: int = 0, metadata: Sequence[tuple[str, str]] = BANK_A
    ) -> Iterator[Stream]:
        stream = Stream(
            self.api.server, bs.SyncBlacklistRequest(from_log_index=from_log_index), metadata
        )
        try:
            yield stream
        finally:
            stream.close()

    def sync_refused(
        self, from_log_index: int, metadata: Sequence[tuple[str, str]] = BANK_A
    ) -> Any:
        """A SyncBlacklist call that ends with an error before sending anything."""
        stream = Stream(
            self.api.server, bs.SyncBlacklistRequest(from_log_index=from_log_index), metadata
        )
        try:
            with pytest.raises(ValueError, match="No more responses"):
                stream.rpc.take_response()
            trailing, code_, details = stream.rpc.termination()
        finally:
            stream.close()
        return self._result(code=code_, details=details, response=None, trailing_metadata=trailing)

    # --- reports --------------------------------------------------------------------------

    def report_request(self, borrower_code: str = "", **fields: Any) -> bs.ReportDefaultRequest:
        """A valid report of ``borrower_code``; a field given as None is left unset."""
        values: dict[str, Any] = {
            "request_id": request_id(),
            "borrower": B.RawIdentifier(kind=USCC, value=borrower_code or code("m-7000")),
            "reason": FRAUD,
            "outstanding": cny_fen(1_234_500),
            "default_date": pdate(self.clock.today() - timedelta(days=30)),
        }
        values.update(fields)
        return bs.ReportDefaultRequest(**{k: v for k, v in values.items() if v is not None})

    def report(self, borrower_code: str = "", bank_id: str = "bank-a", **fields: Any) -> Any:
        return self.call(
            "ReportDefault", self.report_request(borrower_code, **fields), bank(bank_id)
        )

    def listed(self, borrower_code: str, bank_id: str = "bank-a", **fields: Any) -> Any:
        """Report ``borrower_code``; the new entry."""
        return self.report(borrower_code, bank_id, **fields).expect_ok().response.entry

    # --- checks ---------------------------------------------------------------------------

    def check(self, *borrowers: B.BorrowerIdentifier, metadata: Any = PLATFORM) -> Any:
        request = bs.CheckBorrowersRequest(borrowers=list(borrowers))
        return self.call("CheckBorrowers", request, metadata)

    def entries_of(self, borrower_code: str) -> list[Any]:
        [result] = self.check(raw(borrower_code)).expect_ok().response.results
        assert result.clear == (not result.entries)
        return list(result.entries)

    def pseudonym(
        self, value: str, kind: IdentifierKind = IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE
    ) -> bytes:
        """As a bank computes it with the SDK and the network key it was given."""
        return pseudonym(self.network_key, kind, value)

    # --- appeals --------------------------------------------------------------------------

    def appeal(
        self,
        entry_id: str,
        grounds: str = "the merchant repaid in full on the due date",
        metadata: Any = PLATFORM,
        rid: str | None = None,
    ) -> Any:
        request = bs.FileAppealRequest(
            request_id=rid or request_id(), entry_id=entry_id, grounds=grounds
        )
        return self.call("FileAppeal", request, metadata)

    def resolve(
        self,
        entry_id: str,
        outcome: int,
        reason: str = "bank statements reviewed",
        metadata: Any = ADMIN,
    ) -> Any:
        request = bs.ResolveAppealRequest(
            request_id=request_id(), entry_id=entry_id, outcome=outcome, reason=reason
        )
        return self.call("ResolveAppeal", request, metadata)

    def stored(self, entry_id: str) -> Any:
        """The entry as stored (out-of-force entries are in no API answer but the log)."""
        with self.api.database.reading() as session:
            return blacklist_repository.get_entry(session, entry_id)

    def sweep(self) -> int:
        return self.network.sweep()

    # --- the log --------------------------------------------------------------------------

    def log_keys(self) -> dict[str, Any]:
        request = partner_bank_service_pb2.GetSigningKeysRequest()
        response = self.api.as_bank("bank-a", "GetSigningKeys", request).expect_ok().response
        assert response.log_keys, "no log keys published"
        # The log key is not the referral key.
        assert {k.keyid for k in response.log_keys}.isdisjoint({k.keyid for k in response.keys})
        return {k.keyid: public_key_from_raw(k.public_key) for k in response.log_keys}

    def verified(self, signed: B.SignedCheckpoint) -> Any:
        """Verify a signed checkpoint with the published log keys; its parsed body."""
        envelope = Envelope(
            payload=signed.envelope.payload,
            payload_type=signed.envelope.payload_type,
            signatures=tuple(Signature(s.keyid, s.sig) for s in signed.envelope.signatures),
        )
        body = verify_checkpoint(envelope, log_keys=self.log_keys())
        parsed = signed.checkpoint
        assert (body.origin, body.tree_size, body.root_hash) == (
            parsed.origin,
            parsed.tree_size,
            parsed.root_hash,
        )
        assert body.timestamp == at(parsed.timestamp)
        return body

    def checkpoint(self) -> Any:
        response = self.call("GetCheckpoint", bs.GetCheckpointRequest(), BANK_A).expect_ok()
        return self.verified(response.response.checkpoint)

    def tree_size(self) -> int:
        size: int = (
            self.call("GetCheckpoint", bs.GetCheckpointRequest(), PLATFORM)
            .expect_ok()
            .response.checkpoint.checkpoint.tree_size
        )
        return size

    def counts(self) -> dict[str, int]:
        """Rows of every table a blacklist call may write, the idempotency records included."""
        counts = dict(self.api.row_counts())
        with self.api.database.reading() as session:
            for table in BLACKLIST_TABLES:
                counts[table] = session.execute(
                    sqlalchemy.text(f"SELECT count(*) FROM {table}")
                ).scalar_one()
        return counts

    # --- the platform's side ----------------------------------------------------------------

    def enforcement(self, merchant_id: str = "", page_token: str = "") -> Any:
        request = referral_service_pb2.ListEnforcementEventsRequest(
            platform_merchant_id=merchant_id, page_token=page_token
        )
        return self.api.platform("ListEnforcementEvents", request).expect_ok().response

    def case_in(self, merchant_id: str, state: str, bank_id: str = "bank-a") -> str:
        """A case of ``merchant_id`` at ``bank_id`` walked to ``state``."""
        case_id, _ = acknowledged_case(self.api, merchant_id, bank_id)
        events = {
            "disbursed": disbursed(),
            "overdue": E.LoanEvent(
                type=E.LOAN_EVENT_TYPE_OVERDUE, event_date=day(20), days_overdue=5
            ),
            "defaulted": E.LoanEvent(type=E.LOAN_EVENT_TYPE_DEFAULT, event_date=day(25)),
        }
        walk = ["acknowledged", "approved", *events]
        for step in walk[1 : walk.index(state) + 1]:
            if step == "approved":
                loan = approve(terms(300_000, fixed_yuan=60_000))
                decide(self.api, case_id, loan, bank_id).expect_ok()
            else:
                loan_event(self.api, case_id, events[step], bank_id).expect_ok()
        return case_id


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(data_dir: Path, database_url: str | None, clock: Clock) -> Iterator[Gateway]:
    """The suite's gateway (overriding tests/conftest.py's) with every clock on ``clock``."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    database = Database(url=database_url or sqlite_url(data_dir))
    database.create_schema()
    yield Gateway(
        database=database,
        keyring=KeyRing.open(data_dir / "keys", clock=clock),
        encode_referral=encode_referral_payload,
        encode_alert=encode_alert_payload,
        encode_statement=encode_statement_payload,
        statement_case_ids=statement_case_ids,
        blacklist=blacklist_network(data_dir, database, clock),
        clock=clock,
    )
    database.engine.dispose()


@pytest.fixture
def net(api: Any, clock: Clock, data_dir: Path) -> Net:
    """bank-a and bank-b registered (default policy: REFUSE listed merchants)."""
    network = Net(api, clock, data_dir)
    api.register("bank-a")
    api.register("bank-b")
    return network


# --- 1. ReportDefault ---------------------------------------------------------------------------


def test_report_without_a_case_lists_the_borrower_for_five_years(net: Net) -> None:
    borrower = code("m-7001")
    default_day = net.clock.today() - timedelta(days=40)
    request = net.report_request(borrower, default_date=pdate(default_day))
    first = net.call("ReportDefault", request, BANK_A).expect_ok().response
    entry = first.entry
    assert first.log_index == 0
    assert entry.entry_id
    assert entry.status == ACTIVE
    assert len(entry.pseudonym) == 32
    assert entry.pseudonym == net.pseudonym(borrower)
    assert entry.identifier_kind == USCC
    assert entry.reporter_bank_id == "bank-a"
    assert entry.reason == FRAUD
    assert entry.outstanding == cny_fen(1_234_500)
    assert entry.default_date == pdate(default_day)
    assert entry.evidence_case_id == ""
    assert at(entry.reported_at) == net.clock.now
    # Without a case the default date stands for the default's end: expiry is 5 years later,
    # at midnight in China (16:00 UTC the day before).
    expires = at(entry.expires_at)
    assert expires == five_years_after(default_day)
    assert (expires.hour, expires.minute) == (16, 0)
    assert not entry.HasField("appeal")

    second = net.report(code("m-7002")).expect_ok().response
    assert second.log_index == 1
    assert second.entry.entry_id != entry.entry_id

    # A retry gets the same answer and logs nothing.
    assert net.call("ReportDefault", request, BANK_A).expect_ok().response == first
    assert net.tree_size() == 2
    changed = bs.ReportDefaultRequest()
    changed.CopyFrom(request)
    changed.reason = B.BLACKLIST_REASON_ABSCONDED
    result = net.call("ReportDefault", changed, BANK_A)
    result.expect_already_exists("request", request.request_id)
    assert net.tree_size() == 2
    # The same key from another bank is that bank's own request.
    other = net.call("ReportDefault", request, bank("bank-b")).expect_ok().response
    assert other.log_index == 2
    assert other.entry.reporter_bank_id == "bank-b"


def test_the_log_holds_the_pseudonym_never_the_identifier(net: Net) -> None:
    borrower = code("m-7003")
    entry = net.listed(borrower)
    proof = net.call("GetInclusionProof", bs.GetInclusionProofRequest(log_index=0), PLATFORM)
    leaf = proof.expect_ok().response.leaf
    assert borrower.encode() not in leaf
    assert borrower.lower().encode() not in leaf
    document = json.loads(leaf)
    assert document["change"] == "added"
    assert document["log_index"] == 0
    assert document["entry"]["pseudonym"] == entry.pseudonym.hex()
    assert document["entry"]["reporter"] == "bank-a"
    assert document["entry"]["expires_at"] == at(entry.expires_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_identifiers_are_normalised_before_they_are_pseudonymised(net: Net) -> None:
    borrower = code("m-7004")
    typed = f" {borrower[:8].lower()} {borrower[8:].lower()}  "
    entry = net.listed(typed)
    assert entry.pseudonym == net.pseudonym(borrower)
    resident = net.listed(RESIDENT_ID, borrower=B.RawIdentifier(kind=RID, value=RESIDENT_ID))
    assert resident.identifier_kind == RID
    assert resident.pseudonym == net.pseudonym(RESIDENT_ID, IdentifierKind.RESIDENT_ID)


# --- 2. Bad reports -----------------------------------------------------------------------------


def _wrong_check_character(valid: str) -> str:
    return valid[:17] + ("0" if valid[17] != "0" else "1")


BODY = "91330106" + "123456789"
GOOD = uscc(BODY)
IMPOSSIBLE_BIRTH = "11010119990230123"  # 30 February 1999


def _bad_reports(today: date) -> dict[str, tuple[dict[str, Any], str, str]]:
    """label: (request overrides, the field named, a fragment of its description)."""
    return {
        "kind missing": ({"borrower": B.RawIdentifier(value=GOOD)}, "borrower.kind", "required"),
        "kind unknown": (
            {"borrower": B.RawIdentifier(kind=9, value=GOOD)},
            "borrower.kind",
            "unknown enum value 9",
        ),
        "uscc check character": (
            {"borrower": B.RawIdentifier(kind=USCC, value=_wrong_check_character(GOOD))},
            "borrower.value",
            f"expected {GOOD[17]!r}",
        ),
        "uscc too short": (
            {"borrower": B.RawIdentifier(kind=USCC, value=GOOD[:17])},
            "borrower.value",
            "18 characters",
        ),
        "uscc empty": ({"borrower": B.RawIdentifier(kind=USCC)}, "borrower.value", "required"),
        "resident id impossible birth date": (
            {
                "borrower": B.RawIdentifier(
                    kind=RID, value=IMPOSSIBLE_BIRTH + resident_id_check_character(IMPOSSIBLE_BIRTH)
                )
            },
            "borrower.value",
            "not a real birth date",
        ),
        "resident id check character": (
            {"borrower": B.RawIdentifier(kind=RID, value=_wrong_check_character(RESIDENT_ID))},
            "borrower.value",
            f"expected {RESIDENT_ID[17]!r}",
        ),
        "reason missing": ({"reason": None}, "reason", "required"),
        "reason unknown": ({"reason": 42}, "reason", "unknown enum value 42"),
        "outstanding missing": ({"outstanding": None}, "outstanding", "required"),
        "outstanding negative": (
            {"outstanding": cny_fen(-1)},
            "outstanding.amount_minor",
            "negative",
        ),
        "outstanding in dollars": (
            {"outstanding": common_pb2.Money(currency_code="USD", amount_minor=100)},
            "outstanding.currency_code",
            "CNY",
        ),
        "outstanding absurd": (
            {"outstanding": cny_fen(10**15 + 1)},
            "outstanding.amount_minor",
            "between 0 and",
        ),
        "default date missing": ({"default_date": None}, "default_date", "required"),
        "default date tomorrow": (
            {"default_date": pdate(today + timedelta(days=1))},
            "default_date",
            f"today ({today.isoformat()})",
        ),
        "default date impossible": (
            {"default_date": common_pb2.Date(year=2023, month=2, day=30)},
            "default_date",
            "not a calendar date",
        ),
        "default date before 1990": (
            {"default_date": common_pb2.Date(year=1989, month=12, day=31)},
            "default_date",
            "1990-01-01",
        ),
        "request id missing": ({"request_id": ""}, "request_id", "required"),
        "request id malformed": ({"request_id": "a b"}, "request_id", "[A-Za-z0-9._:-]"),
    }


BAD_REPORT_LABELS = list(_bad_reports(date(2026, 1, 1)))


@pytest.mark.parametrize("label", BAD_REPORT_LABELS)
def test_a_bad_report_names_its_field_and_writes_nothing(net: Net, label: str) -> None:
    overrides, field, fragment = _bad_reports(net.clock.today())[label]
    before = net.counts()
    result = net.report(code("m-7010"), **overrides).expect_invalid(field)
    [violation] = result.field_violations
    assert fragment in violation.description, violation
    assert net.counts() == before
    assert net.tree_size() == 0
    assert net.entries_of(code("m-7010")) == []


def test_an_empty_report_names_every_missing_field(net: Net) -> None:
    request = bs.ReportDefaultRequest(request_id=request_id())
    net.call("ReportDefault", request, BANK_A).expect_invalid(
        "borrower.kind", "reason", "outstanding", "default_date"
    )


def test_default_date_today_and_zero_outstanding_are_accepted(net: Net) -> None:
    today = net.clock.today()
    entry = net.listed(code("m-7011"), default_date=pdate(today), outstanding=cny_fen(0))
    assert entry.default_date == pdate(today)
    assert entry.outstanding == cny_fen(0)


# --- 3. Who may do what -------------------------------------------------------------------------


def test_only_a_registered_active_bank_reads_the_list(net: Net) -> None:
    net.listed(code("m-7111"))
    for caller, expect in (
        (bank("bank-z"), grpc.StatusCode.PERMISSION_DENIED),
        (bank("bank-b"), grpc.StatusCode.FAILED_PRECONDITION),
    ):
        if caller == bank("bank-b"):
            net.api.suspend("bank-b")
        net.check(raw(code("m-7111")), metadata=caller).expect(expect)
        net.sync_refused(0, metadata=caller).expect(expect)
    # The platform and the operator read it without being partners.
    assert not net.check(raw(code("m-7111")), metadata=PLATFORM).response.results[0].clear


def test_only_a_registered_active_bank_reports(net: Net) -> None:
    request = net.report_request(code("m-7101"))
    before = net.counts()
    for caller in (PLATFORM, ADMIN, bank("bank-z")):
        result = net.call("ReportDefault", request, caller)
        result.expect(grpc.StatusCode.PERMISSION_DENIED)
    assert "bank-z is not a registered partner" in result.details
    net.call("ReportDefault", request, ()).expect(grpc.StatusCode.UNAUTHENTICATED)
    assert net.counts() == before

    net.api.suspend("bank-b")
    before = net.counts()
    net.call("ReportDefault", request, bank("bank-b")).expect_precondition("PARTNER_SUSPENDED")
    assert net.counts() == before
    assert net.entries_of(code("m-7101")) == []


def test_appeals_are_filed_by_the_platform_and_resolved_by_the_reporter_or_operator(
    net: Net,
) -> None:
    net.api.register("bank-c")
    entry = net.listed(code("m-7102"))
    before = net.counts()
    for caller in (BANK_A, bank("bank-b")):
        net.appeal(entry.entry_id, metadata=caller).expect(grpc.StatusCode.PERMISSION_DENIED)
    assert net.counts() == before

    net.appeal(entry.entry_id).expect_ok()
    before = net.counts()
    for caller, why in (
        (bank("bank-b"), "only the reporter (bank-a)"),
        (bank("bank-c"), "only the reporter (bank-a)"),
        (bank("bank-z"), "not a registered partner"),
    ):
        result = net.resolve(entry.entry_id, REMOVE, metadata=caller)
        result.expect(grpc.StatusCode.PERMISSION_DENIED)
        assert why in result.details
    net.resolve(entry.entry_id, REMOVE, metadata=PLATFORM).expect(grpc.StatusCode.PERMISSION_DENIED)
    assert net.counts() == before
    assert [e.status for e in net.entries_of(code("m-7102"))] == [UNDER_APPEAL]

    # The reporter may; so may the operator, who may also file.
    upheld = net.resolve(entry.entry_id, UPHELD, metadata=BANK_A).expect_ok().response.entry
    assert upheld.appeal.resolved_by == "partner/bank-a"
    filed = net.appeal(entry.entry_id, metadata=ADMIN).expect_ok().response.entry
    assert filed.appeal.filed_by == "admin"
    removed = net.resolve(entry.entry_id, REMOVE, metadata=ADMIN).expect_ok().response.entry
    assert (removed.status, removed.appeal.resolved_by) == (REMOVED, "admin")


def test_everyone_may_check(net: Net) -> None:
    net.listed(code("m-7103"))
    for caller in (PLATFORM, ADMIN, BANK_A, bank("bank-b")):
        [result] = net.check(raw(code("m-7103")), metadata=caller).expect_ok().response.results
        assert not result.clear
    net.check(raw(code("m-7103")), metadata=()).expect(grpc.StatusCode.UNAUTHENTICATED)


# --- 4. Evidence cases --------------------------------------------------------------------------


def test_an_evidence_case_must_be_the_reporters_lent_case_of_that_borrower(net: Net) -> None:
    overdue = net.case_in("m-7201", "overdue")
    approved = net.case_in("m-7202", "approved")
    borrower = code("m-7201")
    before = net.counts()

    # Another bank's case is reported as absent, like a case that does not exist.
    net.report(borrower, "bank-b", evidence_case_id=overdue).expect_not_found(
        "financing case", overdue
    )
    net.report(borrower, evidence_case_id="case_nope").expect_not_found(
        "financing case", "case_nope"
    )
    # The borrower must be the case's merchant.
    result = net.report(code("m-7202"), evidence_case_id=overdue)
    result.expect_invalid("borrower.value")
    assert overdue in result.details
    net.report(
        RESIDENT_ID,
        borrower=B.RawIdentifier(kind=RID, value=RESIDENT_ID),
        evidence_case_id=overdue,
    ).expect_invalid("borrower.value")
    # The case must have lent money.
    result = net.report(code("m-7202"), evidence_case_id=approved)
    result.expect_precondition("CASE_NOT_LENT")
    assert "APPROVED" in result.details
    # DEFAULT_OVERDUE needs a defaulted case.
    result = net.report(borrower, evidence_case_id=overdue, reason=DEFAULT_OVERDUE)
    result.expect_precondition("CASE_NOT_DEFAULTED")
    assert "OVERDUE" in result.details
    assert net.counts() == before

    # FRAUD on an overdue case: the default has not ended, so retention is still open.
    entry = net.listed(borrower, evidence_case_id=overdue)
    assert entry.evidence_case_id == overdue
    assert entry.reason == FRAUD
    assert not entry.HasField("expires_at")

    # One entry in force per case.
    before = net.counts()
    result = net.report(
        borrower, evidence_case_id=overdue, reason=B.BLACKLIST_REASON_MISUSE_OF_FUNDS
    )
    result.expect_already_exists("blacklist entry", entry.entry_id)
    assert net.counts() == before
    assert [e.entry_id for e in net.entries_of(borrower)] == [entry.entry_id]


def test_a_banks_own_report_stands_when_its_case_defaults(net: Net) -> None:
    case_id = net.case_in("m-7203", "overdue")
    borrower = code("m-7203")
    entry = net.listed(borrower, evidence_case_id=case_id)
    default = E.LoanEvent(type=E.LOAN_EVENT_TYPE_DEFAULT, event_date=day(25))
    loan_event(net.api, case_id, default).expect_ok()
    [still] = net.entries_of(borrower)
    assert still == entry  # nothing added, nothing changed
    assert net.tree_size() == 1
    written_off = E.LoanEvent(type=E.LOAN_EVENT_TYPE_WRITTEN_OFF, event_date=day(27))
    loan_event(net.api, case_id, written_off).expect_ok()
    [kept] = net.entries_of(borrower)
    assert kept.entry_id == entry.entry_id
    assert at(kept.expires_at) == five_years_after(D0 + timedelta(days=27))


def test_a_settled_case_has_lent_money_and_is_evidence(net: Net) -> None:
    case_id = net.case_in("m-7204", "disbursed")
    loan_event(net.api, case_id, repayment(30_000_000, 0, 0)).expect_ok()
    settled = E.LoanEvent(type=E.LOAN_EVENT_TYPE_SETTLED, event_date=day(0))
    assert (
        loan_event(net.api, case_id, settled).expect_ok().response.financing_case.state
        == FS.FINANCING_STATE_SETTLED
    )
    # Misuse of funds found after the loan was repaid: the contract asks only that the case
    # "must have been disbursed".
    result = net.report(
        code("m-7204"), evidence_case_id=case_id, reason=B.BLACKLIST_REASON_MISUSE_OF_FUNDS
    )
    result.expect_ok()


def test_an_entry_on_a_case_that_settles_gets_a_retention_period(net: Net) -> None:
    case_id = net.case_in("m-7205", "overdue")
    borrower = code("m-7205")
    default_day = D0 + timedelta(days=20)
    entry = net.listed(borrower, evidence_case_id=case_id, default_date=pdate(default_day))
    assert not entry.HasField("expires_at")
    # The borrower pays everything back, interest included, and the case settles.
    detail = loan_event(net.api, case_id, repayment(30_000_000, 0, 21)).expect_ok()
    interest = detail.response.financing_case.ledger.interest_accrued.amount_minor
    loan_event(net.api, case_id, repayment(0, interest, 21)).expect_ok()
    settled = E.LoanEvent(type=E.LOAN_EVENT_TYPE_SETTLED, event_date=day(21))
    loan_event(net.api, case_id, settled).expect_ok()
    [kept] = net.entries_of(borrower)
    # Retention runs 5 years from the end of the default (the regulation the rules cite):
    # at the latest from the settlement, at the earliest from the default date.
    assert kept.HasField("expires_at"), "the entry would stay in force forever"
    assert (
        five_years_after(default_day)
        <= at(kept.expires_at)
        <= five_years_after(D0 + timedelta(days=21))
    )


# --- 5. The default hook ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ending",
    [
        E.LoanEvent(type=E.LOAN_EVENT_TYPE_RECOVERED, event_date=day(28), principal=fen(1_000_000)),
        E.LoanEvent(type=E.LOAN_EVENT_TYPE_WRITTEN_OFF, event_date=day(28)),
    ],
    ids=["recovered", "written_off"],
)
def test_a_default_lists_the_merchant_and_its_end_starts_retention(
    net: Net, ending: financing_pb2.LoanEvent
) -> None:
    borrower = code("m-7301")
    case_id = net.case_in("m-7301", "defaulted")

    [result] = net.check(raw(borrower)).expect_ok().response.results
    assert not result.clear
    assert result.pseudonym == net.pseudonym(borrower)
    [entry] = result.entries
    assert entry.reporter_bank_id == "bank-a"
    assert entry.evidence_case_id == case_id
    assert entry.reason == DEFAULT_OVERDUE
    assert entry.status == ACTIVE
    assert entry.default_date == day(25)
    assert entry.outstanding == cny_fen(30_000_000)  # the principal still owed
    assert not entry.HasField("expires_at")  # still in default: its end is unknown

    feed = net.enforcement("m-7301")
    [event] = feed.events
    assert event.action == RESTRICT
    assert event.platform_merchant_id == "m-7301"
    assert event.blacklist_entry_id == entry.entry_id
    assert event.case_id == case_id
    assert case_id in event.reason
    assert event.event_id
    assert feed.next_page_token
    # Another merchant's feed is empty.
    assert list(net.enforcement("m-7302").events) == []

    loan_event(net.api, case_id, ending).expect_ok()
    [kept] = net.entries_of(borrower)
    assert kept.entry_id == entry.entry_id
    assert kept.status == ACTIVE
    assert at(kept.expires_at) == five_years_after(D0 + timedelta(days=28))
    # Still listed, so the restriction stays.
    assert [e.event_id for e in net.enforcement("m-7301").events] == [event.event_id]
    assert list(net.enforcement(page_token=feed.next_page_token).events) == []

    with net.sync(0) as stream:
        added, retention, checkpoint = stream.take(3)
    assert added.change.type == B.BLACKLIST_CHANGE_TYPE_ADDED
    assert added.change.entry == entry
    assert retention.change.type == B.BLACKLIST_CHANGE_TYPE_RETENTION_SET
    assert retention.change.log_index == 1
    assert retention.change.entry == kept
    body = net.verified(checkpoint.checkpoint)
    assert body.tree_size == 2
    assert body.root_hash == root_from_leaves([added.change.leaf, retention.change.leaf])


# --- 6. CheckBorrowers --------------------------------------------------------------------------


def test_check_borrowers_answers_each_borrower_in_order(net: Net) -> None:
    listed, other = code("m-7401"), code("m-7402")
    entry = net.listed(listed)
    person = net.listed(RESIDENT_ID, borrower=B.RawIdentifier(kind=RID, value=RESIDENT_ID))
    spaced = f"{listed[:8].lower()} {listed[8:12]} {listed[12:].lower()}"
    borrowers = [
        raw(listed),
        by_pseudonym(net.pseudonym(listed)),
        raw(other),
        by_pseudonym(net.pseudonym(other)),
        raw(spaced),
        raw(RESIDENT_ID, RID),
        by_pseudonym(bytes(32)),
        raw(listed),
    ]
    response = net.check(*borrowers).expect_ok().response
    results = response.results
    assert [r.index for r in results] == list(range(len(borrowers)))
    assert [r.clear for r in results] == [False, False, True, True, False, False, True, False]
    expected = [
        net.pseudonym(listed),
        net.pseudonym(listed),
        net.pseudonym(other),
        net.pseudonym(other),
        net.pseudonym(listed),
        net.pseudonym(RESIDENT_ID, IdentifierKind.RESIDENT_ID),
        bytes(32),
        net.pseudonym(listed),
    ]
    assert [r.pseudonym for r in results] == expected
    assert list(results[0].entries) == [entry]  # the stored entry is the one reported
    assert list(results[1].entries) == [entry]
    assert list(results[5].entries) == [person]
    assert all(not r.entries for r in results if r.clear)
    assert response.tree_size == net.tree_size() == 2


def test_the_network_key_on_disk_is_the_one_the_gateway_uses(net: Net) -> None:
    borrower = code("m-7403")
    kind = IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE
    assert net.network.pseudonym_of(kind, borrower) == net.pseudonym(borrower)
    assert net.pseudonym(borrower.lower()) == net.pseudonym(borrower)
    assert net.pseudonym(code("m-7404")) != net.pseudonym(borrower)


def test_check_borrowers_takes_one_to_a_thousand(net: Net) -> None:
    net.check().expect_invalid("borrowers")
    many = [by_pseudonym(i.to_bytes(32, "big")) for i in range(1001)]
    result = net.check(*many).expect_invalid("borrowers")
    assert "1001" in result.details
    response = net.check(*many[:1000]).expect_ok().response
    assert len(response.results) == 1000
    assert response.results[999].index == 999


@pytest.mark.parametrize(
    ("borrower", "field"),
    [
        (by_pseudonym(bytes(31)), "borrowers[1].pseudonym"),
        (by_pseudonym(bytes(33)), "borrowers[1].pseudonym"),
        (by_pseudonym(b""), "borrowers[1].pseudonym"),
        (B.BorrowerIdentifier(), "borrowers[1]"),
        (raw(_wrong_check_character(GOOD)), "borrowers[1].raw.value"),
        (raw(IMPOSSIBLE_BIRTH + "0", RID), "borrowers[1].raw.value"),
        (raw(GOOD, kind=0), "borrowers[1].raw.kind"),
        (raw(GOOD, kind=9), "borrowers[1].raw.kind"),
    ],
    ids=["31-bytes", "33-bytes", "empty", "neither", "uscc", "resident", "no-kind", "bad-kind"],
)
def test_a_bad_borrower_is_named_by_its_position(
    net: Net, borrower: B.BorrowerIdentifier, field: str
) -> None:
    net.check(raw(GOOD), borrower, raw(GOOD)).expect_invalid(field)


# --- 7. Appeals, the deadline and expiry --------------------------------------------------------


def test_an_appeal_keeps_the_entry_in_force_until_it_is_answered(net: Net) -> None:
    borrower = code("m-7501")
    entry = net.listed(borrower)
    filed_at = net.clock.now
    grounds = "repaid on 2026-03-01, receipt attached"
    appealed = net.appeal(entry.entry_id, grounds=grounds).expect_ok().response.entry
    assert appealed.status == UNDER_APPEAL
    appeal = appealed.appeal
    assert appeal.appeal_id
    assert appeal.filed_by == "platform"
    assert appeal.grounds == grounds
    assert at(appeal.filed_at) == filed_at
    assert at(appeal.deadline) == filed_at + timedelta(days=20)
    assert appeal.outcome == B.APPEAL_OUTCOME_UNSPECIFIED
    assert not appeal.HasField("resolved_at")

    # Disputed, still in force: checks return it, flagged, without the parties' free text.
    [checked] = net.entries_of(borrower)
    assert checked.status == UNDER_APPEAL
    assert checked.appeal.appeal_id == appeal.appeal_id
    assert checked.appeal.grounds == ""
    without_text = type(appealed)()
    without_text.CopyFrom(appealed)
    without_text.appeal.grounds = ""
    assert checked == without_text

    before = net.counts()
    result = net.appeal(entry.entry_id)
    result.expect_precondition("ENTRY_NOT_APPEALABLE")
    assert "already under appeal" in result.details
    assert net.counts() == before

    net.clock.advance(days=3)
    reason = "the repayment was of another loan"
    upheld = net.resolve(entry.entry_id, UPHELD, reason=reason, metadata=BANK_A)
    stands = upheld.expect_ok().response.entry
    assert stands.status == ACTIVE
    assert stands.appeal.appeal_id == appeal.appeal_id
    assert stands.appeal.outcome == UPHELD
    assert stands.appeal.resolved_by == "partner/bank-a"
    assert stands.appeal.resolution_reason == reason
    assert at(stands.appeal.resolved_at) == net.clock.now
    [checked] = net.entries_of(borrower)
    assert (checked.appeal.grounds, checked.appeal.resolution_reason) == ("", "")
    assert checked.appeal.outcome == UPHELD

    before = net.counts()
    net.resolve(entry.entry_id, REMOVE).expect_precondition("NO_OPEN_APPEAL")
    assert net.counts() == before
    with net.sync(0) as stream:
        changes = [r.change.type for r in stream.take(3)]
    assert changes == [
        B.BLACKLIST_CHANGE_TYPE_ADDED,
        B.BLACKLIST_CHANGE_TYPE_APPEALED,
        B.BLACKLIST_CHANGE_TYPE_APPEAL_UPHELD,
    ]


def test_appeal_and_resolution_inputs(net: Net) -> None:
    entry = net.listed(code("m-7502"))
    before = net.counts()
    for grounds in ("", "   ", "x" * 2001):
        net.appeal(entry.entry_id, grounds=grounds).expect_invalid("grounds")
    net.appeal("", grounds="fine").expect_invalid("entry_id")
    net.appeal("bl_nope").expect_not_found("blacklist entry", "bl_nope")
    assert net.counts() == before
    net.appeal(entry.entry_id, grounds="x" * 2000).expect_ok()

    before = net.counts()
    net.resolve(entry.entry_id, B.APPEAL_OUTCOME_UNSPECIFIED).expect_invalid("outcome")
    net.resolve(entry.entry_id, 7).expect_invalid("outcome")
    for reason in ("", "y" * 2001):
        net.resolve(entry.entry_id, UPHELD, reason=reason).expect_invalid("reason")
    net.resolve("bl_nope", UPHELD).expect_not_found("blacklist entry", "bl_nope")
    net.resolve("", UPHELD).expect_invalid("entry_id")
    assert net.counts() == before
    assert [e.status for e in net.entries_of(code("m-7502"))] == [UNDER_APPEAL]


def test_an_appeal_retry_is_answered_once(net: Net) -> None:
    entry = net.listed(code("m-7503"))
    rid = request_id()
    first = net.appeal(entry.entry_id, rid=rid).expect_ok().response
    size = net.tree_size()
    assert net.appeal(entry.entry_id, rid=rid).expect_ok().response == first
    assert net.tree_size() == size
    net.appeal(entry.entry_id, grounds="other grounds", rid=rid).expect_already_exists(
        "request", rid
    )


def test_removal_lifts_the_restriction_once_nothing_else_lists_the_merchant(net: Net) -> None:
    net.api.referral_for("m-7601")  # the platform knows the merchant: its case has the pseudonym
    borrower = code("m-7601")
    first = net.listed(borrower)
    second = net.listed(borrower, "bank-b", reason=B.BLACKLIST_REASON_ABSCONDED)
    restricts = list(net.enforcement("m-7601").events)
    # One restriction per borrower: the second entry adds nothing the platform must do.
    assert [(e.action, e.blacklist_entry_id, e.case_id) for e in restricts] == [
        (RESTRICT, first.entry_id, ""),
    ]
    token = net.enforcement().next_page_token

    net.appeal(first.entry_id).expect_ok()
    removed = net.resolve(first.entry_id, REMOVE, reason="paid").expect_ok().response.entry
    assert removed.status == REMOVED
    assert removed.appeal.outcome == REMOVE
    assert removed.appeal.resolved_by == "admin"
    assert removed.appeal.resolution_reason == "paid"
    # bank-b's entry still lists the merchant: no lift yet.
    assert [e.entry_id for e in net.entries_of(borrower)] == [second.entry_id]
    assert list(net.enforcement(page_token=token).events) == []

    net.appeal(second.entry_id).expect_ok()
    net.resolve(second.entry_id, REMOVE, metadata=bank("bank-b")).expect_ok()
    assert net.entries_of(borrower) == []
    [lift] = net.enforcement(page_token=token).events
    assert lift.action == LIFT
    assert lift.platform_merchant_id == "m-7601"
    assert lift.blacklist_entry_id == second.entry_id
    assert "REMOVED" in lift.reason
    assert net.stored(first.entry_id).status is EntryStatus.REMOVED


def test_an_appeal_nobody_answers_by_its_deadline_is_decided_for_the_borrower(net: Net) -> None:
    net.api.referral_for("m-7602")
    borrower = code("m-7602")
    entry = net.listed(borrower)
    other = net.listed(code("m-7603"))
    net.appeal(entry.entry_id).expect_ok()
    net.appeal(other.entry_id).expect_ok()
    net.resolve(other.entry_id, UPHELD).expect_ok()  # answered in time
    size = net.tree_size()

    net.clock.advance(days=20, seconds=-1)
    assert net.sweep() == 0
    assert [e.status for e in net.entries_of(borrower)] == [UNDER_APPEAL]
    net.clock.advance(seconds=2)
    assert net.sweep() == 1
    assert net.entries_of(borrower) == []
    assert [e.entry_id for e in net.entries_of(code("m-7603"))] == [other.entry_id]

    stored = net.stored(entry.entry_id)
    assert stored.status is EntryStatus.REMOVED
    assert stored.appeal.outcome is AppealOutcome.REMOVED
    assert stored.appeal.resolved_by == "gateway"
    assert "deadline" in stored.appeal.resolution_reason
    assert stored.appeal.resolved_at == net.clock.now
    assert [e.action for e in net.enforcement("m-7602").events] == [RESTRICT, LIFT]

    assert net.sweep() == 0  # a second sweep finds nothing left to do
    assert net.tree_size() == size + 1
    with net.sync(size) as stream:
        change, _ = stream.take(2)
    assert change.change.type == B.BLACKLIST_CHANGE_TYPE_REMOVED
    assert change.change.entry.status == REMOVED
    assert change.change.entry.appeal.resolved_by == "gateway"


def test_an_entry_expires_five_years_after_its_default(net: Net) -> None:
    net.api.referral_for("m-7701")
    borrower = code("m-7701")
    default_day = net.clock.today() - timedelta(days=30)
    entry = net.listed(borrower, default_date=pdate(default_day))
    open_ended = net.case_in("m-7702", "defaulted")  # in default: no expiry
    expires = five_years_after(default_day)
    assert at(entry.expires_at) == expires
    size = net.tree_size()

    net.clock.now = expires.astimezone(UTC) - timedelta(seconds=1)
    assert net.sweep() == 0
    assert [e.entry_id for e in net.entries_of(borrower)] == [entry.entry_id]

    net.clock.now = expires.astimezone(UTC)
    assert net.sweep() == 1
    assert net.entries_of(borrower) == []
    assert net.stored(entry.entry_id).status is EntryStatus.EXPIRED
    assert [e.action for e in net.enforcement("m-7701").events] == [RESTRICT, LIFT]
    with net.sync(size) as stream:
        change, checkpoint = stream.take(2)
    assert change.change.type == B.BLACKLIST_CHANGE_TYPE_EXPIRED
    assert checkpoint.checkpoint.checkpoint.tree_size == size + 1

    net.clock.advance(days=3650)
    assert net.sweep() == 0  # nothing else is due, ever
    assert net.tree_size() == size + 1
    [kept] = net.entries_of(code("m-7702"))
    assert kept.evidence_case_id == open_ended


# --- 8. The referral check ----------------------------------------------------------------------


def test_a_listed_merchant_is_refused_or_flagged_per_bank_policy(net: Net) -> None:
    flag_policy = policy_to_proto(
        replace(EligibilityPolicy(), blacklist_action=BlacklistAction.FLAG)
    )
    net.api.register("bank-f", policy=flag_policy)
    merchant_id = "m-7801"
    entry = net.listed(code(merchant_id))
    profile = merchant(merchant_id=merchant_id)

    consent = net.api.consent(merchant_id, ("bank-a", "bank-f"))
    before = net.counts()
    request = net.api.submit_request(consent.consent_id, ("bank-a",), profile=profile)
    result = net.api.platform("SubmitReferral", request).expect_precondition("BLACKLISTED")
    [violation] = result.precondition_violations
    assert violation.subject == "partners/bank-a/policy.blacklist_action"
    assert "1 blacklist entry in force" in violation.description
    # Asking both banks at once: bank-a's refusal refuses the referral.
    both = net.api.submit_request(consent.consent_id, ("bank-a", "bank-f"), profile=profile)
    net.api.platform("SubmitReferral", both).expect_precondition("BLACKLISTED")
    # However the code is typed.
    typed = merchant(merchant_id=merchant_id)
    typed.identity.unified_social_credit_code = f" {code(merchant_id).lower()} "
    again = net.api.submit_request(consent.consent_id, ("bank-a",), profile=typed)
    net.api.platform("SubmitReferral", again).expect_precondition("BLACKLISTED")
    assert net.counts() == before

    referral = net.api.submit(consent.consent_id, ("bank-f",), profile=profile)
    [delivery] = referral.deliveries
    payload = net.api.verified_payload(delivery.envelope, "bank-f")
    assert payload.bank_id == "bank-f"
    assert payload.blacklist_flagged is True

    # An unlisted merchant goes out unflagged.
    clean = net.api.consent("m-7802", ("bank-f",))
    unlisted = net.api.submit(clean.consent_id, ("bank-f",), profile=merchant(merchant_id="m-7802"))
    clean_payload = net.api.verified_payload(unlisted.deliveries[0].envelope, "bank-f")
    assert clean_payload.blacklist_flagged is False

    # Once the entry is out of force, bank-a receives the merchant again, unflagged.
    net.appeal(entry.entry_id).expect_ok()
    net.resolve(entry.entry_id, REMOVE).expect_ok()
    accepted = net.api.submit(consent.consent_id, ("bank-a",), profile=profile)
    assert net.api.verified_payload(accepted.deliveries[0].envelope).blacklist_flagged is False


# --- 9. Proofs ----------------------------------------------------------------------------------


def test_checkpoints_and_proofs_verify_with_the_sdk(net: Net) -> None:
    empty = net.checkpoint()
    assert (empty.origin, empty.tree_size, empty.root_hash) == (LOG_ORIGIN, 0, EMPTY_ROOT)
    assert empty.timestamp == net.clock.now
    roots = {0: EMPTY_ROOT}

    def checkpoint_after_change() -> None:
        net.clock.advance(seconds=1)
        checkpoint = net.checkpoint()
        assert checkpoint.timestamp == net.clock.now
        roots[checkpoint.tree_size] = checkpoint.root_hash

    for i in range(5):
        entry = net.listed(code(f"m-79{i:02d}"))
        checkpoint_after_change()
        if i == 2:
            net.appeal(entry.entry_id).expect_ok()
            checkpoint_after_change()
    assert sorted(roots) == [0, 1, 2, 3, 4, 5, 6]
    size = 6

    leaves = []
    for index in range(size):
        proof = net.call(
            "GetInclusionProof", bs.GetInclusionProofRequest(log_index=index), PLATFORM
        ).expect_ok()
        assert (proof.response.log_index, proof.response.tree_size) == (index, size)
        leaves.append(proof.response.leaf)
    assert root_from_leaves(leaves) == roots[size]
    for tree_size in range(1, size + 1):
        for index in range(tree_size):
            request = bs.GetInclusionProofRequest(log_index=index, tree_size=tree_size)
            response = net.call("GetInclusionProof", request, BANK_A).expect_ok().response
            assert response.tree_size == tree_size
            assert response.leaf == leaves[index]
            verify_inclusion(
                leaf=response.leaf,
                index=index,
                tree_size=tree_size,
                proof=list(response.hashes),
                root=roots[tree_size],
            )
    # The proofs are checked, not just accepted: another leaf does not verify.
    response = net.call(
        "GetInclusionProof", bs.GetInclusionProofRequest(log_index=1, tree_size=size), BANK_A
    ).response
    with pytest.raises(InclusionProofError):
        verify_inclusion(
            leaf=leaves[2], index=1, tree_size=size, proof=list(response.hashes), root=roots[size]
        )

    for second in range(1, size + 1):  # 0 would mean the latest size
        for first in range(second + 1):
            request = bs.GetConsistencyProofRequest(first_tree_size=first, second_tree_size=second)
            response = net.call("GetConsistencyProof", request, ADMIN).expect_ok().response
            assert (response.first_tree_size, response.second_tree_size) == (first, second)
            verify_consistency(
                first_size=first,
                second_size=second,
                first_root=roots[first],
                second_root=roots[second],
                proof=list(response.hashes),
            )
    latest = net.call(
        "GetConsistencyProof", bs.GetConsistencyProofRequest(first_tree_size=3), PLATFORM
    ).expect_ok()
    assert latest.response.second_tree_size == size


@pytest.mark.parametrize(
    ("request_", "field", "bound"),
    [
        (bs.GetInclusionProofRequest(log_index=3), "log_index", "between 0 and 2"),
        (bs.GetInclusionProofRequest(log_index=-1), "log_index", "between 0 and 2"),
        (bs.GetInclusionProofRequest(log_index=2, tree_size=2), "log_index", "between 0 and 1"),
        (bs.GetInclusionProofRequest(tree_size=4), "tree_size", "log size 3"),
        (bs.GetInclusionProofRequest(tree_size=-1), "tree_size", "log size 3"),
        (bs.GetConsistencyProofRequest(first_tree_size=4), "first_tree_size", "tree size 3"),
        (bs.GetConsistencyProofRequest(first_tree_size=-1), "first_tree_size", "tree size 3"),
        (
            bs.GetConsistencyProofRequest(first_tree_size=3, second_tree_size=2),
            "first_tree_size",
            "tree size 2",
        ),
        (
            bs.GetConsistencyProofRequest(first_tree_size=1, second_tree_size=4),
            "second_tree_size",
            "log size 3",
        ),
        (bs.GetConsistencyProofRequest(second_tree_size=-1), "second_tree_size", "log size 3"),
    ],
)
def test_a_proof_outside_the_log_names_its_field(
    net: Net, request_: Any, field: str, bound: str
) -> None:
    for i in range(3):
        net.listed(code(f"m-79{i:02d}"))
    method = (
        "GetInclusionProof"
        if isinstance(request_, bs.GetInclusionProofRequest)
        else "GetConsistencyProof"
    )
    [violation] = net.call(method, request_, BANK_A).expect_invalid(field).field_violations
    assert bound in violation.description


def test_an_empty_log_has_no_inclusion_proofs(net: Net) -> None:
    net.call("GetInclusionProof", bs.GetInclusionProofRequest(), BANK_A).expect_invalid("tree_size")
    response = net.call("GetConsistencyProof", bs.GetConsistencyProofRequest(), BANK_A)
    assert list(response.expect_ok().response.hashes) == []


# --- 10. SyncBlacklist --------------------------------------------------------------------------


def test_sync_sends_the_log_then_a_checkpoint_then_follows_it_live(net: Net) -> None:
    with net.sync(0) as stream:
        [first] = stream.take(1)
    assert first.WhichOneof("item") == "checkpoint"
    assert net.verified(first.checkpoint).root_hash == EMPTY_ROOT

    entries = [net.listed(code(f"m-80{i:02d}")) for i in range(3)]
    with net.sync(0) as stream:
        items = stream.take(4)
        assert [i.WhichOneof("item") for i in items] == ["change"] * 3 + ["checkpoint"]
        changes = [i.change for i in items[:3]]
        assert [c.log_index for c in changes] == [0, 1, 2]
        assert [c.entry for c in changes] == entries
        assert all(c.type == B.BLACKLIST_CHANGE_TYPE_ADDED for c in changes)
        body = net.verified(items[3].checkpoint)
        assert body.tree_size == 3
        assert body.root_hash == root_from_leaves([c.leaf for c in changes])

        # Live: a change made while the stream is open arrives, then a checkpoint of 4.
        net.clock.advance(seconds=5)
        later = net.listed(code("m-8099"))
        change, checkpoint = stream.take(2)
        assert change.change.log_index == 3
        assert change.change.entry == later
        assert at(change.change.logged_at) == net.clock.now
        body = net.verified(checkpoint.checkpoint)
        assert body.tree_size == 4
        leaves = [c.leaf for c in changes] + [change.change.leaf]
        assert body.root_hash == root_from_leaves(leaves)

    with net.sync(2, metadata=PLATFORM) as stream:
        items = stream.take(3)
    assert [i.change.log_index for i in items[:2]] == [2, 3]
    assert net.verified(items[2].checkpoint).tree_size == 4  # every leaf from 0 up to here
    with net.sync(4, metadata=ADMIN) as stream:
        [only] = stream.take(1)
    assert net.verified(only.checkpoint).tree_size == 4


def test_sync_refuses_a_start_outside_the_log(net: Net) -> None:
    net.listed(code("m-8101"))
    [violation] = net.sync_refused(2).expect_invalid("from_log_index").field_violations
    assert "log size 1" in violation.description
    net.sync_refused(0, metadata=()).expect(grpc.StatusCode.UNAUTHENTICATED)


def test_sync_refuses_a_negative_start(net: Net) -> None:
    net.listed(code("m-8102"))
    [violation] = net.sync_refused(-1).expect_invalid("from_log_index").field_violations
    assert "log size 1" in violation.description


def test_sync_streams_are_bounded(net: Net) -> None:
    with net.sync(0) as one, net.sync(0) as two:
        one.take(1)
        two.take(1)
        result = net.sync_refused(0).expect(grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert "all 2 " in result.details
    # Closed streams give their slots back.
    with net.sync(0) as three:
        [item] = three.take(1)
    assert item.WhichOneof("item") == "checkpoint"


# --- review fixes: each a behaviour a caller relies on --------------------------------------


def test_proofs_and_checkpoints_need_an_active_bank(net: Net) -> None:
    net.listed(code("m-9001"))
    for method, request in (
        ("GetInclusionProof", bs.GetInclusionProofRequest(log_index=0)),
        ("GetCheckpoint", bs.GetCheckpointRequest()),
        ("GetConsistencyProof", bs.GetConsistencyProofRequest(first_tree_size=0)),
    ):
        result = net.call(method, request, bank("bank-z"))
        result.expect(grpc.StatusCode.PERMISSION_DENIED)
        assert "not a registered partner" in result.details
        net.call(method, request, BANK_A).expect_ok()


def test_a_forged_enforcement_token_is_a_clear_error(net: Net) -> None:
    for position in ("x", "9" * 40):
        token = base64.urlsafe_b64encode(f"enforcement:{position}".encode()).decode().rstrip("=")
        request = referral_service_pb2.ListEnforcementEventsRequest(page_token=token)
        net.api.platform("ListEnforcementEvents", request).expect_invalid("page_token")


def test_a_default_whose_retention_is_over_is_refused(net: Net) -> None:
    long_ago = net.clock.today() - timedelta(days=6 * 366)
    before = net.counts()
    result = net.report(code("m-9002"), default_date=pdate(long_ago))
    [violation] = result.expect_invalid("default_date").field_violations
    assert "retention ended" in violation.description
    assert net.counts() == before  # nothing listed, nothing lifted, nothing logged


def test_a_replayed_report_answers_as_it_first_did(net: Net) -> None:
    request = net.report_request(code("m-9003"))
    first = net.call("ReportDefault", request, BANK_A).expect_ok().response
    net.appeal(first.entry.entry_id).expect_ok()  # the entry has moved on since
    again = net.call("ReportDefault", request, BANK_A).expect_ok().response
    assert again.log_index == first.log_index
    assert again.entry == first.entry  # ACTIVE, as the leaf at that index says
