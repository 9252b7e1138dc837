"""What every component's stack-file settings type is built from.

Each component owns the pydantic type of its section of the stack file, in a small sibling module
(``network_settings.py`` beside ``network.py``, ``workloads/settings.py`` in the workloads package)
that imports nothing but pydantic, so a stack file can be validated, the configuration reference
generated and the policy pack's defaults read without loading any Pulumi SDK. The program composes
the sections into one stack config.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class RuleViolation(ValueError):
    """Raised by cross-field rules so the error names the key the rule is about, not the model.

    ``key`` is spelt as in the stack file (``database.maxAllocatedStorageGib``).
    """

    def __init__(self, key: str, rule: str) -> None:
        self.key = key
        self.rule = rule
        super().__init__(rule)


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid CIDR block") from None
    if str(network) != value:
        raise ValueError(f"{value!r} has host bits set; the block is {network}")
    if network.version != 4:
        raise ValueError(f"{value!r} must be an IPv4 CIDR block")
    return str(network)


def _aws_name(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", value):
        raise ValueError(
            f"{value!r} must be 2-32 lowercase letters, digits or dashes, starting with a letter"
        )
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]
Name = Annotated[str, AfterValidator(_aws_name)]


class Section(BaseModel):
    """Base for every config section: camelCase keys in YAML, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
        # Each field's docstring is its description: docs/configuration.md is generated from them.
        use_attribute_docstrings=True,
    )
