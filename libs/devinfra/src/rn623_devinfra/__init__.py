"""Embedded PostgreSQL and Kafka-protocol broker for development and tests."""
