"""deploy/ as far as this machine can check it: the compose file, the systemd unit, the
container image's recipe, and every setting documented where operators look."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SETTINGS = ["VOTZ_" + f.name.upper() for f in fields(Settings)]


def test_every_setting_is_in_the_env_example_and_the_readme() -> None:
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [s for s in SETTINGS if not re.search(rf"^#? ?{s}=", example, re.M)] == []
    assert [s for s in SETTINGS if f"`{s}`" not in readme] == []
    # And nothing there that Votz does not read (a typo an operator would copy).
    named = set(re.findall(r"^#? ?(VOTZ_[A-Z_]+)=", example, re.M))
    assert named - set(SETTINGS) == set()


def test_the_env_example_defaults_are_the_code_defaults() -> None:
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    defaults = {"VOTZ_" + f.name.upper(): f.default for f in fields(Settings)}
    for name, value in re.findall(r"^# (VOTZ_[A-Z_]+)=(.*)$", example, re.M):
        default = defaults[name]
        if isinstance(default, bool):
            assert (value not in ("", "0", "false")) is default, name
        elif isinstance(default, float):
            assert float(value) == default, name
        else:
            assert value == str(default), name


def test_compose_runs_postgres_migrations_and_two_votz_behind_one_url() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"db", "migrate", "votz-a", "votz-b", "proxy"}
    assert "healthcheck" in services["db"]
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "pgdata" in compose["volumes"]
    assert services["migrate"]["command"] == ["votz", "db", "upgrade"]
    instances = set()
    for name in ("votz-a", "votz-b"):
        votz = services[name]
        assert votz["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert votz["environment"]["VOTZ_DATABASE_URL"].startswith("postgresql://")
        instances.add(votz["environment"]["VOTZ_INSTANCE"])
    assert len(instances) == 2  # each process its own name for its claims
    nginx = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert "server votz-a:8080" in nginx and "server votz-b:8080" in nginx
    for service in services.values():  # pinned images, never "latest"
        image = service.get("image", "")
        assert image == "votz:local" or re.search(r":\d[\w.-]*$", image), image
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        env = DEPLOY / ".env"
        created = not env.exists()
        if created:
            env.write_text("", encoding="utf-8")
        try:
            checked = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"),
                                      "config", "--quiet"], capture_output=True, text=True)
        finally:
            if created:
                env.unlink()
        assert checked.returncode == 0, checked.stderr


def test_the_image_is_small_pinned_non_root_and_checks_its_health() -> None:
    recipe = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^FROM (\S+)", recipe, re.M)
    assert bases and all(re.search(r":3\.11\.\d+-slim", base) for base in bases)
    assert re.search(r"^USER votz$", recipe, re.M)
    assert "HEALTHCHECK" in recipe and "/healthz" in recipe
    assert recipe.rstrip().endswith('CMD ["votz", "run"]')


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "votz.service", encoding="utf-8")
    return unit


def test_the_systemd_unit_is_hardened() -> None:
    service = _unit()["Service"]
    assert service["DynamicUser"] == "yes" and service["StateDirectory"] == "votz"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["ExecStart"] == "/opt/votz/bin/votz run"
    assert "sqlite:////var/lib/votz/" in service["Environment"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd here")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """The unit as shipped, with its paths pointed at this checkout's virtualenv."""
    votz = Path(sys.executable).parent / "votz"
    env = tmp_path / "votz.env"
    env.write_text("VOTZ_TELEGRAM_TOKEN=\n", encoding="utf-8")
    text = (DEPLOY / "votz.service").read_text(encoding="utf-8")
    text = text.replace("/opt/votz/bin/votz", str(votz)).replace("/etc/votz/votz.env", str(env))
    unit = tmp_path / "votz.service"
    unit.write_text(text, encoding="utf-8")
    checked = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                             text=True)
    problems = [line for line in checked.stderr.splitlines()
                if "votz.service" in line and "file:///opt/votz" not in line]
    assert checked.returncode == 0 and problems == [], checked.stderr
