"""Referrals, from the platform's submission to the bank's acknowledgement.

``service``: submit (validate, score against each bank's policy, check consent and the
blacklist, sign one DSSE envelope per bank, store the referral, its cases and its pushes in one
transaction), read, list, withdraw; banks pull, stream and acknowledge; the referral signing
keys are published and rotated. ``consent``: the merchant's consent that every referral needs.
``convert``: their protobuf messages and the exact signed payload bytes. ``servicer``: the RPCs
of ReferralService, PartnerBankService and AdminService that serve them.
"""

from gateway.referrals.consent import Consents
from gateway.referrals.service import KEY_RETENTION, ReferralEncoder, Referrals

__all__ = ["KEY_RETENTION", "Consents", "ReferralEncoder", "Referrals"]
