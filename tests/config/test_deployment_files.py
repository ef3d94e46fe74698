"""docker-compose.yml, Dockerfile and .env.example agree with what the settings read.

No Docker engine here: the files are parsed and checked against the code, not started.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def settings_env_vars() -> set[str]:
    """Every variable quant/settings.py reads through django-environ."""
    source = (ROOT / "config" / "settings.py").read_text()
    return set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


def env_example_vars() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


RUNTIME_ONLY = {"PORT", "HOST"}  # read by manage.py run_platform, not by the settings
COMPOSE_ONLY = {"POSTGRES_PASSWORD"}  # interpolated by docker compose into the db container


def compose_interpolated_vars() -> set[str]:
    """``${NAME}`` / ``${NAME:-default}`` references docker compose fills from .env."""
    text = (ROOT / "docker-compose.yml").read_text()
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))


def test_compose_runs_the_five_services_in_order() -> None:
    assert {"db", "redis", "web", "worker", "beat"} <= set(SERVICES)
    assert "timescale/timescaledb" in SERVICES["db"]["image"]
    assert SERVICES["redis"]["image"].startswith("redis:")
    for name in ("web", "worker", "beat"):
        depends = SERVICES[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["command"][-2:] == ["migrate", "--noinput"]


def test_app_containers_use_postgres_redis_and_production_mode() -> None:
    for name in ("migrate", "web", "worker", "beat"):
        env = SERVICES[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert env["DEBUG"] == "false"
        assert set(env) <= settings_env_vars(), f"{name} sets variables the settings never read"


def test_compose_interpolations_are_documented() -> None:
    used = compose_interpolated_vars()
    assert used - (settings_env_vars() | RUNTIME_ONLY | COMPOSE_ONLY) == set()
    assert used - env_example_vars() == set(), ".env.example does not document a compose variable"


def test_no_volume_hides_the_static_files_baked_into_the_image() -> None:
    """A volume over STATIC_ROOT (or VAR_DIR) would keep serving an old image's manifest."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    var_dir = re.search(r"VAR_DIR=(\S+)", dockerfile)
    assert var_dir, "the Dockerfile sets no VAR_DIR"
    static_root = f"{var_dir.group(1)}/staticfiles"
    for name in ("migrate", "web", "worker", "beat"):
        for volume in SERVICES[name].get("volumes", []):
            target = volume.split(":")[1].rstrip("/")
            assert not (static_root + "/").startswith(target + "/"), f"{name} mounts over {target}"


def test_container_commands_name_modules_that_exist() -> None:
    from celery import Celery

    import config.asgi
    import config.celery

    assert SERVICES["web"]["command"][-1] == "config.asgi:application"
    assert callable(config.asgi.application)
    assert isinstance(config.celery.app, Celery)
    for name in ("worker", "beat"):
        command = SERVICES[name]["command"]
        assert command[:3] == ["celery", "-A", "config"]
    scheduler = SERVICES["beat"]["command"][SERVICES["beat"]["command"].index("--scheduler") + 1]
    from django.conf import settings

    assert scheduler == settings.CELERY_BEAT_SCHEDULER
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "config.asgi:application" in dockerfile and "-c requirements.lock" in dockerfile
    for folder in re.findall(r"^COPY (\w+) \./", dockerfile, flags=re.MULTILINE):
        assert (ROOT / folder).is_dir(), f"Dockerfile copies a missing folder {folder}"


def test_env_example_documents_every_variable_the_settings_read() -> None:
    read, documented = settings_env_vars(), env_example_vars()
    assert len(read) > 25
    assert read - documented == set(), "settings read variables .env.example does not document"
    assert documented - read - RUNTIME_ONLY - COMPOSE_ONLY == set(), (
        ".env.example documents variables nobody reads"
    )


def test_every_variable_is_in_the_operations_manual_too() -> None:
    readme = (ROOT / "docs" / "operations.md").read_text()
    missing = {name for name in settings_env_vars() | RUNTIME_ONLY if f"`{name}`" not in readme}
    assert missing == set()
