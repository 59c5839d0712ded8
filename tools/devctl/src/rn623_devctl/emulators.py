"""The SMTP sink and the SMS/WhatsApp provider emulators of a local run.

They run as one child process (``python -m rn623_devinfra.provider_emulators``) whose
inbox page shows every receipt sent. notification-svc is pointed at them unless the
environment already configures a real provider (its own variables win).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rn623_devctl.processes import ManagedProcess
from rn623_devinfra.ports import LOCALHOST
from rn623_devinfra.provider_emulators import DEV_HTTP_PORT, DEV_SMTP_PORT, notification_settings

NOTIFICATION_SERVICE = "notification-svc"


def emulator_ports() -> tuple[int, int]:
    """The HTTP and SMTP ports (RN623_EMULATOR_HTTP_PORT, RN623_EMULATOR_SMTP_PORT)."""
    http = int(os.environ.get("RN623_EMULATOR_HTTP_PORT") or DEV_HTTP_PORT)
    smtp = int(os.environ.get("RN623_EMULATOR_SMTP_PORT") or DEV_SMTP_PORT)
    return http, smtp


def emulator_process(
    cwd: Path, log_path: Path, webhooks: str, ports: tuple[int, int] | None = None
) -> ManagedProcess:
    """The emulators' process on ``ports`` (HTTP, SMTP; default ``emulator_ports()``),
    calling back ``webhooks`` (notification-svc's base URL)."""
    http, smtp = ports or emulator_ports()
    return ManagedProcess(
        "provider emulators",
        [
            sys.executable, "-m", "rn623_devinfra.provider_emulators",
            "--host", LOCALHOST, "--http-port", str(http), "--smtp-port", str(smtp),
            "--zenvia-webhook", f"{webhooks}/zenvia", "--meta-webhook", f"{webhooks}/meta",
        ],
        cwd=cwd,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        log_path=log_path,
    )  # fmt: skip


def notification_env(webhooks: str, ports: tuple[int, int] | None = None) -> dict[str, str]:
    """notification-svc's provider settings for the emulators (unset variables only)."""
    http, smtp = ports or emulator_ports()
    settings = notification_settings(f"http://{LOCALHOST}:{http}", LOCALHOST, smtp, webhooks)
    return {k.upper(): v for k, v in settings.items() if not os.environ.get(k.upper())}
