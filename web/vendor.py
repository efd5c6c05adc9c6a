"""The vendored browser files (static/vendor): the manifest that pins them, the check of every file
against its SHA-256, and the route that serves exactly the files the manifest lists.

Standard library only for the manifest and the check, so scripts/vendor_assets.py can use them
before any dependency is installed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = ROOT / "static" / "vendor"
MANIFEST = VENDOR_DIR / "manifest.json"
ROUTE = "/vendor"
# Every served path contains the package version, so a file never changes under its URL.
CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    license: str
    tarball: str
    integrity: str  # npm's dist.integrity of the tarball (sha512, base64)
    tarball_sha256: str
    files: dict[str, str]  # path inside the npm package: SHA-256 (hex)

    @property
    def directory(self) -> str:
        return f"{self.name}@{self.version}"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(path: Path = MANIFEST) -> list[Package]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Package(**entry) for entry in data["packages"]]


def write_manifest(packages: list[Package], path: Path = MANIFEST) -> None:
    entries = [
        {
            "name": p.name,
            "version": p.version,
            "license": p.license,
            "tarball": p.tarball,
            "integrity": p.integrity,
            "tarball_sha256": p.tarball_sha256,
            "files": dict(sorted(p.files.items())),
        }
        for p in packages
    ]
    path.write_text(json.dumps({"packages": entries}, indent=2) + "\n", encoding="utf-8")


def served_files(packages: list[Package], directory: Path = VENDOR_DIR) -> dict[str, Path]:
    """URL path below the route ("leaflet@1.9.4/dist/leaflet.js") → file on disk."""
    return {
        f"{p.directory}/{name}": directory / p.directory / name
        for p in packages
        for name in p.files
    }


def problems(directory: Path = VENDOR_DIR, manifest: Path = MANIFEST) -> list[str]:
    """Every difference between the vendored directory and its manifest: missing files, files
    whose SHA-256 differs, and files the manifest does not list. Empty means verified."""
    packages = load_manifest(manifest)
    expected = {
        f"{p.directory}/{name}": digest for p in packages for name, digest in p.files.items()
    }
    found = {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and path != manifest
    }
    report = [f"missing: {name}" for name in sorted(expected.keys() - found)]
    report += [f"not in the manifest: {name}" for name in sorted(found - expected.keys())]
    report += [
        f"SHA-256 differs: {name}"
        for name in sorted(expected.keys() & found)
        if sha256_file(directory / name) != expected[name]
    ]
    return report
