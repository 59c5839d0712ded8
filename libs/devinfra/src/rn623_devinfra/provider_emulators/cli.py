"""Command line: ``python -m rn623_devinfra.provider_emulators``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from rn623_devinfra.ports import LOCALHOST
from rn623_devinfra.provider_emulators.config import (
    DEV_HTTP_PORT,
    DEV_META_ACCESS_TOKEN,
    DEV_META_APP_SECRET,
    DEV_META_PHONE_NUMBER_ID,
    DEV_SMTP_PORT,
    DEV_TWILIO_ACCOUNT_SID,
    DEV_TWILIO_AUTH_TOKEN,
    DEV_ZENVIA_API_TOKEN,
    DEV_ZENVIA_WEBHOOK_TOKEN,
    EmulatorConfig,
    require_loopback,
)
from rn623_devinfra.provider_emulators.runner import running_emulators

DEV_ZENVIA_WEBHOOK_URL = "http://127.0.0.1:8003/v1/webhooks/zenvia"
"""Default Zenvia callback target: notification-svc's webhook in local runs."""
DEV_META_WEBHOOK_URL = "http://127.0.0.1:8003/v1/webhooks/meta"
"""Default Meta callback target: notification-svc's webhook in local runs."""


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m rn623_devinfra.provider_emulators",
        description="Local Zenvia, Twilio and Meta WhatsApp emulators plus an SMTP sink.",
    )
    add = parser.add_argument
    add("--host", default=LOCALHOST, help="loopback address to bind (default %(default)s)")
    add("--http-port", type=int, default=DEV_HTTP_PORT, help="HTTP port (default %(default)s)")
    add("--smtp-port", type=int, default=DEV_SMTP_PORT, help="SMTP port (default %(default)s)")
    add("--zenvia-webhook", default=DEV_ZENVIA_WEBHOOK_URL, help="Zenvia callback URL ('' = none)")
    add("--meta-webhook", default=DEV_META_WEBHOOK_URL, help="Meta callback URL ('' = none)")
    add("--twilio-account-sid", default=DEV_TWILIO_ACCOUNT_SID)
    add("--twilio-auth-token", default=DEV_TWILIO_AUTH_TOKEN)
    add("--zenvia-api-token", default=DEV_ZENVIA_API_TOKEN)
    add("--zenvia-webhook-token", default=DEV_ZENVIA_WEBHOOK_TOKEN, help="'' = send none")
    add("--meta-access-token", default=DEV_META_ACCESS_TOKEN)
    add("--meta-app-secret", default=DEV_META_APP_SECRET)
    add("--meta-phone-number-id", default=DEV_META_PHONE_NUMBER_ID)
    add("--delivered-delay", type=float, default=0.05, help="seconds from sent to delivered")
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator configuration the parsed options describe."""
    return EmulatorConfig(
        twilio_account_sid=args.twilio_account_sid,
        twilio_auth_token=args.twilio_auth_token,
        zenvia_api_token=args.zenvia_api_token,
        zenvia_webhook_url=args.zenvia_webhook or None,
        zenvia_webhook_token=args.zenvia_webhook_token or None,
        meta_access_token=args.meta_access_token,
        meta_app_secret=args.meta_app_secret,
        meta_phone_number_id=args.meta_phone_number_id,
        meta_webhook_url=args.meta_webhook or None,
        delivered_delay=args.delivered_delay,
    )


async def serve(config: EmulatorConfig, host: str, http_port: int, smtp_port: int) -> None:
    """Run the emulators until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_emulators(
        config, host=host, http_port=http_port, smtp_port=smtp_port
    ) as emulators:
        print(
            f"provider emulators ready: inbox {emulators.http_url}/\n"
            f"  zenvia base URL {emulators.zenvia_base_url}\n"
            f"  twilio base URL {emulators.twilio_base_url}\n"
            f"  meta base URL   {emulators.meta_base_url}\n"
            f"  SMTP sink       {emulators.smtp_host}:{emulators.smtp_port}",
            flush=True,
        )
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and run the emulators; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        require_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config_from_args(args), args.host, args.http_port, args.smtp_port))
    return 0
