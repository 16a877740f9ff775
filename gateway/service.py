"""The gateway's use cases: domain rules + storage + signing, behind one typed facade.

Servicers in ``gateway.api`` convert protobuf to the values here and back; nothing in this
module knows about gRPC or generated code. The only protobuf-shaped step, encoding a referral
payload to bytes, is injected (``encode_referral``) so the exact signed bytes are produced by
the same converter the SDK's parser mirrors.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import text
from sqlmodel import Session

from gateway import evidence
from gateway._transactions import (
    Idempotency,
    Transactions,
    business_date,
    raise_all,
    replayed_in,
    require_active_partner,
    utc_now,
)
from gateway.blacklist import CASE_ENDED, BlacklistNetwork
from gateway.delivery import Dispatcher
from gateway.domain import paging
from gateway.domain.consent import (
    MAX_CONSENT_DURATION,
    Consent,
    ConsentPurpose,
    ConsentState,
    coverage_problems,
)
from gateway.domain.decision import (
    CounterOfferAnswer,
    Decision,
    DecisionOutcome,
    LoanTerms,
    decision_problems,
    policy_refusals,
)
from gateway.domain.delivery import DeliveryState, DeliveryTask
from gateway.domain.financing import (
    EXPIRABLE,
    UNDECIDED,
    FinancingState,
    transition,
)
from gateway.domain.identifiers import normalize_uscc
from gateway.domain.ids import new_id
from gateway.domain.ledger import Ledger, LoanEvent, apply_event, event_problems
from gateway.domain.merchant import DataScope, MerchantProfile
from gateway.domain.money import split_by_bps
from gateway.domain.partner import (
    Partner,
    PartnerState,
    partner_id_problem,
    validate_partner_fields,
)
from gateway.domain.policy import BlacklistAction, EligibilityPolicy, validate_policy
from gateway.domain.portfolio import CaseFigures, PortfolioStats, tally
from gateway.domain.referral import (
    NONCE_BYTES,
    CaseEvent,
    FinancingCase,
    Referral,
    ReferralPayload,
    ReferralState,
    SignedPayload,
    redact,
)
from gateway.domain.scoring import assess, check_eligibility, disclosed, make_offer
from gateway.domain.validation import validate_profile
from gateway.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PreconditionViolation,
)
from gateway.evidence import SignedStatement
from gateway.signing.keyring import KeyRing, PublishedKey
from gateway.store import codec
from gateway.store import delivery_repository as outbox
from gateway.store import repository as repo
from gateway.store.db import Database
from partners.sdk._dsse import REFERRAL_PAYLOAD_TYPE
from partners.sdk._pseudonym import IdentifierKind

T = TypeVar("T")

# Retired signing keys stay published this long: the longest referral TTL a policy allows.
KEY_RETENTION = timedelta(days=365)
MAX_BANKS_PER_REFERRAL = 20
MERCHANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ReferralEncoder(Protocol):
    def __call__(self, payload: ReferralPayload, /) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PartnerChanges:
    display_name: str | None = None
    endpoint: str | None = None
    policy: EligibilityPolicy | None = None
    decision_public_key: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseDetail:
    case: FinancingCase
    history: tuple[CaseEvent, ...]


class Gateway:
    def __init__(
        self,
        *,
        database: Database,
        keyring: KeyRing,
        encode_referral: ReferralEncoder,
        blacklist: BlacklistNetwork,
        clock: Callable[[], datetime] = utc_now,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self._db = database
        self._keyring = keyring
        self._blacklist = blacklist
        self._encode_referral = encode_referral
        self._clock = clock
        self._tx = Transactions(database=database, clock=clock)
        self._dispatcher = dispatcher
        # Wakes local referral streams once a submission commits.
        self._referrals_written = threading.Condition()

    @property
    def blacklist(self) -> BlacklistNetwork:
        return self._blacklist

    @property
    def database(self) -> Database:
        return self._db

    def database_answers(self) -> bool:
        """Whether the database answers a trivial query now (the health check)."""
        try:
            with self._db.reading() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    @property
    def dispatcher(self) -> Dispatcher | None:
        """Pushes referrals to banks with a receiver endpoint; run by ``serve``."""
        return self._dispatcher

    # --- partners ------------------------------------------------------------------------

    def register_partner(
        self,
        *,
        idem: Idempotency,
        partner_id: str,
        display_name: str,
        endpoint: str,
        policy: EligibilityPolicy | None,
        decision_public_key: bytes,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> Partner:
        problems = []
        if (problem := partner_id_problem(partner_id)) is not None:
            problems.append(FieldViolation("partner_id", problem))
        problems += validate_partner_fields(
            display_name=display_name,
            endpoint=endpoint,
            decision_public_key=decision_public_key,
        )
        policy = policy or EligibilityPolicy()
        problems += validate_policy(policy, field_prefix="policy")
        raise_all(shape_problems, problems)

        def act(session: Session, now: datetime) -> tuple[str, Partner]:
            if repo.get_partner(session, partner_id) is not None:
                raise AlreadyExists(
                    "partner", partner_id, f"partner {partner_id!r} is already registered"
                )
            partner = Partner(
                partner_id=partner_id,
                display_name=display_name.strip(),
                endpoint=endpoint,
                state=PartnerState.ACTIVE,
                policy=policy,
                decision_public_key=decision_public_key,
                created_at=now,
                updated_at=now,
            )
            repo.save_partner(session, partner)
            return partner_id, partner

        return self._tx.idempotent(idem, replay=_load_partner, act=act)

    def update_partner(
        self,
        *,
        idem: Idempotency,
        partner_id: str,
        changes: PartnerChanges,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> Partner:
        problems = []
        if (problem := partner_id_problem(partner_id)) is not None:
            problems.append(FieldViolation("partner.partner_id", problem))
        if changes == PartnerChanges():
            problems.append(FieldViolation("update_mask", "must name at least one field"))
        problems += [
            v
            for v in validate_partner_fields(
                display_name=changes.display_name if changes.display_name is not None else "x",
                endpoint=changes.endpoint or "",
                decision_public_key=changes.decision_public_key or b"",
                prefix="partner.",
            )
        ]
        if changes.policy is not None:
            problems += validate_policy(changes.policy, field_prefix="partner.policy")
        raise_all(shape_problems, problems)

        def act(session: Session, now: datetime) -> tuple[str, Partner]:
            current = _require_partner(session, partner_id, for_update=True)
            updated = replace(
                current,
                display_name=(changes.display_name or current.display_name).strip(),
                endpoint=current.endpoint if changes.endpoint is None else changes.endpoint,
                policy=changes.policy or current.policy,
                decision_public_key=(
                    current.decision_public_key
                    if changes.decision_public_key is None
                    else changes.decision_public_key
                ),
                updated_at=now,
            )
            repo.save_partner(session, updated)
            return partner_id, updated

        return self._tx.idempotent(idem, replay=_load_partner, act=act)

    def suspend_partner(self, *, idem: Idempotency, partner_id: str, reason: str) -> Partner:
        problems = []
        if (problem := partner_id_problem(partner_id)) is not None:
            problems.append(FieldViolation("partner_id", problem))
        problems += _text_problems("reason", reason, max_length=500)
        if problems:
            raise InvalidArgument(problems)

        def act(session: Session, now: datetime) -> tuple[str, Partner]:
            current = _require_partner(session, partner_id, for_update=True)
            if current.state is PartnerState.SUSPENDED:
                return partner_id, current  # suspending twice changes nothing
            updated = replace(
                current,
                state=PartnerState.SUSPENDED,
                suspension_reason=reason.strip(),
                updated_at=now,
            )
            repo.save_partner(session, updated)
            return partner_id, updated

        return self._tx.idempotent(idem, replay=_load_partner, act=act)

    def list_partners(
        self, *, page_size: int, page_token: str, state: PartnerState | None
    ) -> Page[Partner]:
        size = paging.page_size(page_size)
        after = paging.decode_token(page_token, "partners") if page_token else ""
        with self._db.reading() as session:
            rows = repo.list_partners(session, after_id=after, limit=size + 1, state=state)
        items = rows[:size]
        token = paging.encode_token("partners", items[-1].partner_id) if len(rows) > size else ""
        return Page(items=items, next_page_token=token)

    # --- consent -------------------------------------------------------------------------

    def record_consent(
        self,
        *,
        idem: Idempotency,
        platform_merchant_id: str,
        bank_ids: Sequence[str],
        data_scopes: Sequence[DataScope | None],
        purpose: ConsentPurpose | None,
        expires_at: datetime | None,
        evidence_reference: str,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> Consent:
        # A retry of an accepted request gets its answer even after "now" has moved on.
        if (earlier := self._tx.replayed(idem, _load_consent)) is not None:
            return earlier
        now = self._clock()
        problems = _merchant_id_problems("platform_merchant_id", platform_merchant_id)
        problems += _bank_list_problems("bank_ids", bank_ids)
        if not data_scopes:
            problems.append(FieldViolation("data_scopes", "required: at least DATA_SCOPE_IDENTITY"))
        elif any(s is None for s in data_scopes):
            problems.append(FieldViolation("data_scopes", "DATA_SCOPE_UNSPECIFIED is not a scope"))
        elif DataScope.IDENTITY not in data_scopes:
            problems.append(
                FieldViolation(
                    "data_scopes",
                    "must include DATA_SCOPE_IDENTITY: a referral "
                    "cannot be sent without saying who the merchant is",
                )
            )
        if purpose is None:
            problems.append(FieldViolation("purpose", "required"))
        if expires_at is None:
            problems.append(FieldViolation("expires_at", "required"))
        elif expires_at <= now:
            problems.append(FieldViolation("expires_at", "must be in the future"))
        elif expires_at > now + MAX_CONSENT_DURATION:
            problems.append(FieldViolation("expires_at", "must be at most 3 years ahead"))
        problems += _text_problems("evidence_reference", evidence_reference, max_length=256)
        raise_all(shape_problems, problems)
        assert purpose is not None
        assert expires_at is not None

        def act(session: Session, at: datetime) -> tuple[str, Consent]:
            known = repo.get_partners(session, bank_ids)
            for bank_id in bank_ids:
                if bank_id not in known:
                    raise NotFound("partner", bank_id)
            consent = Consent(
                consent_id=new_id("cns"),
                platform_merchant_id=platform_merchant_id,
                bank_ids=tuple(bank_ids),
                data_scopes=frozenset(s for s in data_scopes if s is not None),
                purpose=purpose,
                granted_at=at,
                expires_at=expires_at,
                evidence_reference=evidence_reference.strip(),
            )
            repo.save_consent(session, consent)
            return consent.consent_id, consent

        return self._tx.idempotent(idem, replay=_load_consent, act=act)

    def revoke_consent(self, *, idem: Idempotency, consent_id: str, reason: str) -> Consent:
        problems = [] if consent_id else [FieldViolation("consent_id", "required")]
        problems += _text_problems("reason", reason, max_length=500)
        if problems:
            raise InvalidArgument(problems)

        def act(session: Session, now: datetime) -> tuple[str, Consent]:
            consent = _load_consent(session, consent_id, for_update=True)
            if consent.revoked_at is not None:
                raise FailedPrecondition.single(
                    "CONSENT_ALREADY_REVOKED",
                    f"consents/{consent_id}",
                    f"consent was already revoked at {consent.revoked_at.isoformat()}",
                )
            revoked = replace(consent, revoked_at=now, revocation_reason=reason.strip())
            repo.save_consent(session, revoked)
            return consent_id, revoked

        return self._tx.idempotent(idem, replay=_load_consent, act=act)

    def consent_state(self, consent: Consent) -> ConsentState:
        return consent.state(self._clock())

    # --- referrals -----------------------------------------------------------------------

    def submit_referral(
        self,
        *,
        idem: Idempotency,
        merchant: MerchantProfile,
        consent_id: str,
        bank_ids: Sequence[str],
        shape_problems: Sequence[FieldViolation] = (),
    ) -> Referral:
        now = self._clock()
        as_of = business_date(now)
        # One read: is this a replay (answered as first, even if today's rules would refuse
        # it), and if not, what it needs before signing.
        with self._db.reading() as session:
            if (earlier := replayed_in(session, idem, _load_referral)) is not None:
                return earlier
            problems = validate_profile(merchant, as_of=as_of, field_prefix="merchant")
            if not consent_id:
                problems.append(FieldViolation("consent_id", "required"))
            problems += _bank_list_problems("bank_ids", bank_ids)
            raise_all(shape_problems, problems)
            # Banks receive the canonical form (upper case, no stray spaces), whatever was typed.
            identity = merchant.identity
            merchant = replace(
                merchant,
                identity=replace(
                    identity,
                    unified_social_credit_code=normalize_uscc(identity.unified_social_credit_code),
                ),
            )
            merchant_pseudonym = self._blacklist.pseudonym_of(
                IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE,
                merchant.identity.unified_social_credit_code,
            )
            consent = repo.get_consent(session, consent_id)
            partners = repo.get_partners(session, bank_ids)
            listed = self._blacklist.in_force_in(session, merchant_pseudonym)
        if consent is None:
            raise NotFound("consent", consent_id)
        for bank_id in bank_ids:
            if bank_id not in partners:
                raise NotFound("partner", bank_id)

        # Scoring and signing happen here, outside the write transaction, so the database
        # lock is held only for the inserts.
        assessment = assess(merchant, as_of=as_of)
        refusals: list[PreconditionViolation] = []
        offers = {}
        for bank_id in bank_ids:
            partner = partners[bank_id]
            subject = f"partners/{bank_id}"
            if partner.state is PartnerState.SUSPENDED:
                refusals.append(
                    PreconditionViolation(
                        "PARTNER_SUSPENDED", subject, "partner is suspended and receives nothing"
                    )
                )
            refusals += coverage_problems(
                consent,
                merchant_id=merchant.identity.platform_merchant_id,
                bank_id=bank_id,
                now=now,
            )
            if listed and partner.policy.blacklist_action is BlacklistAction.REFUSE:
                refusals.append(
                    PreconditionViolation(
                        "BLACKLISTED",
                        f"{subject}/policy.blacklist_action",
                        f"the merchant has {len(listed)} blacklist entr"
                        f"{'y' if len(listed) == 1 else 'ies'} in force and this bank refuses "
                        "listed merchants",
                    )
                )
            for v in check_eligibility(merchant, assessment, partner.policy, as_of=as_of):
                refusals.append(
                    PreconditionViolation(v.type, f"{subject}/{v.subject}", v.description)
                )
            offer = make_offer(merchant, assessment, partner.policy)
            if offer is not None:
                offers[bank_id] = offer
            elif not any(r.subject.startswith(f"{subject}/") for r in refusals):
                refusals.append(
                    PreconditionViolation(
                        "ELIGIBILITY", f"{subject}/policy", "no credit line can be offered"
                    )
                )
        if refusals:
            raise FailedPrecondition(
                _dedupe(refusals),
                message="referral refused: "
                + "; ".join(f"{r.subject}: {r.description}" for r in _dedupe(refusals)),
            )

        referral_id = new_id("ref")
        shared = consent.data_scopes
        redacted = redact(merchant, shared)
        cases = []
        for bank_id in bank_ids:
            ttl = timedelta(days=partners[bank_id].policy.referral_ttl_days)
            payload = ReferralPayload(
                referral_id=referral_id,
                case_id=new_id("case"),
                bank_id=bank_id,
                issued_at=now,
                expires_at=now + ttl,
                nonce=secrets.token_bytes(NONCE_BYTES),
                consent_id=consent_id,
                shared_scopes=shared,
                merchant=redacted,
                assessment=disclosed(assessment, shared),
                offer=offers[bank_id],
                blacklist_flagged=bool(listed),
            )
            envelope = self._keyring.sign(
                self._encode_referral(payload), payload_type=REFERRAL_PAYLOAD_TYPE
            )
            cases.append(
                FinancingCase(
                    case_id=payload.case_id,
                    sequence=0,  # assigned by the database
                    referral_id=referral_id,
                    bank_id=bank_id,
                    platform_merchant_id=merchant.identity.platform_merchant_id,
                    consent_id=consent_id,
                    state=FinancingState.REFERRED,
                    envelope=SignedPayload(
                        payload=envelope.payload,
                        payload_type=envelope.payload_type,
                        signatures=tuple((s.keyid, s.sig) for s in envelope.signatures),
                    ),
                    offer=offers[bank_id],
                    expires_at=payload.expires_at,
                    merchant_pseudonym=merchant_pseudonym,
                    created_at=now,
                    updated_at=now,
                )
            )
        referral = Referral(
            referral_id=referral_id,
            platform_merchant_id=merchant.identity.platform_merchant_id,
            consent_id=consent_id,
            assessment=assessment,
            state=ReferralState.ACTIVE,
            created_at=now,
            expires_at=max(c.expires_at for c in cases),
            cases=tuple(cases),
        )

        def act(session: Session, at: datetime) -> tuple[str, Referral]:
            # Consent or a bank may have changed while we signed; the locks keep them from
            # changing again until this referral is committed.
            current = repo.get_consent(session, consent_id, for_update=True)
            if current is None or current.state(at) is not ConsentState.ACTIVE:
                raise FailedPrecondition.single(
                    "CONSENT_NOT_LIVE",
                    f"consents/{consent_id}",
                    "consent stopped being ACTIVE while the referral was being signed",
                )
            for bank_id, partner in repo.get_partners(session, bank_ids, for_update=True).items():
                if partner.state is not PartnerState.ACTIVE:
                    raise FailedPrecondition.single(
                        "PARTNER_SUSPENDED",
                        f"partners/{bank_id}",
                        "partner was suspended while the referral was being signed",
                    )
            repo.insert_referral(session, referral)
            for case in referral.cases:
                endpoint = partners[case.bank_id].endpoint
                if endpoint:  # the bank takes pushes; others pull or stream
                    outbox.insert_task(
                        session,
                        DeliveryTask(
                            task_id=new_id("dlv"),
                            sequence=0,  # assigned by the database
                            referral_id=referral_id,
                            case_id=case.case_id,
                            bank_id=case.bank_id,
                            endpoint=endpoint,
                            ordered=partners[case.bank_id].policy.ordered_delivery,
                            state=DeliveryState.PENDING,
                            attempt_count=0,
                            next_attempt_at=at,
                            created_at=at,
                        ),
                    )
            session.flush()
            return referral_id, _load_referral(session, referral_id)

        # Group commit on SQLite only: there every commit is an fsync behind one writer. On
        # PostgreSQL a batch would hold each unit's row locks until the last unit commits, and
        # batches of two replicas deadlock on them.
        submitted = self._tx.idempotent(
            idem, replay=_load_referral, act=act, batched=self._db.is_sqlite
        )
        self._referrals_changed()
        return submitted

    def _referrals_changed(self) -> None:
        self.wake_referral_streams()
        if self._dispatcher is not None:
            self._dispatcher.notify()

    def wake_referral_streams(self) -> None:
        """Every live stream waiting in ``wait_for_referrals`` looks again now."""
        with self._referrals_written:
            self._referrals_written.notify_all()

    def wait_for_referrals(self, timeout: float) -> None:
        """Block until a submission commits here or ``timeout`` seconds pass (live streams)."""
        with self._referrals_written:
            self._referrals_written.wait(timeout)

    # --- push delivery (operator) ----------------------------------------------------------

    def list_delivery_tasks(
        self, *, page_size: int, page_token: str, state: DeliveryState | None, bank_id: str
    ) -> Page[DeliveryTask]:
        size = paging.page_size(page_size)
        after = paging.decode_int_token(page_token, "deliveries") if page_token else 0
        with self._db.reading() as session:
            rows = outbox.list_tasks(
                session, after=after, limit=size + 1, state=state, bank_id=bank_id
            )
        items = rows[:size]
        token = paging.encode_token("deliveries", items[-1].sequence) if len(rows) > size else ""
        return Page(items=items, next_page_token=token)

    def requeue_delivery(self, *, idem: Idempotency, task_id: str) -> DeliveryTask:
        if not task_id:
            raise InvalidArgument.single("task_id", "required")

        def act(session: Session, now: datetime) -> tuple[str, DeliveryTask]:
            task = _load_task(session, task_id)
            if not outbox.requeue(session, task_id=task_id, now=now):
                raise FailedPrecondition.single(
                    "NOT_DEAD_LETTERED",
                    f"deliveryTasks/{task_id}",
                    f"delivery is {task.state.name}; only a dead letter can be re-queued",
                )
            return task_id, _load_task(session, task_id)

        task = self._tx.idempotent(idem, replay=_load_task, act=act)
        self._referrals_changed()
        return task

    def get_referral(self, referral_id: str) -> Referral:
        if not referral_id:
            raise InvalidArgument.single("referral_id", "required")
        with self._db.reading() as session:
            return _load_referral(session, referral_id)

    def list_referrals(
        self,
        *,
        page_size: int,
        page_token: str,
        platform_merchant_id: str,
        state: ReferralState | None,
    ) -> Page[Referral]:
        size = paging.page_size(page_size)
        before = paging.decode_int_token(page_token, "referrals") if page_token else None
        with self._db.reading() as session:
            rows = repo.list_referrals(
                session,
                before_seq=before,
                limit=size + 1,
                merchant_id=platform_merchant_id,
                state=state,
            )
        items = rows[:size]
        token = paging.encode_token("referrals", items[-1][0]) if len(rows) > size else ""
        return Page(items=[r for _, r in items], next_page_token=token)

    def withdraw_referral(self, *, idem: Idempotency, referral_id: str, reason: str) -> Referral:
        problems = [] if referral_id else [FieldViolation("referral_id", "required")]
        problems += _text_problems("reason", reason, max_length=500)
        if problems:
            raise InvalidArgument(problems)

        def act(session: Session, now: datetime) -> tuple[str, Referral]:
            referral = _load_referral(session, referral_id)
            subject = f"referrals/{referral_id}"
            if referral.state is ReferralState.WITHDRAWN:
                raise FailedPrecondition.single(
                    "REFERRAL_WITHDRAWN", subject, "referral is already withdrawn"
                )
            open_cases = [c for c in referral.cases if c.state in UNDECIDED]
            if not open_cases:
                states = ", ".join(f"{c.bank_id}: {c.state.name}" for c in referral.cases)
                raise FailedPrecondition.single(
                    "REFERRAL_DECIDED", subject, f"every case is past its decision ({states})"
                )
            for case in open_cases:
                repo.update_case(
                    session,
                    case,
                    to_state=transition(case.case_id, case.state, FinancingState.WITHDRAWN),
                    at=now,
                    actor=idem.caller,
                    request_id=idem.request_id,
                )
            repo.mark_referral_withdrawn(session, referral_id, reason.strip())
            session.flush()
            return referral_id, _load_referral(session, referral_id)

        return self._tx.idempotent(idem, replay=_load_referral, act=act)

    # --- the bank side -------------------------------------------------------------------

    def pull_referrals(
        self, *, bank_id: str, cursor: str, page_size: int
    ) -> tuple[list[FinancingCase], str]:
        size = paging.page_size(page_size)
        after = paging.decode_int_token(cursor, "cursor", field="cursor") if cursor else 0

        with self._db.reading() as session:
            require_active_partner(session, bank_id)
            # A read first: an idle poll or live stream must not take the write lock for nothing.
            if not repo.pending_cases_for_bank(
                session, bank_id=bank_id, after_seq=after, limit=1, now=self._clock(), lock=False
            ):
                return [], cursor

        def pull(session: Session) -> list[FinancingCase]:
            require_active_partner(session, bank_id)
            now = self._clock()
            cases = repo.pending_cases_for_bank(
                session, bank_id=bank_id, after_seq=after, limit=size, now=now
            )
            delivered = []
            for case in cases:
                if case.state is FinancingState.REFERRED:
                    repo.update_case(
                        session,
                        case,
                        to_state=FinancingState.DELIVERED,
                        at=now,
                        actor=f"partner/{bank_id}",
                        request_id="",
                        delivered_at=now,
                    )
                    case = replace(case, state=FinancingState.DELIVERED, delivered_at=now)
                delivered.append(case)
            return delivered

        delivered = self._tx.retrying(pull)
        next_cursor = self.cursor_after(delivered[-1]) if delivered else cursor
        return delivered, next_cursor

    @staticmethod
    def cursor_after(case: FinancingCase) -> str:
        return paging.encode_token("cursor", case.sequence)

    def acknowledge_referral(
        self, *, idem: Idempotency, bank_id: str, case_id: str, bank_reference: str
    ) -> CaseDetail:
        problems = [] if case_id else [FieldViolation("case_id", "required")]
        problems += _text_problems("bank_reference", bank_reference, max_length=128)
        if problems:
            raise InvalidArgument(problems)

        def act(session: Session, now: datetime) -> tuple[str, CaseDetail]:
            require_active_partner(session, bank_id)
            case = _load_bank_case(session, case_id, bank_id, for_update=True)
            subject = f"financingCases/{case_id}"
            _refuse_if_expired(case, now)
            target = transition(case_id, case.state, FinancingState.ACKNOWLEDGED)
            consent = repo.get_consent(session, case.consent_id)
            if consent is None or consent.state(now) is not ConsentState.ACTIVE:
                raise FailedPrecondition.single(
                    "CONSENT_NOT_LIVE",
                    subject,
                    "the merchant's consent is no longer ACTIVE; the referral must not be used",
                )
            return _move(
                session,
                case,
                to_state=target,
                now=now,
                actor=f"partner/{bank_id}",
                request_id=idem.request_id,
                acknowledged_at=now,
                delivered_at=case.delivered_at or now,
                bank_reference=bank_reference.strip(),
            )

        return self._tx.idempotent(idem, replay=_case_detail, act=act)

    def submit_decision(
        self,
        *,
        idem: Idempotency,
        bank_id: str,
        case_id: str,
        decision: Decision | None,
        signed: SignedStatement[Decision] | None = None,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> CaseDetail:
        """Approve, decline or counter-offer. ``decision`` may be None when ``signed`` carries
        it; a signed decision is verified against the bank's registered key and kept."""
        problems = [] if case_id else [FieldViolation("case_id", "required")]
        if decision is not None:
            problems += decision_problems(decision)
        elif signed is None:
            problems.append(FieldViolation("decision", "required"))
        raise_all(shape_problems, problems)

        def act(session: Session, now: datetime) -> tuple[str, CaseDetail]:
            # The partner row lock serialises this bank's decisions, so two approvals cannot
            # both fit under the exposure cap that only one of them fits under.
            partner = require_active_partner(session, bank_id, for_update=True)
            decided, kept = evidence.accept(
                session,
                signed,
                field="signed_decision",
                content_field="decision",
                given=decision,
                partner=partner,
                case_id=case_id,
                now=now,
            )
            if signed is not None:
                raise_all((), decision_problems(decided, prefix="signed_decision.payload.decision"))
            assert decided.outcome is not None
            target = DECISION_STATES[decided.outcome]
            case = _load_bank_case(session, case_id, bank_id, for_update=True)
            _refuse_if_expired(case, now)
            transition(case_id, case.state, target)
            values: dict[str, Any] = {
                "decision_json": codec.dump_decision(decided),
                "evidence": kept,
            }
            if decided.terms is not None:
                self._check_policy(session, partner, case, decided.terms)
                if target is FinancingState.APPROVED:
                    values.update(_agreed(decided.terms))
            return _move(
                session,
                case,
                to_state=target,
                now=now,
                actor=f"partner/{bank_id}",
                request_id=idem.request_id,
                **values,
            )

        return self._tx.idempotent(idem, replay=_case_detail, act=act)

    def respond_to_counter_offer(
        self,
        *,
        idem: Idempotency,
        case_id: str,
        answer: CounterOfferAnswer | None,
        reason: str,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> CaseDetail:
        problems = [] if case_id else [FieldViolation("case_id", "required")]
        if answer is None:
            problems.append(FieldViolation("answer", "required"))
        if len(reason) > 500:
            problems.append(FieldViolation("reason", "must be at most 500 characters"))
        raise_all(shape_problems, problems)
        target = (
            FinancingState.ACCEPTED
            if answer is CounterOfferAnswer.ACCEPT
            else FinancingState.REJECTED
        )

        def act(session: Session, now: datetime) -> tuple[str, CaseDetail]:
            found = repo.get_case(session, case_id)
            if found is None:
                raise NotFound("financing case", case_id)
            partner = _require_partner(session, found.bank_id, for_update=True)
            case = _load_bank_case(session, case_id, found.bank_id, for_update=True)
            _refuse_if_expired(case, now)
            transition(case_id, case.state, target)
            values: dict[str, Any] = {}
            if target is FinancingState.ACCEPTED:
                assert case.decision is not None
                assert case.decision.terms is not None
                # The bank's book may have filled up since it countered.
                self._check_policy(session, partner, case, case.decision.terms)
                values.update(_agreed(case.decision.terms))
            return _move(
                session,
                case,
                to_state=target,
                now=now,
                actor=idem.caller,
                request_id=idem.request_id,
                **values,
            )

        return self._tx.idempotent(idem, replay=_case_detail, act=act)

    def report_loan_event(
        self,
        *,
        idem: Idempotency,
        bank_id: str,
        case_id: str,
        event: LoanEvent | None,
        signed: SignedStatement[LoanEvent] | None = None,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> CaseDetail:
        """Record a loan event. ``event`` may be None when ``signed`` carries it; a signed event
        is verified against the bank's registered key and kept."""
        problems = [] if case_id else [FieldViolation("case_id", "required")]
        # The bank's business date may run ahead of UTC by up to a day (UTC+14 at most).
        latest_date = business_date(self._clock()) + timedelta(days=1)
        if event is not None:
            problems += event_problems(event, today=latest_date)
        elif signed is None:
            problems.append(FieldViolation("event", "required"))
        raise_all(shape_problems, problems)

        def act(session: Session, now: datetime) -> tuple[str, CaseDetail]:
            # Locked, so a decision key replaced meanwhile cannot verify this event afterwards.
            partner = require_active_partner(session, bank_id, for_update=True)
            reported, kept = evidence.accept(
                session,
                signed,
                field="signed_event",
                content_field="event",
                given=event,
                partner=partner,
                case_id=case_id,
                now=now,
            )
            if signed is not None:
                raise_all(
                    (),
                    event_problems(
                        reported, today=latest_date, prefix="signed_event.payload.event"
                    ),
                )
            case = _load_bank_case(session, case_id, bank_id, for_update=True)
            if case.agreed_terms is None:
                raise FailedPrecondition.single(
                    "ILLEGAL_TRANSITION",
                    f"financingCases/{case_id}",
                    f"case is {case.state.name}; loan events follow an approval or an "
                    "accepted counter-offer",
                )
            target, ledger = apply_event(
                case_id=case_id,
                state=case.state,
                ledger=case.ledger or Ledger(),
                terms=case.agreed_terms,
                event=reported,
            )
            assert reported.event_date is not None
            if target is FinancingState.DEFAULTED and case.state is not FinancingState.DEFAULTED:
                self._blacklist.record_default_in(
                    session,
                    case=case,
                    outstanding_fen=ledger.principal_outstanding_fen,
                    default_date=reported.event_date,
                )
            elif target in CASE_ENDED:
                # Repaid, recovered or written off: an entry on this case starts its retention
                # clock (or, repaid, is lifted where the network's rules say so).
                self._blacklist.end_default_in(
                    session,
                    case_id=case_id,
                    ended_on=reported.event_date,
                    recovered=target is FinancingState.RECOVERED,
                )
            return _move(
                session,
                case,
                to_state=target,
                now=now,
                actor=f"partner/{bank_id}",
                request_id=idem.request_id,
                loan_event=reported,
                evidence=kept,
                ledger_json=codec.dump_ledger(ledger),
                # What the bank has at stake now: its share of the principal still owed.
                bank_exposure_fen=split_by_bps(
                    ledger.principal_outstanding_fen, case.agreed_terms.bank_share_bps
                )[0],
            )

        detail = self._tx.idempotent(idem, replay=_case_detail, act=act)
        self._blacklist.changed()
        return detail

    def portfolio_stats(self, *, bank_id: str) -> tuple[list[PortfolioStats], PortfolioStats]:
        """Per bank (only ``bank_id`` if given) and overall."""
        if bank_id and (problem := partner_id_problem(bank_id)) is not None:
            raise InvalidArgument.single("bank_id", problem)
        with self._db.reading() as session:
            if bank_id:
                _require_partner(session, bank_id)
            figures = repo.case_figures(session, bank_id=bank_id)
        by_bank: dict[str, list[CaseFigures]] = {}
        for case in figures:
            by_bank.setdefault(case.bank_id, []).append(case)
        banks = [tally(bank, cases) for bank, cases in sorted(by_bank.items())]
        return banks, tally("", figures)

    def _check_policy(
        self, session: Session, partner: Partner, case: FinancingCase, terms: LoanTerms
    ) -> None:
        refusals = policy_refusals(
            terms,
            policy=partner.policy,
            offer=case.offer,
            committed_exposure_fen=repo.committed_exposure(session, partner.partner_id),
            subject=f"partners/{partner.partner_id}",
        )
        if refusals:
            raise FailedPrecondition(refusals)

    def get_financing_case(self, *, bank_id: str | None, case_id: str) -> CaseDetail:
        """One case with its history; ``bank_id`` None is the platform, which sees every case."""
        if not case_id:
            raise InvalidArgument.single("case_id", "required")
        with self._db.reading() as session:
            if bank_id is None:
                if repo.get_case(session, case_id) is None:
                    raise NotFound("financing case", case_id)
            else:
                _load_bank_case(session, case_id, bank_id)
            return _case_detail(session, case_id)

    def list_financing_cases(
        self,
        *,
        bank_id: str,
        page_size: int,
        page_token: str,
        state: FinancingState | None,
        platform_merchant_id: str,
    ) -> Page[FinancingCase]:
        """The bank's own cases, oldest first; histories are in GetFinancingCase."""
        size = paging.page_size(page_size)
        after = paging.decode_int_token(page_token, "cases") if page_token else 0
        with self._db.reading() as session:
            require_active_partner(session, bank_id)
            rows = repo.list_cases(
                session,
                bank_id=bank_id,
                after_seq=after,
                limit=size + 1,
                state=state,
                merchant_id=platform_merchant_id,
            )
        items = rows[:size]
        token = paging.encode_token("cases", items[-1].sequence) if len(rows) > size else ""
        return Page(items=items, next_page_token=token)

    def expire_due(self, *, batch: int = 500) -> int:
        """Move undecided cases past their validity to EXPIRED; returns how many moved.

        Safe in several replicas at once: each move is guarded on the state it read, and a
        case another sweeper (or a bank) moved first is simply left alone.
        """
        moved = 0
        while True:
            with self._db.writing() as session:
                now = self._clock()
                due = repo.due_for_expiry(session, states=EXPIRABLE, now=now, limit=batch)
                for case in due:
                    try:
                        with session.begin_nested():
                            repo.update_case(
                                session,
                                case,
                                to_state=FinancingState.EXPIRED,
                                at=now,
                                actor="gateway",
                                request_id="",
                            )
                        moved += 1
                    except repo.ConcurrentUpdate:
                        continue
            if len(due) < batch:
                return moved

    # --- signing keys --------------------------------------------------------------------

    def published_keys(self) -> list[PublishedKey]:
        return self._keyring.published_keys(now=self._clock(), retain_for=KEY_RETENTION)

    def rotate_signing_key(self, *, idem: Idempotency) -> PublishedKey:
        def act(session: Session, now: datetime) -> tuple[str, PublishedKey]:
            key = self._keyring.rotate()
            return key.keyid, key

        def replay(session: Session, keyid: str) -> PublishedKey:
            for key in self._keyring.published_keys(now=self._clock(), retain_for=KEY_RETENTION):
                if key.keyid == keyid:
                    return key
            raise NotFound("signing key", keyid)

        return self._tx.idempotent(idem, replay=replay, act=act)


# --- helpers ---------------------------------------------------------------------------------


def _text_problems(field: str, value: str, *, max_length: int) -> list[FieldViolation]:
    if not value.strip():
        return [FieldViolation(field, "required")]
    if len(value) > max_length:
        return [FieldViolation(field, f"must be at most {max_length} characters")]
    return []


def _merchant_id_problems(field: str, value: str) -> list[FieldViolation]:
    if not value:
        return [FieldViolation(field, "required")]
    if not MERCHANT_ID_PATTERN.fullmatch(value):
        return [FieldViolation(field, "must be 1..64 characters of [A-Za-z0-9._-]")]
    return []


def _bank_list_problems(field: str, bank_ids: Sequence[str]) -> list[FieldViolation]:
    if not bank_ids:
        return [FieldViolation(field, "required: at least one bank")]
    problems = []
    if len(bank_ids) > MAX_BANKS_PER_REFERRAL:
        problems.append(FieldViolation(field, f"at most {MAX_BANKS_PER_REFERRAL} banks"))
    if len(set(bank_ids)) != len(bank_ids):
        problems.append(FieldViolation(field, "must not repeat a bank"))
    for i, bank_id in enumerate(bank_ids):
        if (problem := partner_id_problem(bank_id)) is not None:
            problems.append(FieldViolation(f"{field}[{i}]", problem))
    return problems


def _move(
    session: Session,
    case: FinancingCase,
    *,
    to_state: FinancingState,
    now: datetime,
    actor: str,
    request_id: str,
    **values: Any,
) -> tuple[str, CaseDetail]:
    """Record one step of a case and answer with the case as it now stands."""
    repo.update_case(
        session, case, to_state=to_state, at=now, actor=actor, request_id=request_id, **values
    )
    session.flush()
    return case.case_id, _case_detail(session, case.case_id)


DECISION_STATES = {
    DecisionOutcome.APPROVE: FinancingState.APPROVED,
    DecisionOutcome.DECLINE: FinancingState.DECLINED,
    DecisionOutcome.COUNTER_OFFER: FinancingState.COUNTER_OFFERED,
}


def _agreed(terms: LoanTerms) -> dict[str, Any]:
    return {
        "agreed_terms_json": codec.dump_terms(terms),
        "bank_exposure_fen": terms.bank_amount_fen,
    }


def _refuse_if_expired(case: FinancingCase, now: datetime) -> None:
    """Nothing may be decided on a referral past its validity, even before the sweep runs."""
    if case.state in EXPIRABLE and case.expires_at <= now:
        raise FailedPrecondition.single(
            "REFERRAL_EXPIRED",
            f"financingCases/{case.case_id}",
            f"referral expired at {case.expires_at.isoformat()}",
        )


def _dedupe(items: list[PreconditionViolation]) -> list[PreconditionViolation]:
    return list(dict.fromkeys(items))


def _require_partner(session: Session, partner_id: str, *, for_update: bool = False) -> Partner:
    partner = repo.get_partner(session, partner_id, for_update=for_update)
    if partner is None:
        raise NotFound("partner", partner_id)
    return partner


def _load_partner(session: Session, partner_id: str) -> Partner:
    return _require_partner(session, partner_id)


def _load_consent(session: Session, consent_id: str, *, for_update: bool = False) -> Consent:
    consent = repo.get_consent(session, consent_id, for_update=for_update)
    if consent is None:
        raise NotFound("consent", consent_id)
    return consent


def _load_task(session: Session, task_id: str) -> DeliveryTask:
    task = outbox.get_task(session, task_id)
    if task is None:
        raise NotFound("delivery task", task_id)
    return task


def _load_referral(session: Session, referral_id: str) -> Referral:
    referral = repo.get_referral(session, referral_id)
    if referral is None:
        raise NotFound("referral", referral_id)
    pushes = outbox.tasks_for_cases(session, [c.case_id for c in referral.cases])
    return replace(referral, pushes=pushes)


def _load_bank_case(
    session: Session, case_id: str, bank_id: str, *, for_update: bool = False
) -> FinancingCase:
    case = repo.get_case(session, case_id, for_update=for_update)
    # Another bank's case is reported as absent, so ids cannot be probed.
    if case is None or case.bank_id != bank_id:
        raise NotFound("financing case", case_id)
    return case


def _case_detail(session: Session, case_id: str) -> CaseDetail:
    case = repo.get_case(session, case_id)
    if case is None:
        raise NotFound("financing case", case_id)
    return CaseDetail(case=case, history=tuple(repo.case_history(session, case_id)))
