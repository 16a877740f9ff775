"""The gateway as a whole: each capability's use cases wired over one database, one referral
signing key ring, one blacklist network and one clock.

Every use case lives in its capability's package (``gateway.referrals``, ``gateway.financing``,
``gateway.blacklist``, ``gateway.partners``, ``gateway.delivery``, ``gateway.monitoring``,
``gateway.orders``, ``gateway.reconciliation``); this only builds them, so the servicers, the
CLI and the tests reach each through one object.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import text

from gateway._transactions import utc_now
from gateway.blacklist import BlacklistNetwork
from gateway.delivery import DeliveryTasks, Dispatcher
from gateway.financing import Financing
from gateway.monitoring import AlertEncoder, Monitoring
from gateway.orders import OrderFinancing
from gateway.partners import PartnerRegistry
from gateway.reconciliation import Reconciliation, StatementCaseIds, StatementEncoder
from gateway.referrals import Consents, ReferralEncoder, Referrals
from gateway.signing.keyring import KeyRing
from gateway.store.db import Database


class Gateway:
    def __init__(
        self,
        *,
        database: Database,
        keyring: KeyRing,
        encode_referral: ReferralEncoder,
        encode_alert: AlertEncoder,
        encode_statement: StatementEncoder,
        statement_case_ids: StatementCaseIds,
        blacklist: BlacklistNetwork,
        clock: Callable[[], datetime] = utc_now,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.database = database
        self.blacklist = blacklist
        # Pushes referrals to banks with a receiver endpoint; run by ``serve``.
        self.dispatcher = dispatcher
        self.partners = PartnerRegistry(
            database=database, clock=clock, on_change=blacklist.partners.changed
        )
        self.consents = Consents(database=database, clock=clock)
        self.financing = Financing(database=database, blacklist=blacklist, clock=clock)
        self.referrals = Referrals(
            database=database,
            keyring=keyring,
            encode_referral=encode_referral,
            blacklist=blacklist,
            clock=clock,
            dispatcher=dispatcher,
        )
        self.monitoring = Monitoring(
            database=database,
            keyring=keyring,
            encode_alert=encode_alert,
            blacklist=blacklist,
            clock=clock,
            dispatcher=dispatcher,
        )
        self.orders = OrderFinancing(database=database, clock=clock)
        self.reconciliation = Reconciliation(
            database=database,
            keyring=keyring,
            encode_statement=encode_statement,
            statement_case_ids=statement_case_ids,
            clock=clock,
        )
        self.deliveries = DeliveryTasks(database=database, clock=clock, dispatcher=dispatcher)

    def database_answers(self) -> bool:
        """Whether the database answers a trivial query now (the health check)."""
        try:
            with self.database.reading() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True
