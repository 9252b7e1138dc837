"""ASGI entry point: `uvicorn app.api.main:app ...`.

Settings are validated on import: a bad configuration stops uvicorn with one line, not a traceback.
"""

from __future__ import annotations

import sys

from fastapi import FastAPI

from app.api.factory import create_app
from app.log import configure_logging
from app.settings import SettingsError, get_settings


def _load() -> FastAPI:
    try:
        settings = get_settings()
    except SettingsError as error:
        sys.stderr.write(f"{error}\n")
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    return create_app(settings)


app = _load()
