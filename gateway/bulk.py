"""``colending-gateway submit FILE.jsonl``: many merchants through the SDK, safe to run again.

Each line of the input is one ``colending.v1.MerchantProfile`` in protobuf JSON, exactly what
``colending-gateway sample merchants`` writes; blank lines are skipped. For each line the
platform records the merchant's consent for the banks, then submits the referral to them.

Every line ends in one outcome:

* ``submitted``: the referral exists (created now, or by an earlier run and replayed);
* ``rejected``: the gateway refused it, FAILED_PRECONDITION (the banks' eligibility rules,
  consent, blacklist) or INVALID_ARGUMENT (the profile breaks a validation rule): an expected
  business outcome, written with its reasons to the rejected file;
* ``malformed``: the line is not a MerchantProfile (bad UTF-8 or JSON, unknown fields, no
  merchant id), also written to the rejected file, with reason ``MALFORMED_INPUT``;
* ``failed``: anything else, e.g. the gateway still UNAVAILABLE after the SDK's own retries
  (``RetryPolicy``: four attempts with jittered backoff on UNAVAILABLE, DEADLINE_EXCEEDED and
  RESOURCE_EXHAUSTED, nothing added here), or an unknown bank. Running the same command again
  retries exactly these lines: the others replay.

The rejected file holds one JSON object per rejected or malformed line, in completion order:
``line`` (1-based, as an editor counts), ``merchant_id``, ``outcome``, ``stage`` (``input``,
``consent`` or ``referral``), ``status``, ``reasons``, ``message`` and ``violations`` (``type``,
``subject``, ``description`` for refusals; ``field``, ``description`` for invalid arguments).
A refusal's reasons are its violation types, qualified by the policy rule when the subject
names one (``ELIGIBILITY policy.allowed_tiers``: every eligibility refusal has the same type);
an invalid argument's are its fields. The summary counts lines per reason.

Request ids (why a re-run does not duplicate)
---------------------------------------------
The gateway is idempotent on ``request_id``: the same id with the same content gets the first
answer, the same id with other content is ALREADY_EXISTS. Both ids of a line are derived from
what identifies the submission and nothing else::

    stem = "bulk-" + sha256(v2 | run id | banks, sorted | profile)[:32 hex]
    consent request id = stem + "-consent",  referral request id = stem + "-referral"

where ``profile`` is the profile's deterministic protobuf encoding (so re-formatting the JSON
does not change the ids) and each part is length-prefixed. The consent's content must be just
as reproducible: its ``expires_at`` is midnight UTC of ``--as-of`` (default: today, UTC) plus
``--consent-days``, and its ``evidence_reference`` is ``bulk:<sha256 of the profile bytes>``.

The date is deliberately *not* in the ids. A re-run on the same day replays every answer. A
re-run on a later day sends the same ids with a later expiry, and the gateway answers
ALREADY_EXISTS for the consent: the line fails loudly (the summary says to pass the first run's
``--as-of`` to replay) instead of silently referring the merchant to the banks a second time.
A deliberate second submission of the same merchants takes a new ``--run-id``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from colending.v1 import consent_pb2, merchant_pb2
from google.protobuf import json_format

from partners.sdk import (
    FailedPreconditionError,
    InvalidArgumentError,
    PlatformClient,
    RpcError,
)
from partners.sdk.tls import client_credentials

PROG = "colending-gateway submit"
MALFORMED_INPUT = "MALFORMED_INPUT"
MAX_CONSENT_DAYS = 3 * 365  # the gateway refuses a consent longer than three years
ALL_SCOPES = (
    consent_pb2.DATA_SCOPE_IDENTITY,
    consent_pb2.DATA_SCOPE_QUALIFICATION,
    consent_pb2.DATA_SCOPE_TRANSACTION_REPUTATION,
    consent_pb2.DATA_SCOPE_VERIFICATION,
)
_ID_VERSION = b"colending-bulk/v2"  # bump if the derivation changes, so old ids never collide


class Outcome(StrEnum):
    SUBMITTED = "submitted"
    REJECTED = "rejected"
    MALFORMED = "malformed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestIds:
    consent: str
    referral: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What every line is submitted with. ``as_of`` anchors the consent expiry (see above)."""

    banks: tuple[str, ...]
    as_of: date
    consent_days: int = 90
    run_id: str = ""

    @property
    def consent_expires_at(self) -> datetime:
        # Midnight UTC, not "now": a re-run the same day must send the very same consent.
        midnight = datetime(self.as_of.year, self.as_of.month, self.as_of.day, tzinfo=UTC)
        return midnight + timedelta(days=self.consent_days)


