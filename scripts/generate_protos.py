"""Regenerate the Python bindings of proto/colending/v1 beside their sources.

Run with the project's virtual environment: ``python scripts/generate_protos.py``.
``--check`` regenerates into a temporary directory and fails if the committed files differ
(CI runs it so generated code never drifts from the .proto sources).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = Path("colending") / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out_dir: Path) -> None:
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    well_known = Path(protoc.__file__).parent / "_proto"
    # mypy-protobuf's plugins are installed beside this interpreter, which may not be on PATH.
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        "--mypy_opt=quiet",
        "--mypy_grpc_opt=quiet",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(directory: Path) -> set[str]:
    return {p.name for p in (directory / PACKAGE).iterdir() if p.name.endswith(GENERATED_SUFFIXES)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code differs")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / PACKAGE).mkdir(parents=True)
        generate(out)
        fresh = generated_files(out)
        committed = generated_files(PROTO_ROOT)
        if options.check:
            drift = sorted(fresh ^ committed) + sorted(
                name
                for name in fresh & committed
                if not filecmp.cmp(out / PACKAGE / name, PROTO_ROOT / PACKAGE / name, shallow=False)
            )
            if drift:
                print("generated code is out of date; run scripts/generate_protos.py:", *drift)
                return 1
            print(f"generated code is up to date ({len(fresh)} files)")
            return 0
        for name in committed - fresh:
            (PROTO_ROOT / PACKAGE / name).unlink()
        for name in fresh:
            shutil.copyfile(out / PACKAGE / name, PROTO_ROOT / PACKAGE / name)
        print(f"wrote {len(fresh)} files to {PROTO_ROOT / PACKAGE}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
