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

import datetime
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from models.enums import (
    HYDRANT_KINDS,
    RANK_NAMES,
)

DEFAULT_SEED: Final = 20261126

RANKS = RANK_NAMES  # highest first
HYDRANT_DIAMETERS_MM: tuple[int, ...] = (75, 100, 150, 200)
HYDRANT_TYPES: tuple[str, ...] = ("地上式", "地下式")
MEMBER_STATUSES: tuple[str, ...] = ("active", "suspended", "retired")

_CENTER: Final = (36.4020, 138.2490)

DEMO_BRIGADE: dict[str, Any] = {
    "name": "デモ市消防団",
    "municipality": "デモ市（架空）",
    "center": _CENTER,
}

HEADQUARTERS: Final = "団本部"
DEMO_UNITS: tuple[str, ...] = ("第1分団", "第2分団", "第3分団", "第4分団", "第5分団", "第6分団")
# Number of 部 (sections) in each unit; sections are labelled "第N分団 第M部".
DEMO_UNIT_SECTIONS: dict[str, int] = {
    "第1分団": 3,
    "第2分団": 3,
    "第3分団": 2,
    "第4分団": 2,
    "第5分団": 3,
    "第6分団": 2,
}

# Role name -> the rank whose permissions the role grants.
DEMO_ROLES: dict[str, str] = {
    "方面隊長": "副団長",
    "会計": "副分団長",
    "庶務": "班長",
    "機関員": "団員",
    "機能別団員": "団員",
}

DEMO_EMAIL_DOMAINS: tuple[str, ...] = ("example.jp", "example.com", "example.org")

# Inspection interval used to decide whether a water source is overdue.
INSPECTION_INTERVAL_DAYS: Final = 365

_EARLIEST_JOIN: Final = datetime.date(1990, 1, 1)
_JOIN_MARGIN_DAYS: Final = 30
_EARTH_RADIUS_KM: Final = 6371.0088
_MAX_RADIUS_KM: Final = 4.0
_CENTRAL_RADIUS_KM: Final = 1.3


# ---------------------------------------------------------------------------
# Public records
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoMember:
    member_code: str
    name: str
    kana: str
    rank: str
    roles: tuple[str, ...]
    affiliation: str
    phone: str
    email: str
    joined_on: datetime.date
    status: str
    notes: str


@dataclass(frozen=True)
class DemoWaterSource:
    code: str
    kind: str
    ownership: str
    latitude: float
    longitude: float
    address: str
    unit: str
    capacity_m3: float | None
    main_diameter_mm: int | None
    hydrant_type: str | None
    drop_m: float | None
    depth_m: float | None
    status: str
    memo: str
    last_inspected_on: datetime.date | None


# ---------------------------------------------------------------------------
# Name lists: (kanji, katakana reading, romaji for e-mail addresses)
# ---------------------------------------------------------------------------

