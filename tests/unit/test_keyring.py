from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from colending_core import REFERRAL_PAYLOAD_TYPE, UnknownKeyError, verify_envelope
from gateway.signing.keyring import InsecureKeyFileError, KeyRing, KeyRingError

TTL = timedelta(days=7)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_creates_private_directory_and_key(keys_dir: Path, clock: FakeClock) -> None:
    ring = KeyRing.open(keys_dir, clock=clock)
    active = ring.active_key()
    assert active.active
    assert active.algorithm == "ed25519"
    assert active.created_at == clock.now
    assert len(active.public_key) == 32
    assert _mode(keys_dir) == 0o700
    assert _mode(keys_dir / f"{active.keyid}.pem") == 0o600
    index = json.loads((keys_dir / "keyring.json").read_text())
    assert [k["keyid"] for k in index["keys"]] == [active.keyid]
    # No temp files left behind by the atomic writes.
    assert not [p for p in keys_dir.iterdir() if p.name.endswith(".tmp")]


def test_open_without_create_requires_existing_ring(keys_dir: Path) -> None:
    with pytest.raises(KeyRingError, match="no key ring index"):
        KeyRing.open(keys_dir, create=False)


def test_reopen_gives_same_key(keys_dir: Path) -> None:
    first = KeyRing.open(keys_dir).active_key()
    again = KeyRing.open(keys_dir, create=False).active_key()
    assert again == first


def test_sign_verifies_with_trusted_keys(keys_dir: Path) -> None:
    ring = KeyRing.open(keys_dir)
    env = ring.sign(b"payload", payload_type=REFERRAL_PAYLOAD_TYPE)
    assert env.signatures[0].keyid == ring.active_key().keyid
    assert (
        verify_envelope(
            env,
            trusted_keys=ring.trusted_public_keys(),
            payload_type=REFERRAL_PAYLOAD_TYPE,
        )
        == b"payload"
    )


def test_rotate_keeps_old_key_published_until_retention_passes(
    keys_dir: Path, clock: FakeClock
) -> None:
    ring = KeyRing.open(keys_dir, clock=clock)
    old = ring.active_key()
    before = ring.sign(b"signed before rotation", payload_type=REFERRAL_PAYLOAD_TYPE)

    clock.advance(timedelta(hours=1))
    new = ring.rotate()
    assert new.keyid != old.keyid
    assert ring.active_key() == new
    after = ring.sign(b"signed after", payload_type=REFERRAL_PAYLOAD_TYPE)
    assert after.signatures[0].keyid == new.keyid

    published = ring.published_keys(retain_for=TTL)
    assert [k.keyid for k in published] == [new.keyid, old.keyid]
    assert published[1].retired_at == clock.now
    assert not published[1].active

    trusted = {k.keyid: k.ed25519_public_key() for k in published}
    for env in (before, after):
        verify_envelope(env, trusted_keys=trusted, payload_type=REFERRAL_PAYLOAD_TYPE)

    clock.advance(TTL - timedelta(seconds=1))
    assert [k.keyid for k in ring.published_keys(retain_for=TTL)] == [
        new.keyid,
        old.keyid,
    ]
    clock.advance(timedelta(seconds=1))  # retired_at + retain_for is no longer in the future
    published = ring.published_keys(retain_for=TTL)
    assert [k.keyid for k in published] == [new.keyid]
    trusted = {k.keyid: k.ed25519_public_key() for k in published}
    with pytest.raises(UnknownKeyError):
        verify_envelope(before, trusted_keys=trusted, payload_type=REFERRAL_PAYLOAD_TYPE)

    # The explicit ``now`` overrides the clock.
    earlier = clock.now - timedelta(days=1)
    assert len(ring.published_keys(now=earlier, retain_for=TTL)) == 2
    # Every key is still in the ring for the gateway's own use.
    assert set(ring.trusted_public_keys()) == {old.keyid, new.keyid}
    assert set(ring.trusted_public_keys(retain_for=TTL)) == {new.keyid}


