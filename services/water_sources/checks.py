"""Checking a water source's fields: code, kind, position, numbers and text, each error named
by its field in Japanese."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlmodel import select

from core.timefmt import today_jst
from models.enums import (
    HYDRANT_KINDS,
    OWNERSHIPS,
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
)
from models.water import (
    WaterSource,
)
from services import geo, water_rules
from services import validation as v
from services.base import Tx, scoped
from services.errors import ValidationError
from services.water_sources.model import (
    BASE_FIELDS,
    EARLIEST_DATE,
    HYDRANT_TYPES,
    NOT_FOR_HYDRANTS,
    NUMBER_RANGES,
)

MAX_CODE_LENGTH = 30  # WaterSource.code holds 30 characters; counted after NFKC
SWAPPED_HINT = "緯度と経度が逆になっていませんか（入れ替えると日本国内の座標になります）。"


def check_point(latitude: float, longitude: float) -> None:
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValidationError({"latitude": "緯度は -90〜90、経度は -180〜180 の範囲です。"})


def validated_values(
    tx: Tx, raw: dict, source_id: uuid.UUID | None = None, taken: set[str] | None = None
) -> dict:
    values, errors = validate_fields(raw, today=today_jst())
    if "code" not in errors:
        errors = _code_clash_errors(tx, values["code"], source_id, taken) | errors
    if errors:
        raise ValidationError(errors)
    return values


def validate_fields(
    raw: Mapping[str, Any], *, today: date, memo_as_given: bool = False
) -> tuple[dict, dict[str, str]]:
    """The registry fields normalised, and {field: Japanese message} for those that break a rule;
    no database access (whether the code is taken is the caller's question). A form's メモ is
    trimmed; a file's is kept as given (memo_as_given): whitespace in a cell is data (#17)."""
    values = dict(raw)
    values["code"] = v.clean(raw.get("code"))
    values["kind"] = v.clean(raw.get("kind"))
    values["address"] = v.clean_text(raw.get("address"))
    values["unit"] = v.clean(raw.get("unit"))
    memo = raw.get("memo") or ""
    values["memo"] = memo if memo_as_given else memo.strip()
    values["grade_override"] = raw.get("grade_override") or None
    values["grade_override_reason"] = v.clean_text(raw.get("grade_override_reason"))
    values["hydrant_type"] = raw.get("hydrant_type") or None
    if values.get("inspection_interval_days") is None:
        values["inspection_interval_days"] = 365
    errors = _code_errors(values["code"])
    errors |= _choice_errors(values)
    errors |= _position_errors(values.get("latitude"), values.get("longitude"))
    errors |= _number_errors(values)
    errors |= _kind_errors(values)
    errors |= _text_errors(values)
    last = values.get("last_inspected_on")
    if last is not None and not EARLIEST_DATE <= last <= today:
        errors["last_inspected_on"] = "最終点検日は1950年以降、今日までの日付で入力してください。"
    return {name: values.get(name) for name in BASE_FIELDS}, errors


def _code_errors(code: str) -> dict:
    """Any printable text (municipal registers number sources 「消-1」「防-1」), counted after NFKC
    and trimming, which is also how two codes are compared."""
    if not code:
        return {"code": "水利番号を入力してください。"}
    if len(code) > MAX_CODE_LENGTH:
        return {"code": f"水利番号は{MAX_CODE_LENGTH}文字以内で入力してください。"}
    if not code.isprintable():
        return {"code": v.control_chars_message("水利番号")}
    return {}


def _code_clash_errors(
    tx: Tx, code: str, source_id: uuid.UUID | None, taken: set[str] | None
) -> dict:
    if taken is not None:
        clash = code in taken
    else:
        query = scoped(select(WaterSource.id).where(WaterSource.code == code), tx.actor)
        clash = any(found != source_id for found in tx.session.exec(query).all())
    return {"code": f"水利番号「{code}」は既に使われています。"} if clash else {}


def _choice_errors(values: dict) -> dict:
    errors = {}
    if values["kind"] not in WATER_SOURCE_KINDS:
        errors["kind"] = "種別を選択肢から選んでください。"
    if values.get("ownership") not in OWNERSHIPS:
        errors["ownership"] = "公設・私設・指定水利のいずれかを選んでください。"
    if values.get("status") not in WATER_SOURCE_STATUSES:
        errors["status"] = "状態は 使用可・使用不可・点検中 のいずれかです。"
    if values["grade_override"] not in (None, *water_rules.GRADES):
        errors["grade_override"] = "判定の上書きは「基準」か「参考」、または空欄です。"
    if values["hydrant_type"] not in (None, *HYDRANT_TYPES):
        errors["hydrant_type"] = "地上式か地下式を選んでください。"
    return errors


def _position_errors(lat: float | None, lon: float | None) -> dict:
    if lat is None and lon is None:
        return {}
    if lat is None or lon is None:
        return {"latitude": "緯度と経度は両方入力してください（不明なら両方空欄）。"}
    # Before the range checks: a Japanese point given the wrong way round has a latitude above
    # 90, and the generic range message would hide the likely cause.
    if geo.swapped_in_japan(lat, lon):
        return {"latitude": SWAPPED_HINT}
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        return {"latitude": "緯度は -90〜90 の範囲で入力してください。"}
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        return {"longitude": "経度は -180〜180 の範囲で入力してください。"}
    if not geo.in_japan(lat, lon):
        return {
            "latitude": "日本国内の座標を入力してください（緯度と経度が逆になっていませんか）。"
        }
    return {}


def _number_errors(values: dict) -> dict:
    errors = {}
    for name, label, low, high, low_allowed in NUMBER_RANGES:
        number = values.get(name)
        if number is None:
            continue
        above = number >= low if low_allowed else number > low
        if not (math.isfinite(number) and above and number <= high):
            bound = "以上" if low_allowed else "より大きく"
            errors[name] = f"{label}は {low:g}{bound}{high:g}以下で入力してください。"
    return errors


def _kind_errors(values: dict) -> dict:
    errors = {}
    if values["kind"] in HYDRANT_KINDS:
        for name, label in NOT_FOR_HYDRANTS.items():
            if values.get(name) is not None:
                errors[name] = f"消火栓には{label}を入力できません。"
    else:
        if values.get("main_diameter_mm") is not None:
            errors["main_diameter_mm"] = "配水管の口径は消火栓のみ入力できます。"
        if values["hydrant_type"] is not None:
            errors["hydrant_type"] = "地上式・地下式は消火栓のみ選べます。"
    return errors


def _text_errors(values: dict) -> dict:
    """Lengths, and no control characters (the メモ may keep tab and line breaks): what the
    registry accepts must also survive a CSV export and import."""
    errors = {}
    for name, label, limit in (
        ("address", "所在地", 200),
        ("unit", "担当分団", 100),
        ("memo", "メモ", 500),
        ("grade_override_reason", "上書きの理由", 200),
    ):
        if len(values[name]) > limit:
            errors[name] = f"{label}は{limit}文字以内で入力してください。"
        elif v.has_control_chars(values[name], multiline=name == "memo"):
            errors[name] = v.control_chars_message(label)
    return errors