# Common family names, including variant characters found in real rosters
# (髙, 﨑, 𠮷 and 濵 are outside JIS X 0208; 邊, 齋, 瀧 and 澤 are level 2).
FAMILY_NAMES: tuple[tuple[str, str, str], ...] = (
    ("佐藤", "サトウ", "sato"),
    ("鈴木", "スズキ", "suzuki"),
    ("高橋", "タカハシ", "takahashi"),
    ("髙橋", "タカハシ", "takahashi"),
    ("田中", "タナカ", "tanaka"),
    ("伊藤", "イトウ", "ito"),
    ("渡辺", "ワタナベ", "watanabe"),
    ("渡邊", "ワタナベ", "watanabe"),
    ("山本", "ヤマモト", "yamamoto"),
    ("中村", "ナカムラ", "nakamura"),
    ("小林", "コバヤシ", "kobayashi"),
    ("加藤", "カトウ", "kato"),
    ("吉田", "ヨシダ", "yoshida"),
    ("𠮷田", "ヨシダ", "yoshida"),
    ("山田", "ヤマダ", "yamada"),
    ("佐々木", "ササキ", "sasaki"),
    ("山口", "ヤマグチ", "yamaguchi"),
    ("松本", "マツモト", "matsumoto"),
    ("井上", "イノウエ", "inoue"),
    ("木村", "キムラ", "kimura"),
    ("林", "ハヤシ", "hayashi"),
    ("斎藤", "サイトウ", "saito"),
    ("齋藤", "サイトウ", "saito"),
    ("清水", "シミズ", "shimizu"),
    ("山崎", "ヤマザキ", "yamazaki"),
    ("山﨑", "ヤマザキ", "yamazaki"),
    ("森", "モリ", "mori"),
    ("池田", "イケダ", "ikeda"),
    ("橋本", "ハシモト", "hashimoto"),
    ("阿部", "アベ", "abe"),
    ("石川", "イシカワ", "ishikawa"),
    ("山下", "ヤマシタ", "yamashita"),
    ("中島", "ナカジマ", "nakajima"),
    ("石井", "イシイ", "ishii"),
    ("小川", "オガワ", "ogawa"),
    ("前田", "マエダ", "maeda"),
    ("岡田", "オカダ", "okada"),
    ("長谷川", "ハセガワ", "hasegawa"),
    ("藤田", "フジタ", "fujita"),
    ("後藤", "ゴトウ", "goto"),
    ("近藤", "コンドウ", "kondo"),
    ("村上", "ムラカミ", "murakami"),
    ("遠藤", "エンドウ", "endo"),
    ("青木", "アオキ", "aoki"),
    ("坂本", "サカモト", "sakamoto"),
    ("宮崎", "ミヤザキ", "miyazaki"),
    ("宮﨑", "ミヤザキ", "miyazaki"),
    ("柳沢", "ヤナギサワ", "yanagisawa"),
    ("小松", "コマツ", "komatsu"),
    ("丸山", "マルヤマ", "maruyama"),
    ("宮下", "ミヤシタ", "miyashita"),
    ("竹内", "タケウチ", "takeuchi"),
    ("北村", "キタムラ", "kitamura"),
    ("上原", "ウエハラ", "uehara"),
    ("小池", "コイケ", "koike"),
    ("滝沢", "タキザワ", "takizawa"),
    ("瀧澤", "タキザワ", "takizawa"),
    ("矢島", "ヤジマ", "yajima"),
    ("百瀬", "モモセ", "momose"),
    ("浜田", "ハマダ", "hamada"),
    ("濵田", "ハマダ", "hamada"),
    ("原", "ハラ", "hara"),
)

# Given names: (kanji, katakana, romaji, era) where era 0 = older generation,
# 1 = middle, 2 = younger. The era is matched loosely to the joining date.
MALE_GIVEN_NAMES: tuple[tuple[str, str, str, int], ...] = (
    ("茂", "シゲル", "shigeru", 0),
    ("清", "キヨシ", "kiyoshi", 0),
    ("稔", "ミノル", "minoru", 0),
    ("昇", "ノボル", "noboru", 0),
    ("勝", "マサル", "masaru", 0),
    ("豊", "ユタカ", "yutaka", 0),
    ("修", "オサム", "osamu", 0),
    ("隆", "タカシ", "takashi", 0),
    ("晃", "アキラ", "akira", 0),
    ("一郎", "イチロウ", "ichiro", 0),
    ("秀樹", "ヒデキ", "hideki", 0),
    ("康弘", "ヤスヒロ", "yasuhiro", 0),
    ("雅之", "マサユキ", "masayuki", 0),
    ("正人", "マサト", "masato", 0),
    ("憲一", "ケンイチ", "kenichi", 0),
    ("浩二", "コウジ", "koji", 1),
    ("誠", "マコト", "makoto", 1),
    ("博之", "ヒロユキ", "hiroyuki", 1),
    ("剛", "ツヨシ", "tsuyoshi", 1),
    ("聡", "サトシ", "satoshi", 1),
    ("哲也", "テツヤ", "tetsuya", 1),
    ("健一", "ケンイチ", "kenichi", 1),
    ("健二", "ケンジ", "kenji", 1),
    ("大輔", "ダイスケ", "daisuke", 1),
    ("直樹", "ナオキ", "naoki", 1),
    ("拓也", "タクヤ", "takuya", 1),
    ("和也", "カズヤ", "kazuya", 1),
    ("達也", "タツヤ", "tatsuya", 1),
    ("洋平", "ヨウヘイ", "yohei", 1),
    ("祐介", "ユウスケ", "yusuke", 1),
    ("慎也", "シンヤ", "shinya", 1),
    ("智之", "トモユキ", "tomoyuki", 1),
    ("貴之", "タカユキ", "takayuki", 1),
    ("俊介", "シュンスケ", "shunsuke", 1),
    ("圭介", "ケイスケ", "keisuke", 1),
    ("健太", "ケンタ", "kenta", 1),
    ("亮", "リョウ", "ryo", 1),
    ("光", "ヒカル", "hikaru", 1),
    ("翔太", "ショウタ", "shota", 2),
    ("裕太", "ユウタ", "yuta", 2),
    ("大樹", "ダイキ", "daiki", 2),
    ("大地", "ダイチ", "daichi", 2),
    ("翼", "ツバサ", "tsubasa", 2),
    ("巧", "タクミ", "takumi", 2),
    ("海斗", "カイト", "kaito", 2),
    ("悠斗", "ユウト", "yuto", 2),
    ("颯太", "ソウタ", "sota", 2),
    ("蓮", "レン", "ren", 2),
    ("陸", "リク", "riku", 2),
    ("湊", "ミナト", "minato", 2),
)

