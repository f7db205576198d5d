"""Fixtures of the users unit tests: the logic wired to in-memory fakes."""

from __future__ import annotations

import pytest

from functions.users import logic

from .fakes import FakeWorld


@pytest.fixture
def world() -> FakeWorld:
    """Fresh fakes (database, token store, signer, mailer, hasher, clock) for one test."""
    return FakeWorld()


@pytest.fixture
def deps(world: FakeWorld) -> logic.Deps:
    """``logic.Deps`` over ``world``'s fakes; ``world.clock.advance`` moves time."""
    return world.deps
