"""docs/configuration.md, written from the `Settings` class (`python -m app config-docs`).

Each setting's documentation is its attribute docstring in app/settings.py; the sections
are the `# section: <title>` comments there. `--check` (in `make lint` and the suite) fails
when the file in the repository is not what the class says.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
from pathlib import Path

from app.settings import DEV_SECRET, Settings

CONFIGURATION_FILE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

_SECTION = re.compile(r"^\s*# section: (.+)$")
_FIELD = re.compile(r"^    ([a-z_][a-z0-9_]*)\s*:")

HEADER = """# Configuration

<!-- Generated from app/settings.py by `python -m app config-docs`: edit the docstrings
there, then run that command (`make lint` fails when this file is stale). -->

Every setting comes from the environment, in upper case (`DATABASE_URL`), or from a `.env`
file in the working directory. Lists are JSON (`PAYMENT_REMINDER_HOURS='[1, 24]'`). The
defaults run the embedded demo (`make run`): SQLite under `./var`, in-memory broadcast, and
e-mail, SMS, WhatsApp and payments that are logged or served locally instead of sent.
`ENV=production` refuses to start with the development secret.
"""


def sections() -> list[tuple[str, list[str]]]:
    """[(title, [field, ...])] in the order of the class body."""
    found: list[tuple[str, list[str]]] = []
    known = set(Settings.model_fields)
    for line in inspect.getsource(Settings).splitlines():
        if match := _SECTION.match(line):
            found.append((match.group(1).strip(), []))
        elif (match := _FIELD.match(line)) and match.group(1) in known:
            if not found:
                found.append(("General", []))
            found[-1][1].append(match.group(1))
    return found


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    if value is None:
        return "unset"
    if value == DEV_SECRET:
        return "a development value"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{json.dumps(value)}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def _description(name: str) -> str:
    text = Settings.model_fields[name].description or ""
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    parts = [HEADER]
    for title, names in sections():
        parts.append(f"\n## {title}\n\n| variable | default | |\n|---|---|---|\n")
        parts.extend(f"| `{n.upper()}` | {_default(n)} | {_description(n)} |\n" for n in names)
    return "".join(parts)


def undocumented() -> list[str]:
    """Settings without a docstring, or outside every section."""
    placed = {name for _, names in sections() for name in names}
    return [
        name
        for name, field in Settings.model_fields.items()
        if not field.description or name not in placed
    ]
