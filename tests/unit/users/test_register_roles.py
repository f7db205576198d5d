"""Registration keeps to the self-service roles, whatever a caller of the logic passes."""

from __future__ import annotations

from .fakes import FakeWorld
from .test_logic import register


def test_admin_cannot_be_registered_and_no_role_means_mentee(world: FakeWorld) -> None:
    # When the logic is asked for an admin, or for no role at all
    admin = register(world.deps, "eve@example.com", roles={"admin"})
    nothing = register(world.deps, "zed@example.com", roles=set())
    # Then both are plain mentees with a mentee profile
    for user in (admin, nothing):
        assert user.roles == {"mentee"}
        assert user.mentee is not None and user.mentor is None
