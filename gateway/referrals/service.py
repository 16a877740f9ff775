"""Referrals: a merchant's profile validated, scored against each bank's policy, checked against
its consent and the blacklist, signed per bank as a DSSE envelope and stored with its cases and
pushes in one transaction; then read, listed, withdrawn, and handed to banks by pull and stream
and acknowledged. Also the referral signing keys: published and rotated.
"""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session

from colending_core import REFERRAL_PAYLOAD_TYPE, IdentifierKind, normalize_uscc
from gateway._transactions import (
    RACE_RETRIES,
    Idempotency,
    Transactions,
    business_date,
    check_request_id,
    raise_all,
    require_active_partner,
    utc_now,
)
from gateway.blacklist.service import BlacklistNetwork
from gateway.delivery.dispatcher import Dispatcher
from gateway.domain import paging
from gateway.domain.consent import (
    Consent,
    ConsentState,
    coverage_problems,
)
from gateway.domain.delivery import DeliveryState, DeliveryTask
from gateway.domain.financing import (
    UNDECIDED,
    FinancingState,
    transition,
)
from gateway.domain.ids import new_id
from gateway.domain.merchant import MerchantProfile
from gateway.domain.paging import Page
from gateway.domain.partner import Partner, PartnerState
from gateway.domain.policy import BlacklistAction
from gateway.domain.referral import (
    NONCE_BYTES,
    FinancingCase,
    Referral,
    ReferralPayload,
    ReferralState,
    SignedPayload,
    redact,
)
from gateway.domain.scoring import assess, check_eligibility, disclosed, make_offer
from gateway.domain.validation import text_problems, validate_profile
from gateway.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PreconditionViolation,
    Unavailable,
)
from gateway.financing.cases import (
    CaseDetail,
    case_detail,
    load_bank_case,
    move_case,
    refuse_if_expired,
)
from gateway.referrals.consent import ConsentCache, bank_list_problems
from gateway.signing.keyring import KeyRing, PublishedKey
from gateway.store import blacklist_repository as bl
from gateway.store import delivery_repository as outbox
from gateway.store import repository as repo
from gateway.store.db import Database
from gateway.store.group_commit import Staged
from gateway.store.log_store import DatabaseHashStore

# Retired signing keys stay published this long: the longest referral TTL a policy allows.
KEY_RETENTION = timedelta(days=365)


class ReferralEncoder(Protocol):
    def __call__(self, payload: ReferralPayload, /) -> bytes: ...


