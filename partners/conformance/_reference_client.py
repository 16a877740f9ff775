"""A bank client that does what the ``bank-client`` suite asks, written with the SDK.

It is the kit's own proof that the suite is passable, and a short example of a well-behaved
bank: retry transient failures with the same request id, acknowledge only verified referrals,
record the rejected ones, and resume a broken stream from its last cursor.
"""

from __future__ import annotations

import time

from partners.sdk import BankClient, UnavailableError, VerificationError


def run_reference_client(target: str, *, bank_id: str, streamed: int = 2) -> list[str]:
    """Pull, acknowledge, then stream ``streamed`` referrals; returns the rejected case ids."""
    rejected: list[str] = []
    with BankClient.connect(target, bank_id=bank_id, caller=f"partner/{bank_id}") as bank:
        page = bank.pull(on_rejected=lambda error: rejected.append(error.case_id))
        for referral in page.referrals:
            bank.acknowledge(
                referral.case_id,
                bank_reference=f"REF-{referral.case_id[-8:]}",
                request_id=f"ack-{referral.case_id}",
            )
        cursor, received = "", 0  # unacknowledged referrals only, so nothing is missed
        while received < streamed:
            try:
                for referral, after in bank.stream(cursor=cursor):
                    bank.acknowledge(
                        referral.case_id,
                        bank_reference=f"REF-{referral.case_id[-8:]}",
                        request_id=f"ack-{referral.case_id}",
                    )
                    cursor, received = after, received + 1
                    if received >= streamed:
                        break
            except UnavailableError:
                time.sleep(0.1)  # reconnect from the last cursor
            except VerificationError as error:
                rejected.append(error.case_id)
    return rejected
