"""Whether a framework's own test files are in its ``upstream/`` directory.

The project does not commit the frameworks' tests: ``scripts/upstream-tests``
fetches them before pytest runs (``make test`` does both). Without them (no
network, or ADK's suite not asked for), each ``upstream/`` conftest reports its
directory as one skipped test, ``upstream/NOTICE::not-fetched``, whose reason
names the absent files, rather than letting pytest fail on a missing import;
and the tests each conftest lists as not applicable are deselected here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

FETCH = "scripts/upstream-tests"


def missing(directory: Path, names: Iterable[str]) -> list[str]:
    """The names of the files not (yet) in ``directory``."""
    return [name for name in names if not (directory / name).is_file()]


class NotFetched(pytest.Item):
    """Stands for the absent tests: it is always skipped, with the reason."""

    def runtest(self) -> None:  # its skip mark skips it before this runs
        pytest.skip(self.reason)

    @property
    def reason(self) -> str:
        mark = self.get_closest_marker("skip")
        return str(mark.kwargs["reason"]) if mark else ""

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


class Notice(pytest.File):
    """The NOTICE of an ``upstream/`` directory whose files are absent."""

    reason: str = ""

    def collect(self) -> list[pytest.Item]:
        item = NotFetched.from_parent(self, name="not-fetched")
        item.add_marker(pytest.mark.skip(reason=self.reason))
        return [item]


def skip_collector(
    directory: Path, absent: list[str], suite: str, how: str
) -> Callable[[Path, pytest.Collector], pytest.Collector | None]:
    """A ``pytest_collect_file`` hook that reports the directory as skipped.

    ``suite`` names the tests, ``how`` says what fetching them takes.
    """
    reason = f"{suite}: {', '.join(absent)} not fetched ({how})"

    def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        if file_path.parent != directory or file_path.name != "NOTICE":
            return None
        notice = Notice.from_parent(parent, path=file_path)
        notice.reason = reason
        return notice

    return pytest_collect_file


def deselect_not_applicable(
    config: pytest.Config, items: list[pytest.Item], here: Path, names: Iterable[str]
) -> None:
    """Deselect the tests of ``here`` named in ``names`` (each conftest's ``NOT_APPLICABLE``)."""
    skipped = set(names)
    kept, dropped = [], []
    for item in items:
        name = getattr(item, "originalname", item.name)
        if item.path.parent == here and name in skipped:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
