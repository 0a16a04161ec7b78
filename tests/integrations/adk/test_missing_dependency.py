"""Without google-adk, importing the ADK adapter says which extra to install.

A fresh interpreter blocks the package (``sys.modules[name] = None`` makes
``import name`` raise ``ImportError``, as a missing package does).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent(
    """
    import sys
    for blocked in sys.argv[2:]:
        sys.modules[blocked] = None
    import sessionstore.integrations
    assert "google.adk" not in sys.modules or sys.modules["google.adk"] is None
    from sessionstore import MissingDependency
    try:
        __import__(sys.argv[1])
    except MissingDependency as exc:
        print(type(exc).__name__, exc, sep=": ")
    else:
        print("imported")
    """
)


def _probe(*blocked: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "sessionstore.integrations.adk", *blocked],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("blocked", [("google.adk",), ("google", "google.adk")])
def test_without_google_adk_the_adapter_names_the_extra(blocked: tuple[str, ...]) -> None:
    out = _probe(*blocked)

    assert out.startswith("MissingDependency: ")
    assert "pip install 'sessionstore[adk]'" in out


def test_with_google_adk_installed_the_adapter_imports() -> None:
    pytest.importorskip("google.adk")
    assert _probe() == "imported"
