"""The layering holds at import time: the pure rules load with grpc and protobuf unavailable.

Each check runs in a fresh interpreter whose import system refuses grpc, protobuf, google.rpc
and the generated contract, so a stray import anywhere below ``gateway.domain`` or
``colending_core`` (for example through ``partners.sdk``, whose package imports grpc) fails it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import partners.sdk

ROOT = Path(__file__).resolve().parents[2]

BLOCKER = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = ("grpc", "grpc_status", "grpc_health", "grpc_reflection", "google.protobuf",
               "google.rpc", "colending.v1")

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") or name.startswith(b + "_")
                   for b in BLOCKED):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Refuse())
    """
)


def run_blocked(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(body)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_blocker_refuses_grpc_and_generated_code() -> None:
    for module in ("grpc", "google.protobuf.message", "colending.v1.common_pb2", "partners.sdk"):
        result = run_blocked(f"import {module}")
        assert result.returncode != 0, module
        assert "blocked for this test" in result.stderr, (module, result.stderr)


@pytest.mark.parametrize("package", ["colending_core", "gateway.domain"])
def test_pure_packages_import_without_grpc_or_protobuf(package: str) -> None:
    result = run_blocked(
        f"""
        import importlib, pkgutil
        package = importlib.import_module({package!r})
        names = [m.name for m in pkgutil.walk_packages(package.__path__, {package!r} + ".")]
        for name in names:
            importlib.import_module(name)
        assert names, "no modules found"
        print(len(names))
        """
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 5


def test_the_merkle_log_imports_without_grpc_or_protobuf() -> None:
    result = run_blocked("import gateway.signing.merkle")
    assert result.returncode == 0, result.stderr


def test_the_sdk_exports_the_shared_rules_as_the_same_objects() -> None:
    """Banks import from ``partners.sdk``; what it takes from the core is the core's own object,
    so an SDK user catching the SDK's error class catches the one the core raises."""
    import colending_core

    shared = set(partners.sdk.__all__) & set(colending_core.__all__)
    assert {"ColendingError", "VerificationError", "Envelope", "pseudonym"} <= shared
    for name in shared:
        assert getattr(partners.sdk, name) is getattr(colending_core, name), name
    assert issubclass(partners.sdk.RpcError, colending_core.ColendingError)
