"""Build into a staging directory; replace the live repository only when everything built.

A server may be reading the live repository while a build runs, and a build can fail half-way
(a checkpoint that will not load, a validation that fails). So a build writes
``.<name>.staging`` beside the repository and swaps it in at the end; on failure the staging
directory is removed and the live repository was never touched.

A partial build (``--model NAME``) starts from a hard-linked copy of the live repository
(instant, no extra disk), removes the rebuilt deployments' model directories *by their exact
names* (never by a name prefix: rebuilding ``t5`` must not delete ``t5_large_*``), and merges
the rebuilt deployments' entries into the existing build report. Files are never rewritten in
place (new files replace removed ones), so the live repository's hard-linked files stay as
they were; root-level files (report, timing cache) are copied, not linked.
"""

from __future__ import annotations

import logging
import os
import shutil
from fnmatch import fnmatch
from pathlib import Path

from tritonize.errors import RepositoryError
from tritonize.repository.report import BuildReport, write_report

log = logging.getLogger(__name__)


class Staging:
    """One staging directory for the repository at ``live``."""

    def __init__(self, live: Path, merge: bool) -> None:
        self.live = Path(live)
        self.merge = merge
        self.path = self.live.parent / f".{self.live.name}.staging"
        self._old = self.live.parent / f".{self.live.name}.old"

    def begin(self, keep_files: tuple[str, ...] = ()) -> Path:
        """Create the staging directory: a linked copy of the live one when merging, else empty
        but for the root files matching a glob of ``keep_files`` (e.g. the timing caches)."""
        self.live.parent.mkdir(parents=True, exist_ok=True)
        for leftover in (self.path, self._old):
            if leftover.exists():
                shutil.rmtree(leftover)
        self.path.mkdir()
        if self.live.is_dir():
            for entry in self.live.iterdir():
                if entry.is_dir() and self.merge:
                    shutil.copytree(entry, self.path / entry.name, copy_function=os.link, symlinks=True)
                elif entry.is_file() and (self.merge or any(fnmatch(entry.name, p) for p in keep_files)):
                    shutil.copy2(entry, self.path / entry.name)
        return self.path

    def remove_models(self, names: list[str]) -> None:
        """Remove these model directories from the staging repository, by exact name."""
        for name in names:
            if not name or "/" in name or name in (".", ".."):
                raise RepositoryError(f"refusing to remove model directory {name!r}")
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)

    def commit(self, report: BuildReport) -> None:
        """Write the report and swap the staging directory in for the live repository."""
        write_report(self.path, report)
        if self.live.exists():
            os.rename(self.live, self._old)
        os.rename(self.path, self.live)
        if self._old.exists():
            shutil.rmtree(self._old)
        log.info("repository %s replaced", self.live)

    def abort(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
