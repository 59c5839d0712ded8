"""Unit tests of ``devctl token`` and the JWT secret handling."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from rn623_devctl.cli import app

pytestmark = pytest.mark.unit

SECRET = "s" * 40


def _decode(token: str, secret: str = SECRET) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(
        token, secret, algorithms=["HS256"], audience="rn623", issuer="rn623-dev"
    )
    return claims


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("RN623_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("JWT_SECRET", SECRET)
    for name in ("JWT_ISSUER", "JWT_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_default_token_is_admin_for_all_operators(runner: CliRunner) -> None:
    result = runner.invoke(app, ["token"])
    assert result.exit_code == 0, result.output
    claims = _decode(result.stdout.strip())
    assert claims["sub"] == "dev"
    assert claims["operators"] == ["*"]
    assert claims["scope"] == "admin"
    assert claims["exp"] == claims["iat"] + 12 * 3600  # type: ignore[operator]


def test_narrowed_token(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        [
            "token",
            "--operator",
            "123456",
            "--operator",
            "654321",
            "--scopes",
            "protocols:write protocols:read",
            "--ttl-hours",
            "1",
            "--subject",
            "crm-bot",
        ],
    )
    assert result.exit_code == 0, result.output
    claims = _decode(result.stdout.strip())
    assert claims["sub"] == "crm-bot"
    assert claims["operators"] == ["123456", "654321"]
    assert claims["scope"] == "protocols:write protocols:read"
    assert claims["exp"] == claims["iat"] + 3600  # type: ignore[operator]


def test_invalid_operator_is_refused(runner: CliRunner) -> None:
    result = runner.invoke(app, ["token", "--operator", "12"])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_secret_file_is_created_once_with_mode_0600(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("JWT_SECRET")
    first = runner.invoke(app, ["token"])
    second = runner.invoke(app, ["token"])
    assert first.exit_code == second.exit_code == 0, first.output
    secret_file = tmp_path / "state" / "jwt-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(bytes.fromhex(secret)) == 32
    assert _decode(first.stdout.strip(), secret)["scope"] == "admin"
    assert _decode(second.stdout.strip(), secret)["scope"] == "admin"
