"""The capability services on real databases (SQLite and PostgreSQL): idempotency under
concurrency, atomic refusals, and values that survive a round trip through storage."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from colending.v1 import referral_pb2
from sqlalchemy import func
from sqlmodel import SQLModel, select
from testkit import blacklist_network, merchant

from colending_core import IdentifierKind
from gateway._transactions import Idempotency, business_date, utc_now
from gateway.app import Gateway
from gateway.domain.blacklist import ListingReason
from gateway.domain.consent import ConsentPurpose
from gateway.domain.financing import FinancingState
from gateway.domain.merchant import DataScope, MembershipTier, MerchantProfile
from gateway.domain.policy import BlacklistAction, EligibilityPolicy
from gateway.domain.referral import Referral, ReferralPayload
from gateway.errors import AlreadyExists, FailedPrecondition
from gateway.monitoring.convert import encode_alert_payload
from gateway.partners import PartnerChanges
from gateway.reconciliation.convert import encode_statement_payload, statement_case_ids
from gateway.referrals.convert import encode_referral_payload, merchant_from_proto
from gateway.server import ServerConfig, open_gateway
from gateway.signing.keyring import KeyRing
from gateway.store.db import Database, sqlite_url

ALL = [DataScope.IDENTITY, DataScope.QUALIFICATION, DataScope.TRANSACTION_REPUTATION]


def idem(method: str, request_id: str | None = None, fingerprint: str = "f1") -> Idempotency:
    return Idempotency(
        caller="platform",
        method=method,
        request_id=request_id or str(uuid.uuid4()),
        fingerprint=fingerprint,
    )


def profile() -> MerchantProfile:
    problems: list = []
    value = merchant_from_proto(merchant(), "merchant", problems)
    assert problems == []
    return value


def setup_bank_and_consent(
    gateway: Gateway,
    *,
    policy: EligibilityPolicy | None = None,
    scopes: list[DataScope] = ALL,
) -> str:
    gateway.partners.register_partner(
        idem=Idempotency(
            caller="admin", method="RegisterPartner", request_id=str(uuid.uuid4()), fingerprint="x"
        ),
        partner_id="bank-a",
        display_name="Bank A",
        endpoint="",
        policy=policy,
        decision_public_key=b"",
    )
    consent = gateway.consents.record_consent(
        idem=idem("RecordConsent"),
        platform_merchant_id="m-1001",
        bank_ids=["bank-a"],
        data_scopes=scopes,
        purpose=ConsentPurpose.CREDIT_REFERRAL,
        expires_at=datetime.now(UTC) + timedelta(days=30),
        evidence_reference="form-1",
    )
    return consent.consent_id


def row_counts(database: Database) -> dict[str, int]:
    with database.reading() as session:
        return {
            name: session.exec(select(func.count()).select_from(table)).one()
            for name, table in SQLModel.metadata.tables.items()
        }


def test_concurrent_twins_create_one_referral(gateway: Gateway) -> None:
    consent_id = setup_bank_and_consent(gateway)
    request = idem("SubmitReferral", request_id="twin-1")
    results: list[str] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            referral = gateway.referrals.submit_referral(
                idem=request, merchant=profile(), consent_id=consent_id, bank_ids=["bank-a"]
            )
            results.append(referral.referral_id)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    page = gateway.referrals.list_referrals(
        page_size=50, page_token="", platform_merchant_id="", state=None
    )
    assert [r.referral_id for r in page.items] == results[:1]


def test_same_request_id_with_other_content_is_already_exists(gateway: Gateway) -> None:
    consent_id = setup_bank_and_consent(gateway)
    first = gateway.referrals.submit_referral(
        idem=idem("SubmitReferral", "r-1", fingerprint="a"),
        merchant=profile(),
        consent_id=consent_id,
        bank_ids=["bank-a"],
    )
    again = gateway.referrals.submit_referral(
        idem=idem("SubmitReferral", "r-1", fingerprint="a"),
        merchant=profile(),
        consent_id=consent_id,
        bank_ids=["bank-a"],
    )
    assert again.referral_id == first.referral_id
    assert again.cases[0].envelope == first.cases[0].envelope
    with pytest.raises(AlreadyExists, match="already used for a different SubmitReferral"):
        gateway.referrals.submit_referral(
            idem=idem("SubmitReferral", "r-1", fingerprint="b"),
            merchant=profile(),
            consent_id=consent_id,
            bank_ids=["bank-a"],
        )


def test_consent_revoked_while_signing_writes_nothing(
    data_dir: Path, database_url: str | None
) -> None:
    """The write transaction re-checks consent: a revocation that lands between the read and
    the write refuses the referral, and no row of it is left behind."""
    holder: dict[str, Gateway] = {}
    consent_ids: list[str] = []

    def revoking_encoder(payload: ReferralPayload) -> bytes:
        holder["gw"].consents.revoke_consent(
            idem=idem("RevokeConsent"), consent_id=consent_ids[0], reason="merchant asked"
        )
        return encode_referral_payload(payload)

    database = Database(url=database_url or sqlite_url(data_dir))
    data_dir.mkdir(parents=True, exist_ok=True)
    database.create_schema()
    gateway = Gateway(
        database=database,
        keyring=KeyRing.open(data_dir / "keys"),
        encode_referral=revoking_encoder,
        encode_alert=encode_alert_payload,
        encode_statement=encode_statement_payload,
        statement_case_ids=statement_case_ids,
        blacklist=blacklist_network(data_dir, database),
    )
    holder["gw"] = gateway
    consent_ids.append(setup_bank_and_consent(gateway))
    before = row_counts(database)
    with pytest.raises(FailedPrecondition, match="consent stopped being ACTIVE"):
        gateway.referrals.submit_referral(
            idem=idem("SubmitReferral"),
            merchant=profile(),
            consent_id=consent_ids[0],
            bank_ids=["bank-a"],
        )
    after = row_counts(database)
    # Only the revocation (an idempotency record; the consent row is updated in place) differs.
    assert after["referrals"] == before["referrals"] == 0
    assert after["financing_cases"] == before["financing_cases"] == 0
    assert after["case_events"] == before["case_events"] == 0
    assert after["idempotency_keys"] == before["idempotency_keys"] + 1


def submit(gateway: Gateway, consent_id: str, bank_ids: list[str]) -> Referral:
    return gateway.referrals.submit_referral(
        idem=idem("SubmitReferral"), merchant=profile(), consent_id=consent_id, bank_ids=bank_ids
    )


def elsewhere(data_dir: Path, database_url: str | None) -> Gateway:
    """A second gateway on the same database, as another process or replica is."""
    return open_gateway(ServerConfig(data_dir=data_dir, database_url=database_url))


def test_a_submission_answers_with_what_it_stored(gateway: Gateway) -> None:
    """The answer is built from what was written, not read back: it must be what a read finds,
    pushes and sequences included."""
    consent_id = setup_bank_and_consent(gateway)
    gateway.partners.register_partner(
        idem=idem("RegisterPartner"),
        partner_id="bank-b",
        display_name="Bank B",
        endpoint="bank-b.example:8443",
        policy=None,
        decision_public_key=b"",
    )
    consent = gateway.consents.record_consent(
        idem=idem("RecordConsent"),
        platform_merchant_id="m-1001",
        bank_ids=["bank-a", "bank-b"],
        data_scopes=ALL,
        purpose=ConsentPurpose.CREDIT_REFERRAL,
        expires_at=datetime.now(UTC) + timedelta(days=30),
        evidence_reference="form-2",
    )
    first = submit(gateway, consent_id, ["bank-a"])
    referral = submit(gateway, consent.consent_id, ["bank-b", "bank-a"])
    assert gateway.referrals.get_referral(referral.referral_id) == referral
    assert [c.bank_id for c in referral.cases] == ["bank-b", "bank-a"]
    assert referral.cases[0].sequence > first.cases[0].sequence
    assert list(referral.pushes) == [referral.cases[0].case_id]  # only bank-b takes pushes
    assert referral.pushes[referral.cases[0].case_id].sequence > 0


def test_a_consent_revoked_elsewhere_is_refused_at_the_write(
    gateway: Gateway, data_dir: Path, database_url: str | None
) -> None:
    """This process's copy of the consent still says ACTIVE; the write reads it again."""
    consent_id = setup_bank_and_consent(gateway)
    submit(gateway, consent_id, ["bank-a"])  # the consent is now in this process's copy
    elsewhere(data_dir, database_url).consents.revoke_consent(
        idem=idem("RevokeConsent"), consent_id=consent_id, reason="merchant asked"
    )
    before = row_counts(gateway.database)
    with pytest.raises(FailedPrecondition, match="REVOKED") as refused:
        submit(gateway, consent_id, ["bank-a"])
    assert [v.type for v in refused.value.violations] == ["CONSENT_NOT_LIVE"]
    assert row_counts(gateway.database) == before


