"""The co-lending partner SDK: typed clients for partner banks and the platform.

A bank pulls referrals, each one verified (DSSE signature over the exact bytes received, then
addressee, validity window and nonce) before it is returned, and acknowledges them::

    import grpc
    from partners.sdk import BankClient

    creds = grpc.ssl_channel_credentials(root_ca, private_key=bank_key, certificate_chain=cert)
    with BankClient.connect("gateway.example:443", bank_id="bank-a", credentials=creds) as bank:
        page = bank.pull(cursor=saved_cursor)
        for referral in page.referrals:     # each already verified
            offer = referral.payload.offer  # signed data only
            bank.acknowledge(referral.case_id, bank_reference="LN-2025-0001")
        saved_cursor = page.next_cursor

Without ``credentials`` the channel is plaintext and the caller names itself
(``caller="partner/bank-a"``): development only. Every error derives from
:class:`ColendingError`; RPC failures are :class:`RpcError` subclasses with the server's
``google.rpc`` details parsed, and rejected referrals are :class:`VerificationError` subclasses.
Envelopes received some other way (e.g. pushed to the bank) are checked with
:meth:`BankClient.verify` or :func:`verify_referral`.

After a loan the platform reports the borrower's trade
(:meth:`PlatformClient.submit_trade_snapshot`) and each lending bank whose thresholds it crosses
gets a signed early-warning alert, verified under the referral's rules before the SDK hands it
over::

    for alert, cursor in bank.alerts(cursor=saved_alert_cursor):   # live; pull_alerts() pages
        if alert.severity == monitoring_pb2.ALERT_SEVERITY_CRITICAL:
            review(alert.payload.case_ids, alert.payload.signals)
        saved_alert_cursor = cursor

A bank keeps a verified copy of the shared blacklist. :meth:`BlacklistClient.sync` proves the
log's latest signed checkpoint extends the last one the copy matched, streams the missing
changes and checks the rebuilt Merkle root against the signed one; the copy then answers
locally, from pseudonyms, with no identifier leaving the bank::

    from partners.sdk import BlacklistClient, IdentifierKind, LocalBlacklist

    local = LocalBlacklist.load(path) if path.exists() else LocalBlacklist()
    with BlacklistClient.connect(
        "gateway.example:443", credentials=creds, network_key=key, log_keys=pinned_log_keys
    ) as blacklist:
        blacklist.sync(local)           # LogConsistencyError if the log rewrote history
        local.save(path)
        hits = local.in_force(blacklist.pseudonym(IdentifierKind.RESIDENT_ID, raw_id))
        answers = blacklist.check([(IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE, uscc)])
"""

from colending_core import (
    ALERT_PAYLOAD_TYPE,
    CHECKPOINT_PAYLOAD_TYPE,
    DECISION_PAYLOAD_TYPE,
    LOAN_EVENT_PAYLOAD_TYPE,
    LOG_ORIGIN,
    REFERRAL_PAYLOAD_TYPE,
    BadSignatureError,
    Checkpoint,
    ColendingError,
    ConsistencyProofError,
    CorruptStateError,
    Envelope,
    IdentifierError,
    IdentifierKind,
    InclusionProofError,
    LeafAppeal,
    LeafChange,
    LeafEntry,
    LogConsistencyError,
    MalformedEnvelopeError,
    MalformedLeafError,
    MisaddressedReferralError,
    MismatchedEvidenceError,
    MissingKeyError,
    ProofError,
    ReferralExpiredError,
    ReferralNotYetValidError,
    Signature,
    SyncGapError,
    UnknownKeyError,
    VerificationError,
    WrongPayloadTypeError,
    decode_leaf,
    key_id,
    pae,
    pseudonym,
    public_key_from_raw,
    sign_envelope,
    verify_checkpoint,
    verify_envelope,
)
from partners.sdk._blacklist import (
    CHECK_BATCH_SIZE,
    BlacklistClient,
    BorrowerCheck,
    CompactRange,
    LocalBlacklist,
    SyncSummary,
)
from partners.sdk._client import AlertPage, BankClient, PlatformClient, PulledPage
from partners.sdk._errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionViolation,
    ResourceExhaustedError,
    RpcError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from partners.sdk._evidence import (
    decision_key_bytes,
    read_evidence,
    sign_decision,
    sign_loan_event,
)
from partners.sdk._rpc import RetryPolicy, translate
from partners.sdk._verify import (
    VerifiedAlert,
    VerifiedReferral,
    VerifiedStatement,
    envelope_from_proto,
    verify_alert,
    verify_reconciliation,
    verify_referral,
)

__all__ = [
    "ALERT_PAYLOAD_TYPE",
    "CHECKPOINT_PAYLOAD_TYPE",
    "CHECK_BATCH_SIZE",
    "DECISION_PAYLOAD_TYPE",
    "LOAN_EVENT_PAYLOAD_TYPE",
    "LOG_ORIGIN",
    "REFERRAL_PAYLOAD_TYPE",
    "AlertPage",
    "AlreadyExistsError",
    "BadSignatureError",
    "BankClient",
    "BlacklistClient",
    "BorrowerCheck",
    "Checkpoint",
    "ColendingError",
    "CompactRange",
    "ConsistencyProofError",
    "CorruptStateError",
    "DeadlineExceededError",
    "Envelope",
    "FailedPreconditionError",
    "FieldViolation",
    "IdentifierError",
    "IdentifierKind",
    "InclusionProofError",
    "InternalError",
    "InvalidArgumentError",
    "LeafAppeal",
    "LeafChange",
    "LeafEntry",
    "LocalBlacklist",
    "LogConsistencyError",
    "MalformedEnvelopeError",
    "MalformedLeafError",
    "MisaddressedReferralError",
    "MismatchedEvidenceError",
    "MissingKeyError",
    "NotFoundError",
    "PermissionDeniedError",
    "PlatformClient",
    "PreconditionViolation",
    "ProofError",
    "PulledPage",
    "ReferralExpiredError",
    "ReferralNotYetValidError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "RpcError",
    "Signature",
    "SyncGapError",
    "SyncSummary",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownKeyError",
    "VerificationError",
    "VerifiedAlert",
    "VerifiedReferral",
    "VerifiedStatement",
    "WrongPayloadTypeError",
    "decision_key_bytes",
    "decode_leaf",
    "envelope_from_proto",
    "key_id",
    "pae",
    "pseudonym",
    "public_key_from_raw",
    "read_evidence",
    "sign_decision",
    "sign_envelope",
    "sign_loan_event",
    "translate",
    "verify_alert",
    "verify_checkpoint",
    "verify_envelope",
    "verify_reconciliation",
    "verify_referral",
]
