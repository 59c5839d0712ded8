"""Settings shared by every service, read from the environment (pydantic-settings)."""

from __future__ import annotations

import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from rn623_events.clock import SystemClock


class KafkaSettings(BaseSettings):
    """Broker connection, including SASL/TLS for production clusters (env prefix ``KAFKA_``)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "rn623"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # "auto" asks the broker for a producer id and falls back when it is not supported
    # (Tansu); "on" fails instead; "off" never asks.
    idempotence: Literal["auto", "on", "off"] = "auto"
    request_timeout_ms: int = 30_000

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments common to aiokafka producers, consumers and admin clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            kwargs["ssl_context"] = context
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return kwargs


class AuthSettings(BaseSettings):
    """Bearer-JWT verification (env prefix ``JWT_``): HS256 secret in development,
    RS256 public key or JWKS URL in production."""

    model_config = SettingsConfigDict(env_prefix="JWT_", extra="ignore")

    secret: SecretStr | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    issuer: str = "rn623-dev"
    audience: str = "rn623"
    leeway_seconds: int = 30


class TelemetrySettings(BaseSettings):
    """OpenTelemetry and logging; the OTLP exporter is enabled only when an endpoint is set."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    otel_exporter_otlp_endpoint: str | None = None
    otel_sdk_disabled: bool = False
    log_level: str = "INFO"
    log_json: bool = True


class ServiceSettings(BaseSettings):
    """Base settings of a service; each service subclasses it and adds its own fields."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    service_name: str = "rn623"
    # Shifts the service's clock (end-to-end runs test deadlines days ahead); 0 in production.
    clock_offset_seconds: float = 0.0
    # A file holding more seconds of offset, re-read while running (the end-to-end suite
    # moves every service's clock at once); unset in production.
    clock_offset_file: Path | None = None
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    database_pool_size: int = 10
    # The worker's /livez, /readyz and /metrics (WORKER_PORT; off when unset). Containers
    # set WORKER_HOST=0.0.0.0; development keeps loopback.
    worker_port: int | None = Field(default=None, ge=1, le=65535)
    worker_host: str = "127.0.0.1"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    def make_clock(self) -> SystemClock:
        """The service's clock: the system clock shifted by the configured offset and file."""
        return SystemClock(timedelta(seconds=self.clock_offset_seconds), self.clock_offset_file)
