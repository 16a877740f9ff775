"""``colending-gateway demo``: the whole network on one machine, checked step by step.

A gateway in its production mode (mutual TLS, with a development CA made in a temporary
directory and a certificate for every party); two mock banks with different policies receiving
by push over mutual TLS; the platform submitting generated merchants; banks deciding (approve,
decline, counter); loans disbursed and repaid; one borrower defaulting; the blacklist entry
reaching the other bank's verified copy; the platform's enforcement event. It ends with a
summary and exits 0 only if every check held.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import date as date_type
from pathlib import Path
from typing import TextIO

import grpc
from colending.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    common_pb2,
    consent_pb2,
    enforcement_pb2,
    financing_pb2,
    merchant_pb2,
    monitoring_pb2,
    orders_pb2,
    partner_pb2,
    reconciliation_pb2,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway._transactions import business_date
from gateway.app import Gateway
from gateway.certs import init_ca, issue_client, issue_server
from gateway.domain.delivery import DeliveryPolicy
from gateway.domain.money import format_fen
from gateway.sample import sample_merchants
from gateway.server import ServerConfig, TlsFiles, build_server, open_gateway
from partners.mock import Decision, MockBank, Script
from partners.sdk import (
    BankClient,
    BlacklistClient,
    FailedPreconditionError,
    IdentifierKind,
    LocalBlacklist,
    PlatformClient,
    decision_key_bytes,
    public_key_from_raw,
    read_evidence,
)
from partners.sdk.tls import client_credentials, receiver_credentials

FS = financing_pb2
ALL_SCOPES = [
    consent_pb2.DATA_SCOPE_IDENTITY,
    consent_pb2.DATA_SCOPE_QUALIFICATION,
    consent_pb2.DATA_SCOPE_TRANSACTION_REPUTATION,
    consent_pb2.DATA_SCOPE_VERIFICATION,
]
DEMO_DELIVERY = DeliveryPolicy(
    first_backoff=timedelta(milliseconds=50), max_backoff=timedelta(seconds=1)
)


@dataclass
class _Report:
    out: TextIO
    checks: list[tuple[str, bool]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def step(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.2f}s] {text}", file=self.out, flush=True)

    def check(self, what: str, ok: bool) -> None:
        self.checks.append((what, ok))
        self.step(f"{'ok  ' if ok else 'FAIL'} {what}")


@dataclass(frozen=True, slots=True)
class _Pki:
    """A development CA and a certificate for each party, all in the demo's temporary directory."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def gateway(self) -> TlsFiles:
        files = issue_server(self.directory, hosts=["127.0.0.1"], out=self.directory)
        return TlsFiles(key=files.key, certificate=files.certificate, client_ca=self.ca)

    def channel(self, target: str, identity: str) -> grpc.Channel:
        """A channel whose client certificate names ``identity`` ("admin", "partner/bank-a")."""
        files = issue_client(self.directory, identity=identity, out=self.directory)
        credentials = client_credentials(ca=self.ca, certificate=files.certificate, key=files.key)
        return grpc.secure_channel(target, credentials)

    def receiver(self, bank_id: str) -> grpc.ServerCredentials:
        files = issue_server(
            self.directory,
            hosts=["127.0.0.1"],
            out=self.directory,
            stem=f"bank-{bank_id}-receiver",
            identity=None,
        )
        return receiver_credentials(ca=self.ca, certificate=files.certificate, key=files.key)


def run_demo(*, merchants: int = 36, seed: int = 2026, out: TextIO = sys.stdout) -> bool:
    report = _Report(out)
    with tempfile.TemporaryDirectory(prefix="colending-demo-") as tmp:
        init_ca(Path(tmp) / "certs")
        pki = _Pki(Path(tmp) / "certs")
        config = ServerConfig(
            data_dir=Path(tmp) / "data",
            port=0,
            max_workers=16,
            delivery_policy=DEMO_DELIVERY,
            tls=pki.gateway(),
        )
        gateway = open_gateway(config)
        server, port = build_server(config, gateway=gateway)
        server.start()
        target = f"127.0.0.1:{port}"
        report.step(
            f"gateway listening on {target} with mutual TLS (data in {config.data_dir}, "
            f"a development CA and every party's certificate in {pki.directory})"
        )
        channels = {who: pki.channel(target, who) for who in ("admin", "platform", *PARTIES)}
        try:
            assert gateway.dispatcher is not None
            with gateway.dispatcher.running(workers=2, poll_interval=0.05):
                _run(report, gateway, channels, pki, config.data_dir, merchants, seed)
        finally:
            for channel in channels.values():
                channel.close()
            server.stop(grace=None).wait()
    passed = all(ok for _, ok in report.checks)
    failed = [what for what, ok in report.checks if not ok]
    print(
        "\nall checks passed" if passed else f"\n{len(failed)} check(s) failed: {failed}",
        file=out,
    )
    return passed


