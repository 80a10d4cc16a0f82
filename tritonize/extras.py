"""Optional dependencies: which extra of tritonize brings a missing module.

The base install serves and queries models (Triton, ONNX Runtime, tokenizers, tritonclient);
building, load testing and deployment files need extras (``pip install 'tritonize[export]'``).
The extras are defined once, in ``pyproject.toml``'s ``[project.optional-dependencies]``; this
module reads them back from the installed package's metadata (its ``Requires-Dist`` lines with
an ``extra == "..."`` marker), so a command that imports a missing optional module ends with one
line naming the extra to install, never a hand-kept second list.
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache

from tritonize.errors import TritonizeError

DISTRIBUTION = "tritonize"
# Import names that differ from the distribution that installs them (PyPI name, normalised).
DISTRIBUTION_OF_MODULE = {"yaml": "pyyaml"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


class MissingExtraError(TritonizeError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""

    def __init__(self, module: str, extra: str, command: str = "") -> None:
        self.module = module
        self.extra = extra
        needs = f"`tritonize {command}` needs {module}, which" if command else module
        super().__init__(f"{needs} is not installed: pip install '{DISTRIBUTION}[{extra}]'")


def normalize(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503): lower case, runs of ``-_.`` as ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def extras() -> dict[str, frozenset[str]]:
    """Each extra of the installed tritonize and the distributions it lists itself, in the
    order ``pyproject.toml`` defines them (an extra naming other extras, ``all``, lists none);
    empty when tritonize's metadata is not installed (a source tree on ``sys.path``)."""
    from importlib import metadata

    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return {}
    found: dict[str, set[str]] = {}
    for requirement in requirements:
        name, marker = _NAME.match(requirement), _EXTRA_MARKER.search(requirement)
        if name and marker and normalize(name.group(1)) != DISTRIBUTION:
            found.setdefault(marker.group(1), set()).add(normalize(name.group(1)))
    return {extra: frozenset(names) for extra, names in found.items()}


def extra_for(module: str) -> str | None:
    """The first extra that installs ``module`` (a dotted import name), or ``None`` when no extra does."""
    top = module.partition(".")[0]
    distribution = normalize(DISTRIBUTION_OF_MODULE.get(top, top))
    return next((extra for extra, names in extras().items() if distribution in names), None)


def missing_extra(error: ModuleNotFoundError, command: str = "") -> MissingExtraError | None:
    """``error`` as a :class:`MissingExtraError` when an extra installs the missing module, else ``None``."""
    extra = extra_for(error.name or "")
    return MissingExtraError(error.name.partition(".")[0], extra, command) if error.name and extra else None


def require(*modules: str) -> None:
    """Check that optional ``modules`` are importable without importing them (for a module a
    subprocess imports, such as locust, whose failure would otherwise surface as a log tail).

    Raises:
        MissingExtraError: one is missing; the message names the extra that installs it.
    """
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(module, extra_for(module) or "all")  # all: no single extra lists it
