"""Production defaults: ``check --deploy`` is clean with the documented environment
(docs/production-security.md), HSTS and the HTTPS redirect come from the environment, no CORS
wildcard is trusted by default, and the dashboard has a Content-Security-Policy."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "production-security.md"
# Variables of the developer's or CI's environment that would change what is checked.
CLEARED = (
    "DATABASE_URL",
    "SECRET_KEY",
    "DEBUG",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "ALLOWED_HOSTS",
    "CORS_ALLOWED_ORIGINS",
    "CORS_ALLOWED_ORIGIN_REGEXES",
)


def documented_environment() -> dict[str, str]:
    """The ``env`` block of the production doc, placeholders filled in."""
    blocks = re.findall(r"```env\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/production-security.md has one ```env block"
    values: dict[str, str] = {}
    for line in blocks[0].splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        value = re.sub(r"<[^>]*>", lambda _: secrets.token_urlsafe(50), value)
        values[name] = value
    return values


def run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CLEARED}
    return subprocess.run(
        [sys.executable, *args],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_deploy(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)


def test_check_deploy_is_clean_with_the_documented_environment(tmp_path: Path) -> None:
    env = documented_environment()
    assert env["DEBUG"] == "false" and int(env["SECURE_HSTS_SECONDS"]) >= 31536000
    result = check_deploy(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_is_missing_without_it(tmp_path: Path) -> None:
    """The check is not trivially clean: without the HTTPS settings it complains."""
    env = documented_environment()
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"):
        env.pop(name)
    result = check_deploy(env, tmp_path)
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_https_settings_come_from_the_environment(tmp_path: Path) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        " s.SECURE_HSTS_PRELOAD, s.SECURE_PROXY_SSL_HEADER, s.TRUSTED_PROXY_COUNT,"
        ' s.CORS_ALLOWED_ORIGINS, s.CORS_ALLOWED_ORIGIN_REGEXES, sep="|")'
    )
    result = run(["-c", code], documented_environment(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split("|") == [
        "True",
        "31536000",
        "True",
        "True",
        "('HTTP_X_FORWARDED_PROTO', 'https')",
        "1",
        "['https://dashboard.example.com']",
        "[]",
    ]


def test_production_defaults_trust_no_cross_origin_dashboard(tmp_path: Path) -> None:
    """Regression: every https://*.vercel.app was a trusted CORS origin by default."""
    env = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50)}
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CORS_ALLOWED_ORIGINS, s.CORS_ALLOWED_ORIGIN_REGEXES, s.SECURE_HSTS_SECONDS,"
        " s.SECURE_SSL_REDIRECT)"
    )
    result = run(["-c", code], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "[]", "0", "False"]


# --- Content-Security-Policy ------------------------------------------------------------------


def policy(response: Any) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy")
    assert header, "no Content-Security-Policy header"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/signin", "/admin/login/", "/v1/docs", "/"])
def test_pages_carry_a_strict_content_security_policy(path: str) -> None:
    """Regression: no page had a Content-Security-Policy."""
    response = Client().get(path)
    assert response.status_code in (200, 302)
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no CDN
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"] and csp["base-uri"] == ["'self'"]


@pytest.mark.django_db
def test_the_signed_in_dashboard_has_the_policy(admin_client: Client) -> None:
    csp = policy(admin_client.get("/"))
    assert csp["script-src"] == ["'self'"]


@pytest.mark.django_db
def test_only_the_self_contained_report_files_may_run_inline_scripts() -> None:
    from django.urls import resolve

    for path in ("/backtests/runs/1/report.html", "/backtests/walk-forward/1/report.html"):
        response = resolve(path).func  # wrapped by the report policy in config/urls.py
        assert response.__wrapped__ is not None  # type: ignore[attr-defined]
    report = Client().get("/backtests/runs/999999/report.html")  # any answer gets the header
    csp = policy(report)
    assert csp["script-src"] == ["'self'", "'unsafe-inline'"]
    assert csp["object-src"] == ["'none'"]


def test_dashboard_templates_have_no_inline_scripts_the_policy_would_block() -> None:
    """Behaviour lives in static/js/ and data in json_script blocks; the report files are the
    one exception (their own policy)."""
    offenders = []
    for template in (ROOT / "templates").rglob("*.html"):
        if "backtests/report" in template.as_posix():
            continue
        text = template.read_text()
        for match in re.finditer(r"<script\b([^>]*)>", text):
            attrs = match.group(1)
            if "src=" in attrs or 'type="application/json"' in attrs:
                continue
            offenders.append(f"{template.relative_to(ROOT)}: {match.group(0)}")
        if re.search(r"\son[a-z]+\s*=", text):
            offenders.append(f"{template.relative_to(ROOT)}: inline event handler")
        if re.search(r"(src|href)=\"(https?:)?//", text):
            offenders.append(f"{template.relative_to(ROOT)}: a resource from another origin")
    assert offenders == []
