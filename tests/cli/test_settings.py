"""Settings: flags over environment over file over defaults; bad values stop the start naming
the setting and where it came from; secrets are masked when shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.settings import Settings, SettingsError, load_settings, masked


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_precedence_is_flags_then_environment_then_file_then_defaults(tmp_path: Path) -> None:
    config = _file(tmp_path, "[gateway]\nport = 6000\nworkers = 10\nappeal_days = 30\n")
    settings = load_settings(
        flags={"port": "7000", "host": None},
        environ={"COLENDING_PORT": "6500", "COLENDING_WORKERS": "12"},
        config_file=config,
    )
    assert settings.port == 7000  # the flag
    assert settings.workers == 12  # the environment over the file
    assert settings.appeal_days == 30  # the file over the default
    assert settings.host == Settings().host  # a flag not given does not override
    # The file may also be named by the environment.
    from_env = load_settings(flags={}, environ={"COLENDING_CONFIG": str(config)})
    assert from_env.port == 6000


@pytest.mark.parametrize(
    ("flags", "environ", "text", "message"),
    [
        ({"port": "abc"}, {}, "", "--port: must be an integer, got 'abc'"),
        ({}, {"COLENDING_PORT": "70000"}, "", "COLENDING_PORT: must be between 0 and 65535"),
        ({}, {}, "[gateway]\nlog_format = 'xml'\n", "log_format in config file"),
        ({}, {}, "[gateway]\nprot = 1\n", "unknown setting(s) prot"),
        ({}, {}, "[gateway\nport = 1\n", "not valid TOML"),
        ({}, {"COLENDING_REMOVE_ON_RECOVERY": "maybe"}, "", "must be true or false"),
        ({"sweep_interval": "0"}, {}, "", "--sweep-interval: must be more than 0"),
    ],
)
def test_a_bad_setting_is_named_with_its_source(
    tmp_path: Path, flags: dict[str, str], environ: dict[str, str], text: str, message: str
) -> None:
    config = _file(tmp_path, text) if text else None
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(flags=flags, environ=environ, config_file=config)


def test_secrets_are_masked() -> None:
    settings = Settings(database_url="postgresql+psycopg://app:s3cret@db:5432/prod")
    assert masked(settings)["database_url"] == "postgresql+psycopg://app:***@db:5432/prod"
    assert "s3cret" not in str(masked(settings))


def test_config_show_prints_toml_that_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLENDING_WORKERS", "12")
    assert main(["config", "show", "--port", "6100", "--remove-on-recovery"]) == 0
    shown = capsys.readouterr().out
    saved = _file(tmp_path, shown)
    again = load_settings(flags={}, environ={}, config_file=saved)
    assert (again.port, again.workers, again.remove_on_recovery) == (6100, 12, True)


def test_serve_stops_on_a_bad_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLENDING_APPEAL_DAYS", "0")
    assert main(["serve"]) == 2
    assert "COLENDING_APPEAL_DAYS: must be between 1 and 365, got 0" in capsys.readouterr().err


def test_database_urls_are_checked_and_always_masked() -> None:
    with pytest.raises(SettingsError, match="not a database URL"):
        load_settings(flags={"database_url": "postgres-ish://x"}, environ={})
    for url, secret in (
        ("postgresql+psycopg://:s3cret@db/x", "s3cret"),
        ("postgresql+psycopg://u@db/x?password=s3cret", "s3cret"),
        ("postgresql+psycopg://u:p%40ss@db/x", "p%40ss"),
    ):
        shown = masked(Settings(database_url=url))["database_url"]
        assert secret not in shown
        assert "p@ss" not in shown


def test_streams_must_leave_workers_for_unary_calls() -> None:
    with pytest.raises(SettingsError, match="max_streams"):
        load_settings(flags={"workers": "4"}, environ={})


def test_settings_that_disagree_are_named_with_their_sources() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(flags={"workers": "4"}, environ={})
    expected = "max_streams 8 (default) must be below workers 4 (--workers)"
    assert str(error.value).startswith(expected)
    with pytest.raises(SettingsError) as error:
        load_settings(flags={}, environ={"COLENDING_MAX_STREAMS": "1"})
    assert "streams_per_caller 2 (default)" in str(error.value)
    assert "max_streams 1 (COLENDING_MAX_STREAMS)" in str(error.value)


def test_several_processes_need_postgresql() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(flags={"processes": "2"}, environ={})
    assert str(error.value).startswith("processes 2 (--processes) needs PostgreSQL")
    url = "postgresql+psycopg://gateway@db/colending"
    assert load_settings(flags={"processes": "2"}, environ={"COLENDING_DATABASE_URL": url})
    assert load_settings(flags={"processes": "1"}, environ={}).processes == 1
    with pytest.raises(SettingsError, match="between 0 and 64"):
        load_settings(flags={"processes": "65"}, environ={})


def test_processes_share_out_each_banks_limits() -> None:
    from pathlib import Path

    from gateway.cli import shared_config
    from gateway.server import ServerConfig

    config = ServerConfig(data_dir=Path("d"), partner_rate=50.0, partner_burst=100)
    share = shared_config(config, processes=3, port=50051)
    assert (share.port, share.reuse_port) == (50051, True)
    assert share.partner_rate * 3 == 50.0
    assert share.partner_burst == 34  # rounded up: 3 x 34 >= 100
    assert (share.max_streams, share.streams_per_caller) == (3, 1)  # 8 and 2, over 3
