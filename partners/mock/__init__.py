"""Mock partner banks for contract tests, the demo and integration rehearsals.

:class:`MockBank` is a real gRPC ``BankReceiverService`` that verifies every pushed envelope
with the SDK, de-duplicates by referral id and behaves as its :class:`Script` says (approve,
decline, counter-offer, slow, flaky, down), then drives the bank side of each case through
``PartnerBankService``. ``colending-mock-bank`` runs one from the command line.
"""

from partners.mock._bank import Decision, MockBank, Script, Stats, decision_for

__all__ = ["Decision", "MockBank", "Script", "Stats", "decision_for"]
