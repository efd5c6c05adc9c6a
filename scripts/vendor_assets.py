"""Re-fetch the vendored browser files from the npm registry, or check them against the manifest.

    .venv/bin/python scripts/vendor_assets.py --check           # no network: hash every file
    .venv/bin/python scripts/vendor_assets.py --fetch           # download, verify, extract, check
    .venv/bin/python scripts/vendor_assets.py --fetch --update  # after editing a version

static/vendor/manifest.json pins each package (name, version, the files kept, npm's tarball
integrity and each file's SHA-256). --fetch downloads the tarball of that exact version from
registry.npmjs.org, refuses it unless its SHA-512 equals both the registry's dist.integrity and
the integrity pinned in the manifest, and extracts only the listed files. Without --update, a file
whose SHA-256 differs from the manifest is an error. With --update (after changing a version in
the manifest and clearing its integrity), the manifest takes the new integrity and hashes.
Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import sys
import tarfile
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from web.vendor import (  # noqa: E402
    MANIFEST,
    VENDOR_DIR,
    Package,
    load_manifest,
    problems,
    write_manifest,
)

REGISTRY = "https://registry.npmjs.org"
TIMEOUT_SECONDS = 60


class VendorError(RuntimeError):
    pass


def _get(url: str) -> bytes:
    if not url.startswith(f"{REGISTRY}/"):
        raise VendorError(f"refusing to download from outside {REGISTRY}: {url}")
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return response.read()


def sri_sha512(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _member_bytes(archive: tarfile.TarFile, package: Package, wanted: str) -> bytes:
    member = archive.getmember(f"package/{wanted}")
    source = archive.extractfile(member) if member.isfile() else None
    if source is None:
        raise VendorError(f"{package.name}: package/{wanted} is not a regular file")
    return source.read()


def fetch_package(package: Package, update: bool) -> Package:
    """Download, verify and extract one package; the manifest entry describing what was written."""
    name = urllib.parse.quote(package.name, safe="@")
    meta = json.loads(_get(f"{REGISTRY}/{name}/{package.version}"))
    if meta.get("version") != package.version:
        raise VendorError(f"{package.name}: the registry answered version {meta.get('version')}")
    tarball_url, integrity = meta["dist"]["tarball"], meta["dist"]["integrity"]
    tarball = _get(tarball_url)
    if sri_sha512(tarball) != integrity:
        raise VendorError(f"{package.name}: the tarball does not match the registry's integrity")
    if package.integrity and package.integrity != integrity:
        raise VendorError(
            f"{package.name}@{package.version}: the registry's integrity {integrity} differs "
            f"from the pinned {package.integrity}"
        )
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        contents = {wanted: _member_bytes(archive, package, wanted) for wanted in package.files}
    files = {wanted: hashlib.sha256(data).hexdigest() for wanted, data in contents.items()}
    changed = sorted(n for n, digest in files.items() if digest != package.files[n])
    if changed and not update:
        raise VendorError(f"{package.name}: SHA-256 differs from the manifest: {changed}")
    target = VENDOR_DIR / package.directory
    if target.exists():
        shutil.rmtree(target)
    for wanted, data in contents.items():
        path = target / wanted
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return replace(
        package,
        tarball=tarball_url,
        integrity=integrity,
        tarball_sha256=hashlib.sha256(tarball).hexdigest(),
        files=files,
        license=str(meta.get("license", package.license)),
    )


def fetch(update: bool) -> None:
    packages = load_manifest()
    keep = {p.directory for p in packages} | {MANIFEST.name}
    for stale in VENDOR_DIR.iterdir():
        if stale.name not in keep:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    fetched = [fetch_package(p, update) for p in packages]
    for package in fetched:
        print(f"fetched {package.directory} ({package.integrity[:19]}…)")
    write_manifest(fetched)


def check() -> int:
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    packages = load_manifest()
    count = sum(len(p.files) for p in packages)
    if found:
        print(f"{len(found)} problem(s) in {VENDOR_DIR}", file=sys.stderr)
        return 1
    print(
        f"{count} vendored files match {MANIFEST.relative_to(ROOT)}: "
        + ", ".join(p.directory for p in packages)
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fetch", action="store_true", help="re-download from the npm registry")
    parser.add_argument("--update", action="store_true", help="accept new hashes (with --fetch)")
    parser.add_argument("--check", action="store_true", help="verify files against the manifest")
    args = parser.parse_args()
    if not (args.fetch or args.check) or (args.update and not args.fetch):
        parser.error("give --check, --fetch, or --fetch --update")
    if args.fetch:
        try:
            fetch(args.update)
        except (VendorError, KeyError, OSError) as exc:
            sys.exit(f"vendor_assets: {exc}")
    sys.exit(check())


if __name__ == "__main__":
    main()
