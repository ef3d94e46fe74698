"""Production settings refuse to start without a SECRET_KEY; env vars reach the settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def django_setup(env: dict[str, str], code: str = "") -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "DEBUG")
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; {code}",
        ],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_debug_off_without_secret_key_refuses_to_start(tmp_path: Path) -> None:
    result = django_setup({"DEBUG": "false", "VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_production_env_is_read(tmp_path: Path) -> None:
    result = django_setup(
        {
            "DEBUG": "false",
            "SECRET_KEY": "x" * 50,
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u:p@db:5432/quant",
            "REDIS_URL": "redis://redis:6379/0",
            "ALLOWED_HOSTS": "quant.example.com",
            "ALPACA_PAPER": "false",
        },
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL, settings.ALLOWED_HOSTS,"
        " settings.ALPACA_PAPER, settings.LOG_FORMAT, settings.CACHES['default']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "common.db.backends.postgresql",
        "redis://redis:6379/0",
        "['quant.example.com']",
        "False",
        "json",
        "django.core.cache.backends.redis.RedisCache",
    ]


def test_embedded_defaults_need_no_env(tmp_path: Path) -> None:
    result = django_setup(
        {"VAR_DIR": str(tmp_path)},
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL, settings.MARKETDATA_PROVIDER)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://", "synthetic"]
    assert (tmp_path / "secret_key").exists()


def test_an_unsupported_database_url_is_named(tmp_path: Path) -> None:
    result = django_setup({"VAR_DIR": str(tmp_path), "DATABASE_URL": "mysql://u@h/db"})
    assert result.returncode != 0
    assert "DATABASE_URL scheme" in result.stderr
