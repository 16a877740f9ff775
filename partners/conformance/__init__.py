"""Conformance kit for a bank's ``BankReceiverService``: run ``colending-conformance`` against
a receiver configured to trust the kit's test key, and every check must pass before the
gateway is pointed at it. See :mod:`partners.conformance._kit` for the checks."""

from partners.conformance._kit import CheckResult, ConformanceKit

__all__ = ["CheckResult", "ConformanceKit"]
