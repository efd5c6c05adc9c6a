"""What compose.yaml, deploy/Caddyfile and the Dockerfile promise a deployment (#23): two app
replicas behind a TLS proxy that forwards Streamlit's WebSocket, a worker, PostgreSQL, secrets
only as files, a multi-stage image that runs as a non-root user."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploy import entrypoint

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEYS?$|TOKEN|DATABASE_URL|SIGNING")
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
# what load_settings refuses to start without, or what unlocks personal data
REQUIRED_SECRETS = (
    "HIKESHI_DATABASE_URL",
    "HIKESHI_MIGRATION_DATABASE_URL",
    "HIKESHI_MASTER_KEYS",
    "HIKESHI_SESSION_SECRET",
    "HIKESHI_AUDIT_SIGNING_KEY",
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_two_app_replicas_a_worker_postgres_and_a_proxy(compose):
    services = compose["services"]
    assert services["app"]["deploy"]["replicas"] == 2
    assert services["app"]["command"] == ["app"]
    assert services["worker"]["command"] == ["worker"]  # python cli.py worker
    assert services["worker"]["image"] == services["app"]["image"]
    assert services["db"]["image"].startswith("postgres:")
    assert "caddy" in services["proxy"]["image"]
    assert any(str(p).startswith("443:443") for p in services["proxy"]["ports"])
    # only the proxy is reachable from outside
    assert [name for name, s in services.items() if s.get("ports")] == ["proxy"]
    assert "/healthz" in " ".join(services["app"]["healthcheck"]["test"])
    app_env = environment(services["app"])
    assert app_env["HIKESHI_BIND_ADDRESS"] == "0.0.0.0"
    assert app_env["HIKESHI_PUBLIC_BASE_URL"].startswith("https://")


def test_no_secret_is_written_into_the_environment(compose):
    declared = compose["secrets"]
    for name, service in compose["services"].items():
        given = set(service.get("secrets") or [])
        for key, value in environment(service).items():
            assert not CREDENTIALS_IN_URL.search(value), (name, key)
            if not SECRET_NAME.search(key.removesuffix("_FILE")):
                continue
            assert key.endswith("_FILE"), f"{name}: {key} holds a secret in clear"
            secret = value.removeprefix("/run/secrets/")
            assert value == f"/run/secrets/{secret}" and secret in given, (name, key)
            assert declared[secret]["file"].startswith("./secrets/"), secret


@pytest.mark.parametrize("service", ["app", "worker", "migrate"])
def test_the_application_gets_every_key_it_needs_as_a_file(compose, service):
    env = environment(compose["services"][service])
    for name in REQUIRED_SECRETS:
        assert f"{name}_FILE" in env, name
        assert name.startswith(entrypoint.SECRET_PREFIXES)  # the entrypoint reads it


def test_the_proxy_sends_every_path_and_the_websocket_to_the_replicas():
    caddy = (ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    lines = [line.split("#", 1)[0].strip() for line in caddy.splitlines()]
    lines = [line for line in lines if line]
    proxies = [line for line in lines if line.startswith("reverse_proxy")]
    # one reverse_proxy with no path matcher: /_stcore/stream (the WebSocket) goes there too
    assert proxies == ["reverse_proxy {"]
    # nothing answers in the app's place but the refusal of /metrics from outside
    answered = [line for line in lines if line.startswith(("handle", "respond", "@", "route"))]
    assert answered == ["respond /metrics 404"]
    # nothing strips the upgrade headers a WebSocket needs
    assert not re.search(r"header_up\s+-(Connection|Upgrade)", caddy, re.IGNORECASE)
    body = " ".join(lines)
    assert re.search(r"dynamic a \{ name app port 8501", body)
    # uploads and downloads live in the memory of the replica holding the WebSocket
    assert re.search(r"lb_policy cookie \S+", body)


def test_the_image_is_built_in_stages_and_runs_as_a_user():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    assert len(stages) == 2
    build, final = stages
    assert "uv sync --frozen" in build
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim-(bookworm|trixie)", dockerfile)
    assert "uv" not in re.sub(r"#.*", "", final).replace("/usr/sbin/nologin", "")
    users = re.findall(r"^USER (\S+)", final, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["python", "-m", "deploy.entrypoint"]' in final
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {"secrets", ".venv", "data", ".streamlit/secrets.toml"} <= set(ignored)