@dataclass(frozen=True, slots=True, kw_only=True)
class LineResult:
    """One input line's outcome; ``reasons`` are what refusals are grouped by."""

    line: int
    outcome: Outcome
    merchant_id: str = ""
    referral_id: str = ""
    stage: str = ""  # "input", "consent" or "referral": where it stopped
    status: str = ""  # gRPC status name, or MALFORMED_INPUT
    message: str = ""
    reasons: tuple[str, ...] = ()
    violations: tuple[Mapping[str, str], ...] = ()

    def record(self) -> dict[str, Any]:
        """The rejected file's JSON object for this line."""
        return {
            "line": self.line,
            "merchant_id": self.merchant_id or None,
            "outcome": self.outcome.value,
            "stage": self.stage,
            "status": self.status,
            "reasons": list(self.reasons),
            "message": self.message,
            "violations": [dict(v) for v in self.violations],
        }


@dataclass(slots=True, kw_only=True)
class Summary:
    total: int
    rejected_path: Path
    counts: Counter[Outcome] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)  # lines per refusal reason
    failures: Counter[str] = field(default_factory=Counter)  # lines per status
    failure_examples: dict[str, LineResult] = field(default_factory=dict)  # first per status
    elapsed: float = 0.0
    interrupted: bool = False

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def add(self, result: LineResult) -> None:
        self.counts[result.outcome] += 1
        if result.outcome is Outcome.REJECTED:
            self.refusals.update(result.reasons)
        elif result.outcome is Outcome.FAILED:
            self.failures[result.status] += 1
            self.failure_examples.setdefault(result.status, result)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.counts[Outcome.FAILED] else 0


# --- request ids ---------------------------------------------------------------------------


def profile_bytes(profile: merchant_pb2.MerchantProfile) -> bytes:
    """The profile's canonical bytes: the same merchant data, however its JSON was formatted."""
    return profile.SerializeToString(deterministic=True)


def evidence_reference(profile: bytes) -> str:
    return f"bulk:{hashlib.sha256(profile).hexdigest()}"


def request_ids(*, profile: bytes, banks: Sequence[str], run_id: str = "") -> RequestIds:
    """The line's consent and referral request ids: the same input, the same ids (see above)."""
    digest = hashlib.sha256()
    # Sorted: the same banks in another order are the same referral, not a second one.
    for part in (_ID_VERSION, run_id.encode(), ",".join(sorted(banks)).encode(), profile):
        # Length prefixes: no two different inputs concatenate to the same bytes.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    stem = f"bulk-{digest.hexdigest()[:32]}"
    return RequestIds(consent=f"{stem}-consent", referral=f"{stem}-referral")


# --- one line ------------------------------------------------------------------------------


def submit_line(*, client: PlatformClient, settings: Settings, line: int, raw: bytes) -> LineResult:
    """Parse, record consent, submit the referral; never raises for a bad line or RPC."""
    try:
        text = raw.decode("utf-8")
        if line == 1:
            text = text.removeprefix("\ufeff")  # a byte-order mark from a Windows editor
        profile = json_format.Parse(text, merchant_pb2.MerchantProfile())
    except (UnicodeDecodeError, json_format.ParseError) as exc:
        return _malformed(line, raw, str(exc))
    merchant_id = profile.identity.platform_merchant_id
    if not merchant_id:
        return _malformed(line, raw, "identity.platformMerchantId is required")

    canonical = profile_bytes(profile)
    ids = request_ids(profile=canonical, banks=settings.banks, run_id=settings.run_id)
    stage = "consent"
    try:
        consent = client.record_consent(
            platform_merchant_id=merchant_id,
            bank_ids=settings.banks,
            data_scopes=ALL_SCOPES,
            expires_at=settings.consent_expires_at,
            evidence_reference=evidence_reference(canonical),
            request_id=ids.consent,
        )
        stage = "referral"
        referral = client.submit_referral(
            merchant=profile,
            consent_id=consent.consent_id,
            bank_ids=settings.banks,
            request_id=ids.referral,
        )
    except FailedPreconditionError as exc:
        violations = tuple(
            {"type": v.type, "subject": v.subject, "description": v.description}
            for v in exc.violations
        )
        reasons = sorted({_reason(v.type, v.subject) for v in exc.violations}) or [exc.code.name]
        return _refused(line, merchant_id, stage, exc, reasons, violations)
    except InvalidArgumentError as exc:
        violations = tuple(
            {"field": v.field, "description": v.description} for v in exc.field_violations
        )
        reasons = sorted({v.field for v in exc.field_violations}) or [exc.code.name]
        return _refused(line, merchant_id, stage, exc, reasons, violations)
    except RpcError as exc:  # the SDK has already retried what was worth retrying
        return LineResult(
            line=line,
            outcome=Outcome.FAILED,
            merchant_id=merchant_id,
            stage=stage,
            status=exc.code.name,
            message=exc.details,
        )
    return LineResult(
        line=line,
        outcome=Outcome.SUBMITTED,
        merchant_id=merchant_id,
        referral_id=referral.referral_id,
        stage=stage,
    )


