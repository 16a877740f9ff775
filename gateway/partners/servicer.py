"""The partner registry's RPCs (AdminService): register, update, suspend and list partners."""

from __future__ import annotations

import grpc
from colending.v1 import admin_service_pb2

from gateway.api._handler import (
    ADMIN_SERVICE,
    idempotency,
    raise_if_invalid,
    unary,
)
from gateway.api.auth import Caller
from gateway.api.convert import enum_value
from gateway.errors import FieldViolation
from gateway.partners.convert import PARTNER_STATES, partner_to_proto, policy_from_proto
from gateway.partners.service import PartnerChanges, PartnerRegistry

ad = admin_service_pb2
UPDATABLE_PARTNER_FIELDS = frozenset({"display_name", "endpoint", "policy", "decision_public_key"})


class PartnerAdminRpcs:
    """AdminService: the partner registry."""

    _partners: PartnerRegistry

    @unary(ADMIN_SERVICE, ad.RegisterPartnerResponse)
    def RegisterPartner(
        self, request: ad.RegisterPartnerRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.RegisterPartnerResponse:
        problems: list[FieldViolation] = []
        policy = (
            policy_from_proto(request.policy, "policy", problems)
            if request.HasField("policy")
            else None
        )
        partner = self._partners.register_partner(
            idem=idempotency(request, caller, "RegisterPartner"),
            partner_id=request.partner_id,
            display_name=request.display_name,
            endpoint=request.endpoint,
            policy=policy,
            decision_public_key=request.decision_public_key,
            shape_problems=problems,
        )
        return ad.RegisterPartnerResponse(partner=partner_to_proto(partner))

    @unary(ADMIN_SERVICE, ad.UpdatePartnerResponse)
    def UpdatePartner(
        self, request: ad.UpdatePartnerRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.UpdatePartnerResponse:
        paths = set(request.update_mask.paths)
        problems = [
            FieldViolation("update_mask", f"cannot update {path!r}")
            for path in sorted(paths - UPDATABLE_PARTNER_FIELDS)
        ]
        given = request.partner
        policy = (
            policy_from_proto(given.policy, "partner.policy", problems)
            if "policy" in paths
            else None
        )
        partner = self._partners.update_partner(
            idem=idempotency(request, caller, "UpdatePartner"),
            partner_id=given.partner_id,
            changes=PartnerChanges(
                display_name=given.display_name if "display_name" in paths else None,
                endpoint=given.endpoint if "endpoint" in paths else None,
                policy=policy,
                decision_public_key=given.decision_public_key
                if "decision_public_key" in paths
                else None,
            ),
            shape_problems=problems,
        )
        return ad.UpdatePartnerResponse(partner=partner_to_proto(partner))

    @unary(ADMIN_SERVICE, ad.SuspendPartnerResponse)
    def SuspendPartner(
        self, request: ad.SuspendPartnerRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.SuspendPartnerResponse:
        partner = self._partners.suspend_partner(
            idem=idempotency(request, caller, "SuspendPartner"),
            partner_id=request.partner_id,
            reason=request.reason,
        )
        return ad.SuspendPartnerResponse(partner=partner_to_proto(partner))

    @unary(ADMIN_SERVICE, ad.ListPartnersResponse)
    def ListPartners(
        self, request: ad.ListPartnersRequest, context: grpc.ServicerContext, caller: Caller
    ) -> ad.ListPartnersResponse:
        problems: list[FieldViolation] = []
        state = enum_value(request.state, PARTNER_STATES, "state", problems)
        raise_if_invalid(problems)
        page = self._partners.list_partners(
            page_size=request.page_size, page_token=request.page_token, state=state
        )
        return ad.ListPartnersResponse(
            partners=[partner_to_proto(p) for p in page.items],
            next_page_token=page.next_page_token,
        )
