"""Versioned prompt templates: `enhancement_<version>.txt`, selected by PROMPT_VERSION.

A new prompt is a new file, so history rows record exactly which text produced an enhancement.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from string import Template

_SECTION = re.compile(r"^### (system|user)\s*$", re.MULTILINE)
_TAG = re.compile(r"<[^>]+>")
_VERSION = re.compile(r"^v[0-9]+$")
MAX_DESCRIPTION_CHARS = 8000


@dataclass(frozen=True, slots=True)
class Prompt:
    version: str
    system: str
    user: Template

    def render(self, **fields: str | None) -> tuple[str, str]:
        # One line per field (whitespace collapsed, as plain_text does for the description): ticket text
        # cannot add lines that pose as another field, a section header or a new turn (prompt injection;
        # docs/reliability.md). Template syntax inside values is not expanded: substitution is one pass.
        values = {
            key: (" ".join(value.split()) or "unknown") if value else "unknown"
            for key, value in fields.items()
        }
        values["description"] = plain_text(fields.get("description") or "")[:MAX_DESCRIPTION_CHARS]
        return self.system, self.user.safe_substitute(values)


def plain_text(markup: str) -> str:
    """SDP descriptions are HTML; the model needs the words, not the markup."""
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub(" ", markup))).strip()


@lru_cache(maxsize=8)
def load_prompt(version: str) -> Prompt:
    if not _VERSION.match(version):
        raise ValueError(f"PROMPT_VERSION must look like v1, got {version!r}")
    text = resources.files("app.prompts").joinpath(f"enhancement_{version}.txt").read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    sections = dict(zip(parts[1::2], (part.strip() for part in parts[2::2]), strict=True))
    return Prompt(version=version, system=sections["system"], user=Template(sections["user"]))
