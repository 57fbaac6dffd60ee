"""Generate citadel/_proto from citadel/protos/*.proto with grpcio-tools.

Generated modules import each other by file name; this rewrites those imports to be
relative so the package works wherever it is installed. ``--check`` fails when the
committed code is stale.
"""

from __future__ import annotations

import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "citadel" / "protos"
OUT = ROOT / "citadel" / "_proto"
_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def generate(out: Path) -> None:
    include = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(p.name for p in SRC.glob("*.proto"))
    args = [
        "protoc",
        f"-I{SRC}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in out.glob("*_pb2*.py"):
        text = path.read_text()
        path.write_text(_IMPORT.sub(r"from . import \1 as \2", text))


def main() -> int:
    check = "--check" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        names = sorted(p.name for p in out.iterdir() if p.suffix in (".py", ".pyi"))
        if check:
            stale = [
                n
                for n in names
                if not (OUT / n).exists() or not filecmp.cmp(out / n, OUT / n, shallow=False)
            ]
            if stale:
                print("stale generated code (run `make protos`):", ", ".join(stale))
                return 1
            return 0
        for name in names:
            shutil.copyfile(out / name, OUT / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
