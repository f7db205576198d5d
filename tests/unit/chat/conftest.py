"""Fixtures of the chat unit tests: the logic wired to in-memory fakes."""

from __future__ import annotations

import pytest

from .fakes import FakeWorld


@pytest.fixture
def world() -> FakeWorld:
    """Fresh fakes (database, clock, ids) for one test; ``world.deps`` feeds the logic."""
    return FakeWorld()
