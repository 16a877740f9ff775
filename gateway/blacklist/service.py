"""The blacklist network's use cases: report, check, appeal, expire, and the platform's enforcement
events. The log they append to, and its proofs, are :mod:`gateway.blacklist.log`.

Like every capability's use cases, nothing here knows about gRPC. The financing side meets the
blacklist in one place, :meth:`BlacklistNetwork.record_default_in` (and its counterpart
:meth:`BlacklistNetwork.end_default_in`), called inside the loan event's own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session

from colending_core import (
    PSEUDONYM_BYTES,
    IdentifierError,
    IdentifierKind,
    decode_leaf,
    pseudonym,
)
from gateway._transactions import (
    BUSINESS_TZ,
    Idempotency,
    Transactions,
    business_date,
    raise_all,
    require_active_partner,
    utc_now,
)
from gateway.blacklist.index import ListedIndex
from gateway.blacklist.log import BlacklistLog
from gateway.domain import blacklist as rules_
from gateway.domain import paging
from gateway.domain.blacklist import (
    AppealOutcome,
    BlacklistChange,
    BlacklistEntry,
    BlacklistRules,
    ChangeType,
    ListingReason,
)
from gateway.domain.financing import FinancingState
from gateway.domain.ids import new_id
from gateway.domain.referral import FinancingCase
from gateway.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from gateway.partners.cache import PartnerCache
from gateway.signing.keyring import KeyRing
from gateway.store import blacklist_repository as bl
from gateway.store import repository as repo
from gateway.store.blacklist_repository import EnforcementEvent
from gateway.store.db import Database
from gateway.store.log_store import DatabaseHashStore

RESTRICT = "restrict_store"
LIFT = "lift_restriction"
# States of a case that has lent money (a report needs one as evidence).
_LENT = frozenset(
    {
        FinancingState.DISBURSED,
        FinancingState.REPAYING,
        FinancingState.OVERDUE,
        FinancingState.DEFAULTED,
        FinancingState.RECOVERED,
        FinancingState.WRITTEN_OFF,
        FinancingState.SETTLED,
    }
)
_DEFAULTED = frozenset(
    {FinancingState.DEFAULTED, FinancingState.RECOVERED, FinancingState.WRITTEN_OFF}
)
# A case in one of these has ended: its default (if any) has an end date.
CASE_ENDED = frozenset(
    {FinancingState.RECOVERED, FinancingState.WRITTEN_OFF, FinancingState.SETTLED}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Borrower:
    """One borrower to check: a raw identifier or an SDK-computed pseudonym."""

    kind: IdentifierKind | None = None
    raw: str = ""
    pseudonym: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    index: int
    pseudonym: bytes
    entries: list[BlacklistEntry]


@dataclass(frozen=True, slots=True, kw_only=True)
class EnforcementPage:
    events: list[EnforcementEvent]
    next_page_token: str


class BlacklistNetwork:
    def __init__(
        self,
        *,
        database: Database,
        log_keyring: KeyRing,
        network_key: bytes,
        rules: BlacklistRules = BlacklistRules(),  # noqa: B008  (frozen, so sharing is safe)
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._network_key = network_key
        self._rules = rules
        self._clock = clock
        self._tx = Transactions(database=database, clock=clock)
        self.log = BlacklistLog(database=database, log_keyring=log_keyring, clock=clock)
        # What checks read: this process's copy of the listed pseudonyms, kept up by the log.
        self.listed = ListedIndex(database=database)
        self.log.on_change(self.listed.follow)
        # Whether a checking bank is active, without a read per check.
        self.partners = PartnerCache(database=database)

    @property
    def rules(self) -> BlacklistRules:
        return self._rules

    # --- pseudonyms ----------------------------------------------------------------------

    def pseudonym_of(self, kind: IdentifierKind, raw: str) -> bytes:
        """The borrower's pseudonym; ``IdentifierError`` names the broken rule."""
        return pseudonym(self._network_key, kind, raw)

    def _borrower_pseudonym(self, field: str, borrower: Borrower) -> bytes | FieldViolation:
        if borrower.kind is None:
            if len(borrower.pseudonym) != PSEUDONYM_BYTES:
                return FieldViolation(f"{field}.pseudonym", f"must be {PSEUDONYM_BYTES} bytes")
            return borrower.pseudonym
        try:
            return self.pseudonym_of(borrower.kind, borrower.raw)
        except IdentifierError as error:
            return FieldViolation(f"{field}.raw.value", str(error))

    # --- reports -------------------------------------------------------------------------

    def report_default(
        self,
        *,
        idem: Idempotency,
        reporter_bank_id: str,
        kind: IdentifierKind | None,
        raw_identifier: str,
        reason: ListingReason | None,
        outstanding_fen: int,
        default_date: date | None,
        evidence_case_id: str,
        shape_problems: Sequence[FieldViolation] = (),
    ) -> BlacklistChange:
        today = business_date(self._clock())
        problems = rules_.report_problems(
            outstanding_fen=outstanding_fen, default_date=default_date, today=today
        )
        borrower_pseudonym = b""
        if kind is None:
            problems.append(FieldViolation("borrower.kind", "required"))
        else:
            try:
                borrower_pseudonym = self.pseudonym_of(kind, raw_identifier)
            except IdentifierError as error:
                problems.append(FieldViolation("borrower.value", str(error)))
        if reason is None:
            problems.append(FieldViolation("reason", "required"))
        raise_all(shape_problems, problems)
        assert kind is not None
        assert reason is not None
        assert default_date is not None

        def act(session: Session, now: datetime) -> tuple[str, BlacklistChange]:
            require_active_partner(session, reporter_bank_id)
            ended_on: date | None = default_date  # without a case, the default date is the end
            if evidence_case_id:
                case = repo.get_case(session, evidence_case_id, for_update=True)
                # Another bank's case is reported as absent, so case ids cannot be probed.
                if case is None or case.bank_id != reporter_bank_id:
                    raise NotFound("financing case", evidence_case_id)
                _check_evidence(case, kind, borrower_pseudonym, reason)
                # A case that has ended fixes the end; one still running leaves it open until
                # it ends (see end_default_in).
                ended_on = business_date(case.updated_at) if case.state in CASE_ENDED else None
                _lock_log(session)  # lock order: case row, then the log, then entry rows
                if (existing := bl.in_force_for_case(session, case.case_id)) is not None:
                    raise AlreadyExists(
                        "blacklist entry",
                        existing.entry_id,
                        f"financing case {case.case_id} already has entry {existing.entry_id} "
                        "in force",
                    )
            entry = rules_.new_entry(
                entry_id=new_id("bl"),
                pseudonym=borrower_pseudonym,
                identifier_kind=kind,
                reporter_bank_id=reporter_bank_id,
                reason=reason,
                outstanding_fen=outstanding_fen,
                default_date=default_date,
                evidence_case_id=evidence_case_id,
                default_ended_on=ended_on,
                now=now,
                rules=self._rules,
                tz=BUSINESS_TZ,
            )
            if entry.expires_at is not None and entry.expires_at <= now:
                # It would be born expired: listed and lifted in one breath, forever in the log.
                raise InvalidArgument.single(
                    "default_date",
                    f"the default ended on {ended_on}; its {self._rules.retention_years}-year "
                    f"retention ended on {entry.expires_at.date().isoformat()}",
                )
            change = self._log(
                session, ChangeType.ADDED, entry, None, now, case_id=evidence_case_id
            )
            return f"{change.log_index}", change

        change = self._tx.idempotent(idem, replay=_replay_change, act=act)
        self.log.changed()
        return change

    def record_default_in(
        self, session: Session, *, case: FinancingCase, outstanding_fen: int, default_date: date
    ) -> BlacklistChange | None:
        """A case just defaulted: report its borrower, in the caller's transaction.

        The bank does not need to report a defaulted case itself; if it already did (for
        fraud, say), that entry stands and nothing is added.
        """
        if bl.in_force_for_case(session, case.case_id) is not None:
            return None
        now = self._clock()
        entry = rules_.new_entry(
            entry_id=new_id("bl"),
            pseudonym=case.merchant_pseudonym,
            identifier_kind=IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE,
            reporter_bank_id=case.bank_id,
            reason=ListingReason.DEFAULT_OVERDUE,
            outstanding_fen=outstanding_fen,
            default_date=default_date,
            evidence_case_id=case.case_id,
            default_ended_on=None,
            now=now,
            rules=self._rules,
            tz=BUSINESS_TZ,
        )
        return self._log(session, ChangeType.ADDED, entry, None, now, case_id=case.case_id)

    def end_default_in(
        self, session: Session, *, case_id: str, ended_on: date, recovered: bool
    ) -> BlacklistChange | None:
        """The case ended (repaid, recovered or written off): start the retention clock of its
        entry in force, if it has one, or remove the entry per the rules."""
        current = bl.in_force_for_case(session, case_id)
        if current is None:
            return None
        _lock_log(session)  # lock order: case row, then the log, then entry rows
        current = bl.get_entry(session, current.entry_id, for_update=True)
        assert current is not None
        step = rules_.end_default(
            current, ended_on=ended_on, recovered=recovered, rules=self._rules, tz=BUSINESS_TZ
        )
        if step is None:
            return None
        change_type, entry = step
        return self._log(session, change_type, entry, current, self._clock(), case_id=case_id)

    def require_active_partner(self, bank_id: str) -> None:
        with self._db.reading() as session:
            require_active_partner(session, bank_id)

    # --- checks --------------------------------------------------------------------------

    def check(
        self, borrowers: Sequence[Borrower], *, partner_id: str | None = None
    ) -> tuple[list[CheckResult], int]:
        """Per borrower, the entries in force; plus the log size the answer reflects, from the
        in-memory index (``gateway.blacklist.index``: this process's own changes at once,
        other processes' within half a second). ``partner_id``, the calling bank, must be
        active (``gateway.partners.cache``, as fresh).
        """
        if not 1 <= len(borrowers) <= rules_.MAX_BATCH:
            raise InvalidArgument.single(
                "borrowers", f"must hold 1 to {rules_.MAX_BATCH} borrowers, got {len(borrowers)}"
            )
        pseudonyms: list[bytes] = []
        problems = []
        for i, borrower in enumerate(borrowers):
            value = self._borrower_pseudonym(f"borrowers[{i}]", borrower)
            if isinstance(value, FieldViolation):
                problems.append(value)
            else:
                pseudonyms.append(value)
        raise_all((), problems)
        if partner_id is not None:
            self.partners.require_active(partner_id)
        found, size = self.entries_in_force(pseudonyms)
        results = [
            CheckResult(index=i, pseudonym=p, entries=found.get(p, []))
            for i, p in enumerate(pseudonyms)
        ]
        return results, size

    def entries_in_force(
        self, pseudonyms: Sequence[bytes]
    ) -> tuple[dict[bytes, list[BlacklistEntry]], int]:
        """The entries in force of each listed one of ``pseudonyms`` (the others are absent),
        and the log size the answer reflects; as fresh as the index (see ``check``)."""
        listed, size = self.listed.listed(pseudonyms)
        found: dict[bytes, list[BlacklistEntry]] = {}
        unread = []
        for p in listed:
            if (entries := self.listed.cached_entries(p)) is not None:
                found[p] = entries
            else:
                unread.append(p)
        if unread:  # a hit not seen lately reads its entries (lifted since: none)
            with self._db.reading() as session:
                read = bl.in_force_by_pseudonym(session, unread)
            read |= {p: [] for p in unread if p not in read}
            self.listed.remember(read, read_at_size=size)
            found |= read
        return {p: entries for p, entries in found.items() if entries}, size

    def in_force_in(self, session: Session, pseudonym: bytes) -> list[BlacklistEntry]:
        return bl.in_force_by_pseudonym(session, [pseudonym]).get(pseudonym, [])

    # --- appeals -------------------------------------------------------------------------

    def file_appeal(
        self, *, idem: Idempotency, filed_by: str, entry_id: str, grounds: str
    ) -> BlacklistEntry:
        problems = [] if entry_id else [FieldViolation("entry_id", "required")]
        raise_all((), problems + rules_.text_problems("grounds", grounds))

        def act(session: Session, now: datetime) -> tuple[str, BlacklistEntry]:
            current = _load_entry(session, entry_id)
            entry = rules_.file_appeal(
                current,
                appeal_id=new_id("apl"),
                filed_by=filed_by,
                grounds=grounds,
                now=now,
                rules=self._rules,
            )
            self._log(session, ChangeType.APPEALED, entry, current, now)
            return entry_id, entry

        entry = self._tx.idempotent(idem, replay=_replay_entry, act=act)
        self.log.changed()
        return entry

    def resolve_appeal(
        self,
        *,
        idem: Idempotency,
        resolved_by: str,
        resolver_bank_id: str | None,
        entry_id: str,
        outcome: AppealOutcome | None,
        reason: str,
    ) -> BlacklistEntry:
        """``resolver_bank_id`` is the calling bank, or None for the operator."""
        problems = [] if entry_id else [FieldViolation("entry_id", "required")]
        if outcome is None:
            problems.append(FieldViolation("outcome", "required: UPHELD or REMOVED"))
        raise_all((), problems + rules_.text_problems("reason", reason))
        assert outcome is not None

        def act(session: Session, now: datetime) -> tuple[str, BlacklistEntry]:
            current = _load_entry(session, entry_id)
            if resolver_bank_id is not None and resolver_bank_id != current.reporter_bank_id:
                raise PermissionDenied(
                    f"only the reporter ({current.reporter_bank_id}) or the operator may "
                    f"resolve an appeal on entry {entry_id}"
                )
            change_type, entry = rules_.resolve_appeal(
                current, outcome=outcome, resolved_by=resolved_by, reason=reason, now=now
            )
            self._log(session, change_type, entry, current, now)
            return entry_id, entry

        entry = self._tx.idempotent(idem, replay=_replay_entry, act=act)
        self.log.changed()
        return entry

    # --- the sweep -----------------------------------------------------------------------

    def sweep(self, *, batch: int = 500) -> int:
        """Expire entries past retention and decide appeals past their deadline.

        Safe in several replicas at once: each entry is re-read under lock and changed only if
        it is still due, so a second sweeper finds nothing left to do.
        """
        changed = 0
        while True:
            with self._db.writing() as session:
                _lock_log(session)  # before any entry row: the order every writer keeps
                now = self._clock()
                due = bl.due_to_expire(session, now=now, limit=batch)
                lapsed = bl.appeals_due(session, now=now, limit=batch)
                for stale in {e.entry_id: e for e in [*due, *lapsed]}.values():
                    current = bl.get_entry(session, stale.entry_id, for_update=True)
                    if current is None or current.status is not stale.status:
                        continue
                    step = rules_.sweep_step(current, now=now)
                    if step is None:
                        continue
                    self._log(session, step[0], step[1], current, now)
                    changed += 1
            self.log.changed()
            if len(due) < batch and len(lapsed) < batch:
                return changed

    # --- enforcement ---------------------------------------------------------------------

    def enforcement_events(
        self, *, page_size: int, page_token: str, platform_merchant_id: str = ""
    ) -> EnforcementPage:
        size = paging.page_size(page_size)
        after = paging.decode_int_token(page_token, "enforcement") if page_token else 0
        with self._db.reading() as session:
            events = bl.enforcement_after(
                session, after=after, limit=size, platform_merchant_id=platform_merchant_id
            )
        last = events[-1].sequence if events else after
        token = paging.encode_token("enforcement", last) if last else ""
        return EnforcementPage(events=events, next_page_token=token)

    # --- internals -----------------------------------------------------------------------

    def _log(
        self,
        session: Session,
        change_type: ChangeType,
        entry: BlacklistEntry,
        previous: BlacklistEntry | None,
        now: datetime,
        *,
        case_id: str = "",
    ) -> BlacklistChange:
        change = bl.log_change(
            session, change_type=change_type, entry=entry, previous=previous, now=now
        )
        was_in_force = previous is not None and previous.in_force
        others = [
            e for e in self.in_force_in(session, entry.pseudonym) if e.entry_id != entry.entry_id
        ]
        if entry.in_force and not was_in_force:
            # Restrict once per borrower: a second entry adds nothing the platform must do.
            if not others:
                self._enforce(session, entry, RESTRICT, _restrict_reason(entry), case_id, now)
        # Lift only when no other entry keeps the borrower listed.
        elif was_in_force and not entry.in_force and not others:
            reason = f"blacklist entry {entry.entry_id} is {entry.status.name}"
            self._enforce(session, entry, LIFT, reason, case_id, now)
        return change

    def _enforce(
        self,
        session: Session,
        entry: BlacklistEntry,
        action: str,
        reason: str,
        case_id: str,
        now: datetime,
    ) -> None:
        for merchant_id in bl.merchants_with_pseudonym(session, entry.pseudonym):
            bl.add_enforcement(
                session,
                event_id=new_id("enf"),
                platform_merchant_id=merchant_id,
                action=action,
                reason=reason,
                blacklist_entry_id=entry.entry_id,
                case_id=case_id or entry.evidence_case_id,
                now=now,
            )


