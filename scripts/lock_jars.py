"""``make jars-lock``: pin the jars of ``jvm/*/pom.xml`` in ``streaming_agents/_jars/*.lock.json``.

Asks Maven (offline, from the local repository ``make jars`` filled) which artifacts
each pom resolves to, and writes one lock file per jar set: Maven coordinates, file
name, size and SHA-256 of every jar.  The package verifies jars against these files
wherever it finds them (``streaming_agents/jars.py``), and fetches missing ones from
Maven Central by these coordinates.  Re-run after changing a pom.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = {"flink": ROOT / "jvm" / "flink" / "pom.xml", "kafka": ROOT / "jvm" / "kafka" / "pom.xml"}
LOCK_DIR = ROOT / "streaming_agents" / "_jars"


def resolved(pom: Path) -> list[tuple[str, Path]]:
    """``(group:artifact:type:[classifier:]version, path)`` of every runtime jar of ``pom``."""
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "deps.txt"
        subprocess.run(
            [
                "mvn", "-q", "-B", "-o", "-f", str(pom), "dependency:list",
                "-DincludeScope=runtime", f"-DoutputFile={listing}",
                "-DoutputAbsoluteArtifactFilename=true",
            ],
            check=True,
        )  # fmt: skip
        rows = []
        for line in listing.read_text().splitlines():
            parts = line.strip().split(":")
            if len(parts) < 6 or not parts[-1].endswith(".jar"):
                continue
            path = Path(parts[-1])
            coords = ":".join(parts[:-2])  # drop scope and path
            rows.append((coords, path))
    return sorted(rows)


def entry(coords: str, path: Path) -> dict[str, object]:
    parts = coords.split(":")
    group, artifact, version = parts[0], parts[1], parts[-1]
    classifier = parts[3] if len(parts) == 5 else ""
    return {
        "group": group,
        "artifact": artifact,
        "version": version,
        "classifier": classifier,
        "file": path.name,
        "size": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    for name, pom in SETS.items():
        jars = [entry(coords, path) for coords, path in resolved(pom)]
        lock = {"set": name, "pom": pom.relative_to(ROOT).as_posix(), "jars": jars}
        target = LOCK_DIR / f"{name}.lock.json"
        target.write_text(json.dumps(lock, indent=1) + "\n")
        print(f"{target.relative_to(ROOT)}: {len(jars)} jar(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