def _reason(violation_type: str, subject: str) -> str:
    """The violation type, with the policy rule when the subject names one: every eligibility
    refusal has type ELIGIBILITY, and "which rule" is what the operator needs to know.
    ``partners/bank-a/policy.allowed_region_codes`` gives ``ELIGIBILITY policy.allowed_...``;
    a subject that is an id (``consents/cns-...``) is left out, it would split the groups."""
    parts = subject.split("/", 2)
    if len(parts) == 3 and parts[0] == "partners" and parts[2]:
        return f"{violation_type} {parts[2]}"
    return violation_type


def _refused(
    line: int,
    merchant_id: str,
    stage: str,
    exc: RpcError,
    reasons: Sequence[str],
    violations: tuple[Mapping[str, str], ...],
) -> LineResult:
    return LineResult(
        line=line,
        outcome=Outcome.REJECTED,
        merchant_id=merchant_id,
        stage=stage,
        status=exc.code.name,
        message=exc.details,
        reasons=tuple(reasons),
        violations=violations,
    )


def _malformed(line: int, raw: bytes, message: str) -> LineResult:
    return LineResult(
        line=line,
        outcome=Outcome.MALFORMED,
        merchant_id=_guess_merchant_id(raw),
        stage="input",
        status=MALFORMED_INPUT,
        message=" ".join(message.split()),  # protobuf's messages span lines
        reasons=(MALFORMED_INPUT,),
    )


def _guess_merchant_id(raw: bytes) -> str:
    """The merchant id of a line that is JSON but not a valid profile, so the rejected file
    still says whose line it was; empty when there is none to find."""
    try:
        identity = json.loads(raw).get("identity", {})
        found = identity.get("platformMerchantId", identity.get("platform_merchant_id", ""))
    except (ValueError, AttributeError):
        return ""
    return found if isinstance(found, str) else ""


# --- the file --------------------------------------------------------------------------------


