"""Settings loaded from a given environment, as a process would start with it (tests of the settings)."""

from __future__ import annotations

import pytest

from app.settings import Settings, load_settings

# The least a local run needs.
LOCAL = {
    "APP_ENV": "local",
    "DATABASE_URL": "postgresql+psycopg://app:local-password-123@127.0.0.1:5432/ai_agents",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "LLM_API_KEY": "sk-local-0123456789abcdef",
}


def load_with(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """`load_settings()` with exactly `env` (every other setting unset)."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()
