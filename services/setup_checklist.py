"""はじめの設定 (#18): what a new brigade has set up so far, for its administrators on ホーム.

Each step is found from the brigade's own data (nothing is ticked by hand), so it ticks itself
when the work is done and opens again if the work is undone. A step is listed only for an actor
who may open its page (as ui.registry offers it) and do the step there; the list as a whole is
for the brigade's administrators: whoever may edit 役職・権限 or the whole roster.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from config import get_settings
from core.access import Need, allows, unit_of
from core.actor import Actor
from models import MailSource, Member, MemberLine, Role, WaterSource
from models.enums import Function, Level, MemberStatus
from services.base import Tx, scoped, transaction
from services.brigade_settings import settings_in

ADMINISTRATORS = (Need(Function.PERMISSIONS, Level.EDIT), Need(Function.ROSTER, Level.EDIT))
NAMES_SHOWN = 5


class _Brigade:
    """The reads the steps need, each made at most once in the transaction."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    @cached_property
    def affiliations(self) -> dict[str, int]:
        """Active members per 所属 as typed ("" for none): a few dozen rows for any brigade."""
        query = (
            scoped(select(Member.affiliation, func.count(Member.id)), self.tx.actor)
            .where(Member.status == MemberStatus.ACTIVE)
            .group_by(Member.affiliation)
        )
        return dict(self.tx.session.exec(query).all())

    def count(self, column: Any, *conditions: Any) -> int:
        query = scoped(select(func.count(column)), self.tx.actor)
        return self.tx.session.exec(query.where(*conditions)).one()


Finding = tuple[bool, str]  # done, and what was found ("" for nothing worth saying)


def _area_centre(brigade: _Brigade) -> Finding:
    settings = settings_in(brigade.tx, positions=())
    if settings.area_center_derived or settings.area_center is None:
        return False, ""
    lat, lon = settings.area_center
    return True, f"{lat:.5f}, {lon:.5f}（半径 {settings.area_radius_km:g} km）"


def _members(brigade: _Brigade) -> Finding:
    active = sum(brigade.affiliations.values())
    return active > 1, f"在籍 {active}名"


def _units(brigade: _Brigade) -> Finding:
    units = sorted({u for a in brigade.affiliations if (u := unit_of(a))}, key=_natural)
    return bool(units), _named(units, "件")


def _roles(brigade: _Brigade) -> Finding:
    names = sorted(brigade.tx.session.exec(scoped(select(Role.name), brigade.tx.actor)).all())
    return bool(names), _named(names, "件")


def _water_sources(brigade: _Brigade) -> Finding:
    count = brigade.count(WaterSource.id)
    return count > 0, f"{count}件" if count else ""


def _line(brigade: _Brigade) -> Finding:
    # the join reaches only the brigade's own members: a link's member_id is one of them
    query = (
        scoped(select(func.count(MemberLine.id)), brigade.tx.actor)
        .join(Member, Member.id == MemberLine.member_id)
        .where(Member.status == MemberStatus.ACTIVE)
    )
    count = brigade.tx.session.exec(query).one()
    return count > 0, f"{count}名が連携済み" if count else ""


def _mail_sources(brigade: _Brigade) -> Finding:
    count = brigade.count(MailSource.id, MailSource.active)
    return count > 0, f"有効な受信元 {count}件" if count else ""


def _always() -> bool:
    return True


def _line_login_configured() -> bool:
    """The LINE channels belong to the installation, not to a brigade: without them there is
    nothing a brigade can do towards LINE (the operator's part)."""
    return get_settings().line_configured


@dataclass(frozen=True)
class StepSpec:
    label: str
    page: str  # the url_path of the page that does it (ui.registry)
    needs: tuple[Need, ...]  # the page's own (as ui.registry offers it) and the step's action
    hint: str
    find: Callable[[_Brigade], Finding]
    required: bool = True  # False: the brigade may do without it (shown as 任意)
    available: Callable[[], bool] = _always