def _run(
    report: _Report,
    gateway: Gateway,
    channels: dict[str, grpc.Channel],
    pki: _Pki,
    data_dir: Path,
    count: int,
    seed: int,
) -> None:
    admin = admin_service_pb2_grpc.AdminServiceStub(channels["admin"])
    # Each bank signs its decisions and loan events with a key it registers with the gateway.
    decision_keys = {b: Ed25519PrivateKey.generate() for b in BANKS}
    clients = {
        b: BankClient(channel=channels[f"partner/{b}"], bank_id=b, decision_key=decision_keys[b])
        for b in BANKS
    }
    banks = {
        "bank-a": MockBank(
            bank_id="bank-a",
            verify=clients["bank-a"].verify,
            verify_alert=clients["bank-a"].verify_alert,
            script=Script(decision=Decision.BY_SCORE, unavailable_per_mille=150, seed=seed),
        ),
        "bank-b": MockBank(
            bank_id="bank-b",
            verify=clients["bank-b"].verify,
            verify_alert=clients["bank-b"].verify_alert,
            script=Script(decision=Decision.APPROVE),
        ),
    }
    policies = {
        # The historical defaults; refuses blacklisted merchants.
        "bank-a": None,
        # Takes listed merchants flagged, wants pushes in order, and a higher platform share.
        "bank-b": partner_pb2.EligibilityPolicy(
            blacklist_action=partner_pb2.BLACKLIST_ACTION_FLAG,
            ordered_delivery=True,
            platform_share_floor_bps=3000,
        ),
    }
    for bank_id, bank in banks.items():
        bank_port = bank.start(credentials=pki.receiver(bank_id))
        admin.RegisterPartner(
            admin_service_pb2.RegisterPartnerRequest(
                request_id=f"demo-register-{bank_id}",
                partner_id=bank_id,
                display_name=f"Demo {bank_id}",
                endpoint=f"127.0.0.1:{bank_port}",
                policy=policies[bank_id],
                decision_public_key=decision_key_bytes(decision_keys[bank_id]),
            ),
            timeout=10,
        )
        script = bank.script
        report.step(
            f"mock {bank_id} receiving pushes over mutual TLS on 127.0.0.1:{bank_port}: decides "
            f"{script.decision.value}, {script.unavailable_per_mille / 10:.0f} % of calls fail"
        )
    try:
        _network(
            report, gateway, channels, data_dir, admin, clients, decision_keys, banks, count, seed
        )
    finally:
        for bank in banks.values():
            bank.stop()


BANKS = ("bank-a", "bank-b")
PARTIES = tuple(f"partner/{b}" for b in BANKS)


