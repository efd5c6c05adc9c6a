"""The demo roster: ranks, units and sections filled with fictional members."""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass
from typing import Final

from services.demo_data.common import (
    DEFAULT_SEED,
    DEMO_EMAIL_DOMAINS,
    DEMO_UNIT_SECTIONS,
    DEMO_UNITS,
    EARLIEST_JOIN,
    HEADQUARTERS,
    JOIN_MARGIN_DAYS,
    DemoMember,
    date_between,
    weighted,
)
from services.demo_data.names import (
    FAMILY_NAMES,
    FEMALE_GIVEN_NAMES,
    FULLWIDTH_SPACE,
    MALE_GIVEN_NAMES,
)

# ---------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------

# Window of the joining date per rank, as fractions of the span 1990-01-01 .. today-30d.
JOIN_WINDOWS: dict[str, tuple[float, float]] = {
    "団長": (0.0, 0.12),
    "副団長": (0.0, 0.22),
    "分団長": (0.05, 0.4),
    "副分団長": (0.1, 0.5),
    "部長": (0.15, 0.6),
    "班長": (0.25, 0.75),
    "団員": (0.3, 1.0),
}
_FUNCTIONAL_JOIN_WINDOW: Final = (0.55, 1.0)
_STUDENT_JOIN_DAYS: Final = 4 * 365
_RETIRED_JOIN_WINDOW: Final = (0.2, 0.85)

# Probability that a member of the given rank has a female given name.
_FEMALE_SHARE: dict[str, float] = {
    "団長": 0.0,
    "副団長": 0.0,
    "分団長": 0.0,
    "副分団長": 0.03,
    "部長": 0.05,
    "班長": 0.08,
    "団員": 0.1,
}

_FUNCTIONAL_NOTES: tuple[str, ...] = (
    "機能別団員（郵便局）",
    "機能別団員（郵便局）",
    "機能別団員（大学生）",
    "機能別団員（大学生）",
    "機能別団員（OB）",
    "機能別団員（OB）",
)
_SUSPENDED_NOTES: tuple[str, ...] = (
    "休団（育児）",
    "休団（長期出張）",
    "休団（療養）",
    "休団（単身赴任）",
)
_RETIRED_NOTES: tuple[str, ...] = (
    "退団（転居）",
    "退団（家業多忙）",
    "退団（定年）",
    "退団（転勤）",
)
_SKILL_NOTES: tuple[str, ...] = (
    "大型免許あり",
    "中型免許あり",
    "救急救命士",
    "看護師",
    "車両系建設機械運転可",
    "消防設備士",
    "応急手当普及員",
    "無線従事者",
)
_DRIVER_NOTES: tuple[str, ...] = ("大型免許あり", "中型免許あり", "準中型免許あり")

_PHONE_PREFIXES: tuple[tuple[str, float], ...] = (("090", 0.45), ("080", 0.4), ("070", 0.15))


@dataclass
class _Slot:
    """One position in the roster before a person is drawn for it."""

    rank: str
    affiliation: str
    roles: tuple[str, ...] = ()
    status: str = "active"
    notes: str = ""
    join_window: tuple[float, float] | None = None
    female_share: float | None = None
    unit: str | None = None


def _section_label(unit: str, section: int) -> str:
    return f"{unit} 第{section}部"


def _leadership_slots() -> list[_Slot]:
    slots = [
        _Slot("団長", HEADQUARTERS),
        _Slot("副団長", HEADQUARTERS, roles=("方面隊長",)),
        _Slot("副団長", HEADQUARTERS, roles=("方面隊長",)),
        _Slot("部長", HEADQUARTERS, roles=("会計",)),
        _Slot("班長", HEADQUARTERS, roles=("庶務",)),
    ]
    for unit in DEMO_UNITS:
        slots.append(_Slot("分団長", unit, unit=unit))
        slots.append(_Slot("副分団長", unit, unit=unit))
        for section in range(1, DEMO_UNIT_SECTIONS[unit] + 1):
            label = _section_label(unit, section)
            slots.append(_Slot("部長", label, unit=unit))
            slots.append(_Slot("班長", label, unit=unit))
    return slots


def minimum_member_count() -> int:
    """Smallest roster that still holds the full command structure and functional members."""
    return len(_leadership_slots()) + len(_FUNCTIONAL_NOTES)


