"""Deterministic demo data for a fictional volunteer fire brigade (デモ市消防団).

This module is pure: it touches no database and reads no files; it shares only the domain
vocabulary of models.enums. Every generator takes a ``seed`` and builds its own
``random.Random`` so the same arguments always give the same result, which keeps seeding
idempotent and repeatable.

All people, phone numbers, e-mail addresses and places are fictional. Names are random
combinations of common family and given names; e-mail addresses use only the reserved
``example.*`` domains.
"""

from __future__ import annotations

from services.demo_data.common import (
    DEFAULT_SEED,
    DEMO_BRIGADE,
    DEMO_EMAIL_DOMAINS,
    DEMO_ROLES,
    DEMO_UNIT_SECTIONS,
    DEMO_UNITS,
    RANKS,
    DemoMember,
    DemoWaterSource,
)
from services.demo_data.roster import generate_members, minimum_member_count
from services.demo_data.water import generate_water_sources

__all__ = [
    "DEFAULT_SEED",
    "DEMO_BRIGADE",
    "DEMO_EMAIL_DOMAINS",
    "DEMO_ROLES",
    "DEMO_UNITS",
    "DEMO_UNIT_SECTIONS",
    "RANKS",
    "DemoMember",
    "DemoWaterSource",
    "generate_members",
    "generate_water_sources",
    "minimum_member_count",
]