FEMALE_GIVEN_NAMES: tuple[tuple[str, str, str, int], ...] = (
    ("久美子", "クミコ", "kumiko", 0),
    ("陽子", "ヨウコ", "yoko", 0),
    ("純子", "ジュンコ", "junko", 0),
    ("明美", "アケミ", "akemi", 0),
    ("由美", "ユミ", "yumi", 0),
    ("真由美", "マユミ", "mayumi", 0),
    ("直美", "ナオミ", "naomi", 0),
    ("智子", "トモコ", "tomoko", 1),
    ("裕子", "ユウコ", "yuko", 1),
    ("恵", "メグミ", "megumi", 1),
    ("香織", "カオリ", "kaori", 1),
    ("理恵", "リエ", "rie", 1),
    ("加奈子", "カナコ", "kanako", 1),
    ("沙織", "サオリ", "saori", 1),
    ("麻衣", "マイ", "mai", 1),
    ("千尋", "チヒロ", "chihiro", 1),
    ("瑞穂", "ミズホ", "mizuho", 1),
    ("綾乃", "アヤノ", "ayano", 1),
    ("桃子", "モモコ", "momoko", 1),
    ("美咲", "ミサキ", "misaki", 2),
    ("彩", "アヤ", "aya", 2),
    ("愛", "アイ", "ai", 2),
    ("舞", "マイ", "mai", 2),
    ("結衣", "ユイ", "yui", 2),
    ("さくら", "サクラ", "sakura", 2),
    ("遥", "ハルカ", "haruka", 2),
    ("葵", "アオイ", "aoi", 2),
    ("陽菜", "ヒナ", "hina", 2),
    ("奈々", "ナナ", "nana", 2),
    ("七海", "ナナミ", "nanami", 2),
)

