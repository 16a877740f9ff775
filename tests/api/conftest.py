"""API-level fixtures: the real servicers behind grpc_testing (no sockets), on both backends.

``api`` wraps one in-process test server over the ``gateway`` fixture (SQLite and PostgreSQL)
and decodes every answer into a :class:`Result`: the status code, the response, and the
google.rpc details carried in the ``grpc-status-details-bin`` trailer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import grpc_testing
import pytest
import sqlalchemy
from colending.v1 import (
    admin_service_pb2,
    common_pb2,
    consent_pb2,
    merchant_pb2,
    partner_bank_service_pb2,
    referral_pb2,
    referral_service_pb2,
)
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2
from testkit import ADMIN, ALL_SCOPES, PLATFORM, bank, in_days, merchant, request_id

from gateway._transactions import BUSINESS_TZ
from gateway.api.servicers import AdminServicer, PartnerBankServicer, ReferralServicer
from gateway.app import Gateway
from gateway.store.db import Database, sqlite_url
from partners.sdk import (
    REFERRAL_PAYLOAD_TYPE,
    Envelope,
    Signature,
    public_key_from_raw,
    verify_envelope,
)

Metadata = Sequence[tuple[str, str]]

STATUS_DETAILS_KEY = "grpc-status-details-bin"

SERVICES = {
    "referral": referral_service_pb2.DESCRIPTOR.services_by_name["ReferralService"],
    "bank": partner_bank_service_pb2.DESCRIPTOR.services_by_name["PartnerBankService"],
    "admin": admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
}
DEFAULT_METADATA: dict[str, Metadata] = {"referral": PLATFORM, "admin": ADMIN}

STORED_TABLES = (
    "partners",
    "consents",
    "referrals",
    "financing_cases",
    "case_events",
    "idempotency_keys",
    "order_batches",
    "financed_orders",
    "trade_snapshots",
    "alerts",
    "reconciliation_statements",
    "reconciliation_disputes",
)

# Codes a caller's mistake must never produce.
SERVER_FAULT_CODES = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})


@dataclass
class Result:
    """One RPC's outcome, with its google.rpc details decoded."""

    code: grpc.StatusCode
    details: str
    response: Any
    trailing_metadata: Metadata
    responses: list[Any] = field(default_factory=list)  # server streams only

    @property
    def ok(self) -> bool:
        return self.code is grpc.StatusCode.OK

    @property
    def status(self) -> status_pb2.Status | None:
        for key, value in self.trailing_metadata or ():
            if key == STATUS_DETAILS_KEY:
                return status_pb2.Status.FromString(value)
        return None

    def _unpack(self, kind: type[Message]) -> list[Any]:
        status = self.status
        if status is None:
            return []
        out = []
        for packed in status.details:
            if packed.Is(kind.DESCRIPTOR):
                message = kind()
                packed.Unpack(message)
                out.append(message)
        return out

    @property
    def field_violations(self) -> list[error_details_pb2.BadRequest.FieldViolation]:
        return [v for br in self._unpack(error_details_pb2.BadRequest) for v in br.field_violations]

    @property
    def fields(self) -> set[str]:
        return {v.field for v in self.field_violations}

    @property
    def precondition_violations(self) -> list[error_details_pb2.PreconditionFailure.Violation]:
        return [
            v for pf in self._unpack(error_details_pb2.PreconditionFailure) for v in pf.violations
        ]

    @property
    def precondition_types(self) -> set[str]:
        return {v.type for v in self.precondition_violations}

    @property
    def resource_info(self) -> error_details_pb2.ResourceInfo | None:
        infos = self._unpack(error_details_pb2.ResourceInfo)
        return infos[0] if infos else None

    def describe(self) -> str:
        return f"{self.code.name}: {self.details!r} fields={sorted(self.fields)}"

    # --- assertion helpers (return self so a test can keep inspecting) --------------------

    def expect_ok(self) -> Result:
        assert self.ok, self.describe()
        return self

    def expect(self, code: grpc.StatusCode) -> Result:
        assert self.code is code, self.describe()
        # The rich status in the trailer agrees with the gRPC status.
        status = self.status
        assert status is not None, f"{code.name} without {STATUS_DETAILS_KEY}"
        assert status.code == code.value[0]
        assert status.message == self.details
        return self

    def expect_invalid(self, *fields: str) -> Result:
        """INVALID_ARGUMENT whose BadRequest names exactly ``fields`` (each with a rule)."""
        self.expect(grpc.StatusCode.INVALID_ARGUMENT)
        assert self.fields == set(fields), self.describe()
        for violation in self.field_violations:
            assert violation.description, violation
            # The human message carries the field and its rule too.
            assert f"{violation.field}: {violation.description}" in self.details
        return self

    def expect_precondition(self, *types: str) -> Result:
        self.expect(grpc.StatusCode.FAILED_PRECONDITION)
        assert self.precondition_types == set(types), [
            (v.type, v.subject) for v in self.precondition_violations
        ]
        for violation in self.precondition_violations:
            assert violation.subject, violation
            assert violation.description, violation
        return self

    def expect_not_found(self, resource_type: str, name: str) -> Result:
        self.expect(grpc.StatusCode.NOT_FOUND)
        info = self.resource_info
        assert info is not None, self.describe()
        assert (info.resource_type, info.resource_name) == (resource_type, name)
        return self

    def expect_already_exists(self, resource_type: str, name: str) -> Result:
        self.expect(grpc.StatusCode.ALREADY_EXISTS)
        info = self.resource_info
        assert info is not None, self.describe()
        assert (info.resource_type, info.resource_name) == (resource_type, name)
        return self


