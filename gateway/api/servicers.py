"""The gRPC services, each assembled from its capabilities' RPCs.

A service's RPCs belong to several capabilities (PartnerBankService serves referrals and
financing; AdminService partners, financing, delivery and signing keys), so each capability's
``servicer`` module holds its share as a class and the service here inherits the shares, ahead
of the generated base class whose methods answer UNIMPLEMENTED. BlacklistService belongs to
the blacklist alone, so its servicer is one class there, re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from colending.v1 import (
    admin_service_pb2_grpc,
    partner_bank_service_pb2_grpc,
    referral_service_pb2_grpc,
)

from gateway._transactions import utc_now
from gateway.api.limits import RateLimiter, StreamSlots
from gateway.app import Gateway
from gateway.blacklist.servicer import BlacklistServicer, EnforcementRpcs
from gateway.delivery.servicer import DeliveryAdminRpcs
from gateway.financing.servicer import CounterOfferRpcs, FinancingBankRpcs, PortfolioRpcs
from gateway.monitoring.servicer import AlertBankRpcs, MonitoringRpcs
from gateway.orders.servicer import OrderBankRpcs, OrderRpcs
from gateway.partners.servicer import PartnerAdminRpcs
from gateway.reconciliation.servicer import ReconciliationRpcs
from gateway.referrals.servicer import ReferralBankRpcs, ReferralRpcs, SigningKeyAdminRpcs

__all__ = ["AdminServicer", "BlacklistServicer", "PartnerBankServicer", "ReferralServicer"]


class ReferralServicer(
    ReferralRpcs,
    CounterOfferRpcs,
    EnforcementRpcs,
    MonitoringRpcs,
    OrderRpcs,
    referral_service_pb2_grpc.ReferralServiceServicer,
):
    def __init__(self, *, gateway: Gateway, clock: Callable[[], datetime] = utc_now) -> None:
        self._referrals = gateway.referrals
        self._consents = gateway.consents
        self._financing = gateway.financing
        self._blacklist = gateway.blacklist
        self._monitoring = gateway.monitoring
        self._orders = gateway.orders
        self._clock = clock


class PartnerBankServicer(
    ReferralBankRpcs,
    FinancingBankRpcs,
    AlertBankRpcs,
    OrderBankRpcs,
    ReconciliationRpcs,
    partner_bank_service_pb2_grpc.PartnerBankServiceServicer,
):
    def __init__(
        self,
        *,
        gateway: Gateway,
        streams: StreamSlots | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._referrals = gateway.referrals
        self._financing = gateway.financing
        self._blacklist = gateway.blacklist
        self._monitoring = gateway.monitoring
        self._orders = gateway.orders
        self._reconciliation = gateway.reconciliation
        self._streams = streams or StreamSlots(limit=4, per_caller=2)
        self._limiter = limiter


class AdminServicer(
    PartnerAdminRpcs,
    SigningKeyAdminRpcs,
    PortfolioRpcs,
    DeliveryAdminRpcs,
    admin_service_pb2_grpc.AdminServiceServicer,
):
    def __init__(self, *, gateway: Gateway) -> None:
        self._partners = gateway.partners
        self._referrals = gateway.referrals
        self._financing = gateway.financing
        self._deliveries = gateway.deliveries
