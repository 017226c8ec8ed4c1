"""Fixtures for the protocol-core tests: where the recorded frames live."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
# In CI a copy of shared/ sits beside the clone; locally it is /work/shared.
FRAMES_DIR = REPO_ROOT.parent / "shared" / "frames"


@pytest.fixture(scope="session")
def frames_dir() -> Path:
    """The directory of recorded TradingView frames, or a skip when it is absent."""
    if not FRAMES_DIR.is_dir():
        pytest.skip(f"recorded frames not found at {FRAMES_DIR} (shared/ must sit beside the repo)")
    return FRAMES_DIR


@pytest.fixture(scope="session")
def read_frame(frames_dir: Path) -> Callable[[str], str]:
    """Reader of a recorded .txt frame, without the one trailing newline that is not part of it."""

    def read(name: str) -> str:
        text = (frames_dir / name).read_text(encoding="utf-8")
        return text[:-1] if text.endswith("\n") else text

    return read
