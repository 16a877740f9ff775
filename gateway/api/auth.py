"""Who is calling, and may they call this method. One place decides: ``ALLOWED`` per service,
with ``METHOD_ALLOWED`` for the methods whose callers differ from their service's.

Development mode has no TLS: the caller names itself in the ``x-colending-caller`` metadata
(``platform``, ``admin`` or ``partner/<id>``). That is trivially spoofable, which is why the
server refuses non-loopback addresses in that mode and says so loudly at start.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import grpc

from gateway.certs import identity_of
from gateway.domain.partner import partner_id_problem
from gateway.errors import PermissionDenied, Unauthenticated

CALLER_METADATA_KEY = "x-colending-caller"


class Role(enum.Enum):
    PLATFORM = "platform"
    PARTNER = "partner"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    role: Role
    partner_id: str = ""

    @property
    def name(self) -> str:
        return f"partner/{self.partner_id}" if self.role is Role.PARTNER else self.role.value


ALLOWED: dict[str, frozenset[Role]] = {
    "colending.v1.ReferralService": frozenset({Role.PLATFORM}),
    "colending.v1.PartnerBankService": frozenset({Role.PARTNER}),
    "colending.v1.BlacklistService": frozenset({Role.PARTNER, Role.PLATFORM, Role.ADMIN}),
    "colending.v1.AdminService": frozenset({Role.ADMIN}),
}


def parse_caller(value: str) -> Caller:
    if value == Role.PLATFORM.value:
        return Caller(Role.PLATFORM)
    if value == Role.ADMIN.value:
        return Caller(Role.ADMIN)
    kind, sep, partner_id = value.partition("/")
    if kind == Role.PARTNER.value and sep and partner_id_problem(partner_id) is None:
        return Caller(Role.PARTNER, partner_id)
    raise Unauthenticated(
        f"{CALLER_METADATA_KEY} {value!r} is not 'platform', 'admin' or 'partner/<id>'"
    )


def authenticate(context: grpc.ServicerContext) -> Caller:
    """Over TLS the client certificate says who calls (the metadata is ignored); without TLS,
    in development mode, the caller's own metadata does."""
    auth: Mapping[str, Sequence[bytes]]
    try:
        # The stubs say bytes per key; grpc gives a list of bytes per key.
        auth = cast("Mapping[str, Sequence[bytes]]", context.auth_context())
    except NotImplementedError:  # in-process test servers have no transport
        auth = {}
    if auth.get("transport_security_type") == [b"ssl"]:
        certificates: Sequence[bytes] = auth.get("x509_pem_cert") or []
        if not certificates:
            raise Unauthenticated("no client certificate: this gateway requires mutual TLS")
        identity = identity_of(certificates[0])
        if identity is None:
            raise Unauthenticated("the client certificate names no colending:// identity")
        return parse_caller(identity)
    values = [v for k, v in context.invocation_metadata() if k == CALLER_METADATA_KEY]
    if not values:
        raise Unauthenticated(
            f"no caller identity: in development mode send metadata {CALLER_METADATA_KEY}"
        )
    if len(values) > 1:
        raise Unauthenticated(f"{CALLER_METADATA_KEY} was sent more than once")
    value = values[0]
    return parse_caller(value if isinstance(value, str) else value.decode())


# Methods whose callers differ from their service's. A bank reports, the platform appeals for
# its merchant, and the reporter (checked against the entry) or the operator resolves. The
# platform, party to every case, reads a case with the banks' signed evidence in it.
METHOD_ALLOWED: dict[str, frozenset[Role]] = {
    "colending.v1.BlacklistService/ReportDefault": frozenset({Role.PARTNER}),
    "colending.v1.BlacklistService/FileAppeal": frozenset({Role.PLATFORM, Role.ADMIN}),
    "colending.v1.BlacklistService/ResolveAppeal": frozenset({Role.PARTNER, Role.ADMIN}),
    "colending.v1.PartnerBankService/GetFinancingCase": frozenset({Role.PARTNER, Role.PLATFORM}),
    # Both lenders reconcile; the operator settles disputes over a day's figures.
    "colending.v1.PartnerBankService/GetReconciliationStatement": frozenset(
        {Role.PARTNER, Role.PLATFORM, Role.ADMIN}
    ),
    "colending.v1.PartnerBankService/ListReconciliationDisputes": frozenset(
        {Role.PARTNER, Role.PLATFORM, Role.ADMIN}
    ),
    # A bank disputes a line of its statement; the other lender or the operator resolves it.
    "colending.v1.PartnerBankService/ResolveReconciliationDispute": frozenset(
        {Role.PLATFORM, Role.ADMIN}
    ),
}


def authorize(caller: Caller, service: str, method: str = "") -> None:
    allowed = METHOD_ALLOWED.get(f"{service}/{method}")
    if allowed is None:
        if caller.role not in ALLOWED.get(service, frozenset()):
            raise PermissionDenied(f"{caller.name} may not call {service}")
    elif caller.role not in allowed:
        roles = " or ".join(sorted(r.value for r in allowed))
        raise PermissionDenied(f"{caller.name} may not call {service}/{method} (only {roles})")
