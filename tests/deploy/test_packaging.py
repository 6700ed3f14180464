"""The container files, checked without a Docker engine: docker-compose.yml's
structure (images, health checks, dependencies, shared secrets, SPEC ports, one
service per part), and that the Dockerfile installs the pinned dependencies and the
same wheel ``pip wheel --no-deps .`` builds here."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from mangahub.config import Settings
from mangahub.servers import PARTS

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEYS = ("MANGAHUB_JWT_SECRET", "MANGAHUB_INTERNAL_TOKEN")
SHARED_KEYS = (*SECRET_KEYS, "MANGAHUB_DATABASE_URL", "MANGAHUB_REDIS_URL")


def default_port(name: str) -> int:
    value = Settings.model_fields[f"{name}_port"].default
    assert isinstance(value, int)
    return value


# What each part publishes, and how its health is probed (SPEC's ports are the defaults).
PART_PORTS = {
    "api": [f"{default_port('http')}:{default_port('http')}"],
    "tcp": [f"{default_port('tcp')}:{default_port('tcp')}"],
    "udp": [f"{default_port('udp')}:{default_port('udp')}/udp"],
    "grpc": [f"{default_port('grpc')}:{default_port('grpc')}"],
    "sync": [],
}
PART_PROBES = {
    "api": ["http", f"http://127.0.0.1:{default_port('http')}/healthz"],
    "tcp": ["tcp", f"127.0.0.1:{default_port('tcp')}"],
    "udp": ["udp", f"127.0.0.1:{default_port('udp')}"],
    "grpc": ["grpc", f"127.0.0.1:{default_port('grpc')}"],
    "sync": ["alive"],
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def parts_of(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services running ``mangahub serve <part>``, by part."""
    found: dict[str, dict[str, Any]] = {}
    for service in services.values():
        command = service.get("command")
        if isinstance(command, list) and command[:1] == ["serve"]:
            assert len(command) == 2, command
            found[command[1]] = service
    return found


def test_every_service_has_an_image_and_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        check = service.get("healthcheck", {})
        if service.get("restart") == "no":  # one-shot jobs are waited for, not probed
            assert check.get("disable") is True, name
            continue
        assert not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        for key in ("interval", "timeout", "retries"):
            assert key in check, (name, key)


def test_dependencies_exist_and_wait_for_health_or_completion(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, (name, target)
            condition = rule["condition"]
            if condition == "service_healthy":
                assert not services[target].get("healthcheck", {}).get("disable"), target
            else:
                assert condition == "service_completed_successfully", (name, condition)
                assert services[target].get("restart") == "no", target


def test_one_service_per_part_each_after_migrations(services: dict[str, dict[str, Any]]) -> None:
    parts = parts_of(services)
    assert set(parts) == set(PARTS)
    migrate = services["migrate"]
    assert "mangahub db migrate" in " ".join(migrate["entrypoint"])
    for part, service in parts.items():
        deps = service["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", part
        assert deps["postgres"]["condition"] == "service_healthy", part
        assert deps["redis"]["condition"] == "service_healthy", part
        # Only the migrate job loads the catalog: parts starting together must not race.
        assert service["environment"]["MANGAHUB_SEED_CATALOG"] == "false", part
        # Parts without the HTTP door expose their metrics on a port of their own.
        assert ("MANGAHUB_METRICS_PORT" in service["environment"]) == (part != "api"), part


def test_parts_share_secrets_and_backends(services: dict[str, dict[str, Any]]) -> None:
    envs = {part: s["environment"] for part, s in parts_of(services).items()}
    envs["migrate"] = services["migrate"]["environment"]
    for key in SHARED_KEYS:
        values = {part: env.get(key) for part, env in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), (key, values)
    for key in SECRET_KEYS:
        # From the operator's .env, required, never a literal in the file.
        assert re.fullmatch(rf"\$\{{{key}:\?[^}}]+\}}", envs["api"][key]), envs["api"][key]
    assert "@postgres:5432/" in envs["api"]["MANGAHUB_DATABASE_URL"]
    assert envs["api"]["MANGAHUB_REDIS_URL"].startswith("redis://redis:")


def test_ports_and_probes_match_the_spec(services: dict[str, dict[str, Any]]) -> None:
    for part, service in parts_of(services).items():
        assert service.get("ports", []) == PART_PORTS[part], part
        probe = service["healthcheck"]["test"]
        assert probe[:3] == ["CMD", "python", "/opt/mangahub/healthcheck.py"], part
        assert probe[3:] == PART_PROBES[part], part
    assert services["postgres"]["volumes"][0].startswith("pgdata:")


def test_dockerfile_installs_the_locked_dependencies_and_the_project_wheel() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.MULTILINE)
    assert [name for _, name in stages] == ["builder", "runtime"]
    assert all(image.endswith("-slim") for image, _ in stages)
    builder, runtime = text.split("AS runtime", 1)
    assert "pip wheel --wheel-dir /wheels -r requirements.lock" in builder
    assert "pip wheel --no-deps --wheel-dir /dist ." in builder
    assert "--no-index --find-links /wheels -r /tmp/requirements.lock" in runtime
    assert "--no-index --no-deps /dist/mangahub-*.whl" in runtime
    assert re.search(r"^USER mangahub$", runtime, re.MULTILINE)
    assert 'VOLUME ["/var/lib/mangahub"]' in runtime
    exposed = re.search(r"^EXPOSE (.+)$", runtime, re.MULTILINE)
    assert exposed is not None
    ports = {default_port(n) for n in ("http", "tcp", "grpc", "trigger")}
    assert set(exposed[1].split()) == {str(p) for p in ports} | {f"{default_port('udp')}/udp"}
    assert "/healthz" in re.search(r"^HEALTHCHECK .*(?:\n .*)*", runtime, re.MULTILINE)[0]  # type: ignore[index]
    assert 'ENTRYPOINT ["mangahub"]' in runtime and 'CMD ["serve"]' in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".env", "tests", "data"} <= set(ignored)


def test_the_wheel_the_image_installs_holds_the_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("mangahub-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "mangahub = mangahub.cli.main:app" in archive.read(entry_points).decode()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    package = ROOT / "src" / "mangahub"
    shipped = {
        str(p.relative_to(package.parent))
        for p in package.rglob("*")
        # Not the compiled modules of `make native`: built where the package runs.
        if p.is_file() and "__pycache__" not in p.parts and "_native" not in p.parts
    }
    assert shipped <= names, sorted(shipped - names)[:10]
    # Every runtime requirement of the wheel is pinned in requirements.lock, so the
    # image's offline install (lock first, then the wheel with --no-deps) is complete.
    required = {
        re.split(r"[\s\[<>=!~;]", line.removeprefix("Requires-Dist: "), maxsplit=1)[0]
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    }
    pinned = {
        line.split("==", 1)[0] for line in (ROOT / "requirements.lock").read_text().splitlines()
    }

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    assert required and {norm(n) for n in required} <= {norm(n) for n in pinned}


def test_the_env_example_names_every_required_variable() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required and required == example