def _member_slots(rng: random.Random, count: int) -> list[_Slot]:
    slots = _leadership_slots()

    sections = [
        (unit, _section_label(unit, section))
        for unit in DEMO_UNITS
        for section in range(1, DEMO_UNIT_SECTIONS[unit] + 1)
    ]
    regular_count = count - minimum_member_count()
    offset = rng.randrange(len(sections))
    regular: list[_Slot] = []
    for i in range(regular_count):
        unit, label = sections[(i + offset) % len(sections)]
        regular.append(_Slot("団員", label, unit=unit))
    regular.sort(key=lambda slot: (DEMO_UNITS.index(slot.unit or ""), slot.affiliation))

    # About five suspended and five retired members in a 150-member roster.
    status_count = min(max(1, round(count / 30)), len(regular) // 4)
    picked = rng.sample(range(len(regular)), 2 * status_count)
    for i in picked[:status_count]:
        regular[i].status = "suspended"
        regular[i].notes = rng.choice(_SUSPENDED_NOTES)
    for i in picked[status_count:]:
        regular[i].status = "retired"
        regular[i].notes = rng.choice(_RETIRED_NOTES)
        regular[i].join_window = _RETIRED_JOIN_WINDOW

    # 機関員 (pump/vehicle operators): one to three active members per unit.
    for unit in DEMO_UNITS:
        candidates = [s for s in regular if s.unit == unit and s.status == "active"]
        if not candidates:
            candidates = [s for s in slots if s.unit == unit and s.rank == "班長"]
        wanted = min(rng.randint(1, 3), len(candidates))
        for slot in rng.sample(candidates, wanted):
            slot.roles = (*slot.roles, "機関員")
            if rng.random() < 0.5:
                slot.notes = rng.choice(_DRIVER_NOTES)

    slots.extend(regular)

    # Skills noted for a few active members without a note yet.
    for slot in slots:
        if slot.status == "active" and not slot.notes and rng.random() < 0.07:
            slot.notes = rng.choice(_SKILL_NOTES)

    for note in _FUNCTIONAL_NOTES:
        if "OB" in note:
            unit = rng.choice(DEMO_UNITS)
            affiliation = unit
            female_share = 0.0
        else:
            unit = None
            affiliation = HEADQUARTERS
            female_share = 0.4 if "大学生" in note else 0.2
        slots.append(
            _Slot(
                "団員",
                affiliation,
                roles=("機能別団員",),
                notes=note,
                join_window=_FUNCTIONAL_JOIN_WINDOW,
                female_share=female_share,
                unit=unit,
            )
        )
    return slots


def _pick_given_name(
    rng: random.Random, *, female: bool, join_fraction: float, is_student: bool
) -> tuple[str, str, str, int]:
    pool = FEMALE_GIVEN_NAMES if female else MALE_GIVEN_NAMES
    if is_student:
        era_weights = (0.0, 0.1, 0.9)
    elif join_fraction < 0.3:
        era_weights = (0.65, 0.35, 0.0)
    elif join_fraction < 0.65:
        era_weights = (0.2, 0.6, 0.2)
    else:
        era_weights = (0.05, 0.4, 0.55)
    era = weighted(rng, list(enumerate(era_weights)))
    return rng.choice([entry for entry in pool if entry[3] == era])


def _phone(rng: random.Random) -> str:
    prefix = weighted(rng, _PHONE_PREFIXES)
    return f"{prefix}-{rng.randint(1000, 9999)}-{rng.randint(0, 9999):04d}"


def _email_local(rng: random.Random, given: str, family: str, joined: datetime.date) -> str:
    style = rng.randrange(5)
    if style == 0:
        return f"{given}.{family}"
    if style == 1:
        return f"{family}.{given}"
    if style == 2:
        return f"{given[0]}.{family}"
    if style == 3:
        return f"{family}{joined.year % 100:02d}"
    return f"{family}_{given}"


def generate_members(
    *, seed: int = DEFAULT_SEED, count: int = 150, today: datetime.date
) -> list[DemoMember]:
    """Return a deterministic roster of ``count`` fictional members.

    The roster has one 団長, two 副団長 (方面隊長) and two staff members (会計, 庶務) at
    団本部, one 分団長 and one 副分団長 per unit, one 部長 and one 班長 per 部, a handful of
    機能別団員, and regular 団員 for the rest. A few regular members are suspended or retired.
    """
    minimum = minimum_member_count()
    if count < minimum:
        raise ValueError(f"count must be at least {minimum} to hold the brigade structure")
    latest = today - datetime.timedelta(days=JOIN_MARGIN_DAYS)
    if latest < EARLIEST_JOIN:
        raise ValueError("today is too early for the demo joining dates")
    span_days = (latest - EARLIEST_JOIN).days

    rng = random.Random(seed)
    slots = _member_slots(rng, count)

    used_names: set[str] = set()
    used_phones: set[str] = set()
    used_emails: set[str] = set()
    members: list[DemoMember] = []
    for number, slot in enumerate(slots, start=1):
        low, high = slot.join_window or JOIN_WINDOWS[slot.rank]
        is_student = "大学生" in slot.notes
        if is_student and span_days:
            # Students joined during their (at most four) years at university.
            low = max(low, 1.0 - _STUDENT_JOIN_DAYS / span_days)
        joined_on = date_between(
            rng,
            EARLIEST_JOIN + datetime.timedelta(days=round(span_days * low)),
            EARLIEST_JOIN + datetime.timedelta(days=round(span_days * high)),
        )
        join_fraction = (joined_on - EARLIEST_JOIN).days / span_days if span_days else 1.0
        female_share = (
            slot.female_share if slot.female_share is not None else _FEMALE_SHARE[slot.rank]
        )

        while True:
            family = rng.choice(FAMILY_NAMES)
            female = rng.random() < female_share
            given = _pick_given_name(
                rng, female=female, join_fraction=join_fraction, is_student=is_student
            )
            name = f"{family[0]}{FULLWIDTH_SPACE}{given[0]}"
            if name not in used_names:
                break
        used_names.add(name)
        kana = f"{family[1]}{FULLWIDTH_SPACE}{given[1]}"

        phone = _phone(rng)
        while phone in used_phones:
            phone = _phone(rng)
        used_phones.add(phone)

        local = _email_local(rng, given[2], family[2], joined_on)
        domain = rng.choice(DEMO_EMAIL_DOMAINS)
        email = f"{local}@{domain}"
        suffix = 2
        while email in used_emails:
            email = f"{local}{suffix}@{domain}"
            suffix += 1
        used_emails.add(email)

        members.append(
            DemoMember(
                member_code=f"M{number:04d}",
                name=name,
                kana=kana,
                rank=slot.rank,
                roles=slot.roles if slot.status == "active" else (),
                affiliation=slot.affiliation,
                phone=phone,
                email=email,
                joined_on=joined_on,
                status=slot.status,
                notes=slot.notes,
            )
        )
    return members
