"""The blacklist network: defaults reported by any bank, shared with every bank.

``service``: report a default (or list one from a defaulted case, in the loan event's own
transaction), check borrowers, appeal and resolve, expire, the platform's enforcement events.
``log``: the append-only Merkle log they write, with signed checkpoints, inclusion and
consistency proofs and the changes banks sync from. ``convert``: their protobuf messages.
``servicer``: the BlacklistService RPCs and ReferralService's ListEnforcementEvents. The rules
themselves are pure, in ``gateway.domain.blacklist``; leaf encoding, pseudonyms and Merkle
hashing are shared with the SDK through ``colending_core``.
"""

from gateway.blacklist.log import BlacklistLog, SignedCheckpoint
from gateway.blacklist.service import (
    CASE_ENDED,
    BlacklistNetwork,
    Borrower,
    CheckResult,
    EnforcementPage,
)

__all__ = [
    "CASE_ENDED",
    "BlacklistLog",
    "BlacklistNetwork",
    "Borrower",
    "CheckResult",
    "EnforcementPage",
    "SignedCheckpoint",
]
