"""The HTTP API: a thin FastAPI layer over the domain modules."""

from __future__ import annotations

from tastebud.api.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