def test_a_bank_suspended_elsewhere_is_refused_at_the_write(
    gateway: Gateway, data_dir: Path, database_url: str | None
) -> None:
    """This process's copy of the partners is younger than its max age and still says ACTIVE."""
    consent_id = setup_bank_and_consent(gateway)
    submit(gateway, consent_id, ["bank-a"])
    elsewhere(data_dir, database_url).partners.suspend_partner(
        idem=Idempotency(
            caller="admin", method="SuspendPartner", request_id="s-1", fingerprint="x"
        ),
        partner_id="bank-a",
        reason="audit",
    )
    before = row_counts(gateway.database)
    with pytest.raises(FailedPrecondition) as refused:
        submit(gateway, consent_id, ["bank-a"])
    assert [(v.type, v.subject) for v in refused.value.violations] == [
        ("PARTNER_SUSPENDED", "partners/bank-a")
    ]
    assert row_counts(gateway.database) == before


def test_a_policy_changed_elsewhere_is_signed_anew(
    gateway: Gateway, data_dir: Path, database_url: str | None
) -> None:
    """This process's copy of the bank still has the old policy; the write sees the bank's row
    changed and the referral is signed again under the new one."""
    consent_id = setup_bank_and_consent(gateway)
    first = submit(gateway, consent_id, ["bank-a"])
    assert first.cases[0].expires_at - first.created_at == timedelta(days=30)
    elsewhere(data_dir, database_url).partners.update_partner(
        idem=Idempotency(caller="admin", method="UpdatePartner", request_id="u-1", fingerprint="x"),
        partner_id="bank-a",
        changes=PartnerChanges(policy=EligibilityPolicy(referral_ttl_days=7)),
    )
    second = submit(gateway, consent_id, ["bank-a"])
    assert second.cases[0].expires_at - second.created_at == timedelta(days=7)
    assert gateway.referrals.get_referral(second.referral_id) == second


