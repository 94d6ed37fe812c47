"""Tastebud: event collection, training and real-time personalization for NetworkBuster."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
