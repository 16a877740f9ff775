"""Daily reconciliation between each bank and the platform: signed day statements whose lines
are committed in a Merkle root, the closing of the books they imply, and disputes of lines."""

from gateway.reconciliation.service import (
    Reconciliation,
    StatementCaseIds,
    StatementEncoder,
    StatementPayload,
)

__all__ = ["Reconciliation", "StatementCaseIds", "StatementEncoder", "StatementPayload"]
