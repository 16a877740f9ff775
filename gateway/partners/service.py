"""The partner registry: register, update, suspend and list the partner banks, each with its
eligibility policy, push endpoint and decision key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import Session

from gateway._transactions import (
    Idempotency,
    Transactions,
    raise_all,
    utc_now,
)
from gateway.domain import paging
from gateway.domain.paging import Page
from gateway.domain.partner import (
    Partner,
    PartnerState,
    partner_id_problem,
    validate_partner_fields,
)
from gateway.domain.policy import EligibilityPolicy, validate_policy
from gateway.domain.validation import text_problems
from gateway.errors import (
    AlreadyExists,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from gateway.store import repository as repo
from gateway.store.db import Database


@dataclass(frozen=True, slots=True, kw_only=True)
class PartnerChanges:
    display_name: str | None = None
    endpoint: str | None = None
    policy: EligibilityPolicy | None = None
    decision_public_key: bytes | None = None


class PartnerRegistry:
    def __init__(
        self,
        *,
        database: Database,
        clock: Callable[[], datetime] = utc_now,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = database
        self._tx = Transactions(database=database, clock=clock)
        self._on_change = on_change  # after a partner's row changed (caches of partner states)

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

        partner = self._tx.idempotent(idem, replay=_load_partner, act=act)
        self._on_change()
        return partner

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
            current = require_partner(session, partner_id, for_update=True)
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

        partner = self._tx.idempotent(idem, replay=_load_partner, act=act)
        self._on_change()
        return partner

    def suspend_partner(self, *, idem: Idempotency, partner_id: str, reason: str) -> Partner:
        problems = []
        if (problem := partner_id_problem(partner_id)) is not None:
            problems.append(FieldViolation("partner_id", problem))
        problems += text_problems("reason", reason, max_length=500)
        if problems:
            raise InvalidArgument(problems)

        def act(session: Session, now: datetime) -> tuple[str, Partner]:
            current = require_partner(session, partner_id, for_update=True)
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

        partner = self._tx.idempotent(idem, replay=_load_partner, act=act)
        self._on_change()
        return partner

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


def require_partner(session: Session, partner_id: str, *, for_update: bool = False) -> Partner:
    partner = repo.get_partner(session, partner_id, for_update=for_update)
    if partner is None:
        raise NotFound("partner", partner_id)
    return partner


def _load_partner(session: Session, partner_id: str) -> Partner:
    return require_partner(session, partner_id)