_FULLWIDTH_SPACE: Final = "\u3000"


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _allocate(total: int, weights: Sequence[tuple[str, float]]) -> list[tuple[str, int]]:
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainder)."""
    weight_sum = sum(w for _, w in weights)
    exact = [(key, total * w / weight_sum) for key, w in weights]
    counts = {key: math.floor(value) for key, value in exact}
    remaining = total - sum(counts.values())
    by_remainder = sorted(
        range(len(exact)), key=lambda i: (-(exact[i][1] - math.floor(exact[i][1])), i)
    )
    for i in by_remainder[:remaining]:
        counts[exact[i][0]] += 1
    return [(key, counts[key]) for key, _ in weights]


def _weighted(rng: random.Random, options: Sequence[tuple[Any, float]]) -> Any:
    values = [value for value, _ in options]
    weights = [weight for _, weight in options]
    return rng.choices(values, weights=weights, k=1)[0]


def _date_between(rng: random.Random, start: datetime.date, end: datetime.date) -> datetime.date:
    if end < start:
        start, end = end, start
    return start + datetime.timedelta(days=rng.randint(0, (end - start).days))


# ---------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------

# Window of the joining date per rank, as fractions of the span 1990-01-01 .. today-30d.
_JOIN_WINDOWS: dict[str, tuple[float, float]] = {
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
    era = _weighted(rng, list(enumerate(era_weights)))
    return rng.choice([entry for entry in pool if entry[3] == era])


def _phone(rng: random.Random) -> str:
    prefix = _weighted(rng, _PHONE_PREFIXES)
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
    latest = today - datetime.timedelta(days=_JOIN_MARGIN_DAYS)
    if latest < _EARLIEST_JOIN:
        raise ValueError("today is too early for the demo joining dates")
    span_days = (latest - _EARLIEST_JOIN).days

    rng = random.Random(seed)
    slots = _member_slots(rng, count)

    used_names: set[str] = set()
    used_phones: set[str] = set()
    used_emails: set[str] = set()
    members: list[DemoMember] = []
    for number, slot in enumerate(slots, start=1):
        low, high = slot.join_window or _JOIN_WINDOWS[slot.rank]
        is_student = "大学生" in slot.notes
        if is_student and span_days:
            # Students joined during their (at most four) years at university.
            low = max(low, 1.0 - _STUDENT_JOIN_DAYS / span_days)
        joined_on = _date_between(
            rng,
            _EARLIEST_JOIN + datetime.timedelta(days=round(span_days * low)),
            _EARLIEST_JOIN + datetime.timedelta(days=round(span_days * high)),
        )
        join_fraction = (joined_on - _EARLIEST_JOIN).days / span_days if span_days else 1.0
        female_share = (
            slot.female_share if slot.female_share is not None else _FEMALE_SHARE[slot.rank]
        )

        while True:
            family = rng.choice(FAMILY_NAMES)
            female = rng.random() < female_share
            given = _pick_given_name(
                rng, female=female, join_fraction=join_fraction, is_student=is_student
            )
            name = f"{family[0]}{_FULLWIDTH_SPACE}{given[0]}"
            if name not in used_names:
                break
        used_names.add(name)
        kana = f"{family[1]}{_FULLWIDTH_SPACE}{given[1]}"

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


# ---------------------------------------------------------------------------
# Water sources
# ---------------------------------------------------------------------------

# Share of each kind in percent (海・湖 is absent inland; 下水道 is rare).
_KIND_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("消火栓", 59.5),
    ("私設消火栓", 8.0),
    ("防火水槽", 18.0),
    ("プール", 2.0),
    ("河川・溝", 4.0),
    ("濠・池", 3.0),
    ("海・湖", 0.0),
    ("井戸", 3.0),
    ("下水道", 0.5),
    ("その他", 2.0),
)

_CODE_PREFIXES: dict[str, str] = {
    "消火栓": "H",
    "私設消火栓": "PH",
    "防火水槽": "T",
    "プール": "P",
    "河川・溝": "R",
    "濠・池": "PD",
    "海・湖": "SE",
    "井戸": "W",
    "下水道": "SW",
    "その他": "X",
}

# Each unit owns an area: 第1分団 the town centre disc, the others a sector of the ring
# around it, given as (min radius km, max radius km, start bearing deg, width deg).
_UNIT_AREAS: dict[str, tuple[float, float, float, float]] = {
    "第1分団": (0.0, _CENTRAL_RADIUS_KM, 0.0, 360.0),
    "第2分団": (_CENTRAL_RADIUS_KM, _MAX_RADIUS_KM, 324.0, 72.0),
    "第3分団": (_CENTRAL_RADIUS_KM, _MAX_RADIUS_KM, 36.0, 72.0),
    "第4分団": (_CENTRAL_RADIUS_KM, _MAX_RADIUS_KM, 108.0, 72.0),
    "第5分団": (_CENTRAL_RADIUS_KM, _MAX_RADIUS_KM, 180.0, 72.0),
    "第6分団": (_CENTRAL_RADIUS_KM, _MAX_RADIUS_KM, 252.0, 72.0),
}

# Neighbourhoods (町名) per unit; the number is the count of 丁目, or None for 番地-only areas.
_UNIT_TOWNS: dict[str, tuple[tuple[str, int | None], ...]] = {
    "第1分団": (("中央", 4), ("本町", 3), ("駅前", 2)),
    "第2分団": (("北町", 3), ("桜ケ丘", 2), ("上北原", None)),
    "第3分団": (("東町", 3), ("旭ケ丘", 3), ("川東", None)),
    "第4分団": (("南町", 3), ("緑が丘", 2), ("下河原", None)),
    "第5分団": (("西町", 3), ("若葉台", 3), ("大久保", None)),
    "第6分団": (("山手", 2), ("宮ノ前", None), ("梨ノ木", None)),
}

# Unit shares: hydrants concentrate in the centre, open water in the outskirts.
_URBAN_UNIT_WEIGHTS: tuple[float, ...] = (0.3, 0.15, 0.14, 0.14, 0.14, 0.13)
_RURAL_UNIT_WEIGHTS: tuple[float, ...] = (0.06, 0.19, 0.19, 0.19, 0.19, 0.18)
_URBAN_KINDS: tuple[str, ...] = ("消火栓", "私設消火栓", "プール", "下水道", "その他")

_CLUSTER_SIGMA_KM: Final = 0.35

_OWNERSHIP_WEIGHTS: dict[str, tuple[tuple[str, float], ...]] = {
    "消火栓": (("public", 1.0),),
    "私設消火栓": (("private", 1.0),),
    "防火水槽": (("public", 0.85), ("private", 0.1), ("designated", 0.05)),
    "プール": (("public", 0.8), ("private", 0.2)),
    "河川・溝": (("public", 0.7), ("designated", 0.3)),
    "濠・池": (("public", 0.6), ("designated", 0.4)),
    "海・湖": (("public", 1.0),),
    "井戸": (("designated", 0.7), ("private", 0.3)),
    "下水道": (("public", 1.0),),
    "その他": (("private", 0.5), ("designated", 0.5)),
}

_KIND_MEMOS: dict[str, tuple[str, ...]] = {
    "消火栓": (
        "積雪時埋没注意",
        "駐車車両注意",
        "道路中央",
        "標識柱なし",
        "商店街・夜間人通り多い",
    ),
    "私設消火栓": ("私有地・要連絡", "工場敷地内（夜間は守衛所へ連絡）", "病院敷地内"),
    "防火水槽": ("蓋重量物・2名で開放", "公園内", "学校敷地内", "公民館駐車場内"),
    "プール": ("学校プール・冬季は減水あり", "要連絡（教育委員会）"),
    "河川・溝": ("夏季渇水注意", "増水時使用不可", "用水路・農繁期のみ"),
    "濠・池": ("ため池・進入路狭い", "冬季結氷注意"),
    "海・湖": ("進入路狭い",),
    "井戸": ("私有地・要連絡", "手押しポンプ併設"),
    "下水道": ("下水道管理者へ要連絡",),
    "その他": ("受水槽（私有）・要連絡", "消雪用井戸"),
}
_UNUSABLE_MEMOS: tuple[str, ...] = ("断水工事中", "蓋破損・修理待ち", "水量不足")
_UNDER_INSPECTION_MEMOS: tuple[str, ...] = ("水道局点検中", "定期点検中")

# (drop range m, depth range m) for kinds that are drafted by the pump.
_DRAFT_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "防火水槽": ((1.0, 3.0), (2.0, 3.5)),
    "プール": ((0.3, 1.0), (1.0, 1.5)),
    "河川・溝": ((1.0, 4.0), (0.3, 1.5)),
    "濠・池": ((0.5, 2.5), (0.8, 3.0)),
    "海・湖": ((1.0, 3.0), (1.0, 5.0)),
    "井戸": ((2.0, 6.0), (5.0, 20.0)),
    "下水道": ((2.0, 5.0), (0.3, 1.0)),
}

_CISTERN_CAPACITIES: tuple[tuple[float, float], ...] = (
    (20.0, 0.1),
    (30.0, 0.05),
    (40.0, 0.58),
    (60.0, 0.12),
    (80.0, 0.05),
    (100.0, 0.1),
)


def _to_lat_lon(east_km: float, north_km: float) -> tuple[float, float]:
    lat0, lon0 = _CENTER
    km_per_degree = _EARTH_RADIUS_KM * math.pi / 180.0
    latitude = lat0 + north_km / km_per_degree
    longitude = lon0 + east_km / (km_per_degree * math.cos(math.radians(lat0)))
    return round(latitude, 6), round(longitude, 6)


def _in_area(unit: str, east_km: float, north_km: float) -> bool:
    r_min, r_max, start, width = _UNIT_AREAS[unit]
    radius = math.hypot(east_km, north_km)
    if not r_min <= radius <= r_max:
        return False
    bearing = math.degrees(math.atan2(east_km, north_km)) % 360.0
    return (bearing - start) % 360.0 <= width


def _random_in_area(rng: random.Random, unit: str) -> tuple[float, float]:
    r_min, r_max, start, width = _UNIT_AREAS[unit]
    radius = math.sqrt(rng.uniform(r_min**2, r_max**2))
    bearing = math.radians(start + rng.uniform(0.0, width))
    return radius * math.sin(bearing), radius * math.cos(bearing)


def _cluster_centres(rng: random.Random) -> dict[str, list[tuple[float, float]]]:
    """One neighbourhood centre per town, inside the owning unit's area."""
    centres: dict[str, list[tuple[float, float]]] = {}
    for unit in DEMO_UNITS:
        r_min, r_max, start, width = _UNIT_AREAS[unit]
        towns = _UNIT_TOWNS[unit]
        unit_centres = []
        for i in range(len(towns)):
            radius = rng.uniform(r_min + 0.25 * (r_max - r_min), r_max - 0.3)
            slice_width = width / len(towns)
            bearing = math.radians(start + slice_width * (i + rng.uniform(0.25, 0.75)))
            unit_centres.append((radius * math.sin(bearing), radius * math.cos(bearing)))
        centres[unit] = unit_centres
    return centres


