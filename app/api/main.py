"""ASGI entry point: `uvicorn app.api.main:app ...`.

Settings are validated on import: a bad configuration stops uvicorn with one line, not a traceback.
"""

from __future__ import annotations

import sys

from fastapi import FastAPI

from app import tracing
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
    tracing.setup(tracing.API_SERVICE)
    app = create_app(settings)
    tracing.instrument_api(app)
    return app


app = _load()