def _page(function: Function, action: Level) -> tuple[Need, ...]:
    """A page offered at 閲覧 of `function` (ui.registry), and the step's action there."""
    return Need(function, Level.VIEW), Need(function, action)


STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        "区域の中心",
        "brigade-settings",
        _page(Function.SETTINGS, Level.EDIT),
        "団設定の「団の区域」で区域の中心（緯度, 経度）を保存すると、"
        "地図が団の区域から始まり、区域から遠い水利の登録に注意が出ます。",
        _area_centre,
    ),
    StepSpec(
        "団員",
        "roster",
        _page(Function.ROSTER, Level.EDIT),
        "団員名簿の「団員を追加」で登録するか、CSV一括登録で名簿をまとめて取り込みます。",
        _members,
    ),
    StepSpec(
        "分団",
        "roster",
        _page(Function.ROSTER, Level.EDIT),
        "団員の所属に「第1分団 第2部」のように分団を入力すると、出動連絡・名簿の絞り込み・"
        "集計が分団ごとになります。",
        _units,
    ),
    StepSpec(
        "消防水利",
        "water-map",
        _page(Function.WATER_SOURCES, Level.EDIT),
        "水利マップで地図をクリックして登録するか、CSV一括登録で水利台帳やオープンデータを"
        "取り込みます。",
        _water_sources,
    ),
    StepSpec(
        "役職",
        "permissions",
        _page(Function.PERMISSIONS, Level.EDIT),
        "庶務・会計・機関員など、階級とは別の役職を追加すると、役職ごとに権限を割り当てられます。",
        _roles,
        required=False,
    ),
    StepSpec(
        "LINE連携",
        "accounts",
        _page(Function.MEMBER_ACCOUNTS, Level.EDIT),
        "アカウント管理で団員ごとにLINE登録コードを発行し、団員が自分のLINEで登録すると、"
        "LINEでログインでき、出動連絡がLINEで届きます。",
        _line,
        required=False,
        available=_line_login_configured,
    ),
    StepSpec(
        "出動指令メールの受信元",
        "mail-sources",
        (Need(Function.DISPATCH, Level.ADMIN),),
        "出動メール設定で消防本部からの出動指令メールの受信元を登録すると、"
        "メールから出動が登録され、出動連絡が始まります。",
        _mail_sources,
        required=False,
    ),
)


@dataclass(frozen=True)
class Step:
    label: str
    page: str  # url_path (ui.registry)
    done: bool
    found: str  # what the brigade has ("在籍 12名"), "" for nothing worth saying
    hint: str
    required: bool


@dataclass(frozen=True)
class Checklist:
    steps: tuple[Step, ...]

    @property
    def open_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if not s.done)

    @property
    def required_open(self) -> bool:
        return any(s.required for s in self.open_steps)


def offered(actor: Actor) -> bool:
    """Whether the actor is one of the brigade's administrators the checklist is for."""
    return any(allows(actor, need) for need in ADMINISTRATORS)


def checklist(actor: Actor) -> Checklist:
    """The steps the actor may open and do, in order, as the brigade's data has them now: one
    read, at most one query per kind of data whatever the brigade's size."""
    gate = next((need for need in ADMINISTRATORS if allows(actor, need)), ADMINISTRATORS[0])
    with transaction(actor, gate, action="setup_checklist.view", read_only=True) as tx:
        brigade = _Brigade(tx)
        steps = []
        for spec in STEPS:
            if not (spec.available() and allows(tx.actor, *spec.needs)):
                continue
            done, found = spec.find(brigade)
            steps.append(Step(spec.label, spec.page, done, found, spec.hint, spec.required))
    return Checklist(tuple(steps))


def _named(names: list[str], counter: str) -> str:
    if not names:
        return ""
    shown = "・".join(names[:NAMES_SHOWN]) + (" など" if len(names) > NAMES_SHOWN else "")
    return f"{len(names)}{counter}（{shown}）"


def _natural(text: str) -> tuple:
    """第2分団 before 第10分団."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))