def _address(rng: random.Random, town: tuple[str, int | None]) -> str:
    name, chome_count = town
    if chome_count:
        return (
            f"デモ市{name}{rng.randint(1, chome_count)}丁目"
            f"{rng.randint(1, 25)}-{rng.randint(1, 30)}"
        )
    if rng.random() < 0.4:
        return f"デモ市{name}{rng.randint(1, 2999)}-{rng.randint(1, 9)}"
    return f"デモ市{name}{rng.randint(1, 2999)}"


def _place(
    rng: random.Random, unit: str, centres: Sequence[tuple[float, float]]
) -> tuple[float, float, int]:
    """Pick a point in ``unit``'s area, usually near one of its neighbourhood centres."""
    if rng.random() < 0.85:
        town_index = rng.randrange(len(centres))
        cx, cy = centres[town_index]
        for _ in range(50):
            east = cx + rng.gauss(0.0, _CLUSTER_SIGMA_KM)
            north = cy + rng.gauss(0.0, _CLUSTER_SIGMA_KM)
            if _in_area(unit, east, north):
                return east, north, town_index
    east, north = _random_in_area(rng, unit)
    nearest = min(
        range(len(centres)),
        key=lambda i: math.hypot(centres[i][0] - east, centres[i][1] - north),
    )
    return east, north, nearest


