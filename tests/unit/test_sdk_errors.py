"""The SDK's RPC boundary: rich-status translation and the retry helper, over real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from colending.v1 import (
    financing_pb2,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
    referral_pb2,
    referral_service_pb2,
    referral_service_pb2_grpc,
)
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from partners.sdk import (
    AlreadyExistsError,
    BankClient,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    PlatformClient,
    PreconditionViolation,
    ResourceExhaustedError,
    RetryPolicy,
    RpcError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    translate,
)
from partners.sdk._rpc import CALLER_METADATA_KEY, call_unary

FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.005)


def _any(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _status(code: int, message: str, *details: Any) -> grpc.Status:
    return rpc_status.to_status(
        status_pb2.Status(code=code, message=message, details=[_any(d) for d in details])
    )


# Each case: the status the handler aborts with.
CASES: dict[str, grpc.Status] = {
    "invalid": _status(
        code_pb2.INVALID_ARGUMENT,
        "merchant.identity.unified_social_credit_code: bad check character",
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field="merchant.identity.unified_social_credit_code",
                    description="bad check character",
                ),
                error_details_pb2.BadRequest.FieldViolation(
                    field="bank_ids", description="must not be empty"
                ),
            ]
        ),
    ),
    "precondition": _status(
        code_pb2.FAILED_PRECONDITION,
        "case case_1 is DECLINED; cannot disburse",
        error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type="STATE", subject="case_1", description="FINANCING_STATE_DECLINED"
                )
            ]
        ),
    ),
    "not_found": _status(
        code_pb2.NOT_FOUND,
        "no referral ref_x",
        error_details_pb2.ResourceInfo(
            resource_type="colending.v1.Referral", resource_name="ref_x", description="unknown"
        ),
    ),
    "exists": _status(
        code_pb2.ALREADY_EXISTS,
        "request_id r1 was used with other content",
        error_details_pb2.ResourceInfo(resource_type="request", resource_name="r1"),
    ),
    "exhausted": _status(
        code_pb2.RESOURCE_EXHAUSTED,
        "rate limit",
        error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000)
        ),
    ),
    "unavailable": _status(
        code_pb2.UNAVAILABLE,
        "draining",
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=1_000_000)),
    ),
    "denied": _status(code_pb2.PERMISSION_DENIED, "not your case"),
    "unauthenticated": _status(code_pb2.UNAUTHENTICATED, "no identity"),
    "unimplemented": _status(code_pb2.UNIMPLEMENTED, "not here"),
    "internal": _status(code_pb2.INTERNAL, "boom"),
    "data_loss": _status(code_pb2.DATA_LOSS, "lost"),
}


def _fail_handler(request: bytes, context: grpc.ServicerContext) -> bytes:
    name = request.decode()
    if name == "plain":  # no rich details at all
        context.abort(grpc.StatusCode.NOT_FOUND, "plain not found")
    context.abort_with_status(CASES[name])


@pytest.fixture(scope="module")
def fail_target() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "test.Errors", {"Fail": grpc.unary_unary_rpc_method_handler(_fail_handler)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def _method(channel: grpc.Channel, name: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    # No (de)serializers: requests and responses are raw bytes.
    return channel.unary_unary(f"/test.Errors/{name}")


def _fail(target: str, name: str) -> grpc.RpcError:
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as info:
        _method(channel, "Fail")(name.encode(), timeout=5)
    return info.value


def test_invalid_argument_parses_field_violations(fail_target: str) -> None:
    error = translate(_fail(fail_target, "invalid"))
    assert isinstance(error, InvalidArgumentError)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details.startswith("merchant.identity.unified_social_credit_code")
    assert error.field_violations == (
        FieldViolation("merchant.identity.unified_social_credit_code", "bad check character"),
        FieldViolation("bank_ids", "must not be empty"),
    )
    assert str(error).startswith("INVALID_ARGUMENT: merchant.identity")


def test_failed_precondition_parses_violations(fail_target: str) -> None:
    error = translate(_fail(fail_target, "precondition"))
    assert isinstance(error, FailedPreconditionError)
    assert error.violations == (
        PreconditionViolation(
            type="STATE", subject="case_1", description="FINANCING_STATE_DECLINED"
        ),
    )


@pytest.mark.parametrize(
    ("name", "cls", "resource_type", "resource_name"),
    [
        ("not_found", NotFoundError, "colending.v1.Referral", "ref_x"),
        ("exists", AlreadyExistsError, "request", "r1"),
    ],
)
def test_resource_info(
    fail_target: str, name: str, cls: type[RpcError], resource_type: str, resource_name: str
) -> None:
    error = translate(_fail(fail_target, name))
    assert type(error) is cls
    assert isinstance(error, NotFoundError | AlreadyExistsError)
    assert (error.resource_type, error.resource_name) == (resource_type, resource_name)


def test_retry_info(fail_target: str) -> None:
    exhausted = translate(_fail(fail_target, "exhausted"))
    assert isinstance(exhausted, ResourceExhaustedError)
    assert exhausted.retry_after == timedelta(seconds=2.5)
    unavailable = translate(_fail(fail_target, "unavailable"))
    assert isinstance(unavailable, UnavailableError)
    assert unavailable.retry_after == timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("name", "cls", "code"),
    [
        ("denied", PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
        ("unauthenticated", UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
        ("unimplemented", UnimplementedError, grpc.StatusCode.UNIMPLEMENTED),
        ("internal", InternalError, grpc.StatusCode.INTERNAL),
        ("data_loss", InternalError, grpc.StatusCode.DATA_LOSS),
    ],
)
def test_plain_codes(
    fail_target: str, name: str, cls: type[RpcError], code: grpc.StatusCode
) -> None:
    error = translate(_fail(fail_target, name))
    assert type(error) is cls
    assert error.code is code


def test_status_without_details_trailer(fail_target: str) -> None:
    error = translate(_fail(fail_target, "plain"))
    assert isinstance(error, NotFoundError)
    assert error.details == "plain not found"
    assert (error.resource_type, error.resource_name) == ("", "")


def test_unknown_method_is_unimplemented(fail_target: str) -> None:
    with grpc.insecure_channel(fail_target) as channel, pytest.raises(grpc.RpcError) as info:
        _method(channel, "Nope")(b"", timeout=5)
    assert isinstance(translate(info.value), UnimplementedError)


# --- retries, through the real clients ------------------------------------------------------


class _FlakyBank(partner_bank_service_pb2_grpc.PartnerBankServiceServicer):
    """Fails ``failures`` times with ``code`` before answering; records every attempt."""

    def __init__(self) -> None:
        self.failures = 0
        self.code = grpc.StatusCode.UNAVAILABLE
        self.retry_delay: duration_pb2.Duration | None = None
        self.sleep = 0.0
        self.calls: list[tuple[str, Any, dict[str, str | bytes]]] = []
        self._lock = threading.Lock()

    def _attempt(self, name: str, request: Any, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls.append((name, request, dict(context.invocation_metadata())))
            fail = self.failures > 0
            if fail:
                self.failures -= 1
        if self.sleep:
            time.sleep(self.sleep)
        if fail:
            details = [_any(error_details_pb2.RetryInfo(retry_delay=self.retry_delay))]
            if self.retry_delay is None:
                details = []
            context.abort_with_status(
                rpc_status.to_status(
                    status_pb2.Status(code=self.code.value[0], message="try later", details=details)
                )
            )

    def GetFinancingCase(
        self,
        request: partner_bank_service_pb2.GetFinancingCaseRequest,
        context: grpc.ServicerContext,
    ) -> partner_bank_service_pb2.GetFinancingCaseResponse:
        self._attempt("GetFinancingCase", request, context)
        return partner_bank_service_pb2.GetFinancingCaseResponse(
            financing_case=financing_pb2.FinancingCase(case_id=request.case_id, bank_id="bank-a")
        )

    def AcknowledgeReferral(
        self,
        request: partner_bank_service_pb2.AcknowledgeReferralRequest,
        context: grpc.ServicerContext,
    ) -> partner_bank_service_pb2.AcknowledgeReferralResponse:
        self._attempt("AcknowledgeReferral", request, context)
        return partner_bank_service_pb2.AcknowledgeReferralResponse(
            financing_case=financing_pb2.FinancingCase(
                case_id=request.case_id, state=financing_pb2.FINANCING_STATE_ACKNOWLEDGED
            )
        )


class _Platform(referral_service_pb2_grpc.ReferralServiceServicer):
    """Lists five referrals in pages of two; records the caller header."""

    def __init__(self) -> None:
        self.callers: list[str | bytes | None] = []

    def ListReferrals(
        self, request: referral_service_pb2.ListReferralsRequest, context: grpc.ServicerContext
    ) -> referral_service_pb2.ListReferralsResponse:
        self.callers.append(dict(context.invocation_metadata()).get(CALLER_METADATA_KEY))
        start = int(request.page_token or 0)
        end = min(start + request.page_size, 5)
        return referral_service_pb2.ListReferralsResponse(
            referrals=[referral_pb2.Referral(referral_id=f"ref_{i}") for i in range(start, end)],
            next_page_token=str(end) if end < 5 else "",
        )


@pytest.fixture
def bank() -> _FlakyBank:
    return _FlakyBank()  # type: ignore[abstract]  # only the RPCs under test


@pytest.fixture
def platform() -> _Platform:
    return _Platform()  # type: ignore[abstract]  # only the RPCs under test


@pytest.fixture
def target(bank: _FlakyBank, platform: _Platform) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    partner_bank_service_pb2_grpc.add_PartnerBankServiceServicer_to_server(bank, server)
    referral_service_pb2_grpc.add_ReferralServiceServicer_to_server(platform, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def bank_client(target: str) -> Iterator[BankClient]:
    with BankClient.connect(
        target, bank_id="bank-a", caller="partner/bank-a", retry=FAST_RETRY
    ) as client:
        yield client


def test_unavailable_twice_then_success_is_retried(
    bank: _FlakyBank, bank_client: BankClient
) -> None:
    bank.failures = 2
    case = bank_client.get_case("case_1")
    assert case.case_id == "case_1"
    assert [name for name, _, _ in bank.calls] == ["GetFinancingCase"] * 3


def test_retries_keep_the_request_id_and_send_the_caller(
    bank: _FlakyBank, bank_client: BankClient
) -> None:
    bank.failures = 2
    bank.code = grpc.StatusCode.RESOURCE_EXHAUSTED
    bank.retry_delay = duration_pb2.Duration(nanos=1_000_000)
    case = bank_client.acknowledge("case_1", bank_reference="LN-1")
    assert case.state == financing_pb2.FINANCING_STATE_ACKNOWLEDGED
    assert len(bank.calls) == 3
    request_ids = {request.request_id for _, request, _ in bank.calls}
    assert len(request_ids) == 1
    assert request_ids.pop()  # a fresh id was generated once
    assert all(md[CALLER_METADATA_KEY] == "partner/bank-a" for _, _, md in bank.calls)


def test_given_request_id_is_sent(bank: _FlakyBank, bank_client: BankClient) -> None:
    bank_client.acknowledge("case_1", bank_reference="LN-1", request_id="ack-1")
    assert bank.calls[0][1].request_id == "ack-1"


def test_invalid_argument_is_not_retried(bank: _FlakyBank, bank_client: BankClient) -> None:
    bank.failures = 1
    bank.code = grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(InvalidArgumentError):
        bank_client.get_case("case_1")
    assert len(bank.calls) == 1


def test_retries_are_bounded(bank: _FlakyBank, bank_client: BankClient) -> None:
    bank.failures = 10
    with pytest.raises(UnavailableError) as info:
        bank_client.get_case("case_1")
    assert len(bank.calls) == FAST_RETRY.max_attempts
    assert isinstance(info.value.__cause__, grpc.RpcError)


def test_long_server_retry_delay_is_not_waited_for(
    bank: _FlakyBank, bank_client: BankClient
) -> None:
    bank.failures = 1
    bank.code = grpc.StatusCode.RESOURCE_EXHAUSTED
    bank.retry_delay = duration_pb2.Duration(seconds=3600)
    with pytest.raises(ResourceExhaustedError) as info:
        bank_client.get_case("case_1")
    assert info.value.retry_after == timedelta(hours=1)
    assert len(bank.calls) == 1


def test_deadline_applies_per_attempt(bank: _FlakyBank, target: str) -> None:
    bank.sleep = 0.3
    with (
        BankClient.connect(
            target,
            bank_id="bank-a",
            timeout=0.05,
            retry=RetryPolicy(max_attempts=2, initial_backoff=0),
        ) as client,
        pytest.raises(DeadlineExceededError),
    ):
        client.get_case("case_1")
    assert len(bank.calls) == 2
    assert all(CALLER_METADATA_KEY not in md for _, _, md in bank.calls)  # no caller given


def test_unreachable_gateway_is_unavailable() -> None:
    with (
        BankClient.connect(
            "127.0.0.1:1", bank_id="bank-a", retry=RetryPolicy(max_attempts=2, initial_backoff=0)
        ) as client,
        pytest.raises(UnavailableError),
    ):
        client.get_case("case_1")


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(initial_backoff=0.1, multiplier=2.0, max_backoff=0.3)
    assert policy.backoff(1, rng=lambda: 1.0) == pytest.approx(0.1)
    assert policy.backoff(2, rng=lambda: 1.0) == pytest.approx(0.2)
    assert policy.backoff(5, rng=lambda: 1.0) == pytest.approx(0.3)
    assert policy.backoff(5, rng=lambda: 0.0) == 0.0
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_call_unary_sleeps_at_least_the_server_hint(fail_target: str) -> None:
    slept: list[float] = []
    with grpc.insecure_channel(fail_target) as channel, pytest.raises(UnavailableError):
        call_unary(
            _method(channel, "Fail"),
            b"unavailable",
            retry=RetryPolicy(max_attempts=3, initial_backoff=0.0),
            sleep=slept.append,
        )
    assert slept == [0.001, 0.001]


def test_platform_iterates_all_pages_with_caller(platform: _Platform, target: str) -> None:
    with PlatformClient.connect(target, caller="platform") as client:
        page, token = client.list_referrals(page_size=2)
        assert [r.referral_id for r in page] == ["ref_0", "ref_1"]
        assert token == "2"
        ids = [r.referral_id for r in client.iter_referrals(page_size=2)]
    assert ids == [f"ref_{i}" for i in range(5)]
    assert set(platform.callers) == {"platform"}


def test_borrowed_channel_is_not_closed(target: str) -> None:
    channel = grpc.insecure_channel(target)
    try:
        with PlatformClient(channel=channel) as client:
            client.list_referrals(page_size=1)
        # Still usable: the client did not own it.
        PlatformClient(channel=channel).list_referrals(page_size=1)
    finally:
        channel.close()


def test_record_consent_rejects_naive_expiry(target: str) -> None:
    with PlatformClient.connect(target) as client, pytest.raises(ValueError, match="timezone"):
        client.record_consent(
            platform_merchant_id="m1",
            bank_ids=["bank-a"],
            data_scopes=[],
            expires_at=datetime(2030, 1, 1),
            evidence_reference="ev",
        )
