"""Demo data for `make dev SEED=1`, loaded through the public API like any client.

A dozen mentors across skills, languages, time zones and prices, three
mentees and one person who is both. Every account's password is
``DEMO_PASSWORD``; running the seed again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from local_runtime.mailbox import latest_token

DEMO_PASSWORD = "mentor-demo-2026"  # noqa: S105 (documented demo password)
DEMO_DOMAIN = "demo.linkwithmentor.dev"


@dataclass(frozen=True)
class DemoPerson:
    """One demo account and its profile."""

    login: str
    name: str
    timezone: str
    roles: tuple[str, ...]
    mentor: dict[str, Any] = field(default_factory=dict)
    mentee: dict[str, Any] = field(default_factory=dict)

    @property
    def email(self) -> str:
        return f"{self.login}@{DEMO_DOMAIN}"


def _mentor(
    n: int,
    name: str,
    tz: str,
    headline: str,
    skills: list[str],
    languages: list[str],
    rate: int,
    currency: str,
    years: int,
) -> DemoPerson:
    profile = {
        "headline": headline,
        "bio": f"{name} has {years} years of experience and mentors in {', '.join(skills)}.",
        "skills": skills,
        "languages": languages,
        "hourly_rate_minor": rate,
        "currency": currency,
        "timezone": tz,
        "years_experience": years,
        "links": [f"https://example.com/{name.split()[0].lower()}"],
    }
    return DemoPerson(f"mentor{n:02d}", name, tz, ("mentor",), mentor=profile)


MENTORS = [
    _mentor(
        1,
        "Amara Okafor",
        "Africa/Lagos",
        "Backend engineer, Python and AWS",
        ["python", "aws", "serverless"],
        ["en"],
        4000,
        "USD",
        9,
    ),
    _mentor(
        2,
        "Lukas Becker",
        "Europe/Berlin",
        "Staff engineer, distributed systems",
        ["go", "kubernetes", "system design"],
        ["de", "en"],
        9000,
        "EUR",
        15,
    ),
    _mentor(
        3,
        "Priya Raman",
        "Asia/Kolkata",
        "Data scientist, ML in production",
        ["python", "machine learning", "sql"],
        ["en", "hi", "ta"],
        150000,
        "INR",
        7,
    ),
    _mentor(
        4,
        "Sofia Martins",
        "America/Sao_Paulo",
        "Frontend lead, React and accessibility",
        ["react", "typescript", "accessibility"],
        ["pt", "en", "es"],
        3500,
        "USD",
        8,
    ),
    _mentor(
        5,
        "Kenji Watanabe",
        "Asia/Tokyo",
        "Mobile engineer, iOS and Swift",
        ["swift", "ios"],
        ["ja", "en"],
        8000,
        "USD",
        11,
    ),
    _mentor(
        6,
        "Chloe Dubois",
        "Europe/Paris",
        "Product designer turned PM",
        ["product management", "ux"],
        ["fr", "en"],
        6000,
        "EUR",
        10,
    ),
    _mentor(
        7,
        "Mateo Garcia",
        "Europe/Madrid",
        "Security engineer, AppSec",
        ["security", "python", "aws"],
        ["es", "en"],
        7500,
        "EUR",
        12,
    ),
    _mentor(
        8,
        "Hannah Lee",
        "America/Los_Angeles",
        "Engineering manager, career growth",
        ["leadership", "career", "system design"],
        ["en", "ko"],
        12000,
        "USD",
        18,
    ),
    _mentor(
        9,
        "Oliver Smith",
        "Europe/London",
        "Rust and systems programming",
        ["rust", "c++"],
        ["en"],
        7000,
        "GBP",
        14,
    ),
    _mentor(
        10,
        "Fatima Zahra",
        "Africa/Casablanca",
        "Cloud architect",
        ["aws", "terraform", "kubernetes"],
        ["ar", "fr", "en"],
        5000,
        "EUR",
        9,
    ),
    _mentor(
        11,
        "Wei Chen",
        "Asia/Shanghai",
        "Algorithms and interview prep",
        ["algorithms", "python", "java"],
        ["zh", "en"],
        2500,
        "USD",
        6,
    ),
    _mentor(
        12,
        "Ines Novak",
        "Europe/Ljubljana",
        "Data engineering, streaming",
        ["sql", "kafka", "python"],
        ["sl", "en", "de"],
        5500,
        "EUR",
        8,
    ),
]

MENTEES = [
    DemoPerson(
        "mentee1",
        "Sam Taylor",
        "Europe/Lisbon",
        ("mentee",),
        mentee={"goals": "Land a first backend job", "interests": ["python", "aws"]},
    ),
    DemoPerson(
        "mentee2",
        "Aisha Bello",
        "Africa/Nairobi",
        ("mentee",),
        mentee={"goals": "Grow into a tech lead", "interests": ["leadership"]},
    ),
    DemoPerson(
        "mentee3",
        "Diego Rossi",
        "Europe/Rome",
        ("mentee",),
        mentee={"goals": "Prepare for interviews", "interests": ["algorithms"]},
    ),
]

BOTH = DemoPerson(
    "both",
    "Noor Haddad",
    "Asia/Dubai",
    ("mentee", "mentor"),
    mentor={
        "headline": "Junior mentor for Python beginners",
        "skills": ["python", "git"],
        "languages": ["ar", "en"],
        "hourly_rate_minor": 2000,
        "currency": "USD",
        "timezone": "Asia/Dubai",
        "years_experience": 3,
    },
    mentee={"goals": "Learn system design", "interests": ["system design"]},
)

PEOPLE = [*MENTORS, *MENTEES, BOTH]


def _login(client: httpx.Client, email: str) -> str | None:
    response = client.post("/auth/login", json={"email": email, "password": DEMO_PASSWORD})
    return str(response.json()["access_token"]) if response.status_code == 200 else None


def seed(api: str, aws_endpoint: str) -> list[str]:
    """Create the demo accounts through the API at ``api``; returns the emails seeded."""
    created = []
    with httpx.Client(base_url=api, timeout=30) as client:
        for person in PEOPLE:
            token = _login(client, person.email)
            if token is None:
                response = client.post(
                    "/auth/register",
                    json={
                        "email": person.email,
                        "password": DEMO_PASSWORD,
                        "display_name": person.name,
                        "timezone": person.timezone,
                        "roles": list(person.roles),
                    },
                )
                response.raise_for_status()
                verify = latest_token(aws_endpoint, person.email, "confirm")
                if verify:
                    client.get("/auth/verify-email", params={"token": verify}).raise_for_status()
                token = _login(client, person.email)
                assert token, f"cannot sign in as {person.email}"
                patch: dict[str, Any] = {}
                if person.mentor:
                    patch["mentor_profile"] = person.mentor
                if person.mentee:
                    patch["mentee_profile"] = person.mentee
                auth = {"authorization": f"Bearer {token}"}
                client.patch("/me", json=patch, headers=auth).raise_for_status()
            created.append(person.email)
    return created
