"""The protocol core is pure: no sockets, threads, clocks, asyncio or pandas; a complete __all__."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tvadapter import protocol

PACKAGE_DIR = Path(protocol.__file__).resolve().parent
FORBIDDEN = {
    "websocket",
    "websockets",
    "asyncio",
    "threading",
    "_thread",
    "time",
    "socket",
    "ssl",
    "select",
    "selectors",
    "pandas",
    "numpy",
    "random",
    "concurrent",
    "multiprocessing",
    "subprocess",
    "http",
    "urllib",
}

# Import tvadapter.protocol with the parent package stubbed out, so that only the protocol
# package itself (and tvadapter.errors) runs; report every module that import loaded.
PROBE = """
import json, sys, types
before = set(sys.modules)
parent = types.ModuleType("tvadapter")
parent.__path__ = [sys.argv[1]]
sys.modules["tvadapter"] = parent
import tvadapter.protocol
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_importing_the_protocol_loads_no_io_modules() -> None:
    """A fresh interpreter importing tvadapter.protocol loads none of the forbidden modules."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(PACKAGE_DIR.parent)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = json.loads(result.stdout)
    assert "tvadapter.protocol.session" in loaded  # the probe really imported the package
    offenders = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert offenders == []


def test_no_forbidden_import_statements() -> None:
    """No module of the package even mentions a forbidden import (including lazy ones)."""
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_all_is_complete_and_valid() -> None:
    """Every name in __all__ exists, there are no duplicates, and submodule APIs are exported."""
    names = protocol.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(protocol, name), name
    for module in (protocol.events, protocol.messages, protocol.server_messages, protocol.session):
        missing = set(module.__all__) - set(names)
        assert missing == set(), f"{module.__name__}: {sorted(missing)}"
