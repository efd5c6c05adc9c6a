"""Targeting rules of the call-out (#21): which 分団 a dispatch mail's incident calls besides
those the mail lists, by incident kind and time of day (「22時〜6時の建物火災は第2分団も呼ぶ」),
and each 分団's neighbours, offered for widening (応援要請) when its crew is short.

A rule matches when the incident kind (after NFKC) contains one of its words (no words: every
kind) and the JST hour of the 指令時刻 lies in [start, end): the start hour is included, the end
hour is not (22→6 is 22:00–5:59); start == end is all day. Rules and neighbours are stored as
JSON on the brigade's call-out settings (models.callout.CalloutSettings).

services.dispatch.callout imports this module too (start_for_new_incident): the two use each
other's names only when called, so either may be imported first."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select

from core.access import in_unit
from core.actor import Actor
from core.timefmt import JST
from models import Member
from models.callout import CalloutSettings
from models.dispatch import Incident
from models.enums import MemberStatus
from services.base import Tx, scoped, transaction
from services.dispatch import callout, tally
from services.errors import NotFound, ValidationError

EVERYONE = "全団員"
MAX_RULES = 30
MAX_NEIGHBOUR_ROWS = 100
MAX_WORDS = 10
MAX_WORD_CHARS = 20
# the columns of the two tables on 出動メール設定, named in every error
KINDS, START, END, UNITS = "種別に含む語", "開始時", "終了時", "呼び出す分団"
UNIT, NEAR = "分団", "隣接する分団"
WORD_SEPARATORS = re.compile(r"[,、，､]")  # before NFKC: full-width commas too
NOT_A_UNIT = "は団員のいる分団ではありません。"

Cell = str | int | float | None


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").strip()


@dataclass(frozen=True)
class Rule:
    words: tuple[str, ...]  # NFKC; empty: every kind
    start: int  # JST hour, included
    end: int  # JST hour, excluded; == start: all day
    units: tuple[str, ...]
    everyone: bool = False  # 「全団員」: every active member

    def covers(self, hour: int) -> bool:
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end  # past midnight

    def matches(self, kind: str, hour: int) -> bool:
        text = _nfkc(kind).casefold()
        return self.covers(hour) and (
            not self.words or any(w.casefold() in text for w in self.words)
        )

    @property
    def label(self) -> str:
        hours = "終日" if self.start == self.end else f"{self.start}時〜{self.end}時"
        return f"{'・'.join(self.words) or '全種別'} {hours}"

    @property
    def target(self) -> str:
        return EVERYONE if self.everyone else "・".join(self.units)

    def stored(self) -> dict:
        return {
            "words": list(self.words),
            "start": self.start,
            "end": self.end,
            "units": list(self.units),
            "everyone": self.everyone,
        }


@dataclass(frozen=True)
class Applied:
    """A rule that matched an incident, with its row number on the settings page."""

    row: int
    rule: Rule

    @property
    def note(self) -> str:
        return f"ルール{self.row}（{self.rule.label}）→ {self.rule.target}"

    @property
    def details(self) -> dict:
        return {"rule": self.row, "units": list(self.rule.units), "everyone": self.rule.everyone}


def rules_of(settings: CalloutSettings) -> tuple[Rule, ...]:
    return tuple(
        Rule(
            words=tuple(r["words"]),
            start=r["start"],
            end=r["end"],
            units=tuple(r["units"]),
            everyone=r["everyone"],
        )
        for r in json.loads(settings.rules or "[]")
    )


def neighbours_of(settings: CalloutSettings) -> dict[str, tuple[str, ...]]:
    return {unit: tuple(near) for unit, near in json.loads(settings.neighbours or "{}").items()}


def matching(settings: CalloutSettings, kind: str, at: datetime) -> tuple[Applied, ...]:
    """The rules that apply to an incident of `kind` ordered at `at` (aware), in row order."""
    hour = at.astimezone(JST).hour
    return tuple(
        Applied(n, rule)
        for n, rule in enumerate(rules_of(settings), start=1)
        if rule.matches(kind, hour)
    )


def combined(applied: Iterable[Applied]) -> tuple[tuple[str, ...], bool]:
    """The 分団 the rules call (each once, in row order) and whether one calls 「全団員」."""
    units: dict[str, None] = {}
    everyone = False
    for a in applied:
        everyone = everyone or a.rule.everyone
        units.update(dict.fromkeys(a.rule.units))
    return tuple(units), everyone


def neighbours_for(settings: CalloutSettings, units: Iterable[str]) -> tuple[str, ...]:
    """The neighbours of `units` (each once), leaving out `units` themselves."""
    units = tuple(units)
    near = neighbours_of(settings)
    found = dict.fromkeys(n for unit in units for n in near.get(unit, ()))
    return tuple(n for n in found if n not in units)


def offer_in(tx: Tx, row: Incident, short: Iterable[str]) -> tuple[str, ...]:
    """The neighbours of the short 分団 that still have active members not called for this
    incident: the 応援候補."""
    near = neighbours_for(callout.settings_in(tx), short)
    if not near:
        return ()
    called = set(callout.targeted(tx, row.id))
    members = tx.session.exec(
        scoped(select(Member.id, Member.affiliation), tx.actor).where(
            Member.status == MemberStatus.ACTIVE
        )
    ).all()
    return tuple(
        unit
        for unit in near
        if any(m not in called and in_unit(affiliation, unit) for m, affiliation in members)
    )


def widening_offer(
    actor: Actor, incident_id: uuid.UUID, board: tally.Tally | None = None
) -> tuple[str, ...]:
    """The 応援候補 of an incident now: neighbours of the 分団 short of the crew minimum on its
    tally (`board`, when the caller has read it already), not called yet (preselected in the
    widen form)."""
    board = board or tally.tally(actor, incident_id)
    short = [u.unit for u in board.units if u.short]
    with transaction(actor, callout.VIEW, action="callout_rules.offer", read_only=True) as tx:
        row = tx.get(Incident, incident_id)
        if row is None:
            raise NotFound()
        return offer_in(tx, row, short)


# ---------------------------------------------------------------------------
# Reading and saving the rules


@dataclass(frozen=True)
class RuleRow:
    """One row of the rules table as entered."""

    words: str
    start: Cell
    end: Cell
    units: tuple[str, ...]


@dataclass(frozen=True)
class NeighbourRow:
    unit: str
    neighbours: tuple[str, ...]


@dataclass(frozen=True)
class Targeting:
    rules: tuple[Rule, ...]
    neighbours: dict[str, tuple[str, ...]]
    units: tuple[str, ...]  # the brigade's 分団 with active members, to choose from
    version: int  # of the brigade's call-out settings (0: none saved)


@dataclass(frozen=True)
class Saved:
    targeting: Targeting
    notes: tuple[str, ...]  # what was normalised, by row and column


def get_targeting(actor: Actor) -> Targeting:
    with transaction(actor, callout.VIEW, action="callout_rules.get", read_only=True) as tx:
        settings = callout.settings_in(tx)
        return Targeting(
            rules=rules_of(settings),
            neighbours=neighbours_of(settings),
            units=tuple(callout.units_in(tx)),
            version=settings.version,
        )


def update_targeting(
    actor: Actor,
    *,
    rules: Sequence[RuleRow],
    neighbours: Sequence[NeighbourRow],
    expected_version: int,
) -> Saved:
    """Replace the brigade's rules and neighbours; every row is checked before anything is
    written. Version 0 means no call-out settings saved yet."""
    with transaction(actor, callout.ADMIN, action="callout_rules.update") as tx:
        row = callout.settings_to_change(tx, expected_version)
        known = callout.units_in(tx)
        check = _Check(frozenset(known))
        new_rules = check.rules(rules)
        new_neighbours = check.neighbours(neighbours)
        if check.errors:
            raise ValidationError(check.errors)
        before = _state(rules_of(row), neighbours_of(row))
        row.rules = json.dumps([r.stored() for r in new_rules], ensure_ascii=False)
        row.neighbours = json.dumps(new_neighbours, ensure_ascii=False)
        callout.settings_changed(row)
        tx.audit(
            "callout_rules.update",
            target_type="callout_settings",
            details={
                "before": before,
                "after": _state(new_rules, new_neighbours),
                "normalised": check.notes,
            },
        )
        saved = Targeting(
            rules=tuple(new_rules),
            neighbours={unit: tuple(near) for unit, near in new_neighbours.items()},
            units=tuple(known),
            version=row.version,
        )
        tx.commit()
        return Saved(saved, tuple(check.notes))


def _state(rules: Iterable[Rule], neighbours: dict[str, Sequence[str]]) -> dict:
    return {
        "rules": [r.stored() for r in rules],
        "neighbours": {k: list(v) for k, v in neighbours.items()},
    }


class _Check:
    """Validates the rows of both tables, collecting every error (by row and column) and every
    normalisation the user should see."""

    def __init__(self, known: frozenset[str]) -> None:
        self.known = known
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []

    def _error(self, n: int, column: str, message: str) -> None:
        self.errors.setdefault(f"{n}:{column}", f"{n}行目「{column}」: {message}")

    def _note(self, n: int, column: str, entered: str, saved: str) -> None:
        self.notes.append(f"{n}行目「{column}」: 「{entered}」を「{saved}」として保存しました。")

    def rules(self, rows: Sequence[RuleRow]) -> list[Rule]:
        filled = [(n, r) for n, r in enumerate(rows, start=1) if not _blank_rule(r)]
        if len(filled) > MAX_RULES:
            self.errors["ルール"] = (
                f"呼び出しルールは{MAX_RULES}件までです（{len(filled)}件あります）。"
            )
            return []
        found = []
        for n, r in filled:
            words = self._words(n, r.words)
            start, end = self._hour(n, START, r.start), self._hour(n, END, r.end)
            units, everyone = self._rule_units(n, r.units)
            if words is not None and start is not None and end is not None and units is not None:
                found.append(Rule(words, start, end, units, everyone))
        return found

    def _words(self, n: int, text: str) -> tuple[str, ...] | None:
        entered = [w.strip() for w in WORD_SEPARATORS.split(text or "") if w.strip()]
        words = tuple(dict.fromkeys(w for w in (_nfkc(w) for w in entered) if w))
        if len(words) > MAX_WORDS:
            self._error(n, KINDS, f"語は{MAX_WORDS}個までです。")
            return None
        if any(len(w) > MAX_WORD_CHARS for w in words):
            self._error(n, KINDS, f"1つの語は{MAX_WORD_CHARS}文字までです。")
            return None
        if list(words) != entered:
            self._note(n, KINDS, "、".join(entered), "、".join(words))
        return words

    def _hour(self, n: int, column: str, value: Cell) -> int | None:
        hour = None
        if isinstance(value, str):
            text = _nfkc(value).removesuffix("時").strip()
            hour = int(text) if text.isdecimal() else None
            if hour is not None and text != value.strip():
                self._note(n, column, value.strip(), str(hour))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            hour = int(value) if float(value).is_integer() else None
        if hour is None or not 0 <= hour <= 23:
            self._error(n, column, f"{column}は0〜23の整数（日本時間の時）で入力してください。")
            return None
        return hour

    def _units(self, n: int, column: str, entered: Sequence[str]) -> tuple[str, ...]:
        units = tuple(dict.fromkeys(u for u in (_nfkc(u) for u in entered) if u))
        changed = [(e.strip(), _nfkc(e)) for e in entered if e.strip() != _nfkc(e)]
        for before, after in changed:
            self._note(n, column, before, after)
        return units

    def _unknown(self, n: int, column: str, units: Iterable[str]) -> bool:
        unknown = [u for u in units if u not in self.known]
        if unknown:
            self._error(n, column, f"{'、'.join(unknown)} {NOT_A_UNIT}")
        return bool(unknown)

    def _rule_units(self, n: int, entered: Sequence[str]) -> tuple[tuple[str, ...] | None, bool]:
        units = self._units(n, UNITS, entered)
        if not units:
            self._error(n, UNITS, f"呼び出す分団（または「{EVERYONE}」）を選んでください。")
            return None, False
        if EVERYONE in units:
            if len(units) > 1:
                self._note(n, UNITS, "・".join(units), EVERYONE)
            return (), True
        return (None if self._unknown(n, UNITS, units) else units), False

    def neighbours(self, rows: Sequence[NeighbourRow]) -> dict[str, list[str]]:
        filled = [(n, r) for n, r in enumerate(rows, start=1) if _nfkc(r.unit) or r.neighbours]
        if len(filled) > MAX_NEIGHBOUR_ROWS:
            self.errors["隣接分団"] = f"隣接分団は{MAX_NEIGHBOUR_ROWS}行までです。"
            return {}
        found: dict[str, list[str]] = {}
        rows_of: dict[str, int] = {}
        for n, r in filled:
            unit = _nfkc(r.unit)
            if unit != (r.unit or "").strip():
                self._note(n, UNIT, r.unit.strip(), unit)
            near = self._units(n, NEAR, r.neighbours)
            if not unit:
                self._error(n, UNIT, "分団を選んでください。")
            elif unit in rows_of:
                self._error(n, UNIT, f"{unit} は{rows_of[unit]}行目にもあります。")
            elif not self._unknown(n, UNIT, [unit]):
                rows_of[unit] = n
            if not near:
                self._error(n, NEAR, "隣接する分団を選んでください。")
            elif unit in near:
                self._error(n, NEAR, f"{unit} 自身は選べません。")
            elif not self._unknown(n, NEAR, near) and rows_of.get(unit) == n:
                found[unit] = list(near)
        return found


def _blank_rule(row: RuleRow) -> bool:
    return (
        not _nfkc(row.words)
        and row.start in (None, "")
        and row.end in (None, "")
        and not any(_nfkc(u) for u in row.units)
    )
