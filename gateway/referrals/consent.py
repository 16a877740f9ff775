"""The merchant's consent: which banks may receive which of its data, for what purpose, until
when. A referral needs a live consent covering every bank it goes to.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from sqlmodel import Session

from gateway._transactions import (
    Idempotency,
    Transactions,
    raise_all,
    utc_now,
)
from gateway.domain.consent import (
    MAX_CONSENT_DURATION,
    Consent,
    ConsentPurpose,
    ConsentState,
)
from gateway.domain.ids import new_id
from gateway.domain.merchant import DataScope
from gateway.domain.partner import partner_id_problem
from gateway.domain.validation import text_problems
from gateway.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from gateway.store import repository as repo
from gateway.store.db import Database

MAX_BANKS_PER_REFERRAL = 20
MERCHANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CACHED_CONSENTS = 10_000  # about 1 KiB each


class ConsentCache:
    """Recently used consents, so a merchant's next referral under the same consent reads none.

    A consent never changes once recorded but to be revoked, and a referral's write reads the
    revocation and expiry again under a lock (``repository.consent_windows_for_share``), so a
    copy cannot let a revoked consent through: it can only save the read before signing.
    """

    def __init__(self, *, database: Database, size: int = CACHED_CONSENTS) -> None:
        self._db = database
        self._size = size
        self._consents: OrderedDict[str, Consent] = OrderedDict()
        self._lock = threading.Lock()

    def forget(self, consent_id: str) -> None:
        """Drop a copy found stale at a write (revoked, or expired), so the next read is fresh."""
        with self._lock:
            self._consents.pop(consent_id, None)

    def get(self, consent_id: str) -> Consent | None:
        with self._lock:
            if (consent := self._consents.get(consent_id)) is not None:
                self._consents.move_to_end(consent_id)
                return consent
        with self._db.read_connection() as connection:
            consent = repo.consent_by_id(connection, consent_id)
        if consent is not None and consent.revoked_at is None:
            with self._lock:
                self._consents[consent_id] = consent
                while len(self._consents) > self._size:
                    self._consents.popitem(last=False)
        return consent


class Consents:
    def __init__(self, *, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._tx = Transactions(database=database, clock=clock)

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
        if (earlier := self._tx.replayed(idem, load_consent)) is not None:
            return earlier
        now = self._clock()
        problems = merchant_id_problems("platform_merchant_id", platform_merchant_id)
        problems += bank_list_problems("bank_ids", bank_ids)
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
        problems += text_problems("evidence_reference", evidence_reference, max_length=256)
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

        return self._tx.idempotent(idem, replay=load_consent, act=act)

    def revoke_consent(self, *, idem: Idempotency, consent_id: str, reason: str) -> Consent:
        problems = [] if consent_id else [FieldViolation("consent_id", "required")]
        problems += text_problems("reason", reason, max_length=500)
        if problems:
            raise InvalidArgument(problems)

        def act(session: Session, now: datetime) -> tuple[str, Consent]:
            consent = load_consent(session, consent_id, for_update=True)
            if consent.revoked_at is not None:
                raise FailedPrecondition.single(
                    "CONSENT_ALREADY_REVOKED",
                    f"consents/{consent_id}",
                    f"consent was already revoked at {consent.revoked_at.isoformat()}",
                )
            revoked = replace(consent, revoked_at=now, revocation_reason=reason.strip())
            repo.save_consent(session, revoked)
            return consent_id, revoked

        return self._tx.idempotent(idem, replay=load_consent, act=act)

    def consent_state(self, consent: Consent) -> ConsentState:
        return consent.state(self._clock())


def merchant_id_problems(field: str, value: str) -> list[FieldViolation]:
    if not value:
        return [FieldViolation(field, "required")]
    if not MERCHANT_ID_PATTERN.fullmatch(value):
        return [FieldViolation(field, "must be 1..64 characters of [A-Za-z0-9._-]")]
    return []


def bank_list_problems(field: str, bank_ids: Sequence[str]) -> list[FieldViolation]:
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


def load_consent(session: Session, consent_id: str, *, for_update: bool = False) -> Consent:
    consent = repo.get_consent(session, consent_id, for_update=for_update)
    if consent is None:
        raise NotFound("consent", consent_id)
    return consent
