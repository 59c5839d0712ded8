"""Kafka client settings for production brokers (SASL/TLS)."""

from __future__ import annotations

import ssl

import pytest

from rn623_events.settings import KafkaSettings

pytestmark = pytest.mark.unit


def test_plaintext_by_default() -> None:
    kwargs = KafkaSettings().client_kwargs()
    assert kwargs["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in kwargs
    assert "sasl_mechanism" not in kwargs


def test_sasl_ssl_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9093,kafka-1:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "protocol-svc")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    settings = KafkaSettings()
    kwargs = settings.client_kwargs()
    assert kwargs["bootstrap_servers"] == "kafka-0:9093,kafka-1:9093"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "protocol-svc"
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "s3cret" not in repr(settings)  # the password never shows in a repr or a log


def test_unknown_security_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL_PLEASE")
    with pytest.raises(ValueError, match="security_protocol"):
        KafkaSettings()