def test_rotation_survives_reopen(keys_dir: Path, clock: FakeClock) -> None:
    ring = KeyRing.open(keys_dir, clock=clock)
    old = ring.active_key()
    new = ring.rotate()
    reopened = KeyRing.open(keys_dir, clock=clock, create=False)
    assert reopened.active_key() == new
    assert [k.keyid for k in reopened.published_keys(retain_for=TTL)] == [
        new.keyid,
        old.keyid,
    ]


def test_group_readable_key_file_is_refused(keys_dir: Path) -> None:
    keyid = KeyRing.open(keys_dir).active_key().keyid
    key_file = keys_dir / f"{keyid}.pem"
    key_file.chmod(0o644)
    with pytest.raises(InsecureKeyFileError) as info:
        KeyRing.open(keys_dir)
    message = str(info.value)
    assert str(key_file) in message
    assert "0600" in message
    assert "PRIVATE KEY" not in message


def test_tampered_index_is_rejected(keys_dir: Path) -> None:
    KeyRing.open(keys_dir)
    index_path = keys_dir / "keyring.json"
    index = json.loads(index_path.read_text())
    index["keys"][0]["keyid"] = "0" * 64
    index_path.write_text(json.dumps(index))
    with pytest.raises(KeyRingError, match="does not match"):
        KeyRing.open(keys_dir)


def test_repr_has_no_key_material(keys_dir: Path) -> None:
    ring = KeyRing.open(keys_dir)
    active = ring.active_key()
    pem = (keys_dir / f"{active.keyid}.pem").read_text()
    for text in (repr(ring), repr(active)):
        assert "PRIVATE" not in text
        assert pem not in text
        assert active.public_key.hex() not in text


def test_other_instance_sees_rotation(keys_dir: Path, clock: FakeClock) -> None:
    server = KeyRing.open(keys_dir, clock=clock, recheck_interval=0.0)
    cli = KeyRing.open(keys_dir, clock=clock, create=False)
    old = server.active_key()

    new = cli.rotate()

    assert server.active_key() == new
    env = server.sign(b"x", payload_type=REFERRAL_PAYLOAD_TYPE)
    assert env.signatures[0].keyid == new.keyid
    assert {k.keyid for k in server.published_keys(retain_for=TTL)} == {
        old.keyid,
        new.keyid,
    }


def test_recheck_is_throttled(keys_dir: Path, clock: FakeClock) -> None:
    server = KeyRing.open(keys_dir, clock=clock, recheck_interval=3600.0)
    old = server.active_key()
    KeyRing.open(keys_dir, clock=clock).rotate()
    # Within the interval the server keeps its cached view instead of stat-ing on every call.
    assert server.active_key() == old


def test_rotations_from_two_instances_are_not_lost(keys_dir: Path, clock: FakeClock) -> None:
    a = KeyRing.open(keys_dir, clock=clock)
    b = KeyRing.open(keys_dir, clock=clock)
    first = a.rotate()
    second = b.rotate()  # b re-reads the index under the lock before rotating
    reopened = KeyRing.open(keys_dir, clock=clock)
    keyids = [k.keyid for k in reopened.published_keys(retain_for=TTL)]
    assert keyids[0] == second.keyid
    assert first.keyid in keyids
    assert len(keyids) == 3


def test_concurrent_signing_and_rotation(keys_dir: Path) -> None:
    ring = KeyRing.open(keys_dir)

    def sign_many() -> None:
        for _ in range(200):
            env = ring.sign(b"p", payload_type=REFERRAL_PAYLOAD_TYPE)
            verify_envelope(
                env,
                trusted_keys=ring.trusted_public_keys(),
                payload_type=REFERRAL_PAYLOAD_TYPE,
            )

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(sign_many) for _ in range(4)]
        for _ in range(5):
            ring.rotate()
        for future in futures:
            future.result()  # re-raises any failure from the worker
    assert len(ring.trusted_public_keys()) == 6


def test_private_key_file_mode_ignores_umask_widening(keys_dir: Path) -> None:
    old_umask = os.umask(0)
    try:
        ring = KeyRing.open(keys_dir)
    finally:
        os.umask(old_umask)
    assert _mode(keys_dir / f"{ring.active_key().keyid}.pem") == 0o600
