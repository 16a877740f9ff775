"""Post-loan monitoring: the platform's trade snapshots of borrowers, and the early-warning
alerts they raise for the lending banks.

``service``: submit a snapshot (validate it as a profile's reputation, check the MONITORING
consent for every lending bank, run the rules of ``gateway.domain.monitoring`` under each bank's
thresholds, sign one DSSE alert per bank, store snapshot and alerts in one transaction); banks
pull and stream their alerts. ``convert``: the protobuf messages and the exact signed alert
bytes. ``servicer``: the RPCs of ReferralService and PartnerBankService that serve them.
"""

from gateway.monitoring.service import AlertEncoder, Monitoring, SnapshotOutcome

__all__ = ["AlertEncoder", "Monitoring", "SnapshotOutcome"]