def _servicers(gateway: Gateway) -> dict[Any, Any]:
    return {
        SERVICES["referral"]: ReferralServicer(gateway=gateway),
        SERVICES["bank"]: PartnerBankServicer(gateway=gateway),
        SERVICES["admin"]: AdminServicer(gateway=gateway),
    }


def business_today() -> date:
    return datetime.now(BUSINESS_TZ).date()


def years_ago(years: int, *, days: int = 0) -> tuple[int, int, int]:
    """A (y, m, d) business date ``years`` calendar years (and ``days`` days) before today."""
    today = business_today()
    try:
        then = today.replace(year=today.year - years)
    except ValueError:  # Feb 29
        then = today.replace(year=today.year - years, day=28)
    then -= timedelta(days=days)
    return (then.year, then.month, then.day)


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class Api:
    """The servicers under grpc_testing plus builders for the common set-up steps."""

    # Plain helpers, reachable from tests through the fixture.
    ts = staticmethod(ts)
    date = staticmethod(lambda y, m, d: common_pb2.Date(year=y, month=m, day=d))
    years_ago = staticmethod(years_ago)
    business_today = staticmethod(business_today)

    def __init__(self, gateway: Gateway, database: Database, backend: str) -> None:
        self.gateway = gateway
        self.database = database  # a second handle on the same store, for counting rows
        self.backend = backend
        self.server = grpc_testing.server_from_dictionary(
            _servicers(gateway), grpc_testing.strict_real_time()
        )

    # --- raw calls ------------------------------------------------------------------------

    def call(
        self,
        service: str,
        method: str,
        request: Message,
        metadata: Metadata | None = None,
    ) -> Result:
        if metadata is None:
            metadata = DEFAULT_METADATA[service]
        descriptor = SERVICES[service].methods_by_name[method]
        rpc = self.server.invoke_unary_unary(descriptor, tuple(metadata), request, None)
        response, trailing, code, details = rpc.termination()
        return Result(code=code, details=details, response=response, trailing_metadata=trailing)

    def stream(
        self, service: str, method: str, request: Message, metadata: Metadata | None = None
    ) -> Result:
        if metadata is None:
            metadata = DEFAULT_METADATA[service]
        descriptor = SERVICES[service].methods_by_name[method]
        rpc = self.server.invoke_unary_stream(descriptor, tuple(metadata), request, None)
        responses = []
        while True:
            try:
                responses.append(rpc.take_response())
            except ValueError:
                break
        trailing, code, details = rpc.termination()
        return Result(
            code=code,
            details=details,
            response=None,
            trailing_metadata=trailing,
            responses=responses,
        )

    def admin(self, method: str, request: Message, metadata: Metadata = ADMIN) -> Result:
        return self.call("admin", method, request, metadata)

    def platform(self, method: str, request: Message, metadata: Metadata = PLATFORM) -> Result:
        return self.call("referral", method, request, metadata)

    def as_bank(self, bank_id: str, method: str, request: Message) -> Result:
        return self.call("bank", method, request, bank(bank_id))

    def row_counts(self) -> dict[str, int]:
        """Rows in every table the API writes (the idempotency records included)."""
        with self.database.reading() as session:
            return {
                table: session.execute(
                    sqlalchemy.text(f"SELECT count(*) FROM {table}")
                ).scalar_one()
                for table in STORED_TABLES
            }

    # --- builders -------------------------------------------------------------------------

    def register(self, bank_id: str, **fields: Any) -> Any:
        fields.setdefault("display_name", f"Bank {bank_id}")
        request = admin_service_pb2.RegisterPartnerRequest(
            request_id=request_id(), partner_id=bank_id, **fields
        )
        return self.admin("RegisterPartner", request).expect_ok().response.partner

    def suspend(self, bank_id: str, reason: str = "regulator order") -> Any:
        request = admin_service_pb2.SuspendPartnerRequest(
            request_id=request_id(), partner_id=bank_id, reason=reason
        )
        return self.admin("SuspendPartner", request).expect_ok().response.partner

    def consent_request(
        self,
        merchant_id: str = "m-1001",
        bank_ids: Sequence[str] = ("bank-a",),
        **overrides: Any,
    ) -> referral_service_pb2.RecordConsentRequest:
        values: dict[str, Any] = {
            "request_id": request_id(),
            "platform_merchant_id": merchant_id,
            "bank_ids": list(bank_ids),
            "data_scopes": list(ALL_SCOPES),
            "purpose": consent_pb2.CONSENT_PURPOSE_CREDIT_REFERRAL,
            "expires_at": ts(in_days(90)),
            "evidence_reference": "consent-form-sha256:ab12",
        }
        values.update(overrides)
        return referral_service_pb2.RecordConsentRequest(**values)

    def consent(
        self, merchant_id: str = "m-1001", bank_ids: Sequence[str] = ("bank-a",), **kw: Any
    ) -> Any:
        request = self.consent_request(merchant_id, bank_ids, **kw)
        return self.platform("RecordConsent", request).expect_ok().response.consent

    def revoke(self, consent_id: str, reason: str = "merchant withdrew consent") -> Any:
        request = referral_service_pb2.RevokeConsentRequest(
            request_id=request_id(), consent_id=consent_id, reason=reason
        )
        return self.platform("RevokeConsent", request).expect_ok().response.consent

    def submit_request(
        self,
        consent_id: str,
        bank_ids: Sequence[str] = ("bank-a",),
        profile: merchant_pb2.MerchantProfile | None = None,
        rid: str | None = None,
    ) -> referral_service_pb2.SubmitReferralRequest:
        return referral_service_pb2.SubmitReferralRequest(
            request_id=rid or request_id(),
            merchant=profile if profile is not None else merchant(),
            consent_id=consent_id,
            bank_ids=list(bank_ids),
        )

    def submit(self, consent_id: str, bank_ids: Sequence[str] = ("bank-a",), **kw: Any) -> Any:
        request = self.submit_request(consent_id, bank_ids, **kw)
        return self.platform("SubmitReferral", request).expect_ok().response.referral

    def referral_for(
        self,
        merchant_id: str = "m-1001",
        bank_ids: Sequence[str] = ("bank-a",),
    ) -> Any:
        """Consent + referral for an already registered set of banks."""
        consent = self.consent(merchant_id, bank_ids)
        return self.submit(consent.consent_id, bank_ids, profile=merchant(merchant_id=merchant_id))

    def get_referral(self, referral_id: str) -> Any:
        request = referral_service_pb2.GetReferralRequest(referral_id=referral_id)
        return self.platform("GetReferral", request).expect_ok().response.referral

    def list_referrals(self, **fields: Any) -> list[Any]:
        request = referral_service_pb2.ListReferralsRequest(**fields)
        return list(self.platform("ListReferrals", request).expect_ok().response.referrals)

    def list_partners(self) -> list[Any]:
        request = admin_service_pb2.ListPartnersRequest()
        return list(self.admin("ListPartners", request).expect_ok().response.partners)

    def pull(self, bank_id: str, cursor: str = "", page_size: int = 0) -> Any:
        request = partner_bank_service_pb2.PullReferralsRequest(cursor=cursor, page_size=page_size)
        return self.as_bank(bank_id, "PullReferrals", request).expect_ok().response

    def acknowledge(self, bank_id: str, case_id: str, reference: str = "REF-1") -> Result:
        request = partner_bank_service_pb2.AcknowledgeReferralRequest(
            request_id=request_id(), case_id=case_id, bank_reference=reference
        )
        return self.as_bank(bank_id, "AcknowledgeReferral", request)

    def verified_payload(self, envelope: Any, bank_id: str = "bank-a") -> Any:
        """Verify a referral envelope against the published keys; the decoded payload."""
        trusted = {k.keyid: public_key_from_raw(k.public_key) for k in self.signing_keys(bank_id)}
        payload = verify_envelope(
            Envelope(
                payload=envelope.payload,
                payload_type=envelope.payload_type,
                signatures=tuple(Signature(s.keyid, s.sig) for s in envelope.signatures),
            ),
            trusted_keys=trusted,
            payload_type=REFERRAL_PAYLOAD_TYPE,
        )
        return referral_pb2.ReferralPayload.FromString(payload)

    def signing_keys(self, bank_id: str = "bank-a") -> list[Any]:
        request = partner_bank_service_pb2.GetSigningKeysRequest()
        return list(self.as_bank(bank_id, "GetSigningKeys", request).expect_ok().response.keys)


@pytest.fixture
def api(gateway: Gateway, data_dir: Path, database_url: str | None) -> Iterator[Api]:
    database = Database(url=database_url or sqlite_url(data_dir))
    yield Api(gateway, database, "sqlite" if database_url is None else "postgres")
    database.engine.dispose()


@pytest.fixture
def two_banks(api: Api) -> Api:
    """``bank-a`` and ``bank-b`` registered with the default (historical) policy."""
    api.register("bank-a")
    api.register("bank-b")
    return api
