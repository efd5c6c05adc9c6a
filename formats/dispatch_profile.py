"""Reading a decoded dispatch mail with a 消防本部's parser profile: which follow-up it is
(指令, 出動要請, 鎮圧, 鎮火, 誤報, 取消, 災害地図), and the fields an incident needs.

A profile is data (regular expressions and word lists, kept as JSON per mail source) because
every 消防本部 has its own layout; docs/dispatch_profiles.md explains it to administrators.
Patterns run on the text with full-width letters, digits and spaces folded to half-width
(one character for one, so a match's span is also its span in the text as written); values are
taken as written and only the normalisations listed in `ParsedDispatch.normalised` are applied.

No database access: services/dispatch stores the profile and the result.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from core.timefmt import JST
from formats.dispatch_mail import DecodedMail, encode_cp50220

MAX_PATTERN_CHARS = 500
MAX_WORD_CHARS = 100
MAX_WORDS = 500
# Patterns are the administrator's; Python's re cannot be interrupted, so the text they run on
# is capped (a dispatch mail's text is well under this) and nested repeats are refused.
MAX_PARSE_CHARS = 20_000
MAX_VALUE_CHARS = 200
MAX_URL_CHARS = 2_000
APPROXIMATE_WORDS = ("付近", "地内", "周辺")
# A 覚知 time without a date takes the mail's date; up to this much after the mail's Date it is
# still that day (clocks differ), later it was the day before (a mail sent just after midnight).
CLOCK_SKEW = timedelta(minutes=10)


class FollowUp(StrEnum):
    DISPATCH = "dispatch"
    REQUEST = "request"
    SUPPRESSED = "suppressed"
    EXTINGUISHED = "extinguished"
    FALSE_ALARM = "false_alarm"
    CANCELLED = "cancelled"
    MAP = "map"

    @property
    def label(self) -> str:
        return FOLLOWUP_LABELS[self]


FOLLOWUP_VALUES = frozenset(followup.value for followup in FollowUp)
FOLLOWUP_LABELS = {
    FollowUp.DISPATCH: "出動指令",
    FollowUp.REQUEST: "出動要請",
    FollowUp.SUPPRESSED: "鎮圧",
    FollowUp.EXTINGUISHED: "鎮火",
    FollowUp.FALSE_ALARM: "誤報",
    FollowUp.CANCELLED: "取消",
    FollowUp.MAP: "災害地図",
}
# A 鎮火 mail may also report the 鎮圧 time, a 取消 mail may repeat the 指令: the word that ends
# the most decides.
FOLLOWUP_PRECEDENCE = (
    FollowUp.CANCELLED,
    FollowUp.FALSE_ALARM,
    FollowUp.EXTINGUISHED,
    FollowUp.SUPPRESSED,
    FollowUp.MAP,
    FollowUp.REQUEST,
    FollowUp.DISPATCH,
)

FIELD_LABELS = {
    "kind": "災害種別",
    "time": "覚知時刻",
    "date": "覚知日",
    "place": "発生場所",
    "landmark": "目標物",
    "units": "出動隊",
    "reference": "事案番号",
    "map_url": "地図URL",
}
IDENTIFIER_LABEL = "事案番号または発生場所"
DEFAULT_WITHHELD_WORDS = ("非公開", "個人情報")

# Full-width ASCII letters and digits, and the ideographic space, to half-width: one character
# for one, so spans in the folded text are spans in the text as written.
_FOLD = {
    **{code: code - 0xFEE0 for code in range(0xFF10, 0xFF1A)},
    **{code: code - 0xFEE0 for code in range(0xFF21, 0xFF3B)},
    **{code: code - 0xFEE0 for code in range(0xFF41, 0xFF5B)},
    0x3000: 0x20,
}
# Stored values (place, landmark, reference, map URL) fold all of full-width ASCII, and the
# minus sign that JIS 0x215D decodes to outside Windows (U+2212; Windows: U+FF0D).
_FULL_WIDTH_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {
    0x3000: 0x20,
    0x2212: 0x2D,
}


def fold(text: str) -> str:
    """Full-width letters, digits and spaces to half-width, nothing else."""
    return text.translate(_FOLD)


class ProfileError(ValueError):
    """A stored profile that is not a profile at all (wrong JSON shape); Japanese message."""


@dataclass(frozen=True)
class ParserProfile:
    name: str
    description: str = ""
    patterns: Mapping[str, str] = field(default_factory=dict)
    followup_words: Mapping[FollowUp, tuple[str, ...]] = field(default_factory=dict)
    vocabulary: Mapping[str, str] = field(default_factory=dict)  # unit/vehicle word → 分団
    section_start: str | None = None
    section_end: str | None = None
    # A 発生場所 value holding one of these is withheld (privacy), not missing.
    withheld_words: tuple[str, ...] = DEFAULT_WITHHELD_WORDS

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "patterns": dict(self.patterns),
            "followup_words": {k.value: list(v) for k, v in self.followup_words.items()},
            "vocabulary": dict(self.vocabulary),
            "section_start": self.section_start,
            "section_end": self.section_end,
            "withheld_words": list(self.withheld_words),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ParserProfile:
        """The inverse of to_dict; missing keys take their defaults. Raises ProfileError on a
        wrong shape; problems() then judges the content."""
        if not isinstance(data, Mapping):
            raise ProfileError("解析プロファイルの形式が正しくありません")
        words = _mapping(data, "followup_words")
        if unknown := [key for key in words if key not in FOLLOWUP_VALUES]:
            raise ProfileError(f"続報の種類 {unknown[0][:40]} は使えません")
        followups = {FollowUp(key): _strings(value, key) for key, value in words.items()}
        return cls(
            name=_string(data, "name"),
            description=_string(data, "description"),
            patterns={k: _text(v, k) for k, v in _mapping(data, "patterns").items()},
            followup_words=followups,
            vocabulary={k: _text(v, k) for k, v in _mapping(data, "vocabulary").items()},
            section_start=_string(data, "section_start") or None,
            section_end=_string(data, "section_end") or None,
            withheld_words=_strings(
                data.get("withheld_words", DEFAULT_WITHHELD_WORDS), "withheld_words"
            ),
        )

    def problems(self) -> list[str]:
        """Japanese lines for the 管理 page; an empty list means the profile can be saved."""
        problems = [
            p for name, pattern in self.patterns.items() for p in _pattern_problems(name, pattern)
        ]
        words = [
            *(w for ws in self.followup_words.values() for w in ws),
            *self.vocabulary,
            *self.vocabulary.values(),
            *self.withheld_words,
        ]
        if any(not w.strip() for w in words):
            problems.append("空の語があります")
        if any(len(w) > MAX_WORD_CHARS for w in words):
            problems.append(f"{MAX_WORD_CHARS}文字を超える語があります")
        if len(words) > MAX_WORDS:
            problems.append(f"語は合わせて{MAX_WORDS}個までです")
        for marker in (self.section_start, self.section_end):
            if marker is not None and len(marker) > MAX_WORD_CHARS:
                problems.append(f"解析範囲の目印は{MAX_WORD_CHARS}文字までです")
        return problems


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ProfileError(f"解析プロファイルの {key} の形式が正しくありません")
    return value


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"解析プロファイルの {key} は文字列にしてください")
    return value


def _string(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else _text(value, key)


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ProfileError(f"解析プロファイルの {key} は文字列のリストにしてください")
    return tuple(_text(item, key) for item in value)


def _nested_repeat(pattern: str) -> bool:
    """A group holding a repeat and itself repeated — (a+)+, (\\w*)*, (x+){2,} — backtracks
    exponentially on text that almost matches. A linear scan, not a regex over the regex."""
    groups: list[bool] = []  # per open group: does it hold a repeat?
    escaped = in_class = False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            groups.append(False)
        elif char in "+*{" and groups:
            groups[-1] = True
        elif char == ")" and groups:
            held = groups.pop()
            if held and pattern[index + 1 : index + 2] in ("+", "*", "{"):
                return True
            if held and groups:
                groups[-1] = True
    return False


def _pattern_problems(name: str, pattern: str) -> list[str]:
    label = f"{FIELD_LABELS.get(name, name)}（{name}）"
    if name not in FIELD_LABELS:
        return [f"項目 {name} は使えません（使える項目: {', '.join(FIELD_LABELS)}）"]
    if len(pattern) > MAX_PATTERN_CHARS:
        return [f"{label}のパターンが長すぎます（{MAX_PATTERN_CHARS}文字まで）"]
    try:
        compiled = re.compile(fold(pattern), re.MULTILINE)
    except re.error as error:
        return [f"{label}のパターンが正規表現として正しくありません（{error}）"]
    problems = []
    if "value" not in compiled.groupindex:
        problems.append(f"{label}のパターンに名前付きグループ (?P<value>…) がありません")
    if _nested_repeat(pattern):
        problems.append(
            f"{label}のパターンに入れ子の繰り返し（例: (a+)+）があり、照合が極端に遅くなるおそれがあります"
        )
    return problems


def _compiled(profile: ParserProfile, notes: list[str]) -> dict[str, re.Pattern[str]]:
    usable = {}
    for name, pattern in profile.patterns.items():
        if _pattern_problems(name, pattern):
            notes.append(f"{FIELD_LABELS.get(name, name)}のパターンが使えないため読み飛ばしました")
            continue
        usable[name] = re.compile(fold(pattern), re.MULTILINE)
    return usable


@dataclass(frozen=True)
class ParsedDispatch:
    followup: FollowUp
    kind: str | None
    occurred_at: datetime | None  # aware UTC; times in the mail are JST
    occurred_text: str | None  # as written
    place: str | None
    place_approximate: bool  # 付近, 地内, 周辺
    place_withheld: bool  # the mail withholds the place (非公開): not missing
    landmark: str | None
    units: tuple[str, ...]  # the brigade's 分団 names, through the vocabulary, in order
    unit_words: tuple[str, ...]  # as written, every word of the units lines
    reference: str | None
    map_url: str | None  # http or https only
    missing: tuple[str, ...]  # Japanese labels of what this kind of mail needs and lacks
    normalised: tuple[str, ...]  # what was changed from the text as written, for the user
    problems: tuple[str, ...]  # why a value was not used (never quoting the mail)

    @property
    def needs_review(self) -> bool:
        return bool(self.missing)


def parse_dispatch(mail: DecodedMail, profile: ParserProfile) -> ParsedDispatch:
    """Never raises: a pattern that does not compile is skipped with a problem line."""
    notes: list[str] = []
    normalised: list[str] = []
    section = _section(mail.body, profile, notes)
    text = f"{section}\n{mail.subject[: MAX_VALUE_CHARS * 2]}"
    folded = fold(text)
    patterns = _compiled(profile, notes)

    def value(name: str) -> str | None:
        pattern = patterns.get(name)
        match = pattern.search(folded) if pattern else None
        return _value(text, match)

    def folded_value(name: str) -> str | None:
        raw = value(name)
        half = raw.translate(_FULL_WIDTH_ASCII) if raw else raw
        if half != raw:
            normalised.append(f"{FIELD_LABELS[name]}: 全角英数字・記号・空白→半角")
        return half

    followup = _followup(fold(mail.subject), fold(section), profile)
    written_place = value("place")
    withheld = bool(written_place) and any(
        w.strip() and w in written_place for w in profile.withheld_words
    )
    place = None if withheld else folded_value("place")
    unit_words = _unit_words(text, folded, patterns.get("units"))
    occurred_at, occurred_text = _occurred(value("date"), value("time"), mail, normalised, notes)
    parsed = ParsedDispatch(
        followup=followup,
        kind=value("kind"),
        occurred_at=occurred_at,
        occurred_text=occurred_text,
        place=place,
        place_approximate=place is not None and any(w in place for w in APPROXIMATE_WORDS),
        place_withheld=withheld,
        landmark=folded_value("landmark"),
        units=_units(unit_words, profile.vocabulary),
        unit_words=unit_words,
        reference=folded_value("reference"),
        map_url=_map_url(folded_value("map_url"), notes),
        missing=(),
        normalised=tuple(dict.fromkeys(normalised)),
        problems=tuple(dict.fromkeys(notes)),
    )
    return _with_missing(parsed)


def _section(body: str, profile: ParserProfile, notes: list[str]) -> str:
    text = body
    if profile.section_start:
        start = body.find(profile.section_start)
        if start < 0:
            notes.append("解析範囲の開始の目印が見つからないため、本文全体を解析しました")
        else:
            text = body[start + len(profile.section_start) :]
    if profile.section_end:
        end = text.find(profile.section_end)
        if end >= 0:
            text = text[:end]
    if len(text) > MAX_PARSE_CHARS:
        notes.append(f"本文が長いため先頭 {MAX_PARSE_CHARS} 文字だけを解析しました")
    return text[:MAX_PARSE_CHARS]


def _value(text: str, match: re.Match[str] | None) -> str | None:
    if match is None or match.start("value") < 0:
        return None
    found = text[match.start("value") : match.end("value")].strip(" \t\n\u3000。")
    return found[:MAX_VALUE_CHARS] or None


def _followup(subject: str, section: str, profile: ParserProfile) -> FollowUp:
    """The subject decides if it names a follow-up, else the body; none named is a 指令."""
    for text in (subject, section):
        for followup in FOLLOWUP_PRECEDENCE:
            words = profile.followup_words.get(followup, ())
            if any(word.strip() and fold(word) in text for word in words):
                return followup
    return FollowUp.DISPATCH


_UNIT_SEPARATORS = re.compile(r"[\s、,，・/／;；]+")


def _unit_words(text: str, folded: str, pattern: re.Pattern[str] | None) -> tuple[str, ...]:
    """Every word of every units line (a 出動要請 may list units on several lines)."""
    if pattern is None:
        return ()
    words: list[str] = []
    for match in pattern.finditer(folded):
        line = _value(text, match)
        words.extend(w for w in _UNIT_SEPARATORS.split(line or "") if w)
        if len(words) >= MAX_WORDS:
            break
    return tuple(dict.fromkeys(words[:MAX_WORDS]))


def _units(words: tuple[str, ...], vocabulary: Mapping[str, str]) -> tuple[str, ...]:
    known = {fold(word): unit for word, unit in vocabulary.items()}
    return tuple(dict.fromkeys(known[fold(w)] for w in words if fold(w) in known))


def _map_url(raw: str | None, notes: list[str]) -> str | None:
    if raw is None:
        return None
    url = raw
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
    if not ok or len(url) > MAX_URL_CHARS or not url.isprintable() or " " in url:
        notes.append("地図URLが http/https のアドレスではないため使いません")
        return None
    return url


def _with_missing(parsed: ParsedDispatch) -> ParsedDispatch:
    identified = bool(parsed.reference or parsed.place or parsed.place_withheld)
    needs: list[tuple[str, bool]] = []
    if parsed.followup == FollowUp.DISPATCH:
        needs = [
            (FIELD_LABELS["kind"], bool(parsed.kind)),
            (FIELD_LABELS["place"], bool(parsed.place or parsed.place_withheld)),
            (FIELD_LABELS["time"], parsed.occurred_at is not None),
        ]
    elif parsed.followup == FollowUp.REQUEST:
        needs = [(FIELD_LABELS["units"], bool(parsed.unit_words)), (IDENTIFIER_LABEL, identified)]
    elif parsed.followup == FollowUp.MAP:
        needs = [(FIELD_LABELS["map_url"], bool(parsed.map_url)), (IDENTIFIER_LABEL, identified)]
    else:
        needs = [(IDENTIFIER_LABEL, identified)]
    missing = tuple(label for label, present in needs if not present)
    return replace(parsed, missing=missing)


# --- 覚知 date and time ----------------------------------------------------------------------------

_ERAS = {"令和": 2018, "R": 2018, "平成": 1988, "H": 1988}
_ERA_DATE = re.compile(
    r"(令和|平成|R|H)\s*(元|\d{1,2})\s*[年./-]\s*(\d{1,2})\s*[月./-]\s*(\d{1,2})"
)
_WESTERN_DATE = re.compile(r"(?<!\d)(\d{4})\s*[年./-]\s*(\d{1,2})\s*[月./-]\s*(\d{1,2})")
_MONTH_DAY = re.compile(r"(?<![\d/.-])(\d{1,2})\s*[月/]\s*(\d{1,2})(?![\d/])")
_TIME = re.compile(r"(午前|午後)?\s*(?<!\d)(\d{1,2})\s*(?:時|:)\s*(?:(\d{1,2})\s*分?)?")


@dataclass(frozen=True)
class _Date:
    year: int | None  # None: month and day only
    month: int
    day: int
    end: int  # where the date ends in the text it was found in
    era: str | None  # "令和8年→2026年" when written in an era


def _find_date(text: str) -> _Date | None:
    folded = fold(text)
    if match := _ERA_DATE.search(folded):
        era, year_text, month, day = match.groups()
        year = _ERAS[era] + (1 if year_text == "元" else int(year_text))
        era_name = "令和" if era in ("令和", "R") else "平成"
        note = f"{era_name}{year_text}年→{year}年"
        return _Date(year, int(month), int(day), match.end(), note)
    if match := _WESTERN_DATE.search(folded):
        year_text, month, day = match.groups()
        return _Date(int(year_text), int(month), int(day), match.end(), None)
    if match := _MONTH_DAY.search(folded):
        return _Date(None, int(match.group(1)), int(match.group(2)), match.end(), None)
    return None


def _occurred(
    date_text: str | None,
    time_text: str | None,
    mail: DecodedMail,
    normalised: list[str],
    notes: list[str],
) -> tuple[datetime | None, str | None]:
    """The 覚知 time (JST) as aware UTC, and the text it was read from. The date is the date
    field's, else one written with the time, else the mail's (JST)."""
    if time_text is None:
        return None, date_text
    shown = time_text if not date_text or date_text in time_text else f"{date_text} {time_text}"
    if fold(shown) != shown:
        normalised.append(f"{FIELD_LABELS['time']}: 全角数字→半角")
    in_time = _find_date(time_text)
    written = (_find_date(date_text) if date_text else None) or in_time
    clock = _clock(fold(time_text)[in_time.end if in_time else 0 :], normalised)
    if written is not None and written.era is not None:
        normalised.append(written.era)
    mail_time = mail.date.astimezone(JST) if mail.date else None
    occurred = _resolve(written, clock, mail_time, normalised) if clock else None
    if occurred is None:
        notes.append("覚知時刻を日時として読めません")
    return occurred, shown


def _resolve(
    written: _Date | None, clock: time, mail_time: datetime | None, normalised: list[str]
) -> datetime | None:
    if written is not None and written.year is not None:
        return _at(written.year, written.month, written.day, clock)
    if mail_time is None:
        return None
    if written is None:
        normalised.append("覚知日: 本文にないためメールの送信日時（日本時間）から判断")
        day = mail_time.date()
        candidates = [_at(d.year, d.month, d.day, clock) for d in (day, day - timedelta(days=1))]
    else:
        years = (mail_time.year, mail_time.year - 1)
        candidates = [_at(year, written.month, written.day, clock) for year in years]
    # The 覚知 is before the mail: 23:58 in a mail sent at 00:03 was the day before, 12/31 in a
    # mail of 1/1 the year before.
    return next((c for c in candidates if c and c <= mail_time + CLOCK_SKEW), None)


def _at(year: int, month: int, day: int, clock: time) -> datetime | None:
    try:
        return datetime.combine(date(year, month, day), clock, tzinfo=JST).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _clock(text: str, normalised: list[str]) -> time | None:
    match = _TIME.search(text)
    if match is None:
        return None
    half, hour, minute = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if half and hour <= 12:
        hour = hour % 12 + (12 if half == "午後" else 0)
        normalised.append("午前・午後→24時間表記")
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


# --- Example profiles (docs/dispatch_profiles.md explains them) ---------------------------------

# Linear patterns: a line start is ^[ \t]* (not ^\s*, which rescans every blank line) and a
# value runs to the line end as \S.* (not .+?\s*$, which rescans trailing spaces); the value's
# surrounding spaces are stripped anyway.
_REST = r"(?P<value>\S.*)"
BRACKET = ParserProfile(
    name="bracket",
    description=(
        "例1「項目名：値」型: 件名が【出動指令】【鎮火】のような隅付き括弧で始まり、本文は"
        "「災害種別：建物火災」のように1行に1項目。覚知時刻は令和と全角数字、出動は分団名。"
    ),
    patterns={
        "kind": r"^[ \t]*災害(?:種別|区分)[ \t]*[:：][ \t]*" + _REST,
        "place": r"^[ \t]*(?:発生場所|災害場所|住所)[ \t]*[:：][ \t]*" + _REST,
        "landmark": r"^[ \t]*目標物?[ \t]*[:：][ \t]*" + _REST,
        "time": r"^[ \t]*(?:覚知|指令)(?:時刻|日時)[ \t]*[:：][ \t]*" + _REST,
        "units": r"^[ \t]*出動(?:分団|隊)[ \t]*[:：][ \t]*" + _REST,
        "reference": r"^[ \t]*事案番号[ \t]*[:：][ \t]*(?P<value>\S+)",
        "map_url": r'(?P<value>https?://[^\s<>"「」（）()]+)',
    },
    followup_words={
        FollowUp.DISPATCH: ("【出動指令】",),
        FollowUp.REQUEST: ("【出動要請】", "【追加出動】"),
        FollowUp.SUPPRESSED: ("【鎮圧】",),
        FollowUp.EXTINGUISHED: ("【鎮火】",),
        FollowUp.FALSE_ALARM: ("【誤報】",),
        FollowUp.CANCELLED: ("【取消】", "【出動取消】"),
        FollowUp.MAP: ("【災害地図】",),
    },
    vocabulary={f"第{n}分団": f"第{n}分団" for n in range(1, 6)},
    section_end="※このメールは",
)
TERSE = ParserProfile(
    name="terse",
    description=(
        "例2 短い見出し型: 「場所 住吉町2-14 地内」のように短い見出しと空白で1行1項目、"
        "出動は車両コード（住吉団1 = 住吉分団のポンプ車）、地図は別の「災害地図メール」で届く。"
    ),
    patterns={
        "kind": r"^(?:指令|要請|種別)[ \t]+(?P<value>\S+)",
        "place": r"^場所[ \t]+" + _REST,
        "landmark": r"^目標[ \t]+" + _REST,
        "date": r"^覚知[ \t]+(?P<value>\d{1,2}/\d{1,2})",
        "time": r"^覚知[ \t]+(?:\d{1,2}/\d{1,2}[ \t]+)?(?P<value>\d{1,2}:\d{2})",
        "units": r"^(?:出動|追加)[ \t]+" + _REST,
        "reference": r"^番号[ \t]+(?P<value>\S+)",
        "map_url": r'(?P<value>https?://[^\s<>"]+)',
    },
    followup_words={
        FollowUp.DISPATCH: ("出動指令",),
        FollowUp.REQUEST: ("出動要請",),
        FollowUp.SUPPRESSED: ("鎮圧",),
        FollowUp.EXTINGUISHED: ("鎮火",),
        FollowUp.FALSE_ALARM: ("誤報",),
        FollowUp.CANCELLED: ("取消",),
        FollowUp.MAP: ("災害地図メール",),
    },
    vocabulary={
        "住吉団1": "住吉分団",
        "住吉団2": "住吉分団",
        "住吉団3": "住吉分団",
        "東団1": "東分団",
        "西団1": "西分団",
        "中央団1": "中央分団",
    },
)
EXAMPLE_PROFILES: Mapping[str, ParserProfile] = {p.name: p for p in (BRACKET, TERSE)}


# --- A sample mail for the demo -----------------------------------------------------------------

SAMPLE_HQ_NAME = "〇〇市消防本部"


def _wide(value: int, width: int = 1) -> str:
    return f"{value:0{width}d}".translate({c: c + 0xFEE0 for c in range(0x30, 0x3A)})


def _bracket_sample(noticed: datetime) -> tuple[str, str]:
    reference = f"{_wide(noticed.month, 2)}{_wide(noticed.day, 2)}－{_wide(noticed.hour, 2)}{_wide(noticed.minute, 2)}"
    body = f"""【出動指令】
{SAMPLE_HQ_NAME}から出動指令をお知らせします。

