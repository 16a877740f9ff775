"""Protobuf <-> domain conversion shared by every capability: scalars (dates, timestamps,
money), enum numbers, and the vocabulary several capabilities speak (tiers, grades, products).

Inbound functions collect every shape problem (an impossible date, an unknown enum number, a
currency other than CNY) as FieldViolations under the request path, so the caller gets them all
in one INVALID_ARGUMENT together with the domain's own rule violations. Each capability's own
messages are converted in its package's ``convert`` module.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from colending.v1 import (
    common_pb2,
    merchant_pb2,
    referral_pb2,
)
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.domain.merchant import MembershipTier
from gateway.domain.money import CURRENCY
from gateway.domain.referral import SignedPayload
from gateway.domain.scoring import Grade, ProductType
from gateway.errors import FieldViolation

K = TypeVar("K")
V = TypeVar("V")
TIERS = {
    merchant_pb2.MEMBERSHIP_TIER_FREE: MembershipTier.FREE,
    merchant_pb2.MEMBERSHIP_TIER_TRUSTPASS: MembershipTier.TRUSTPASS,
    merchant_pb2.MEMBERSHIP_TIER_GOLD_SUPPLIER: MembershipTier.GOLD_SUPPLIER,
}
GRADES = {
    Grade.A: referral_pb2.GRADE_A,
    Grade.B: referral_pb2.GRADE_B,
    Grade.C: referral_pb2.GRADE_C,
    Grade.D: referral_pb2.GRADE_D,
    Grade.E: referral_pb2.GRADE_E,
}
PRODUCTS = {
    ProductType.REVOLVING_LINE: common_pb2.PRODUCT_TYPE_REVOLVING_LINE,
    ProductType.FIXED_LOAN: common_pb2.PRODUCT_TYPE_FIXED_LOAN,
    ProductType.COMBINED: common_pb2.PRODUCT_TYPE_COMBINED,
    ProductType.ORDER_LOAN: common_pb2.PRODUCT_TYPE_ORDER_LOAN,
}
PRODUCT_TYPES = {number: product for product, number in PRODUCTS.items()}


def inverse_of(mapping: dict[K, V]) -> dict[V, K]:
    return {v: k for k, v in mapping.items()}


TIER_NUMBERS = inverse_of(TIERS)


def enum_value(
    number: int, mapping: Mapping[Any, V], field: str, problems: list[FieldViolation]
) -> V | None:
    """The domain member for a proto enum number; UNSPECIFIED is None, unknown is a problem."""
    if number == 0:
        return None
    if number not in mapping:
        problems.append(FieldViolation(field, f"unknown enum value {number}"))
        return None
    return mapping[number]


def date_from_proto(
    message: common_pb2.Date, field: str, problems: list[FieldViolation]
) -> date | None:
    if message.year == 0 and message.month == 0 and message.day == 0:
        return None
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        problems.append(
            FieldViolation(
                field,
                f"is not a calendar date ({message.year:04d}-{message.month:02d}-"
                f"{message.day:02d})",
            )
        )
        return None


def date_to_proto(value: date | None) -> common_pb2.Date:
    if value is None:
        return common_pb2.Date()
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.astimezone(UTC)  # a naive time is local, as datetime.astimezone reads it
    # Whole-number arithmetic on the exact difference: a third of Timestamp.FromDatetime's cost,
    # which matters in every page of referrals and cases.
    elapsed = value - _EPOCH
    return Timestamp(
        seconds=elapsed.days * 86_400 + elapsed.seconds, nanos=elapsed.microseconds * 1_000
    )


def datetime_from_proto(
    message: Timestamp, field: str, problems: list[FieldViolation]
) -> datetime | None:
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        problems.append(
            FieldViolation(field, "is not a valid Timestamp (0001-01-01 to 9999-12-31, nanos 0..)")
        )
        return None


def money(amount_fen: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code=CURRENCY, amount_minor=amount_fen)


def money_from_proto(
    message: common_pb2.Money, field: str, problems: list[FieldViolation]
) -> int | None:
    if not message.currency_code and message.amount_minor == 0:
        return None
    if message.currency_code != CURRENCY:
        problems.append(
            FieldViolation(f"{field}.currency_code", f"must be {CURRENCY} (the only currency)")
        )
        return None
    if message.amount_minor < 0:
        problems.append(FieldViolation(f"{field}.amount_minor", "must not be negative"))
        return None
    return message.amount_minor


def envelope_to_proto(envelope: SignedPayload) -> common_pb2.Envelope:
    return common_pb2.Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=[common_pb2.Signature(keyid=k, sig=s) for k, s in envelope.signatures],
    )


def amount_or_zero(message: common_pb2.Money, field: str, problems: list[FieldViolation]) -> int:
    value = money_from_proto(message, field, problems)
    return 0 if value is None else value
