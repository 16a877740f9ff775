"""The partner SDK installs without the server's storage stack and never imports the server."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys

    # A None entry makes any import of these modules fail, as if they were not installed.
    sys.modules["sqlmodel"] = None
    sys.modules["sqlalchemy"] = None
    sys.modules["tenacity"] = None

    import partners.sdk

    assert partners.sdk.BankClient and partners.sdk.verify_referral
    leaked = sorted(n for n in sys.modules if n == "gateway" or n.startswith("gateway."))
    assert not leaked, leaked
    print("ok")
    """
)


def test_sdk_imports_without_server_dependencies() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
