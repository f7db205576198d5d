"""PATCH semantics of profiles: absent fields stay, null resets a field to its default."""

from __future__ import annotations

from functions.users import logic

from .fakes import FakeWorld
from .test_logic import register, verify


def test_null_resets_a_profile_field_and_absent_fields_stay(world: FakeWorld) -> None:
    # Given a verified mentor-and-mentee with filled profiles
    user = verify(world, register(world.deps, "noor@example.com", roles={"mentee", "mentor"}))
    full = logic.ProfilePatch(
        mentor={
            "headline": "Python mentor",
            "skills": ["python"],
            "languages": ["en"],
            "hourly_rate_minor": 2500,
            "currency": "USD",
            "years_experience": 4,
        },
        mentee={"goals": "system design", "interests": ["aws"]},
    )
    logic.update_profile(world.deps, user.id, full)
    # When a patch sends null for some fields and leaves others out
    patched = logic.update_profile(
        world.deps,
        user.id,
        logic.ProfilePatch(
            mentor={"years_experience": None, "hourly_rate_minor": None},
            mentee={"interests": None},
        ),
    )
    # Then the nulls are back to their defaults, the rest is unchanged
    assert patched.mentor is not None and patched.mentee is not None
    assert patched.mentor.years_experience == 0
    assert patched.mentor.hourly_rate_minor is None
    assert patched.mentor.skills == ["python"] and patched.mentor.headline == "Python mentor"
    assert patched.mentee.interests == [] and patched.mentee.goals == "system design"
    # And a mentor without a rate is no longer listed
    assert patched.listed is False
