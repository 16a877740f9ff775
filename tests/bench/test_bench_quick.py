"""``python -m bench --quick`` runs end to end and writes every figure the README quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW_FIELDS = {
    "per_second",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "server_cpu_s",
    "server_cpu_ms_per_call",
    "server_peak_rss_mib",
}


def test_quick_run_writes_the_table(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench", "--quick", "--only", "submit_sqlite,check"]
    command += ["--seconds", "0.5", "--warmup", "0.2", "--entries", "1000"]
    command += ["--concurrency", "4", "--clients", "1", "--out", str(out)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1
    scenarios = result["scenarios"]
    for name in ("baseline_submit", "submit_sqlite", "check_1", "check_1000"):
        assert scenarios[name].keys() >= ROW_FIELDS, name
    for name in ("submit_sqlite", "check_1", "check_1000"):
        assert scenarios[name]["throughput_ratio"] > 0
    assert scenarios["check_1"]["entries"] == 1000
    assert "SubmitReferral, SQLite" in finished.stdout
