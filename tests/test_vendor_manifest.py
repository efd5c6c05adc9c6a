"""The vendored browser files: they match their manifest, the map asks for nothing else, the route
serves exactly them with long-lived cache headers, and the re-fetch script verifies what the npm
registry sends before writing anything."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import re
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from services import geo
from web.vendor import (
    CACHE_CONTROL,
    MANIFEST,
    VENDOR_DIR,
    load_manifest,
    problems,
    served_files,
    sha256_file,
)
from web.vendor_route import vendor_route

ROOT = Path(__file__).resolve().parent.parent


def test_every_vendored_file_matches_the_manifest():
    assert problems() == []


def test_each_package_is_pinned_with_its_licence_and_npm_integrity():
    packages = {p.name: p for p in load_manifest()}

    assert {name: p.version for name, p in packages.items()} == {
        "leaflet": "1.9.4",
        "leaflet.markercluster": "1.5.3",
    }
    for package in packages.values():
        assert package.integrity.startswith("sha512-")
        assert package.tarball == (
            f"https://registry.npmjs.org/{package.name}/-/{package.name}-{package.version}.tgz"
        )
        assert any("LICEN" in name.upper() for name in package.files), package.name
        assert len(package.tarball_sha256) == 64


def test_every_url_the_map_loads_is_a_vendored_file():
    served = served_files(load_manifest())
    prefix = f"{geo.VENDOR_ROUTE}/"

    for url in geo.map_assets(geo.VENDOR_ROUTE).urls:
        assert url.startswith(prefix)
        assert url.removeprefix(prefix) in served, url


def test_the_default_asset_base_is_our_own_route(monkeypatch):
    monkeypatch.delenv("HIKESHI_MAP_ASSET_BASE", raising=False)
    assert geo.map_assets().leaflet_js == "/vendor/leaflet@1.9.4/dist/leaflet.js"
    monkeypatch.setenv("HIKESHI_MAP_ASSET_BASE", "https://gis.city.local/npm/")
    assert geo.map_assets().cluster_css[0] == (
        "https://gis.city.local/npm/leaflet.markercluster@1.5.3/dist/MarkerCluster.css"
    )


def test_leaflets_css_refers_only_to_vendored_images():
    css = (VENDOR_DIR / "leaflet@1.9.4/dist/leaflet.css").read_text(encoding="utf-8")
    referenced = {ref.strip("'\"") for ref in re.findall(r"url\(([^)]+)\)", css)}
    referenced -= {"#default#VML"}  # an old-IE behaviour, not a file

    assert referenced
    for ref in referenced:
        assert (VENDOR_DIR / "leaflet@1.9.4/dist" / ref).is_file(), ref


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "vendor"
    shutil.copytree(VENDOR_DIR, target)
    return target


def test_a_changed_byte_is_caught(copy: Path):
    script = copy / "leaflet@1.9.4/dist/leaflet.js"
    script.write_bytes(script.read_bytes().replace(b"Leaflet", b"Leaflet!", 1))

    assert problems(copy, copy / MANIFEST.name) == [
        "SHA-256 differs: leaflet@1.9.4/dist/leaflet.js"
    ]


def test_missing_and_unlisted_files_are_caught(copy: Path):
    (copy / "leaflet.markercluster@1.5.3/dist/MarkerCluster.css").unlink()
    (copy / "leaflet@1.9.4/dist/extra.js").write_text("alert(1)")

    assert problems(copy, copy / MANIFEST.name) == [
        "missing: leaflet.markercluster@1.5.3/dist/MarkerCluster.css",
        "not in the manifest: leaflet@1.9.4/dist/extra.js",
    ]


# -- the route --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http() -> TestClient:
    return TestClient(Starlette(routes=[vendor_route()]))


def test_the_route_serves_vendored_files_for_a_year(http: TestClient):
    response = http.get("/vendor/leaflet@1.9.4/dist/leaflet.js")

    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == sha256_file(
        VENDOR_DIR / "leaflet@1.9.4/dist/leaflet.js"
    )
    assert (
        response.headers["cache-control"]
        == CACHE_CONTROL
        == ("public, max-age=31536000, immutable")
    )
    assert "javascript" in response.headers["content-type"]
    assert (
        http.get("/vendor/leaflet@1.9.4/dist/images/layers.png").headers["content-type"]
        == "image/png"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/vendor/manifest.json",
        "/vendor/leaflet@1.9.4/",
        "/vendor/leaflet@1.9.3/dist/leaflet.js",
        "/vendor/leaflet@1.9.4/dist/../../manifest.json",
        "/vendor/leaflet@1.9.4/dist/%2e%2e/%2e%2e/manifest.json",
        "/vendor/../server.py",
    ],
)
def test_the_route_serves_nothing_else(http: TestClient, path: str):
    assert http.get(path).status_code == 404


# -- the re-fetch script ----------------------------------------------------------------------------


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vendor_assets", ROOT / "scripts" / "vendor_assets.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def fake_registry(tmp_path: Path, monkeypatch):
    """The script against an in-memory registry serving one tiny package, writing to tmp_path."""
    script = load_script()
    files = {"LICENSE": b"MIT", "dist/tiny.js": b"var tiny = 1;"}
    body = tarball(files)
    registry = {"integrity": sri(body), "body": body}
    tarball_url = f"{script.REGISTRY}/tiny/-/tiny-1.0.0.tgz"

    def get(url: str) -> bytes:
        if url == f"{script.REGISTRY}/tiny/1.0.0":
            dist = {"tarball": tarball_url, "integrity": registry["integrity"]}
            return json.dumps({"version": "1.0.0", "license": "MIT", "dist": dist}).encode()
        assert url == tarball_url
        return registry["body"]

    monkeypatch.setattr(script, "_get", get)
    monkeypatch.setattr(script, "VENDOR_DIR", tmp_path)
    package = script.Package(
        name="tiny",
        version="1.0.0",
        license="MIT",
        tarball=tarball_url,
        integrity=sri(body),
        tarball_sha256=hashlib.sha256(body).hexdigest(),
        files={name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    )
    return script, package, registry, tmp_path


def test_fetch_writes_exactly_the_pinned_files(fake_registry):
    script, package, _, directory = fake_registry

    fetched = script.fetch_package(package, update=False)

    assert fetched == package
    assert (directory / "tiny@1.0.0/dist/tiny.js").read_bytes() == b"var tiny = 1;"
    assert sorted(p.name for p in (directory / "tiny@1.0.0").rglob("*") if p.is_file()) == [
        "LICENSE",
        "tiny.js",
    ]


def test_fetch_refuses_a_tarball_that_is_not_the_pinned_one(fake_registry):
    script, package, registry, directory = fake_registry
    registry["body"] = tarball({"LICENSE": b"MIT", "dist/tiny.js": b"steal(document.cookie)"})
    registry["integrity"] = sri(registry["body"])

    with pytest.raises(script.VendorError, match="differs from the pinned"):
        script.fetch_package(package, update=False)
    assert not (directory / "tiny@1.0.0").exists()


def test_fetch_refuses_a_tarball_that_does_not_match_the_registrys_integrity(fake_registry):
    script, package, registry, _ = fake_registry
    registry["body"] = tarball({"LICENSE": b"MIT", "dist/tiny.js": b"tampered in transit"})

    with pytest.raises(script.VendorError, match="registry's integrity"):
        script.fetch_package(package, update=False)


def test_fetch_refuses_changed_files_unless_updating(fake_registry):
    script, package, _, directory = fake_registry
    stale = {**package.files, "dist/tiny.js": "0" * 64}
    unpinned = replace(package, files=stale, integrity="")

    with pytest.raises(script.VendorError, match="SHA-256 differs"):
        script.fetch_package(unpinned, update=False)
    assert not (directory / "tiny@1.0.0").exists()
    assert script.fetch_package(unpinned, update=True).files == package.files


def test_downloads_only_from_the_npm_registry():
    script = load_script()
    with pytest.raises(script.VendorError, match="outside"):
        script._get("https://cdn.jsdelivr.net/npm/leaflet@1.9.4/dist/leaflet.js")