def _restrict_reason(entry: BlacklistEntry) -> str:
    if entry.evidence_case_id:
        return (
            f"{entry.reporter_bank_id} listed the borrower of financing case "
            f"{entry.evidence_case_id} ({entry.reason.name})"
        )
    return f"{entry.reporter_bank_id} listed the borrower ({entry.reason.name})"


def _check_evidence(
    case: FinancingCase, kind: IdentifierKind, borrower: bytes, reason: ListingReason
) -> None:
    if kind is not IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE or borrower != case.merchant_pseudonym:
        raise InvalidArgument.single(
            "borrower.value",
            f"is not the unified social credit code of financing case {case.case_id}'s merchant",
        )
    if case.state not in _LENT:
        raise FailedPrecondition.single(
            "CASE_NOT_LENT",
            f"financingCases/{case.case_id}",
            f"case is {case.state.name}; only a case that has lent money is evidence",
        )
    if reason is ListingReason.DEFAULT_OVERDUE and case.state not in _DEFAULTED:
        raise FailedPrecondition.single(
            "CASE_NOT_DEFAULTED",
            f"financingCases/{case.case_id}",
            f"case is {case.state.name}; report DEFAULT_OVERDUE once the case is DEFAULTED",
        )


def _lock_log(session: Session) -> None:
    """Serialise blacklist writers on PostgreSQL (a no-op on SQLite, which has one writer).

    Every writer takes its locks in one order, case row, then this, then entry rows, so two of
    them can wait on each other but never in a circle.
    """
    DatabaseHashStore(session=session).lock_for_append()


def _load_entry(session: Session, entry_id: str) -> BlacklistEntry:
    _lock_log(session)
    entry = bl.get_entry(session, entry_id, for_update=True)
    if entry is None:
        raise NotFound("blacklist entry", entry_id)
    return entry


def _replay_entry(session: Session, entry_id: str) -> BlacklistEntry:
    entry = bl.get_entry(session, entry_id)
    if entry is None:
        raise NotFound("blacklist entry", entry_id)
    return entry


def _replay_change(session: Session, log_index: str) -> BlacklistChange:
    """The change as first answered: the entry as its leaf states it, not as it stands now."""
    (first,) = bl.changes_from(session, start=int(log_index), limit=1)
    return BlacklistChange(
        log_index=first.log_index,
        change_type=first.change_type,
        entry=rules_.entry_from_leaf(decode_leaf(first.leaf).entry),
        logged_at=first.logged_at,
        leaf=first.leaf,
    )
