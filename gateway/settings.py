"""The gateway's settings: one object from flags, the environment and a TOML file.

Precedence, highest first: command-line flags, ``COLENDING_<NAME>`` environment variables, the
TOML file (``--config FILE`` or ``COLENDING_CONFIG``), then the defaults below. A bad value stops
the start with a message naming the setting and where it came from. ``config show`` prints the
result with secrets (a database password) masked.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from gateway.domain.delivery import DeliveryPolicy

ENV_PREFIX = "COLENDING_"


class SettingsError(ValueError):
    """A setting has a value the gateway cannot start with; the message names it and its source."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str = ""  # empty: SQLite in data_dir
    # PostgreSQL connections of this process (see gateway.store.db.PoolOptions).
    database_pool_size: int = 10
    database_pool_overflow: int = 10
    database_pool_timeout: float = 10.0
    database_connect_timeout: int = 5
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 16
    # Server processes sharing the port (SO_REUSEPORT); 0: one per core on PostgreSQL, one on
    # SQLite (a single writer: more processes would only wait for its lock).
    processes: int = 0
    delivery_workers: int = 4
    # A replica that dies holding outbox tasks frees them after this many seconds.
    delivery_lease: float = 30.0
    metrics_port: int = 0  # 0: no metrics endpoint
    log_format: str = "auto"
    sweep_interval: float = 60.0
    retention_years: int = 5
    appeal_days: int = 20
    remove_on_recovery: bool = False
    allow_insecure_remote: bool = False
    max_streams: int = 8
    streams_per_caller: int = 2
    health_interval: float = 5.0
    partner_rate: float = 50.0  # each bank's calls a second (0: no limit)
    partner_burst: int = 100
    tls: bool = False  # mutual TLS; the files default to data_dir/certs (see `certs`)
    tls_key: str = ""
    tls_cert: str = ""
    tls_client_ca: str = ""


def _int_in(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        try:
            number = int(value)
            if isinstance(value, bool) or (isinstance(value, float) and value != number):
                raise ValueError
        except (TypeError, ValueError):
            raise SettingsError(f"must be an integer, got {value!r}") from None
        if not low <= number <= high:
            raise SettingsError(f"must be between {low} and {high}, got {number}")
        return number

    return parse


def _positive_seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"must be a number of seconds, got {value!r}") from None
    if not 0 < seconds <= 86_400:
        raise SettingsError(f"must be more than 0 and at most 86400 seconds, got {seconds}")
    return seconds


def _lease_seconds(name: str, value: Any) -> float:
    seconds = _positive_seconds(name, value)
    if seconds <= (call := DeliveryPolicy().call_timeout.total_seconds()):
        raise SettingsError(
            f"must be more than the {call:g} s deadline of a bank call, got {seconds}: a shorter "
            "lease would hand a task to a second worker while the first still calls the bank"
        )
    return seconds


def _rate(name: str, value: Any) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"must be calls a second, got {value!r}") from None
    if not 0 <= rate <= 1_000_000:
        raise SettingsError(f"must be between 0 (no limit) and 1000000, got {rate}")
    return rate


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"must be true or false, got {value!r}")


def _choice(*options: str) -> Callable[[str, Any], str]:
    def parse(name: str, value: Any) -> str:
        if value not in options:
            raise SettingsError(f"must be one of {', '.join(options)}, got {value!r}")
        return str(value)

    return parse


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"must be text, got {value!r}")
    return value


def _path(name: str, value: Any) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise SettingsError(f"must be a path, got {value!r}")
    return Path(value)


def _mask_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except Exception:  # unparseable: show nothing of it rather than a secret
        return "***"
    query = {k: ("***" if "pass" in k.lower() else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def _database_url(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"must be text, got {value!r}")
    if not value:
        return value
    try:
        make_url(value).get_dialect()
    except Exception:
        raise SettingsError(
            f"{_mask_url(value)} is not a database URL this gateway can use (e.g. "
            "postgresql+psycopg://user@host/db)"
        ) from None
    return value


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "data_dir": _path,
    "database_url": _database_url,
    "database_pool_size": _int_in(1, 1_000),
    "database_pool_overflow": _int_in(0, 1_000),
    "database_pool_timeout": _positive_seconds,
    "database_connect_timeout": _int_in(1, 3_600),
    "host": _text,
    "port": _int_in(0, 65_535),
    "workers": _int_in(1, 1_000),
    "processes": _int_in(0, 64),
    "delivery_workers": _int_in(0, 100),
    "delivery_lease": _lease_seconds,
    "metrics_port": _int_in(0, 65_535),
    "log_format": _choice("auto", "json", "text"),
    "sweep_interval": _positive_seconds,
    "retention_years": _int_in(1, 50),
    "appeal_days": _int_in(1, 365),
    "remove_on_recovery": _flag,
    "allow_insecure_remote": _flag,
    "max_streams": _int_in(1, 1_000),
    "streams_per_caller": _int_in(1, 1_000),
    "health_interval": _positive_seconds,
    "partner_rate": _rate,
    "partner_burst": _int_in(1, 100_000),
    "tls": _flag,
    "tls_key": _text,
    "tls_cert": _text,
    "tls_client_ca": _text,
}


def load_settings(
    *,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources; ``flags`` holds only the flags given (None values are skipped)."""
    settings = Settings()
    names = {f.name for f in fields(Settings)}
    layers: list[tuple[str, Mapping[str, Any]]] = []
    file = config_file or (
        Path(environ["COLENDING_CONFIG"]) if "COLENDING_CONFIG" in environ else None
    )
    if file is not None:
        try:
            document = tomllib.loads(file.read_text())
        except OSError as error:
            raise SettingsError(f"config file {file}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"config file {file}: not valid TOML ({error})") from None
        section = document.get("gateway", document)
        if unknown := sorted(set(section) - names):
            raise SettingsError(f"config file {file}: unknown setting(s) {', '.join(unknown)}")
        layers.append((f"config file {file}", section))
    layers.append(
        (
            "environment",
            {
                name: environ[ENV_PREFIX + name.upper()]
                for name in names
                if ENV_PREFIX + name.upper() in environ
            },
        )
    )
    layers.append(("flag", {k: v for k, v in flags.items() if v is not None and k in names}))
    origin: dict[str, str] = {}  # where each value not left at its default came from
    for source, values in layers:
        for name, raw in values.items():
            where = (
                f"{ENV_PREFIX}{name.upper()}"
                if source == "environment"
                else f"--{name.replace('_', '-')}"
                if source == "flag"
                else f"{name} in {source}"
            )
            try:
                settings = replace(settings, **{name: _PARSERS[name](name, raw)})
            except SettingsError as error:
                raise SettingsError(f"{where}: {error}") from None
            origin[name] = where

    def said(name: str) -> str:
        return f"{name} {getattr(settings, name)} ({origin.get(name, 'default')})"

    if settings.max_streams >= settings.workers:
        raise SettingsError(
            f"{said('max_streams')} must be below {said('workers')}: each live stream holds a "
            "worker, and unary calls need some left"
        )
    if settings.processes > 1 and not settings.database_url:
        raise SettingsError(
            f"{said('processes')} needs PostgreSQL (database_url): SQLite has one writer, so "
            "more processes would only queue for its lock"
        )
    if settings.streams_per_caller > settings.max_streams:
        raise SettingsError(f"{said('streams_per_caller')} must not exceed {said('max_streams')}")
    return settings


def masked(settings: Settings) -> dict[str, str]:
    """Every setting as text, with the password of a database URL hidden."""
    shown = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if f.name == "database_url" and text:
            text = _mask_url(text)
        shown[f.name] = text
    return shown