def _last_inspected(rng: random.Random, today: datetime.date) -> datetime.date | None:
    roll = rng.random()
    if roll < 0.05:
        return None  # never inspected
    if roll < 0.2:  # overdue
        return today - datetime.timedelta(days=rng.randint(INSPECTION_INTERVAL_DAYS + 1, 1500))
    return today - datetime.timedelta(days=rng.randint(0, INSPECTION_INTERVAL_DAYS - 1))


def generate_water_sources(
    *, seed: int = DEFAULT_SEED, count: int = 400, today: datetime.date
) -> list[DemoWaterSource]:
    """Return ``count`` fictional water sources (消防水利) around the demo town centre.

    Kinds follow fixed shares (mostly 消火栓 and 防火水槽), each unit owns a sector of the
    town and its sources cluster around its neighbourhoods, all within about 4 km of
    ``DEMO_BRIGADE["center"]``. Codes are numbered per kind ("H-0001", "T-0001", ...).
    """
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)
    centres = _cluster_centres(rng)

    sources: list[DemoWaterSource] = []
    for kind, kind_count in _allocate(count, _KIND_WEIGHTS):
        unit_weights = _URBAN_UNIT_WEIGHTS if kind in _URBAN_KINDS else _RURAL_UNIT_WEIGHTS
        drafts = []
        for _ in range(kind_count):
            unit = rng.choices(DEMO_UNITS, weights=unit_weights, k=1)[0]
            east, north, town_index = _place(rng, unit, centres[unit])
            drafts.append((unit, east, north, town_index))
        # Number codes unit by unit so neighbouring codes sit close together.
        drafts.sort(key=lambda d: (DEMO_UNITS.index(d[0]), d[3], -d[2], d[1]))

        prefix = _CODE_PREFIXES[kind]
        for number, (unit, east, north, town_index) in enumerate(drafts, start=1):
            sources.append(
                _water_source(
                    rng,
                    code=f"{prefix}-{number:04d}",
                    kind=kind,
                    unit=unit,
                    position=_to_lat_lon(east, north),
                    town=_UNIT_TOWNS[unit][town_index],
                    today=today,
                )
            )
    return sources


