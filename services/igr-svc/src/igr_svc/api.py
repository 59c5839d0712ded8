"""HTTP API of igr-svc (v1)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
