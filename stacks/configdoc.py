"""docs/configuration.md, generated from the typed stack config so the reference cannot drift.

Every key's description is its field docstring in the section's settings type, which lives beside its
component (components/*_settings.py, components/workloads/settings.py) and is composed into StackConfig
by infra/config.py; the default, staging and production columns are read from the model and the two
stack files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bootstrap.config import KEY as BOOTSTRAP_KEY
from bootstrap.config import PROJECT as BOOTSTRAP_PROJECT
from bootstrap.config import BootstrapConfig, read_stack_file, stack_file
from infra.config import PROJECT, REPO_ROOT, StackConfig, known_stacks, load_stack_file

DOC_PATH = REPO_ROOT / "docs" / "configuration.md"

INTRO = f"""# Configuration reference

Everything a stack can set, generated from `infra/config.py` by `python -m stacks config-doc`
(`make test` fails when this file and the model disagree). Each section is one Pulumi config key,
`{PROJECT}:<section>`, whose value is an object with the camelCase keys below:

```yaml
config:
  {PROJECT}:database:
    multiAz: true
```

Validation happens before any resource is declared. A bad value stops `pulumi up` and
`python -m stacks plan` with one line naming the file, the key and the rule, e.g.
`Pulumi.production.yaml: {PROJECT}:database.multiAz: must be true in production`. Unknown keys
are errors. Defaults are the secure choice; production additionally requires: Multi-AZ, deletion
protection, backups of 14+ days, a NAT gateway per AZ, the production ClusterIssuer, no registry
force-delete, monitoring on, at least 2 API and 2 worker replicas, and tracing on with a sample ratio of
0.01 to 0.05.

**No secret belongs here.** Secret values live in AWS Secrets Manager (see `docs/runbook.md`); a
`secure:` value in a stack file is rejected.

"""


# A key under a mapping keyed by stack (the bootstrap's `runners.<stack>.vpcId`).
PER_STACK = ".<stack>"


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, dict):
        item = get_args(annotation)[-1]
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


def _nested_suffix(annotation: Any) -> str:
    return {list: "[]", dict: PER_STACK}.get(get_origin(annotation), "")  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType, reportCallIssue, reportArgumentType]


def _alias(name: str, field: FieldInfo) -> str:
    return field.alias or name


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # pyright: ignore[reportCallIssue, reportUnknownVariableType]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    return _show(value)


def _cell(text: str | None) -> str:
    """A docstring as one table cell: a line break would end the row, a bare `|` would split it."""
    return " ".join((text or "").split()).replace("|", "\\|")


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


def _value_at(data: Any, path: list[str]) -> Any:
    for part in path:
        if part == PER_STACK.lstrip(".") and isinstance(data, dict):
            data = list(data.values())  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType, reportUnknownMemberType]
            continue
        if isinstance(data, list):
            data = [item.get(part) for item in data if isinstance(item, dict)]  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType]
            continue
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]  # pyright: ignore[reportUnknownVariableType]
    return data  # pyright: ignore[reportUnknownVariableType]


Row = tuple[list[str], FieldInfo, bool, str]


def rows(model: type[BaseModel], prefix: list[str], inherited: BaseModel | None = None) -> Iterator[Row]:
    """(path, field, is_leaf, default) for every field, depth first.

    ``inherited`` is the parent's default instance, whose values are the defaults of nested keys
    (``app.api.minReplicas`` defaults to 3 because ``app.api`` defaults to ``HpaSettings(3, 10)``).
    """
    for name, field in model.model_fields.items():
        path = [*prefix, _alias(name, field)]
        default = _show(getattr(inherited, name)) if inherited is not None else _default(field)
        nested = _section_model(field.annotation)
        if nested is None:
            yield path, field, True, default
            continue
        yield path, field, False, default
        instance = getattr(inherited, name) if inherited is not None else field.default
        nested_default = instance if isinstance(instance, BaseModel) else None
        yield from rows(nested, [*path[:-1], path[-1] + _nested_suffix(field.annotation)], nested_default)


def render() -> str:
    values = {stack: load_stack_file(stack).model_dump(by_alias=True) for stack in known_stacks()}
    stacks = list(values)
    lines = [INTRO]
    for section_name, section_field in StackConfig.model_fields.items():
        key = _alias(section_name, section_field)
        lines.append(f"## `{PROJECT}:{key}`\n")
        lines.append(f"{section_field.description or ''}\n")
        if _section_model(section_field.annotation) is None:
            lines.append("| key | default | " + " | ".join(stacks) + " |")
            lines.append("| --- | --- | " + " | ".join("---" for _ in stacks) + " |")
            row = [f"`{key}`", _default(section_field)] + [_show(values[s].get(key)) for s in stacks]
            lines.append("| " + " | ".join(row) + " |\n")
            continue
        lines.append("| key | description | default | " + " | ".join(stacks) + " |")
        lines.append("| --- | --- | --- | " + " | ".join("---" for _ in stacks) + " |")
        model = _section_model(section_field.annotation)
        assert model is not None
        for path, field, leaf, default in rows(model, [key]):
            if not leaf:
                continue
            plain = [p.removesuffix("[]") for p in path]
            shown = [_show(_value_at(values[s], plain)) for s in stacks]
            dotted = ".".join(path[1:])
            lines.append(
                f"| `{dotted}` | {_cell(field.description)} | {default} | " + " | ".join(shown) + " |"
            )
        lines.append("")
    lines.extend(_bootstrap_section())
    return "\n".join(lines).rstrip() + "\n"


BOOTSTRAP_INTRO = f"""## The bootstrap project: `{BOOTSTRAP_PROJECT}:{BOOTSTRAP_KEY}`

The account-level project in `bootstrap/` (state bucket, secrets keys, CI roles, GitHub environments,
the CI runners; docs/runbook.md, "First deploy of a new account") takes one key, an object with the
camelCase keys below, validated the same way (one line naming the key; unknown keys are errors). The
last column is the example file `bootstrap/Pulumi.account.yaml`, whose values are placeholders to
replace. `<stack>` is `staging` or `production`.
"""


def _bootstrap_section() -> list[str]:
    example = read_stack_file(stack_file("account")).get(f"{BOOTSTRAP_PROJECT}:{BOOTSTRAP_KEY}", {})
    lines = [BOOTSTRAP_INTRO, "| key | description | default | example |", "| --- | --- | --- | --- |"]
    for path, field, leaf, default in rows(BootstrapConfig, []):
        if not leaf:
            continue
        value = _value_at(example, [part for p in path for part in p.removesuffix("[]").split(".")])
        unset = value is None or (isinstance(value, list) and not any(v is not None for v in value))  # pyright: ignore[reportUnknownVariableType]
        shown = "not set" if unset else _show(value)
        lines.append(f"| `{'.'.join(path)}` | {_cell(field.description)} | {default} | {shown} |")
    return [*lines, ""]


def undocumented_fields() -> list[str]:
    """Dotted paths of fields without a description (a field docstring in its settings type)."""
    missing: list[str] = []
    for section_name, section_field in StackConfig.model_fields.items():
        if not section_field.description:
            missing.append(section_name)
        model = _section_model(section_field.annotation)
        if model is not None:
            missing.extend(
                ".".join(path) for path, field, _, _ in rows(model, [section_name]) if not field.description
            )
    return missing