def _network(
    report: _Report,
    gateway: Gateway,
    channels: dict[str, grpc.Channel],
    data_dir: Path,
    admin: admin_service_pb2_grpc.AdminServiceStub,
    clients: dict[str, BankClient],
    decision_keys: dict[str, Ed25519PrivateKey],
    banks: dict[str, MockBank],
    count: int,
    seed: int,
) -> None:
    platform = PlatformClient(channel=channels["platform"])
    today = business_date(datetime.now(UTC))
    merchants = sample_merchants(count, seed=seed, as_of=today)
    refusals: Counter[str] = Counter()
    referred: dict[str, str] = {}  # merchant id -> consent id
    for profile in merchants:
        merchant_id = profile.identity.platform_merchant_id
        consent = platform.record_consent(
            platform_merchant_id=merchant_id,
            bank_ids=list(BANKS),
            data_scopes=ALL_SCOPES,
            expires_at=datetime.now(UTC) + timedelta(days=90),
            evidence_reference=f"demo-consent:{merchant_id}",
        )
        try:
            platform.submit_referral(
                merchant=profile, consent_id=consent.consent_id, bank_ids=list(BANKS)
            )
            referred[merchant_id] = consent.consent_id
        except FailedPreconditionError as refused:
            refusals.update({v.type for v in refused.violations})
    report.step(
        f"platform submitted {count} merchants: {len(referred)} referred to both banks, "
        f"{count - len(referred)} refused ({dict(refusals)})"
    )
    report.check("some merchants were referred", bool(referred))

    expected = len(referred)
    _wait(lambda: all(len(b.received()) == expected for b in banks.values()))
    pushes = sum(b.stats.pushes for b in banks.values())
    report.check(
        f"both banks received and verified all {expected} referrals by push "
        f"({pushes} calls, {banks['bank-a'].stats.unavailable} answered UNAVAILABLE and retried)",
        all(len(b.received()) == expected for b in banks.values()),
    )

    outcomes: Counter[tuple[str, financing_pb2.FinancingState.ValueType]] = Counter()
    lending: dict[str, list[financing_pb2.FinancingCase]] = {b: [] for b in BANKS}
    for bank_id, bank in banks.items():
        for case in bank.decide_pending(clients[bank_id]):
            outcomes[(bank_id, case.state)] += 1
            if case.state == FS.FINANCING_STATE_COUNTER_OFFERED:
                case = platform.respond_to_counter_offer(case.case_id, accept=True)
            if case.state in (FS.FINANCING_STATE_APPROVED, FS.FINANCING_STATE_ACCEPTED):
                lending[bank_id].append(case)
    for bank_id in BANKS:
        summary = {
            FS.FinancingState.Name(state).removeprefix("FINANCING_STATE_").lower(): n
            for (b, state), n in sorted(outcomes.items())
            if b == bank_id
        }
        report.step(f"{bank_id} decided: {summary}")
    report.check("bank-a approved at least one loan", bool(lending["bank-a"]))
    if lending["bank-a"]:
        # The platform proves what the bank decided: the bank's signature, kept with the case.
        proof = platform.get_financing_case(lending["bank-a"][0].case_id)
        signed = [step for step in proof.history if step.HasField("evidence")]
        statement = read_evidence(
            signed[-1],
            bank_key=decision_keys["bank-a"].public_key(),
            case_id=proof.case_id,
            bank_id="bank-a",
        )
        report.check(
            "the platform verified bank-a's signed decision on its first loan",
            isinstance(statement, financing_pb2.DecisionStatement),
        )

    # Loans: every approved case disburses; one in three repays in full and settles, the others
    # repay a tenth and run on; one borrower at bank-a defaults.
    date = common_pb2.Date(year=today.year, month=today.month, day=today.day)
    defaulter = lending["bank-a"][0] if lending["bank-a"] else None
    settled = running = 0
    watched: financing_pb2.FinancingCase | None = None  # a running loan at bank-a, monitored
    for bank_id, cases in lending.items():
        client = clients[bank_id]
        for n, case in enumerate(cases):
            amount = case.agreed_terms.amount.amount_minor
            client.report_loan_event(
                case.case_id,
                FS.LoanEvent(
                    type=FS.LOAN_EVENT_TYPE_DISBURSED,
                    event_date=date,
                    bank_loan_reference=f"{bank_id.upper()}-LN-{case.case_id[-6:]}",
                    disbursed_amount=_cny(amount),
                ),
            )
            if defaulter is not None and case.case_id == defaulter.case_id:
                for event in (
                    FS.LoanEvent(type=FS.LOAN_EVENT_TYPE_OVERDUE, event_date=date, days_overdue=91),
                    FS.LoanEvent(type=FS.LOAN_EVENT_TYPE_DEFAULT, event_date=date),
                ):
                    client.report_loan_event(case.case_id, event)
                continue
            in_full = n % 3 == 0
            client.report_loan_event(
                case.case_id,
                FS.LoanEvent(
                    type=FS.LOAN_EVENT_TYPE_REPAYMENT,
                    event_date=date,
                    principal=_cny(amount if in_full else amount // 10),
                    interest=_cny(0),  # repaid the day it was drawn: nothing has accrued yet
                ),
            )
            if in_full:
                client.report_loan_event(
                    case.case_id, FS.LoanEvent(type=FS.LOAN_EVENT_TYPE_SETTLED, event_date=date)
                )
                settled += 1
            else:
                running += 1
                if bank_id == "bank-a" and watched is None:
                    watched = case
    report.step(
        f"loans disbursed: {settled} repaid and settled, {running} repaying, "
        "one defaulted at bank-a"
    )

    # After the loan the platform keeps watching the borrower's trade: a month with GMV 40 %
    # below the three before it reaches the lending bank as a signed WARNING, pushed.
    report.check("bank-a has a running loan to monitor", watched is not None)
    if watched is not None:
        merchant_id = watched.platform_merchant_id
        monitoring = platform.record_consent(
            platform_merchant_id=merchant_id,
            bank_ids=list(BANKS),
            data_scopes=ALL_SCOPES,
            expires_at=datetime.now(UTC) + timedelta(days=365),
            evidence_reference=f"demo-monitoring-consent:{merchant_id}",
            purpose=consent_pb2.CONSENT_PURPOSE_MONITORING,
        )
        reputation = next(
            m.reputation for m in merchants if m.identity.platform_merchant_id == merchant_id
        )
        trailing = list(reputation.monthly_gmv_fen[-3:])
        snapshot = monitoring_pb2.TradeSnapshot(
            platform_merchant_id=merchant_id,
            as_of=date,
            reputation=merchant_pb2.TransactionReputation(
                monthly_gmv_fen=[*trailing, sum(trailing) * 6 // 10 // len(trailing)],
                order_count=reputation.order_count,
                distinct_buyer_count=reputation.distinct_buyer_count,
                positive_feedback_bps=reputation.positive_feedback_bps,
                # Within the default thresholds, so the decline is the one signal.
                dispute_rate_bps=min(reputation.dispute_rate_bps, 500),
                refund_rate_bps=min(reputation.refund_rate_bps, 1000),
                on_time_shipment_bps=reputation.on_time_shipment_bps,
            ),
        )
        raised = platform.submit_trade_snapshot(snapshot=snapshot, consent_id=monitoring.consent_id)
        alert_ids = {a.alert_id for a in raised.alerts}
        _wait(lambda: any(a.alert_id in alert_ids for a in banks["bank-a"].alerts()))
        pushed = [a for a in banks["bank-a"].alerts() if a.alert_id in alert_ids]
        report.step(
            f"platform reported {merchant_id}'s trade: last month's GMV 40 % below the average "
            f"of the three before; {len(raised.alerts)} alert(s) for {list(raised.bank_ids)}"
        )
        report.check(
            "bank-a received and verified a signed GMV_DECLINE warning by push",
            bool(pushed)
            and pushed[0].severity == monitoring_pb2.ALERT_SEVERITY_WARNING
            and pushed[0].signal_codes == [monitoring_pb2.SIGNAL_CODE_GMV_DECLINE]
            and watched.case_id in pushed[0].payload.case_ids,
        )

    if watched is not None:
        profile = next(
            m for m in merchants if m.identity.platform_merchant_id == watched.platform_merchant_id
        )
        _order_loan(
            report,
            platform,
            clients["bank-b"],
            banks["bank-b"],
            profile,
            consent_id=referred[watched.platform_merchant_id],
        )

    serviced = [
        c
        for c in lending["bank-b"]
        if c.case_id != (defaulter.case_id if defaulter else "")
        and c.platform_merchant_id != (watched.platform_merchant_id if watched else "")
    ][:2]
    report.check("bank-b has two borrowers for the servicing story", len(serviced) == 2)
    if len(serviced) == 2:
        _servicing(
            report,
            platform,
            clients["bank-b"],
            banks["bank-b"],
            [
                next(
                    m
                    for m in merchants
                    if m.identity.platform_merchant_id == c.platform_merchant_id
                )
                for c in serviced
            ],
            consent_ids=referred,
        )

    # The default reaches the other bank's verified copy of the blacklist...
    network_key = bytes.fromhex((data_dir / "network-key" / "network.key").read_text().strip())
    log_keys = {
        k.keyid: public_key_from_raw(k.public_key) for k in gateway.blacklist.log.published_keys()
    }
    with BlacklistClient(
        channel=channels["partner/bank-b"], network_key=network_key, log_keys=log_keys
    ) as blacklist:
        copy = LocalBlacklist()
        blacklist.sync(copy)
        checkpoint = blacklist.checkpoint()
        listed = []
        if defaulter is not None:
            code = next(
                m.identity.unified_social_credit_code
                for m in merchants
                if m.identity.platform_merchant_id == defaulter.platform_merchant_id
            )
            listed = copy.in_force(
                blacklist.pseudonym(IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, code)
            )
    report.check(
        f"bank-b's verified copy lists the defaulter (log size {copy.size}, "
        f"root {copy.root.hex()[:16]}...)",
        len(listed) == 1 and listed[0].reporter == "bank-a",
    )
    report.check("the copy's root is the signed checkpoint's", copy.root == checkpoint.root_hash)

    # ...the platform is told to restrict the store...
    events, _ = platform.enforcement_events()
    restricted = [
        e for e in events if e.action == enforcement_pb2.ENFORCEMENT_ACTION_RESTRICT_STORE
    ]
    report.check(
        "the platform received a RESTRICT_STORE event for the defaulter",
        defaulter is not None
        and [e.platform_merchant_id for e in restricted] == [defaulter.platform_merchant_id],
    )

    # ...and a new referral of the defaulter goes to bank-b flagged (its policy says FLAG).
    if defaulter is not None:
        again = platform.submit_referral(
            merchant=next(
                m
                for m in merchants
                if m.identity.platform_merchant_id == defaulter.platform_merchant_id
            ),
            consent_id=referred[defaulter.platform_merchant_id],
            bank_ids=["bank-b"],
        )
        _wait(lambda: any(r.referral_id == again.referral_id for r in banks["bank-b"].received()))
        flagged = [r for r in banks["bank-b"].received() if r.referral_id == again.referral_id]
        report.check(
            "a new referral of the defaulter reached bank-b flagged as blacklisted",
            bool(flagged) and flagged[0].payload.blacklist_flagged,
        )

    stats = admin.GetPortfolioStats(admin_service_pb2.GetPortfolioStatsRequest(), timeout=10)
    print(
        "\n  bank     referred approved declined             disbursed  defaults  NPL",
        file=report.out,
    )
    for s in [*stats.banks, stats.overall]:
        print(
            f"  {s.bank_id or 'all':<8} {s.referred_count:>8} {s.approved_count:>8} "
            f"{s.declined_count:>8} {format_fen(s.disbursed.amount_minor):>21} "
            f"{s.defaulted_count:>9}  {_percent(s.non_performing_ratio_bps)}",
            file=report.out,
        )
    print(
        f"  blacklist checkpoint: size {checkpoint.tree_size}, root {checkpoint.root_hash.hex()}\n",
        file=report.out,
    )
    report.check("portfolio stats count exactly one default", stats.overall.defaulted_count == 1)


def _refer_and_decide(
    platform: PlatformClient,
    client: BankClient,
    bank: MockBank,
    merchant: merchant_pb2.MerchantProfile,
    *,
    consent_id: str,
    rule: Decision,
) -> financing_pb2.FinancingCase:
    """A new referral of ``merchant`` to the bank, decided by ``rule`` once it has arrived."""
    before = len(bank.received())
    platform.submit_referral(merchant=merchant, consent_id=consent_id, bank_ids=[bank.bank_id])
    _wait(lambda: len(bank.received()) > before)
    bank.script.decision = rule
    [case] = bank.decide_pending(client)
    return case


def _order_loan(
    report: _Report,
    platform: PlatformClient,
    client: BankClient,
    bank: MockBank,
    merchant: merchant_pb2.MerchantProfile,
    *,
    consent_id: str,
) -> None:
    """bank-b opens an order-financing line for the monitored merchant, funds two pending orders
    (up to 80 % of their value, within last month's GMV), and the platform's settlement of one
    repays its advance by sweep before the rest reaches the merchant."""
    merchant_id = merchant.identity.platform_merchant_id
    line = _refer_and_decide(
        platform, client, bank, merchant, consent_id=consent_id, rule=Decision.ORDER_LOAN
    )
    report.check(
        f"bank-b approved an ORDER_LOAN line of "
        f"{format_fen(line.agreed_terms.amount.amount_minor)} for {merchant_id}",
        line.state == FS.FINANCING_STATE_APPROVED,
    )
    if line.state != FS.FINANCING_STATE_APPROVED:
        return
    today = business_date(datetime.now(UTC))
    settles = today + timedelta(days=7)
    on = common_pb2.Date(year=settles.year, month=settles.month, day=settles.day)
    value = 1_500_000  # RMB 15,000 an order: two of them fit in the merchant's month
    orders = [
        orders_pb2.PendingOrder(
            order_id=f"DEMO-{merchant_id}-{n}",
            order_value=_cny(value),
            advance=_cny(value * 8 // 10),
            expected_settlement_date=on,
        )
        for n in (1, 2)
    ]
    batch = platform.submit_order_batch(case_id=line.case_id, consent_id=consent_id, orders=orders)
    [funded] = bank.decide_order_batches(client)
    report.step(
        f"platform offered 2 pending orders worth {format_fen(2 * value)}; bank-b approved the "
        f"batch and {format_fen(funded.batch.total_advance.amount_minor)} was advanced"
    )
    settled = platform.report_order_settlement(
        batch_id=batch.batch_id,
        order_id=orders[0].order_id,
        settled_amount_fen=value,
        settlement_date=today,
    )
    sweep = settled.batch.orders[0].sweep
    report.step(
        f"order {orders[0].order_id} settled for {format_fen(value)}: the sweep repaid "
        f"{format_fen(sweep.principal.amount_minor)} (bank-b "
        f"{format_fen(sweep.bank_share.amount_minor)}, platform "
        f"{format_fen(sweep.platform_share.amount_minor)}) and "
        f"{format_fen(sweep.to_merchant.amount_minor)} went to the merchant"
    )
    report.check(
        "an order loan was repaid by its settlement, split 70/30 between the lenders",
        settled.batch.orders[0].state == orders_pb2.ORDER_STATE_SETTLED
        and sweep.principal.amount_minor == value * 8 // 10
        and sweep.bank_share.amount_minor + sweep.platform_share.amount_minor
        == sweep.principal.amount_minor + sweep.interest.amount_minor
        and settled.case.ledger.principal_outstanding.amount_minor == value * 8 // 10,
    )


def _servicing(
    report: _Report,
    platform: PlatformClient,
    client: BankClient,
    bank: MockBank,
    merchants: list[merchant_pb2.MerchantProfile],
    *,
    consent_ids: dict[str, str],
) -> None:
    """bank-b lends a revolving line and an instalment loan, paid out 40 days ago: the line is
    drawn again and a collection apportioned, the loan's first instalment paid on its due date
    and then part prepaid (its schedule redone). bank-b then takes a signed statement for each
    of those 40 days, verifies each, and checks that the days chain and add up to each case."""
    line, loan = (
        _refer_and_decide(
            platform,
            client,
            bank,
            merchant,
            consent_id=consent_ids[merchant.identity.platform_merchant_id],
            rule=rule,
        )
        for rule, merchant in zip(
            (Decision.REVOLVING, Decision.INSTALMENTS), merchants, strict=True
        )
    )
    report.check(
        "bank-b approved a revolving line and an equal-instalment loan",
        line.state == loan.state == FS.FINANCING_STATE_APPROVED,
    )
    if not line.state == loan.state == FS.FINANCING_STATE_APPROVED:
        return
    today = business_date(datetime.now(UTC))
    start = today - timedelta(days=40)

    def on(day: date_type) -> common_pb2.Date:
        return common_pb2.Date(year=day.year, month=day.month, day=day.day)

    limit = line.agreed_terms.amount.amount_minor
    for event in (
        FS.LoanEvent(
            type=FS.LOAN_EVENT_TYPE_DISBURSED,
            event_date=on(start),
            bank_loan_reference=f"BANK-B-RL-{line.case_id[-6:]}",
            disbursed_amount=_cny(limit // 2),
        ),
        FS.LoanEvent(
            type=FS.LOAN_EVENT_TYPE_DRAWDOWN,
            event_date=on(start + timedelta(days=10)),
            disbursed_amount=_cny(limit // 4),
        ),
        FS.LoanEvent(
            type=FS.LOAN_EVENT_TYPE_COLLECTION,
            event_date=on(start + timedelta(days=20)),
            amount=_cny(limit // 4),
        ),
    ):
        drawn = client.report_loan_event(line.case_id, event)
    report.step(
        f"revolving line {line.case_id}: {format_fen(limit // 2)} paid out, "
        f"{format_fen(limit // 4)} drawn again 10 days later, {format_fen(limit // 4)} collected "
        f"(interest first); {format_fen(drawn.ledger.available_limit.amount_minor)} available"
    )
    amount = loan.agreed_terms.amount.amount_minor
    paid_out = client.report_loan_event(
        loan.case_id,
        FS.LoanEvent(
            type=FS.LOAN_EVENT_TYPE_DISBURSED,
            event_date=on(start),
            bank_loan_reference=f"BANK-B-IL-{loan.case_id[-6:]}",
            disbursed_amount=_cny(amount),
        ),
    )
    first = paid_out.schedule[0]
    client.report_loan_event(
        loan.case_id,
        FS.LoanEvent(
            type=FS.LOAN_EVENT_TYPE_REPAYMENT,
            event_date=first.due_date,
            principal=first.principal,
            interest=first.interest,
        ),
    )
    prepaid = client.report_loan_event(
        loan.case_id,
        FS.LoanEvent(
            type=FS.LOAN_EVENT_TYPE_PREPAYMENT,
            event_date=on(today - timedelta(days=3)),
            amount=_cny(amount // 4),
        ),
    )
    report.step(
        f"instalment loan {loan.case_id}: {format_fen(amount)} over "
        f"{len(paid_out.schedule)} months at {format_fen(first.total.amount_minor)} a month; "
        f"the first paid on its due date, then {format_fen(amount // 4)} prepaid: "
        f"{len(prepaid.schedule)} instalments of about "
        f"{format_fen(prepaid.schedule[0].total.amount_minor)} left"
    )
    report.check(
        "the prepayment redid the schedule over the due dates left",
        len(prepaid.schedule) == len(paid_out.schedule) - 1
        and sum(i.principal.amount_minor for i in prepaid.schedule)
        == prepaid.ledger.principal_outstanding.amount_minor,
    )

    # One signed statement a day, verified; per case the days chain and sum to its ledger.
    days = [start + timedelta(days=n) for n in range(40)]
    statements = [client.reconciliation_statement(day) for day in days]
    net = 0
    chained = True
    for case in (drawn, prepaid):
        opening = 0
        drawn_total = principal = collected = shares = 0
        for statement in statements:
            for row in statement.payload.lines:
                if row.case_id != case.case_id:
                    continue
                chained &= row.opening_principal.amount_minor == opening
                opening = row.closing_principal.amount_minor
                drawn_total += row.drawn.amount_minor
                principal += row.principal_collected.amount_minor
                collected += row.collected_by_bank.amount_minor
                shares += row.bank_share_collected.amount_minor
                shares += row.platform_share_collected.amount_minor
        ledger = case.ledger
        chained &= opening == ledger.principal_outstanding.amount_minor
        chained &= drawn_total == ledger.principal_disbursed.amount_minor
        chained &= principal == ledger.principal_repaid.amount_minor
        chained &= (
            collected
            == shares
            == (ledger.bank_share_repaid.amount_minor + ledger.platform_share_repaid.amount_minor)
        )
    for statement in statements:
        sign = 1 if statement.payload.net_payer == reconciliation_pb2.NET_PAYER_PLATFORM else -1
        net += sign * statement.payload.net_amount.amount_minor
    report.step(
        f"bank-b verified {len(statements)} signed daily statements; over the period the "
        f"platform owes bank-b {format_fen(net)} net (its 30 % of the payouts less its share "
        "of the collections)"
    )
    report.check(
        "both loans reconcile: each day opens where the last closed, and the days add up to "
        "what was paid out, repaid and split",
        chained,
    )
    # A line bank-b contests: its own books accrued the first day's interest differently.
    disputed = client.file_dispute(
        start,
        case_id=line.case_id,
        disputed_fields=["interest_accrued"],
        reason="our core banking system accrues from the day after payout",
    )
    answered = platform.resolve_dispute(
        disputed.dispute_id,
        upheld=False,
        note="the agreed terms accrue from the day of payout (the day counts)",
    )
    report.check(
        f"bank-b disputed a line of {start.isoformat()} and the platform rejected it with a note",
        answered.state == reconciliation_pb2.DISPUTE_STATE_REJECTED
        and [d.dispute_id for d in client.disputes()] == [disputed.dispute_id],
    )


def _percent(bps: int) -> str:
    whole, hundredths = divmod(bps, 100)  # integers all the way: no float near money
    return f"{whole}.{hundredths:02d} %"


def _cny(fen: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=fen)


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
