"""Hypothesis profiles: ci (derandomised, fast), dev, thorough."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

PROFILES = {
    # Derandomised: a CI run draws the same cases every time, so a red CI is reproducible.
    "ci": dict(max_examples=8, derandomize=True),
    "dev": dict(max_examples=40),
    "thorough": dict(max_examples=400),
}


def register_profiles() -> None:
    for name, options in PROFILES.items():
        settings.register_profile(
            name, deadline=None, database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.function_scoped_fixture],
            **options)


def seeded_profile(profile: str) -> str:
    """A profile like `profile` that draws from hypothesis's seed (derandomize off)."""
    name = f"{profile}-seeded"
    settings.register_profile(name, settings.get_profile(profile), derandomize=False)
    return name


def unshrunk_profile(profile: str) -> str:
    """A profile like `profile` that reports a failing case as drawn, without shrinking it."""
    name = f"{profile}-unshrunk"
    settings.register_profile(name, settings.get_profile(profile), phases=GENERATE_ONLY)
    return name


def examples(profile: str) -> int:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile '{profile}'; expected one of {', '.join(PROFILES)}")
    return PROFILES[profile]["max_examples"]


GENERATE_ONLY = (Phase.explicit, Phase.generate)
