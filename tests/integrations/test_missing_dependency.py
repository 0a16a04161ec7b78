"""An adapter imported without its framework says which extra to install.

Each case runs in a fresh interpreter where the framework's import is
blocked (``sys.modules[name] = None`` makes ``import name`` raise
``ImportError``, as a missing package does).
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
    import sessionstore.integrations  # the package itself imports no framework
    assert not {"agents", "langchain_core"} & set(sys.modules) - set(sys.argv[2:])
    from sessionstore import MissingDependency
    try:
        __import__(sys.argv[1])
    except MissingDependency as exc:
        print(type(exc).__name__, exc, sep=": ")
    else:
        print("imported")
    """
)


def _probe(module: str, *blocked: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, module, *blocked],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("sessionstore.integrations.openai_agents", "agents", "openai-agents"),
        ("sessionstore.integrations.langchain", "langchain_core", "langchain"),
    ],
)
def test_an_adapter_without_its_framework_names_the_extra(
    module: str, blocked: str, extra: str
) -> None:
    out = _probe(module, blocked)
    assert out.startswith("MissingDependency: ")
    assert f"pip install 'sessionstore[{extra}]'" in out
