"""YAML out: a data structure through PyYAML, under a comment header. No template ever sees a value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tritonize.errors import DeployError


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise DeployError("deployment files need PyYAML: pip install 'tritonize[deploy]'") from exc
    return yaml


def dump(data: Any, header: str = "") -> str:
    """Block-style YAML in insertion order, prefixed by ``header`` as ``#`` comment lines.

    Anchors and aliases are never written (a value shared by two services is spelled out in both),
    so every service reads on its own and a reader needs no YAML-alias knowledge.
    """
    yaml = _yaml()

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    body = yaml.dump(
        data, Dumper=_NoAliases, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True
    )
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines()) if header else ""
    return comment + body


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
