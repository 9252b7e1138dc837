"""The ``images`` section of a stack file: what the Images component (images.py) deploys."""

from __future__ import annotations

from pydantic import Field

from components.settings import Section


class ImagesSettings(Section):
    deploy_build: str | None = Field(default=None, pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,86}-[0-9a-f]{40}$")
    """An already pushed build (`<version>-<git commit>`, the stack output `imageTag`) to deploy instead of building the checkout: the rollback path (docs/runbook.md). Unset builds and pushes the checkout."""