class Referrals:
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
        self._consents = ConsentCache(database=database)
        self._dispatcher = dispatcher
        # Wakes local referral streams once a submission commits.
        self._referrals_written = threading.Condition()

    def submit_referral(
        self,
        *,
        idem: Idempotency,
        merchant: MerchantProfile,
        consent_id: str,
        bank_ids: Sequence[str],
        shape_problems: Sequence[FieldViolation] = (),
    ) -> Referral:
        check_request_id(idem.request_id)
        # A new request id, the common case, costs no read of the idempotency keys: the claim
        # in the write finds a repeat. A refusal looks first, so a repeat is answered as the
        # first was even if today's rules would refuse it.
        try:
            for _ in range(RACE_RETRIES):
                submission = self._prepare(
                    merchant=merchant,
                    consent_id=consent_id,
                    bank_ids=bank_ids,
                    shape_problems=shape_problems,
                )
                try:
                    submitted: Referral | None = self._tx.retrying_staged(
                        functools.partial(self._stage, idem, submission), batched=True
                    )
                    break
                except _StaleCopy:
                    # Another process changed a bank or the blacklist since this one's copy:
                    # read them again and sign anew, so nothing goes out under an old policy.
                    self._blacklist.partners.changed()
                    self._blacklist.listed.refresh()
            else:
                raise Unavailable("the banks or the blacklist kept changing; retry")
        except (InvalidArgument, NotFound, FailedPrecondition):
            if (earlier := self._tx.replayed(idem, _load_referral)) is not None:
                return earlier
            raise
        if submitted is None:  # the request id was claimed before
            if (earlier := self._tx.replayed(idem, _load_referral)) is None:
                raise Unavailable("the first request with this request_id did not finish; retry")
            return earlier
        self._referrals_changed()
        return submitted

    def _prepare(
        self,
        *,
        merchant: MerchantProfile,
        consent_id: str,
        bank_ids: Sequence[str],
        shape_problems: Sequence[FieldViolation],
    ) -> _Submission:
        """Validated, scored against each bank, checked and signed: everything but the write.
        The consent, the banks and the blacklist come from this process's copies
        (``ConsentCache``, ``PartnerCache``, ``ListedIndex``); the write checks again what may
        have changed since (consent revoked, bank suspended or changed, merchant listed)."""
        now = self._clock()
        as_of = business_date(now)
        problems = validate_profile(merchant, as_of=as_of, field_prefix="merchant")
        if not consent_id:
            problems.append(FieldViolation("consent_id", "required"))
        problems += bank_list_problems("bank_ids", bank_ids)
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
        consent = self._consents.get(consent_id)
        if consent is None:
            raise NotFound("consent", consent_id)
        partners = self._blacklist.partners.known(bank_ids)
        for bank_id in bank_ids:
            if bank_id not in partners:
                raise NotFound("partner", bank_id)
        found, listed_at_size = self._blacklist.entries_in_force([merchant_pseudonym])
        listed = found.get(merchant_pseudonym, [])

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
        return _Submission(
            referral=referral,
            consent=consent,
            partners=partners,
            merchant_pseudonym=merchant_pseudonym,
            listed=len(listed),
            listed_at_size=listed_at_size,
        )

    def _stage(
        self, idem: Idempotency, submission: _Submission, session: Session
    ) -> Staged[Referral | None]:
        return Staged(rows=(idem, submission), write=self._write_batch)

    def _write_batch(
        self, session: Session, batch: Sequence[tuple[Idempotency, _Submission]]
    ) -> list[Referral | Exception | None]:
        """A group-commit batch of submissions, one statement per table for them all: the
        checks that must hold at the write, the claims of the request ids, then the inserts.
        Each gets its referral as written, None if its request id was claimed before (a
        repeat), or the refusal; a refused or repeated one writes nothing."""
        at = self._clock()
        # One batch at a time across processes (PostgreSQL): it orders the referral inserts,
        # and it lets a suspension waiting on a bank's row in before the next batch locks it.
        repo.lock_referral_inserts(session)
        # The consents, banks or blacklist may have changed since the copies were made; the
        # read locks keep the rows from changing again until these referrals are committed.
        windows = repo.consent_windows_for_share(
            session, sorted({sub.referral.consent_id for _, sub in batch})
        )
        states = repo.partner_states_for_share(
            session, sorted({c.bank_id for _, sub in batch for c in sub.referral.cases})
        )
        listed_now = self._listed_at_write(session, [sub for _, sub in batch])
        outcomes: list[Referral | Exception | None] = []
        claims: dict[tuple[str, str, str], int] = {}  # each key's first unit in the batch
        for i, (idem, sub) in enumerate(batch):
            refusal = _refusal_at_write(sub, windows, states, listed_now, at)
            outcomes.append(refusal)
            if refusal is None:
                claims.setdefault((idem.caller, idem.method, idem.request_id), i)
            else:  # the next submission under this consent reads it afresh
                self._consents.forget(sub.referral.consent_id)
        claimed = repo.claim_idempotency_keys(
            session,
            [
                {
                    "caller": batch[i][0].caller,
                    "method": batch[i][0].method,
                    "request_id": batch[i][0].request_id,
                    "fingerprint": batch[i][0].fingerprint,
                    "resource_id": batch[i][1].referral.referral_id,
                    "created_at": at,
                }
                for _, i in sorted(claims.items())  # in key order: no deadlock on them
            ],
        )
        new = [i for key, i in claims.items() if key in claimed]
        referrals = [batch[i][1].referral for i in new]
        pushes = [_pushes(batch[i][1], at=at) for i in new]
        sequences = repo.insert_referrals(session, referrals) if referrals else {}
        task_sequences = outbox.insert_tasks(session, [t for ts in pushes for t in ts])
        for i, referral, tasks in zip(new, referrals, pushes, strict=True):
            outcomes[i] = replace(
                referral,
                cases=tuple(replace(c, sequence=sequences[c.case_id]) for c in referral.cases),
                pushes={t.case_id: replace(t, sequence=task_sequences[t.task_id]) for t in tasks},
            )
        # The others (not refused, not new) repeat a request id claimed before: None.
        return outcomes

    def _listed_at_write(
        self, session: Session, batch: Sequence[_Submission]
    ) -> dict[bytes, int] | None:
        """The entries in force now of each merchant whose copy of the blacklist predates the
        log's size (None when every copy is current, the usual case: one cheap read)."""
        size = DatabaseHashStore(session=session).size()
        behind = [s.merchant_pseudonym for s in batch if s.listed_at_size < size]
        if not behind:
            return None
        found = bl.in_force_by_pseudonym(session, behind)
        return {p: len(found.get(p, [])) for p in behind}

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
        problems += text_problems("reason", reason, max_length=500)
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
        problems += text_problems("bank_reference", bank_reference, max_length=128)
        if problems:
            raise InvalidArgument(problems)

        def act(session: Session, now: datetime) -> tuple[str, CaseDetail]:
            require_active_partner(session, bank_id)
            case = load_bank_case(session, case_id, bank_id, for_update=True)
            subject = f"financingCases/{case_id}"
            refuse_if_expired(case, now)
            target = transition(case_id, case.state, FinancingState.ACKNOWLEDGED)
            consent = repo.get_consent(session, case.consent_id)
            if consent is None or consent.state(now) is not ConsentState.ACTIVE:
                raise FailedPrecondition.single(
                    "CONSENT_NOT_LIVE",
                    subject,
                    "the merchant's consent is no longer ACTIVE; the referral must not be used",
                )
            return move_case(
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

        return self._tx.idempotent(idem, replay=case_detail, act=act)

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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Submission:
    """A referral signed and ready to write, with what it was checked against."""

    referral: Referral
    consent: Consent
    partners: Mapping[str, Partner]
    merchant_pseudonym: bytes
    listed: int  # entries in force, as the blacklist copy had them
    listed_at_size: int  # the log size that copy reflected


class _StaleCopy(Exception):
    """A bank's policy or the merchant's listing changed since the copy the referral was
    signed from: sign it again from fresh copies."""


def _refusal_at_write(
    sub: _Submission,
    windows: Mapping[str, tuple[datetime, datetime | None]],
    states: Mapping[str, tuple[PartnerState, datetime]],
    listed_now: Mapping[bytes, int] | None,
    at: datetime,
) -> Exception | None:
    consent_id = sub.referral.consent_id
    if (window := windows.get(consent_id)) is None:
        return NotFound("consent", consent_id)
    consent = replace(sub.consent, expires_at=window[0], revoked_at=window[1])
    if (state := consent.state(at)) is not ConsentState.ACTIVE:
        return FailedPrecondition.single(
            "CONSENT_NOT_LIVE",
            f"consents/{consent_id}",
            f"consent stopped being ACTIVE (it is {state.name}) before the referral was written",
        )
    for case in sub.referral.cases:
        bank_state, changed_at = states.get(case.bank_id, (None, None))
        if bank_state is not PartnerState.ACTIVE:
            return FailedPrecondition.single(
                "PARTNER_SUSPENDED",
                f"partners/{case.bank_id}",
                "partner was suspended while the referral was being signed",
            )
        if changed_at != sub.partners[case.bank_id].updated_at:
            return _StaleCopy(f"partners/{case.bank_id} changed")
    if listed_now is not None and listed_now.get(sub.merchant_pseudonym, sub.listed) != sub.listed:
        return _StaleCopy("the merchant's blacklist entries changed")
    return None


def _pushes(sub: _Submission, *, at: datetime) -> list[DeliveryTask]:
    """A push per case to a bank with an endpoint; the others pull or stream."""
    return [
        DeliveryTask(
            task_id=new_id("dlv"),
            sequence=0,  # assigned by the database
            referral_id=case.referral_id,
            case_id=case.case_id,
            bank_id=case.bank_id,
            endpoint=endpoint,
            ordered=sub.partners[case.bank_id].policy.ordered_delivery,
            state=DeliveryState.PENDING,
            attempt_count=0,
            next_attempt_at=at,
            created_at=at,
        )
        for case in sub.referral.cases
        if (endpoint := sub.partners[case.bank_id].endpoint)
    ]


def _dedupe(items: list[PreconditionViolation]) -> list[PreconditionViolation]:
    return list(dict.fromkeys(items))


def _load_referral(session: Session, referral_id: str) -> Referral:
    referral = repo.get_referral(session, referral_id)
    if referral is None:
        raise NotFound("referral", referral_id)
    pushes = outbox.tasks_for_cases(session, [c.case_id for c in referral.cases])
    return replace(referral, pushes=pushes)
