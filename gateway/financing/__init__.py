"""Joint financing: one case per (referral, bank), from the bank's decision to settlement.

``service``: decisions (approve, decline, counter-offer) within the bank's split floor and
exposure cap, the platform's answer to a counter-offer, loan events through the ledger and the
state machine (a default lists the borrower on the blacklist in the same transaction), the
cases each side reads, portfolio figures, the expiry sweep. ``cases``: reading and moving one
case. ``evidence``: a bank's signed decisions and loan events, verified and kept.
``convert``: their protobuf messages. ``servicer``: their RPCs.
"""

from gateway.financing.cases import CaseDetail
from gateway.financing.service import Financing

__all__ = ["CaseDetail", "Financing"]
