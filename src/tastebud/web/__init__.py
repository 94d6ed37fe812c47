"""What Tastebud serves to browsers: for now, the quickstart's demo page (a web page that sends
events to the API from another origin, through CORS). The dashboard and the tracker build come
later (docs/api.md, *Web pages*)."""

from __future__ import annotations

import html
import json
from importlib import resources

__all__ = ["demo_page"]


def demo_page(api_url: str, ingest_key: str) -> bytes:
    """The demo page, sending to ``api_url`` with ``ingest_key`` (an ingest key can send events
    and read nothing: it is safe in a web page)."""
    template = resources.files("tastebud.web").joinpath("demo.html").read_text(encoding="utf-8")
    config = json.dumps({"api": api_url, "key": ingest_key}).replace("<", "\\u003c")
    return (
        template.replace("__CONFIG__", config)
        .replace("__API_URL__", html.escape(api_url))
        .encode("utf-8")
    )