事案番号：{reference}
災害種別：建物火災
発生場所：〇〇市住吉町３丁目１２番付近
目標物　：髙橋商店
覚知時刻：令和{_wide(noticed.year - 2018)}年{_wide(noticed.month)}月{_wide(noticed.day)}日　{_wide(noticed.hour)}時{_wide(noticed.minute, 2)}分頃
出動分団：第１分団、第３分団
地図　　：https://map.example.jp/fire?id={noticed:%m%d-%H%M}

①北側の市道は通行止めです。
※このメールは送信専用です。返信しないでください。
{SAMPLE_HQ_NAME} 指令課
"""
    return "【出動指令】建物火災 住吉町３丁目付近", body


def _terse_sample(noticed: datetime) -> tuple[str, str]:
    body = f"""出動指令
指令 建物火災
場所 住吉町2-14 地内
目標 住吉公民館
覚知 {noticed:%m/%d %H:%M}
出動 住吉団1 住吉団2 東団1 本署1
番号 {noticed:%m%d%H}
"""
    return "出動指令", body


_SAMPLES = {BRACKET.name: _bracket_sample, TERSE.name: _terse_sample}


def _encoded_words(text: str) -> str:
    """RFC 2047 B words of ISO-2022-JP, each short enough for a 78-character line and each
    ending in ASCII, as mail clients write a Japanese subject."""
    words = (
        f"=?ISO-2022-JP?B?{base64.b64encode(encode_cp50220(text[i : i + 8])).decode()}?="
        for i in range(0, len(text), 8)
    )
    return "\r\n ".join(words)


def sample_dispatch_mail(
    *, to: str, sender: str, now: datetime, profile: str = BRACKET.name
) -> bytes:
    """A dispatch mail as the example 消防本部 of `profile` writes it: ISO-2022-JP as Microsoft
    clients send it (CP50220, so ① and 髙 are in it), subject and sender name in RFC 2047, 覚知
    two minutes before `now`. EXAMPLE_PROFILES[profile] reads every field of it. For the demo
    and `cli.py send-test-mail`."""
    if profile not in _SAMPLES:
        raise ValueError(f"unknown example profile: {profile}")
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass an aware time")
    if any(c in f"{to}{sender}" for c in "\r\n") or "@" not in sender:
        raise ValueError("to and sender must be single mail addresses")
    local = now.astimezone(JST)
    subject, body = _SAMPLES[profile](local - timedelta(minutes=2))
    headers = (
        f"From: {_encoded_words(SAMPLE_HQ_NAME)} <{sender}>",
        f"To: {to}",
        f"Subject: {_encoded_words(subject)}",
        f"Date: {format_datetime(local)}",
        f"Message-ID: <dispatch.{local:%Y%m%d%H%M%S%f}@{sender.rpartition('@')[2]}>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=ISO-2022-JP",
        "Content-Transfer-Encoding: 7bit",
    )
    head = "\r\n".join(headers).encode("ascii") + b"\r\n\r\n"
    return head + encode_cp50220(body).replace(b"\n", b"\r\n")