class Progress:
    """``done/total, rate, ETA`` on a stream: redrawn in place on a terminal (at most ten times
    a second), one line every ``interval`` seconds otherwise (logs stay readable)."""

    def __init__(self, *, stream: TextIO, total: int, interval: float = 2.0) -> None:
        self._stream = stream
        self._total = total
        self._tty = stream.isatty()
        self._interval = 0.1 if self._tty else interval
        self._started = time.monotonic()
        self._shown = float("-inf")

    def update(self, summary: Summary, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._shown < self._interval:
            return
        self._shown = now
        text = self.line(summary, elapsed=now - self._started)
        if self._tty:
            self._stream.write(f"\r\x1b[K{text}" + ("\n" if final else ""))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def line(self, summary: Summary, *, elapsed: float) -> str:
        done, total = summary.done, self._total
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _duration((total - done) / rate) if rate > 0 else "?"
        percent = done * 100 // total if total else 100
        counts = ", ".join(f"{summary.counts[o]} {o.value}" for o in Outcome)
        return f"{done}/{total} ({percent}%) {rate:.1f}/s ETA {eta} | {counts}"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines and their 1-based numbers in the file (as an editor counts them)."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.strip():
                yield number, raw.rstrip(b"\r\n")


def submit_file(
    *,
    path: Path,
    client: PlatformClient,
    settings: Settings,
    rejected_path: Path,
    concurrency: int = 8,
    progress: TextIO | None = None,
) -> Summary:
    """Submit every line of ``path``, ``concurrency`` lines at a time; rejected and malformed
    lines go to ``rejected_path`` (replaced) as they complete, progress to ``progress``
    (default: standard error). Ctrl-C stops taking new lines, lets the ones in flight finish
    and returns a summary marked ``interrupted``."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    summary = Summary(total=sum(1 for _ in _lines(path)), rejected_path=rejected_path)
    # Looked up now, not at import: sys.stderr may have been replaced since (tests, wrappers).
    bar = Progress(stream=progress or sys.stderr, total=summary.total)
    started = time.monotonic()
    # Few lines queued beyond those in flight: a huge file is streamed, never held in memory.
    window = concurrency * 2
    with (
        rejected_path.open("w", encoding="utf-8") as rejected,
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="submit") as pool,
    ):
        pending: set[Future[LineResult]] = set()

        def collect() -> None:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                pending.discard(future)  # one at a time: an interrupt loses no result
                result = future.result()
                summary.add(result)
                if result.outcome in (Outcome.REJECTED, Outcome.MALFORMED):
                    rejected.write(json.dumps(result.record(), ensure_ascii=False) + "\n")
                    rejected.flush()
            bar.update(summary)

        try:
            for number, raw in _lines(path):
                while len(pending) >= window:
                    collect()
                pending.add(
                    pool.submit(submit_line, client=client, settings=settings, line=number, raw=raw)
                )
            while pending:
                collect()
        except KeyboardInterrupt:
            summary.interrupted = True
            pool.shutdown(wait=False, cancel_futures=True)
            for future in [f for f in pending if f.cancelled()]:
                pending.discard(future)
            while pending:  # the lines in flight: let them finish and count them
                collect()
    summary.elapsed = time.monotonic() - started
    bar.update(summary, final=True)
    return summary


# --- the command -----------------------------------------------------------------------------


def format_summary(summary: Summary, *, settings: Settings) -> str:
    elapsed = summary.elapsed
    rate = summary.done / elapsed if elapsed > 0 else 0.0
    counts = ", ".join(f"{summary.counts[o]} {o.value}" for o in Outcome)
    lines = [f"{summary.done} of {summary.total} lines in {elapsed:.2f} s ({rate:.1f}/s): {counts}"]
    if summary.interrupted:
        lines.append(f"interrupted: {summary.total - summary.done} line(s) not attempted")
    if summary.refusals:
        lines.append("refusals by reason (lines):")
        width = max(len(r) for r in summary.refusals)
        for reason, count in sorted(summary.refusals.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {reason:<{width}}  {count}")
    if summary.failures:
        lines.append("failures by status (lines):")
        for status, count in summary.failures.most_common():
            example = summary.failure_examples[status]
            lines.append(f"  {status}  {count}  (line {example.line}: {example.message})")
    lines.append(f"rejected and malformed lines: {summary.rejected_path}")
    if summary.failures.get("ALREADY_EXISTS"):
        lines.append(
            "ALREADY_EXISTS: those lines were submitted before with another consent expiry "
            "(on another day, or with other --consent-days): pass that run's --as-of and "
            "--consent-days to replay it, or a new --run-id to submit them again on purpose"
        )
    if summary.counts[Outcome.FAILED] or summary.interrupted:
        run = f" --run-id {settings.run_id}" if settings.run_id else ""
        lines.append(
            f"to retry, run again with --as-of {settings.as_of.isoformat()}{run} and the same "
            "--banks and --consent-days: submitted lines replay, the others are tried again"
        )
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _consent_days(text: str) -> int:
    value = _positive(text)
    if value > MAX_CONSENT_DAYS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_CONSENT_DAYS} (three years)")
    return value


def _banks(text: str) -> tuple[str, ...]:
    banks = tuple(b.strip() for b in text.split(","))
    if not all(banks):
        raise argparse.ArgumentTypeError("a comma-separated list of bank ids, e.g. bank-a,bank-b")
    if len(set(banks)) != len(banks):
        raise argparse.ArgumentTypeError("names a bank twice")
    return banks


def _as_of(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a date, YYYY-MM-DD") from None


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog=PROG,
        description="Submit merchants from a JSON Lines file (one colending.v1.MerchantProfile "
        "per line, as `colending-gateway sample merchants` writes): record consent, then refer "
        "each to the banks. Safe to run again: request ids derive from the input, so the "
        "gateway replays what it already did.",
    )
    command.add_argument("file", type=Path, help="input, .jsonl")
    command.add_argument(
        "--banks", type=_banks, required=True, help="bank ids to refer to, e.g. bank-a,bank-b"
    )
    command.add_argument(
        "--consent-days",
        type=_consent_days,
        default=90,
        help="consent lasts this long from midnight UTC of --as-of (default: %(default)s)",
    )
    command.add_argument(
        "--as-of",
        type=_as_of,
        default=None,
        help="date the consent expiry counts from (default: today, UTC); pass the first "
        "run's date to replay it on a later day",
    )
    command.add_argument(
        "--target", default="127.0.0.1:50051", help="gateway host:port (default: %(default)s)"
    )
    command.add_argument(
        "--caller",
        default="platform",
        help="development-mode identity, sent in plaintext (default: %(default)s)",
    )
    command.add_argument(
        "--tls-ca", type=Path, help="mutual TLS: the CA that signed the gateway's certificate"
    )
    command.add_argument("--tls-cert", type=Path, help="mutual TLS: the platform's certificate")
    command.add_argument("--tls-key", type=Path, help="mutual TLS: the platform's private key")
    command.add_argument(
        "--concurrency", type=_positive, default=8, help="lines in flight (default: %(default)s)"
    )
    command.add_argument(
        "--rejected",
        type=Path,
        default=None,
        help="JSON Lines file for rejected and malformed lines, replaced on each run "
        "(default: FILE with .jsonl replaced by .rejected.jsonl)",
    )
    command.add_argument(
        "--run-id",
        default="",
        help="salt for the request ids: a new one submits the same lines again on purpose",
    )
    return command


def default_rejected_path(path: Path) -> Path:
    stem = path.name.removesuffix(".jsonl")
    return path.with_name(f"{stem}.rejected.jsonl")


def main(argv: Sequence[str]) -> int:
    """``colending-gateway submit ...``: 0 if no line failed (refusals are not failures),
    1 if some did, 2 on a usage error, 130 when interrupted."""
    command = parser()
    try:
        args = command.parse_args(argv)
    except SystemExit as exit_:  # argparse's usage error (2) or --help (0): return, not exit
        return exit_.code if isinstance(exit_.code, int) else 2
    path: Path = args.file
    if not path.is_file():
        command.print_usage(sys.stderr)
        print(f"{PROG}: error: no such file: {path}", file=sys.stderr)
        return 2
    rejected_path: Path = args.rejected or default_rejected_path(path)
    if rejected_path.resolve() == path.resolve():
        print(f"{PROG}: error: --rejected must not be the input file", file=sys.stderr)
        return 2
    settings = Settings(
        banks=args.banks,
        as_of=args.as_of or datetime.now(UTC).date(),
        consent_days=args.consent_days,
        run_id=args.run_id,
    )
    if settings.consent_expires_at <= datetime.now(UTC):
        print(
            f"note: consents would expire at {settings.consent_expires_at.isoformat()}, in the "
            "past: only lines an earlier run submitted can succeed (they replay)",
            file=sys.stderr,
        )
    tls = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(tls) and not all(tls):
        print(
            f"{PROG}: error: mutual TLS needs --tls-ca, --tls-cert and --tls-key", file=sys.stderr
        )
        return 2
    credentials = (
        client_credentials(ca=args.tls_ca, certificate=args.tls_cert, key=args.tls_key)
        if all(tls)
        else None
    )
    # With a certificate the gateway reads the caller from it; --caller is for development.
    caller = None if credentials else args.caller
    with PlatformClient.connect(args.target, caller=caller, credentials=credentials) as client:
        summary = submit_file(
            path=path,
            client=client,
            settings=settings,
            rejected_path=rejected_path,
            concurrency=args.concurrency,
        )
    print(format_summary(summary, settings=settings))
    return summary.exit_code