def test_a_listing_made_elsewhere_is_seen_at_the_write(
    gateway: Gateway, data_dir: Path, database_url: str | None
) -> None:
    """This process's blacklist index is younger than its max age and does not have the
    listing; the write sees the log moved on, and the bank (which refuses listed merchants)
    gets nothing."""
    consent_id = setup_bank_and_consent(gateway)
    submit(gateway, consent_id, ["bank-a"])
    other = elsewhere(data_dir, database_url)
    other.blacklist.report_default(
        idem=idem("ReportDefault"),
        reporter_bank_id="bank-a",
        kind=IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE,
        raw_identifier=profile().identity.unified_social_credit_code,
        reason=ListingReason.FRAUD,
        outstanding_fen=100_000,
        default_date=business_date(utc_now()) - timedelta(days=30),
        evidence_case_id="",
    )
    before = row_counts(gateway.database)
    with pytest.raises(FailedPrecondition) as refused:
        submit(gateway, consent_id, ["bank-a"])
    assert [v.type for v in refused.value.violations] == ["BLACKLISTED"]
    assert row_counts(gateway.database) == before


def test_partner_policy_round_trips_through_storage(gateway: Gateway) -> None:
    policy = EligibilityPolicy(
        allowed_region_codes=("440000",),
        excluded_region_codes=("440300",),
        min_years_registered=3,
        allowed_tiers=frozenset({MembershipTier.FREE, MembershipTier.GOLD_SUPPLIER}),
        min_score=612,
        min_credit_line_fen=1_000_000,
        max_credit_line_fen=30_000_000,
        allow_amount_above_offer=True,
        platform_share_floor_bps=3500,
        platform_share_ceiling_bps=6000,
        exposure_cap_fen=9_000_000_000,
        blacklist_action=BlacklistAction.FLAG,
        referral_ttl_days=14,
        ordered_delivery=True,
    )
    setup_bank_and_consent(gateway, policy=policy)
    [stored] = gateway.partners.list_partners(page_size=10, page_token="", state=None).items
    assert stored.policy == policy