def _water_source(
    rng: random.Random,
    *,
    code: str,
    kind: str,
    unit: str,
    position: tuple[float, float],
    town: tuple[str, int | None],
    today: datetime.date,
) -> DemoWaterSource:
    ownership = _weighted(rng, _OWNERSHIP_WEIGHTS[kind])

    main_diameter_mm: int | None = None
    hydrant_type: str | None = None
    if kind == "消火栓":
        main_diameter_mm = _weighted(rng, ((75, 0.1), (100, 0.45), (150, 0.35), (200, 0.1)))
        hydrant_type = _weighted(rng, (("地上式", 0.35), ("地下式", 0.65)))
    elif kind == "私設消火栓":
        main_diameter_mm = _weighted(rng, ((75, 0.6), (100, 0.4)))
        hydrant_type = _weighted(rng, (("地上式", 0.5), ("地下式", 0.5)))

    capacity_m3: float | None = None
    if kind == "防火水槽":
        capacity_m3 = _weighted(rng, _CISTERN_CAPACITIES)
    elif kind == "プール":
        capacity_m3 = float(rng.randrange(200, 501, 25))
    elif kind == "濠・池" and rng.random() < 0.6:
        capacity_m3 = float(rng.randrange(300, 2001, 50))
    elif kind == "その他" and rng.random() < 0.5:
        capacity_m3 = float(rng.choice((20, 30, 40, 60)))

    drop_m: float | None = None
    depth_m: float | None = None
    if kind in _DRAFT_RANGES:
        (drop_low, drop_high), (depth_low, depth_high) = _DRAFT_RANGES[kind]
        drop_m = round(rng.uniform(drop_low, drop_high), 1)
        depth_m = round(rng.uniform(depth_low, depth_high), 1)

    status = _weighted(rng, (("使用可", 0.88), ("使用不可", 0.08), ("点検中", 0.04)))
    if status == "使用不可":
        memo = rng.choice(_UNUSABLE_MEMOS)
    elif status == "点検中":
        memo = rng.choice(_UNDER_INSPECTION_MEMOS)
    elif hydrant_type == "地上式" and rng.random() < 0.4:
        memo = "冬季凍結注意"
    elif ownership != "public" and rng.random() < 0.5:
        memo = "私有地・要連絡"
    elif drop_m is not None and drop_m > 3.0 and rng.random() < 0.5:
        memo = "落差大・吸管2本必要"
    elif rng.random() < (0.2 if kind in HYDRANT_KINDS else 0.35):
        memo = rng.choice(_KIND_MEMOS[kind])
    else:
        memo = ""

    latitude, longitude = position
    return DemoWaterSource(
        code=code,
        kind=kind,
        ownership=ownership,
        latitude=latitude,
        longitude=longitude,
        address=_address(rng, town),
        unit=unit,
        capacity_m3=capacity_m3,
        main_diameter_mm=main_diameter_mm,
        hydrant_type=hydrant_type,
        drop_m=drop_m,
        depth_m=depth_m,
        status=status,
        memo=memo,
        last_inspected_on=_last_inspected(rng, today),
    )
