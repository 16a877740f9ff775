"""Partner banks of the network and the syntax of their ids."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from gateway.domain.ed25519_keys import key_problem
from gateway.domain.policy import EligibilityPolicy
from gateway.errors import FieldViolation

PARTNER_ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{2,39}$")
# host:port, host a DNS name, IPv4 or bracketed IPv6 literal.
ENDPOINT_PATTERN = re.compile(r"^(\[[0-9a-fA-F:.]{2,45}\]|[A-Za-z0-9.-]{1,253}):([0-9]{1,5})$")


class PartnerState(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True, kw_only=True)
class Partner:
    partner_id: str
    display_name: str
    endpoint: str
    state: PartnerState
    policy: EligibilityPolicy
    decision_public_key: bytes
    created_at: datetime
    updated_at: datetime
    suspension_reason: str = ""


def partner_id_problem(value: str) -> str | None:
    if not value:
        return "required"
    if not PARTNER_ID_PATTERN.fullmatch(value):
        return "must be 3..40 characters of [a-z0-9-] starting with a letter"
    return None


def validate_partner_fields(
    *, display_name: str, endpoint: str, decision_public_key: bytes, prefix: str = ""
) -> list[FieldViolation]:
    problems = []
    if not display_name.strip():
        problems.append(FieldViolation(f"{prefix}display_name", "required"))
    elif len(display_name) > 200:
        problems.append(FieldViolation(f"{prefix}display_name", "must be at most 200 characters"))
    if endpoint:
        match = ENDPOINT_PATTERN.fullmatch(endpoint)
        if not match or not 1 <= int(match.group(2)) <= 65535:
            problems.append(
                FieldViolation(f"{prefix}endpoint", "must be host:port with a port in 1..65535")
            )
    if decision_public_key and (problem := key_problem(decision_public_key)) is not None:
        problems.append(FieldViolation(f"{prefix}decision_public_key", problem))
    return problems
