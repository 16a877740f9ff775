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
"""

from partners.sdk._client import BankClient, PlatformClient, PulledPage
from partners.sdk._dsse import (
    CHECKPOINT_PAYLOAD_TYPE,
    DECISION_PAYLOAD_TYPE,
    LOAN_EVENT_PAYLOAD_TYPE,
    REFERRAL_PAYLOAD_TYPE,
    Envelope,
    Signature,
    key_id,
    pae,
    public_key_from_raw,
    verify_envelope,
)
from partners.sdk._errors import (
    AlreadyExistsError,
    BadSignatureError,
    ColendingError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    MalformedEnvelopeError,
    MisaddressedReferralError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionViolation,
    ReferralExpiredError,
    ReferralNotYetValidError,
    ResourceExhaustedError,
    RpcError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownKeyError,
    VerificationError,
    WrongPayloadTypeError,
)
from partners.sdk._rpc import RetryPolicy, translate
from partners.sdk._verify import VerifiedReferral, envelope_from_proto, verify_referral

__all__ = [
    "CHECKPOINT_PAYLOAD_TYPE",
    "DECISION_PAYLOAD_TYPE",
    "LOAN_EVENT_PAYLOAD_TYPE",
    "REFERRAL_PAYLOAD_TYPE",
    "AlreadyExistsError",
    "BadSignatureError",
    "BankClient",
    "ColendingError",
    "DeadlineExceededError",
    "Envelope",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "MalformedEnvelopeError",
    "MisaddressedReferralError",
    "NotFoundError",
    "PermissionDeniedError",
    "PlatformClient",
    "PreconditionViolation",
    "PulledPage",
    "ReferralExpiredError",
    "ReferralNotYetValidError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "RpcError",
    "Signature",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownKeyError",
    "VerificationError",
    "VerifiedReferral",
    "WrongPayloadTypeError",
    "envelope_from_proto",
    "key_id",
    "pae",
    "public_key_from_raw",
    "translate",
    "verify_envelope",
    "verify_referral",
]
