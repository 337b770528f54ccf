"""Reading a configuration YAML file with errors a user can act on (file, line, column)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from nbo.errors import NboError

__all__ = ["read_yaml"]


def read_yaml(path: str | os.PathLike[str], error: type[NboError], what: str) -> object:
    """The parsed YAML document at ``path``; any problem raises ``error`` naming the file.

    ``what`` names the document in messages ("mapping", "policy file").
    """
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such {what} (file not found)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{path}: not valid YAML: {where}{problem}") from None