def test_reopening_the_data_directory_keeps_everything(data_dir: Path) -> None:
    config = ServerConfig(data_dir=data_dir)
    first = open_gateway(config)
    consent_id = setup_bank_and_consent(first)
    referral = first.referrals.submit_referral(
        idem=idem("SubmitReferral"),
        merchant=profile(),
        consent_id=consent_id,
        bank_ids=["bank-a"],
    )
    keyid = first.referrals.published_keys()[0].keyid
    second = open_gateway(config)
    assert second.referrals.get_referral(referral.referral_id) == referral
    assert second.referrals.published_keys()[0].keyid == keyid


def test_banks_receive_the_canonical_credit_code(gateway: Gateway) -> None:
    consent_id = setup_bank_and_consent(gateway)
    raw = profile()
    typed = replace(
        raw,
        identity=replace(
            raw.identity,
            unified_social_credit_code=f"  {raw.identity.unified_social_credit_code.lower()} ",
        ),
    )
    referral = gateway.referrals.submit_referral(
        idem=idem("SubmitReferral"), merchant=typed, consent_id=consent_id, bank_ids=["bank-a"]
    )
    payload = referral_pb2.ReferralPayload.FromString(referral.cases[0].envelope.payload)
    assert payload.merchant.identity.unified_social_credit_code == (
        raw.identity.unified_social_credit_code
    )


def test_reasons_reach_a_bank_only_for_shared_sections(gateway: Gateway) -> None:
    """An IDENTITY-only consent: the bank gets the score and grade, but no reason restating
    trade, membership or verification data it was not allowed to see."""
    consent_id = setup_bank_and_consent(gateway, scopes=[DataScope.IDENTITY])
    referral = gateway.referrals.submit_referral(
        idem=idem("SubmitReferral"),
        merchant=profile(),
        consent_id=consent_id,
        bank_ids=["bank-a"],
    )
    payload = referral_pb2.ReferralPayload.FromString(referral.cases[0].envelope.payload)
    assert not payload.merchant.HasField("reputation")
    assert not payload.merchant.HasField("qualification")
    assert payload.assessment.score == referral.assessment.score
    assert list(payload.assessment.reasons) == []
    # The platform, which owns the data, still sees why.
    assert referral.assessment.reasons


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_expiry_sweep_moves_undecided_cases_once(data_dir: Path, database_url: str | None) -> None:
    clock = MovableClock()
    data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(url=database_url or sqlite_url(data_dir))
    database.create_schema()
    gateway = Gateway(
        database=database,
        keyring=KeyRing.open(data_dir / "keys", clock=clock),
        encode_referral=encode_referral_payload,
        encode_alert=encode_alert_payload,
        encode_statement=encode_statement_payload,
        statement_case_ids=statement_case_ids,
        blacklist=blacklist_network(data_dir, database, clock),
        clock=clock,
    )
    consent_id = setup_bank_and_consent(gateway)
    referral = gateway.referrals.submit_referral(
        idem=idem("SubmitReferral"), merchant=profile(), consent_id=consent_id, bank_ids=["bank-a"]
    )
    assert gateway.financing.expire_due() == 0  # still valid
    clock.now += timedelta(days=30, seconds=1)  # the default policy's TTL is 30 days
    assert gateway.financing.expire_due(batch=1) == 1
    assert gateway.financing.expire_due() == 0  # a second sweeper finds nothing left
    detail = gateway.financing.get_financing_case(
        bank_id="bank-a", case_id=referral.cases[0].case_id
    )
    assert detail.case.state is FinancingState.EXPIRED
    assert (detail.history[-1].actor, detail.history[-1].from_state) == (
        "gateway",
        FinancingState.REFERRED,
    )
