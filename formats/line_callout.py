"""The LINE messages of a call-out (出動連絡) and the postback data their buttons carry.

A call-out is multicast: every recipient of one wave gets the same message, so a button names
the brigade and the incident, and LINE's signed webhook names the member who pressed it. The
message shows the place at 町名 level only; the full address is behind sign-in, on the incident
page the message links to. Limits are LINE's: postback data ≤ 300 characters, ≤ 13 quick reply
items, altText ≤ 1500 characters.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime

from core.timefmt import to_jst
from models.enums import ETA_CHOICES, Answer

POSTBACK_VERSION = "h1"
MAX_POSTBACK_CHARS = 300
MAX_ALT_TEXT = 1500
# 「本町１丁目３番」→「本町」: a number before 丁目・番・号 (or a dash) starts the part that finds
# one house; what precedes it is the 町名.
HOUSE_PART = re.compile(r"[0-9一二三四五六七八九十〇]+\s*(?:丁目|番地?|号|-|の)")
APPROXIMATE_TAILS = ("付近", "地内", "周辺")
OFFER_LABEL = "応援候補（隣接分団）"


@dataclass(frozen=True)
class Postback:
    """What a button means: an answer (出動可否) or an ETA (到着見込み) for one incident."""

    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    answer: Answer | None = None
    eta_minutes: int | None = None

    def encode(self) -> str:
        what = f"a;{self.answer.value}" if self.answer else f"e;{self.eta_minutes}"
        return f"{POSTBACK_VERSION};{self.tenant_id.hex};{self.incident_id.hex};{what}"


def decode_postback(data: str) -> Postback | None:
    """The postback of one of our buttons, or None for anything else."""
    parts = (data or "")[:MAX_POSTBACK_CHARS].split(";")
    if len(parts) != 5 or parts[0] != POSTBACK_VERSION:
        return None
    try:
        tenant_id, incident_id = uuid.UUID(hex=parts[1]), uuid.UUID(hex=parts[2])
    except ValueError:
        return None
    if parts[3] == "a" and parts[4] in Answer.__members__.values():
        return Postback(tenant_id, incident_id, answer=Answer(parts[4]))
    if parts[3] == "e" and parts[4].isdigit() and int(parts[4]) in ETA_CHOICES:
        return Postback(tenant_id, incident_id, eta_minutes=int(parts[4]))
    return None


def town_level(place: str) -> str:
    """The place without what finds one house: 「デモ市本町１丁目３番付近」→「デモ市本町付近」."""
    text = unicodedata.normalize("NFKC", place or "").strip()
    match = HOUSE_PART.search(text)
    if match is None:
        return text
    town = text[: match.start()].rstrip(" 　-")
    return f"{town}付近" if town else ""


@dataclass(frozen=True)
class CalloutContent:
    """What a call-out says about its incident (no full address)."""

    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    number: int
    kind: str
    place: str  # the full place: shortened here
    landmark: str
    occurred_at: datetime | None
    units: tuple[str, ...]
    link: str  # the incident page
    test: bool = False

    @property
    def title(self) -> str:
        test = "【テスト】" if self.test else ""
        return f"{test}出動指令 第{self.number}号"

    @property
    def town(self) -> str:
        return town_level(self.place)

    def postback(self, answer: Answer) -> str:
        return Postback(self.tenant_id, self.incident_id, answer=answer).encode()


def _row(label: str, value: str) -> dict:
    return {
        "type": "box",
        "layout": "baseline",
        "spacing": "sm",
        "contents": [
            {"type": "text", "text": label, "size": "sm", "color": "#888888", "flex": 2},
            {"type": "text", "text": value or "—", "size": "sm", "wrap": True, "flex": 5},
        ],
    }


def _button(label: str, data: str, style: str, color: str | None = None) -> dict:
    button = {
        "type": "button",
        "style": style,
        "height": "sm",
        "action": {"type": "postback", "label": label, "data": data, "displayText": label},
    }
    if color:
        button["color"] = color
    return button


def callout_message(content: CalloutContent, *, heading: str = "") -> dict:
    """The Flex message with the three answer buttons and a link to the incident page;
    heading (「再通知」「応援要請」) goes above the title."""
    lines = [
        _row("種別", content.kind or "（不明）"),
        _row("場所", content.town or "（不明）"),
        _row("目標物", content.landmark),
        _row("指令時刻", to_jst(content.occurred_at)),
    ]
    if content.units:
        lines.append(_row("出動分団", "・".join(content.units)))
    header: list[dict] = []
    if heading:
        header.append({"type": "text", "text": heading, "size": "sm", "color": "#C62828"})
    header.append({"type": "text", "text": content.title, "weight": "bold", "size": "lg"})
    bubble = {
        "type": "bubble",
        "header": {"type": "box", "layout": "vertical", "contents": header},
        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": lines},
        "footer": {
            "type": "box",
            "layout": "vertical",
            "spacing": "sm",
            "contents": [
                _button(Answer.AVAILABLE.label, content.postback(Answer.AVAILABLE), "primary"),
                _button(
                    Answer.LATE.label, content.postback(Answer.LATE), "primary", color="#F9A825"
                ),
                _button(
                    Answer.UNAVAILABLE.label, content.postback(Answer.UNAVAILABLE), "secondary"
                ),
                {
                    "type": "button",
                    "style": "link",
                    "height": "sm",
                    "action": {
                        "type": "uri",
                        "label": "詳細を見る（要ログイン）",
                        "uri": content.link,
                    },
                },
            ],
        },
    }
    alt = f"{heading}{content.title} {content.kind} {content.town}".strip()
    return {"type": "flex", "altText": alt[:MAX_ALT_TEXT], "contents": bubble}


def text_message(text: str) -> dict:
    return {"type": "text", "text": text[:5000]}


def shortage_message(
    content: CalloutContent,
    shortages: dict[str, tuple[int, int]],
    offer: tuple[str, ...] = (),
) -> dict:
    """To leaders: the 分団 whose crews are short, as (coming, minimum), and the neighbouring
    分団 not called yet (応援候補)."""
    lines = [f"【人員不足】{content.title} {content.kind} {content.town}".strip()]
    lines += [
        f"・{unit}: 出動可 {coming}名 / 必要 {minimum}名"
        for unit, (coming, minimum) in shortages.items()
    ]
    if offer:
        lines.append(f"{OFFER_LABEL}: {'・'.join(offer)}")
    lines.append(f"応援要請（他の分団への連絡）は災害出動のページから行えます。\n{content.link}")
    return text_message("\n".join(lines))


def followup_message(content: CalloutContent, status_label: str) -> dict:
    return text_message(
        f"【{status_label}】{content.title} {content.kind} {content.town}\n"
        f"消防本部から「{status_label}」の連絡がありました。\n{content.link}"
    )


def report_request_message(content: CalloutContent, link: str) -> dict:
    return text_message(
        f"【出動報告のお願い】{content.title} {content.kind} {content.town}\n"
        "活動の開始・終了時刻と内容を入力して提出してください（出動報酬の計算に使います）。\n"
        f"{link}"
    )


def answer_reply(content_title: str, answer: Answer) -> dict:
    """The reply confirming an answer (with_eta_question adds the ETA buttons)."""
    return text_message(f"{content_title}：「{answer.label}」で受け付けました。")


def with_eta_question(message: dict, tenant_id: uuid.UUID, incident_id: uuid.UUID) -> dict:
    items = [
        {
            "type": "action",
            "action": {
                "type": "postback",
                "label": f"{minutes}分",
                "data": Postback(tenant_id, incident_id, eta_minutes=minutes).encode(),
                "displayText": f"到着見込み {minutes}分",
            },
        }
        for minutes in ETA_CHOICES
    ]
    text = message["text"] + "\n到着見込みを選んでください。"
    return {**message, "text": text, "quickReply": {"items": items}}


def eta_reply(content_title: str, minutes: int) -> dict:
    return text_message(f"{content_title}：到着見込み {minutes}分 で受け付けました。")


REFUSAL_TEXT = {
    "closed": "この出動は終了しているため、回答を受け付けられません。",
    "not_target": "この出動の連絡先に含まれていないため、回答を受け付けられません。分団長に連絡してください。",
    "not_member": "このLINEアカウントは団員として登録されていません。団の管理者にお問い合わせください。",
    "no_answer": "先に「出動可」または「遅れて出動」を選んでください。",
}
