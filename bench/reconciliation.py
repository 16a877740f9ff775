"""Daily reconciliation: how long a bank's signed day statement takes, per case, against the
pure arithmetic it rests on.

A book of ``--cases`` loans at one bank, each paid out and then repaid on ``--events`` days
(written straight into a fresh SQLite store, as ``bench blacklist`` bulk-loads entries), is
reconciled for ``--days`` consecutive business dates. Per day:

* baseline: ``gateway.domain.reconciliation.statement_lines`` over the same records already in
  memory (the replay of every case's events, in the same process);
* statement: ``Reconciliation.statement`` as the RPC runs it: read every case and its events,
  replay, sign, store.

Reported: cases per second of each, the ratio statement / baseline, and the statement's line
count. Machines here are noisy, so only the ratio within one run means much.

``--scheduled``: the loans' fixed parts repay in equal instalments with penalty interest (1.5x),
and the days reconciled fall after the first due date, so every replay also walks the schedule
and accrues penalty on the late principal; ``plain_cases_per_second`` is then the same records'
replay with the unscheduled terms, in the same run, and ``scheduled_vs_plain`` their ratio.

    python -m bench reconcile [--cases 2000] [--events 8] [--days 3] [--scheduled]
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from gateway._transactions import Idempotency
from gateway.domain.decision import LoanTerms
from gateway.domain.ledger import LoanEvent, LoanEventType, replay
from gateway.domain.reconciliation import CaseRecord, statement_lines
from gateway.domain.schedule import RepaymentMethod
from gateway.domain.scoring import CreditOffer, ProductType
from gateway.server import ServerConfig, open_gateway
from gateway.store import codec
from gateway.store import reconciliation_repository as recon_repo
from gateway.store.db import Database
from gateway.store.tables import CaseEventRow, FinancingCaseRow

RESULTS = Path(__file__).parent / "results"
START = date(2026, 9, 1)
TERMS = LoanTerms(
    product=ProductType.COMBINED,
    amount_fen=30_000_000,
    fixed_amount_fen=6_000_000,
    term_months=12,
    revolving_daily_rate_ppm=600,
    fixed_daily_rate_ppm=500,
    bank_share_bps=7000,
    platform_share_bps=3000,
)
SCHEDULED_TERMS = replace(
    TERMS, repayment_method=RepaymentMethod.EQUAL_INSTALMENT, penalty_rate_bps=15_000
)
OFFER = CreditOffer(
    product=ProductType.COMBINED,
    total_limit_fen=30_000_000,
    revolving_limit_fen=24_000_000,
    fixed_amount_fen=6_000_000,
    term_months=12,
    revolving_daily_rate_ppm=600,
    fixed_daily_rate_ppm=500,
)


def _events(n: int, events: int) -> list[LoanEvent]:
    out = [
        LoanEvent(
            type=LoanEventType.DISBURSED,
            event_date=START + timedelta(days=n % 5),
            bank_loan_reference=f"BL-{n}",
            disbursed_fen=TERMS.amount_fen,
        )
    ]
    for k in range(1, events):
        out.append(
            LoanEvent(
                type=LoanEventType.REPAYMENT,
                event_date=START + timedelta(days=n % 5 + 3 * k),
                principal_fen=100_000,
            )
        )
    return out


def _load(database: Database, cases: int, events: int, terms: LoanTerms) -> list[CaseRecord]:
    records = []
    now = datetime.now(UTC)
    with database.writing() as session:
        for n in range(cases):
            case_id = f"case_{n:026d}"
            recorded = _events(n, events)
            ledger = replay(recorded, terms, case_id=case_id)
            session.add(
                FinancingCaseRow(
                    case_id=case_id,
                    referral_id=f"ref_{n:026d}",
                    bank_id="bank-a",
                    platform_merchant_id=f"m-{n}",
                    consent_id="cons_x",
                    state="repaying",
                    envelope_payload=b"bench",
                    envelope_type="application/vnd.colending.referral.v1+protobuf",
                    envelope_signatures_json="[]",
                    offer_json=codec.dump_offer(OFFER),
                    expires_at=now,
                    created_at=now,
                    updated_at=now,
                    agreed_terms_json=codec.dump_terms(terms),
                    ledger_json=codec.dump_ledger(ledger),
                    merchant_pseudonym=secrets.token_bytes(32),
                )
            )
            for seq, event in enumerate(recorded, start=1):
                session.add(
                    CaseEventRow(
                        case_id=case_id,
                        sequence=seq,
                        to_state="repaying",
                        recorded_at=now,
                        actor="partner/bank-a",
                        loan_event_json=codec.dump_loan_event(event),
                    )
                )
            records.append(
                CaseRecord(
                    case_id=case_id,
                    platform_merchant_id=f"m-{n}",
                    terms=terms,
                    events=tuple(recorded),
                )
            )
    return records


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench reconcile", description=__doc__)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--events", type=int, default=8)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--scheduled", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    terms = SCHEDULED_TERMS if args.scheduled else TERMS
    first_day = START + timedelta(days=45 if args.scheduled else 10)
    out = args.out or RESULTS / (
        "bench-reconciliation-scheduled.json" if args.scheduled else "bench-reconciliation.json"
    )
    with tempfile.TemporaryDirectory(prefix="bench-recon-") as tmp:
        gateway = open_gateway(ServerConfig(data_dir=Path(tmp) / "data"))
        gateway.partners.register_partner(
            idem=Idempotency(
                caller="admin", method="RegisterPartner", request_id="bench", fingerprint="b"
            ),
            partner_id="bank-a",
            display_name="Bank A",
            endpoint="",
            policy=None,
            decision_public_key=b"",
        )
        print(f"loading {args.cases:,} cases x {args.events} events ...", flush=True)
        records = _load(gateway.database, args.cases, args.events, terms)
        plain = [replace(r, terms=TERMS) for r in records]
        runs = []
        for d in range(args.days):
            day = first_day + timedelta(days=d)
            started = time.perf_counter()
            lines = statement_lines(records, day)
            baseline = time.perf_counter() - started
            started = time.perf_counter()
            statement_lines(plain, day)
            unscheduled = time.perf_counter() - started
            started = time.perf_counter()
            stored = gateway.reconciliation.statement(bank_id="bank-a", day=day)
            full = time.perf_counter() - started
            assert stored.line_count == len(lines)
            with gateway.database.reading() as session:
                assert recon_repo.closed_through(session, "bank-a") == day
            run = {
                "business_date": day.isoformat(),
                "lines": len(lines),
                "penalty_accrued_fen": sum(line.penalty_accrued_fen for line in lines),
                "baseline_cases_per_second": round(args.cases / baseline),
                "statement_cases_per_second": round(args.cases / full),
                "ratio": round(baseline / full, 2),
                "statement_seconds": round(full, 3),
            }
            if args.scheduled:
                run["plain_cases_per_second"] = round(args.cases / unscheduled)
                run["scheduled_vs_plain"] = round(unscheduled / baseline, 2)
            runs.append(run)
            print(json.dumps(run), flush=True)
        gateway.database.engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"cases": args.cases, "events": args.events, "scheduled": args.scheduled}
    out.write_text(json.dumps(summary | {"runs": runs}, indent=2) + "\n")
    print(f"wrote {out}")
