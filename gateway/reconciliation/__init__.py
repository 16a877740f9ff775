"""Daily reconciliation between each bank and the platform: signed day statements whose lines
are committed in a Merkle root, and the closing of the books they imply."""

from gateway.reconciliation.service import Reconciliation, StatementEncoder, StatementPayload

__all__ = ["Reconciliation", "StatementEncoder", "StatementPayload"]
