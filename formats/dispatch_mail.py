"""A dispatch mail from a 消防本部, from raw bytes to decoded text: headers, the body and the list
of attachments, each text decoded strictly with a fallback chain and a recorded status.

Python's `email` package decodes text with errors="replace" and its stdlib codecs know neither
CP50220 (what Microsoft clients send under an ISO-2022-JP label: ① and 髙 become U+FFFD) nor that
a Shift_JIS label usually carries CP932 (① and 髙 again). So `email` is used here only to split
the MIME structure and undo the transfer encodings; every text is decoded from its bytes by this
module: the declared charset first, then ISO-2022-JP, CP50220, UTF-8, Shift_JIS and CP932, each
strictly. Only when none of them decodes is anything replaced, and then the status and a problem
line say so. Problem lines never quote the mail's text: the text is sealed where it is stored,
the problem lines are not.

No database access: services/dispatch calls this and stores what it returns.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.message
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime
from enum import StrEnum
from html.parser import HTMLParser
from quopri import decodestring as qp_decode

MAX_RAW_BYTES = 10 * 1024 * 1024
# A dispatch text is a few KB; more is cut at a line end before decoding (the CP50220 decoder is
# Python code) and the decoded body is capped again.
MAX_TEXT_PART_BYTES = 512 * 1024
MAX_BODY_CHARS = 100_000
MAX_HEADER_CHARS = 2_000
MAX_PARTS = 64
MAX_DEPTH = 8
MAX_ADDRESSES = 50
MAX_MESSAGE_ID_CHARS = 300


class DecodeStatus(StrEnum):
    OK = "ok"
    FALLBACK = "fallback"  # the declared charset failed; another of the chain decoded strictly
    REPLACED = "replaced"  # nothing decoded strictly: undecodable bytes became U+FFFD
    EMPTY = "empty"  # no text part

    @property
    def label(self) -> str:
        return DECODE_STATUS_LABELS[self]


DECODE_STATUS_LABELS = {
    DecodeStatus.OK: "正常",
    DecodeStatus.FALLBACK: "代替文字コードで復号",
    DecodeStatus.REPLACED: "一部復号不能",
    DecodeStatus.EMPTY: "本文なし",
}
# The worst wins when the body's and the headers' statuses are combined.
_SEVERITY = {
    DecodeStatus.OK: 0,
    DecodeStatus.FALLBACK: 1,
    DecodeStatus.EMPTY: 2,
    DecodeStatus.REPLACED: 3,
}


@dataclass(frozen=True)
class MailAttachment:
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class DecodedMail:
    """One mail as text. `decode_status` is the worst of the body's and the headers' (subject,
    sender name): EMPTY only when there is no text part and the headers decoded."""

    message_id: str | None
    header_from: str  # bare address, lower-cased; "" when there is none
    from_name: str
    to: tuple[str, ...]
    date: datetime | None  # aware, UTC
    subject: str
    body: str  # text/plain preferred; an HTML-only mail as readable text
    charset_declared: str | None  # the body part's label, as written
    charset_used: str | None  # the charset that decoded the body (canonical name)
    decode_status: DecodeStatus
    attachments: tuple[MailAttachment, ...]
    problems: tuple[str, ...]


# --- CP50220: ISO-2022-JP as Microsoft writes it ------------------------------------------------

# CP50220 writes every CP932 double-byte character, NEC row 13 (①) and the NEC-selected IBM
# extensions (髙 at row 92) included, as a JIS pair after ESC $ B. No stdlib codec reads them
# (iso2022_jp, _1, _2, _3, _2004 and _ext all reject both under ESC $ B; checked on 3.11). A
# JIS pair converts to Shift_JIS by arithmetic, and CP932 decodes that.
_ESC, _SO, _SI = 0x1B, 0x0E, 0x0F
_ASCII, _KANA, _KANJI = "ascii", "kana", "kanji"
_DESIGNATIONS = {
    b"(B": _ASCII,
    b"(J": _ASCII,  # JIS X 0201 Roman: read as ASCII, as Microsoft and the stdlib do
    b"(I": _KANA,  # CP50221's half-width katakana
    b"$@": _KANJI,
    b"$B": _KANJI,
}


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
    if j1 & 1:
        s2 = j2 + 0x1F
        if s2 >= 0x7F:
            s2 += 1
    else:
        s2 = j2 + 0x7E
    return bytes((s1, s2))


def _sjis_to_jis(s1: int, s2: int) -> tuple[int, int]:
    j1 = ((s1 - (0x70 if s1 <= 0x9F else 0xB0)) << 1) - (1 if s2 < 0x9F else 0)
    j2 = s2 - (0x1F if s2 < 0x7F else 0x20 if s2 < 0x9F else 0x7E)
    return j1, j2


def decode_cp50220(data: bytes, errors: str = "strict") -> str:
    """ISO-2022-JP with Microsoft's CP50220/CP50221/CP50222 extensions. errors is "strict"
    (raise UnicodeDecodeError) or "replace" (U+FFFD for each undecodable sequence)."""
    out: list[str] = []
    mode, shifted, i, n = _ASCII, False, 0, len(data)

    def bad(end: int, reason: str) -> int:
        if errors == "strict":
            raise UnicodeDecodeError("cp50220", data, i, end, reason)
        out.append("\ufffd")
        return end

    while i < n:
        byte = data[i]
        if byte == _ESC:
            designated = _DESIGNATIONS.get(data[i + 1 : i + 3])
            if designated is None:
                i = bad(i + 1, "unknown escape sequence")
            else:
                mode, i = designated, i + 3
        elif byte in (_SO, _SI):
            shifted, i = byte == _SO, i + 1
        elif byte < 0x20:
            out.append(chr(byte))  # line ends keep the mode, as in the stdlib's iso2022_jp
            i += 1
        elif byte >= 0x80:
            i = bad(i + 1, "8-bit byte")
        elif shifted or mode == _KANA:
            if 0x21 <= byte <= 0x5F:
                out.append(chr(0xFF40 + byte))
                i += 1
            else:
                i = bad(i + 1, "not a katakana byte")
        elif mode == _KANJI:
            pair = data[i : i + 2]
            if len(pair) == 2 and 0x21 <= pair[0] <= 0x7E and 0x21 <= pair[1] <= 0x7E:
                try:
                    out.append(_jis_to_sjis(pair[0], pair[1]).decode("cp932"))
                    i += 2
                except UnicodeDecodeError:
                    i = bad(i + 2, "no CP932 character")
            else:
                i = bad(i + 1, "incomplete double-byte character")
        else:
            out.append(chr(byte))
            i += 1
    return "".join(out)


_HALF_WIDTH_KANA = re.compile("[\uff61-\uff9f]+")


def _widen(match: re.Match[str]) -> str:
    """ｶﾞ → ガ as a run (NFKC composes the voiced mark); a lone ﾞ → ゛, not a combining mark."""
    wide = unicodedata.normalize("NFKC", match.group())
    return wide.replace("\u3099", "\u309b").replace("\u309a", "\u309c")


def encode_cp50220(text: str) -> bytes:
    """Text as Microsoft's CP50220 writes it: CP932 characters as JIS pairs after ESC $ B,
    half-width katakana widened, back to ASCII before each line end and at the end. Raises
    UnicodeEncodeError for what CP932 cannot hold (and for its user-defined characters)."""
    text = _HALF_WIDTH_KANA.sub(_widen, text)
    out = bytearray()
    kanji = False
    for index, char in enumerate(text):
        if ord(char) < 0x80:
            if char == "\x1b" or char in "\x0e\x0f":
                raise UnicodeEncodeError("cp50220", text, index, index + 1, "control")
            if kanji:
                out += b"\x1b(B"
                kanji = False
            out += char.encode("ascii")
            continue
        encoded = char.encode("cp932")
        if len(encoded) != 2:
            raise UnicodeEncodeError("cp50220", text, index, index + 1, "not double-byte")
        j1, j2 = _sjis_to_jis(*encoded)
        if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
            raise UnicodeEncodeError("cp50220", text, index, index + 1, "user-defined")
        if not kanji:
            out += b"\x1b$B"
            kanji = True
        out += bytes((j1, j2))
    if kanji:
        out += b"\x1b(B"
    return bytes(out)


# --- Strict decoding with a fallback chain -------------------------------------------------------

Decoder = Callable[[bytes, str], str]


def _codec(name: str) -> Decoder:
    return lambda data, errors: codecs.decode(data, name, errors)


# Only these charsets are used: a label from a mail never picks an arbitrary Python codec.
_DECODERS: dict[str, Decoder] = {
    "US-ASCII": _codec("ascii"),
    "UTF-8": _codec("utf-8"),
    "ISO-2022-JP": _codec("iso2022_jp"),
    "CP50220": decode_cp50220,
    "Shift_JIS": _codec("shift_jis"),
    "CP932": _codec("cp932"),
    "EUC-JP": _codec("euc_jp"),
    "ISO-8859-1": _codec("latin-1"),
}
_LABELS = {
    **dict.fromkeys(("us-ascii", "ascii", "ansi_x3.4-1968", "csascii"), "US-ASCII"),
    **dict.fromkeys(("utf-8", "utf8", "utf_8"), "UTF-8"),
    **dict.fromkeys(("iso-2022-jp", "iso2022_jp", "csiso2022jp", "jis"), "ISO-2022-JP"),
    **dict.fromkeys(
        ("cp50220", "cp50221", "cp50222", "iso-2022-jp-ms", "x-iso-2022-jp-ms"), "CP50220"
    ),
    **dict.fromkeys(("shift_jis", "shift-jis", "sjis", "x-sjis", "csshiftjis"), "Shift_JIS"),
    **dict.fromkeys(
        ("cp932", "windows-31j", "ms932", "x-ms-cp932", "cswindows31j", "ms_kanji"), "CP932"
    ),
    **dict.fromkeys(("euc-jp", "euc_jp", "x-euc-jp", "cseucpkdfmtjapanese", "eucjp"), "EUC-JP"),
    **dict.fromkeys(("iso-8859-1", "iso8859-1", "latin1", "latin-1", "iso_8859-1"), "ISO-8859-1"),
}
# 7-bit ISO-2022 first (8-bit data fails it at once), then UTF-8, which 8-bit Japanese legacy
# text almost never passes by accident, then Shift_JIS and its Microsoft superset.
FALLBACK_CHAIN = ("ISO-2022-JP", "CP50220", "UTF-8", "Shift_JIS", "CP932")
# What Microsoft clients send under these labels.
_WIDER = {"ISO-2022-JP": "CP50220", "Shift_JIS": "CP932"}


def canonical_charset(label: str | None) -> str | None:
    """The charset a label names, of those this module decodes; None for an unknown label.
    MIME labels and Python's codec names alike; use it to check a source's charset setting."""
    if not label:
        return None
    return _LABELS.get(label.strip().strip('"').lower())


def _shown(label: str) -> str:
    """A label from a mail, safe to put in a problem line."""
    cleaned = "".join(c for c in label if c.isascii() and c.isprintable())
    return cleaned[:40] or "(空)"


@dataclass(frozen=True)
class _Decoded:
    text: str
    charset: str | None
    status: DecodeStatus
    problems: tuple[str, ...]


# What a strict decoder may still produce from the wrong bytes: an ESC (ISO-2022 data read by a
# charset that does not know it), C1 controls (latin-1 or CP932 reading stray 8-bit bytes) and
# private-use characters (CP932's single bytes A0 and FD–FF, and its user-defined characters,
# which no other computer shows as the sender saw them).
_SUSPECT = re.compile("[\x1b\x80-\x9f\ue000-\uf8ff]")


def _strict(data: bytes, charset: str) -> str | None:
    try:
        text = _DECODERS[charset](data, "strict")
    except UnicodeDecodeError:
        return None
    return None if _SUSPECT.search(text) else text


def _replaced(data: bytes, charset: str) -> str:
    return _SUSPECT.sub("\ufffd", _DECODERS[charset](data, "replace"))


def decode_bytes(data: bytes, declared: str | None, *, what: str = "本文") -> _Decoded:
    """Decode with the declared charset (RFC 2045's US-ASCII when none is declared) or its
    Microsoft superset, then the rest of the chain, each strictly; failing all, the candidate
    with the fewest U+FFFD. A declared charset that fails on a damaged byte or two is kept, with
    those replaced: reading the whole text in another charset would make all of it mojibake."""
    problems: list[str] = []
    first = canonical_charset(declared) if declared else "US-ASCII"
    if declared and first is None:
        problems.append(f"{what}の文字コード {_shown(declared)} には対応していません")
    own = [c for c in (first, _WIDER.get(first or "")) if c]
    for charset in own:
        if (text := _strict(data, charset)) is not None:
            status = DecodeStatus.OK if charset == first else DecodeStatus.FALLBACK
            if status == DecodeStatus.FALLBACK:
                problems.append(f"{what}の文字コード {first} で復号できず {charset} で復号しました")
            return _Decoded(text, charset, status, tuple(problems))
    if declared and own:
        text = _replaced(data, own[-1])
        if text.count("\ufffd") * 100 <= len(text):  # at most 1 in 100 characters
            line = f"{what}の文字コード {own[-1]} で復号できない箇所があります"
            return _replacement(text, own[-1], [*problems, line])
    candidates = list(dict.fromkeys([*own, *FALLBACK_CHAIN]))
    for charset in candidates[len(own) :]:
        if (text := _strict(data, charset)) is not None:
            if declared and first:
                line = f"{what}の文字コード {first} で復号できず {charset} で復号しました"
            elif declared:
                line = f"{what}を {charset} で復号しました"
            else:
                line = f"{what}の文字コードの宣言がないため {charset} で復号しました"
            problems.append(line)
            return _Decoded(text, charset, DecodeStatus.FALLBACK, tuple(problems))
    decoded = [(_replaced(data, c), c) for c in candidates]
    text, charset = min(decoded, key=lambda pair: pair[0].count("\ufffd"))
    line = f"{what}はどの文字コードでも正しく復号できません。{charset} で復号しました"
    return _replacement(text, charset, [*problems, line])


def _replacement(text: str, charset: str, problems: list[str]) -> _Decoded:
    count = text.count("\ufffd")
    problems[-1] += f"。読めない {count} 箇所を「\ufffd」に置き換えました"
    return _Decoded(text, charset, DecodeStatus.REPLACED, tuple(problems))


# --- Headers --------------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def _raw_bytes(text: str) -> bytes:
    """The bytes behind a header string from `email`: 8-bit bytes arrive as surrogate escapes,
    percent-decoded RFC 2231 values as latin-1."""
    try:
        return text.encode("latin-1", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    if encoding in "bB":
        try:
            return base64.b64decode(payload + "=" * (-len(payload) % 4))
        except (binascii.Error, ValueError):
            return None
    return qp_decode(payload.replace("_", " ").encode("ascii", "replace"))


def _runs(value: str) -> list[tuple[bytes, str | None]]:
    """RFC 2047: the value as (bytes, charset) runs, charset None for text outside encoded
    words. Space between encoded words is dropped, and adjacent words of one charset are joined
    before decoding: mailers split a multibyte character or an ISO-2022 sequence across words."""
    runs: list[tuple[bytes, str | None]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[position : match.start()]
        position = match.end()
        word = _word_bytes(match.group(2), match.group(3))
        if word is None:  # an undecodable word stays as written
            runs.append((_raw_bytes(gap + match.group(0)), None))
            continue
        label = match.group(1).split("*", 1)[0]  # RFC 2231 language suffix
        previous = runs[-1] if runs else None
        if previous and previous[1] and not gap.strip(" \t\r\n"):
            if previous[1].lower() == label.lower():
                runs[-1] = (previous[0] + word, label)
                continue
            gap = ""
        if gap:
            runs.append((_raw_bytes(gap), None))
        runs.append((word, label))
    if value[position:]:
        runs.append((_raw_bytes(value[position:]), None))
    return runs


def decode_header_value(value: str, *, what: str) -> _Decoded:
    """A raw header value (8-bit bytes as surrogate escapes) to text: encoded words per RFC 2047,
    raw 8-bit or ISO-2022 text through the same chain as a body."""
    value = re.sub(r"\r?\n(?=[ \t])", "", value[: MAX_HEADER_CHARS * 4])
    parts: list[str] = []
    problems: list[str] = []
    status, charset = DecodeStatus.OK, None
    for data, label in _runs(value):
        decoded = decode_bytes(data, label, what=what)
        parts.append(decoded.text)
        problems.extend(p for p in decoded.problems if p not in problems)
        status = _worst(status, decoded.status)
        charset = charset or (decoded.charset if label else None)
    text = _clean("".join(parts)).strip()
    return _Decoded(text[:MAX_HEADER_CHARS], charset, status, tuple(problems))


def _worst(*statuses: DecodeStatus) -> DecodeStatus:
    return max(statuses, key=_SEVERITY.__getitem__)


def _clean(text: str) -> str:
    """NUL cannot be stored in PostgreSQL text; line ends become \\n."""
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")


# --- MIME structure ---------------------------------------------------------------------------------


class _HtmlText(HTMLParser):
    """HTML as the text a reader sees: block elements end lines, links keep their address."""

    _BLOCKS = frozenset({"br", "p", "div", "tr", "li", "dt", "dd", "pre", "hr", "table"}) | {
        *("h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "blockquote", "section")
    }
    _HIDDEN = frozenset(("script", "style", "head", "title", "template"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0
        self.links: list[tuple[str, int]] = []  # open <a>: href, where its text starts

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BLOCKS:
            self.chunks.append("\n")
        elif tag in ("td", "th"):
            self.chunks.append(" ")
        if tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.chunks)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCKS:
            self.chunks.append("\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            shown = "".join(self.chunks[start:])
            # A map link often reads 「地図を表示」: keep its address beside the words.
            if href.lower().startswith(("http://", "https://")) and href not in shown:
                self.chunks.append(f" ( {href} )")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.chunks).splitlines())
        # Blank lines from nested blocks carry nothing a dispatch line needs.
        return "\n".join(line for line in lines if line)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return parser.text()


def _leaves(message: email.message.Message) -> Iterator[email.message.Message]:
    """Leaf parts in order, nested multiparts and forwarded mails included, bounded in count
    and depth without recursion."""
    stack: list[tuple[email.message.Message, int]] = [(message, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        # Not get_payload() on a leaf: without decode=True it decodes the text with whatever
        # codec the mail names, and raises on some names.
        if part.is_multipart():
            if depth < MAX_DEPTH:
                subparts = part.get_payload()
                stack.extend((sub, depth + 1) for sub in reversed(subparts) if _is_message(sub))
        else:
            yield part


def _is_message(value: object) -> bool:
    return isinstance(value, email.message.Message)


def _param(part: email.message.Message, name: str, header: str) -> str | None:
    value = part.get_param(name, header=header)
    if isinstance(value, tuple):  # RFC 2231: (charset, language, text as latin-1 bytes)
        label, _language, text = value
        return decode_bytes(_raw_bytes(text), label or None, what="添付ファイル名").text
    if isinstance(value, str):
        return decode_header_value(value, what="添付ファイル名").text
    return None


def _filename(part: email.message.Message) -> str:
    name = _param(part, "filename", "content-disposition") or _param(part, "name", "content-type")
    return _clean(name or "").replace("\n", " ")[:200]


def _is_attachment(part: email.message.Message, filename: str) -> bool:
    disposition = str(part.get("content-disposition", "")).split(";", 1)[0].strip().lower()
    return disposition == "attachment" or bool(filename) or part.get_content_maintype() != "text"


def _payload(part: email.message.Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _text_part(message: email.message.Message) -> tuple[email.message.Message | None, bool]:
    """The first inline text/plain part, else the first inline text/html part (then True)."""
    html_part = None
    for part in _leaves(message):
        if _is_attachment(part, _filename(part)):
            continue
        if part.get_content_type() == "text/plain":
            return part, False
        if part.get_content_type() == "text/html" and html_part is None:
            html_part = part
    return html_part, html_part is not None


@dataclass(frozen=True)
class _Body:
    text: str
    declared: str | None
    charset: str | None
    status: DecodeStatus
    problems: tuple[str, ...]


def _body(part: email.message.Message | None, *, html: bool, override: str | None) -> _Body:
    if part is None:
        return _Body("", None, None, DecodeStatus.EMPTY, ("本文がありません",))
    declared = part.get_param("charset")
    declared = declared if isinstance(declared, str) else None
    problems: list[str] = []
    label = declared
    if override:
        if canonical_charset(override) is None:
            problems.append(
                f"設定された文字コード {_shown(override)} には対応していないため使いません"
            )
        else:
            label = override
            problems.append(f"設定により本文を {canonical_charset(override)} として復号しました")
    data = _payload(part)
    if len(data) > MAX_TEXT_PART_BYTES:
        cut = data.rfind(b"\n", 0, MAX_TEXT_PART_BYTES)
        data = data[: cut if cut > 0 else MAX_TEXT_PART_BYTES]
        problems.append("本文が大きすぎるため先頭部分のみ扱いました")
    decoded = decode_bytes(data, label)
    problems[:0] = decoded.problems
    text = _clean(decoded.text)
    if html:
        text = html_to_text(text)
        problems.append("HTMLだけのメールのため、HTMLから取り出した文字を本文としました")
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS]
        problems.append(f"本文が長すぎるため先頭 {MAX_BODY_CHARS} 文字のみ扱いました")
    return _Body(text, declared, decoded.charset, decoded.status, tuple(problems))


def _parse(raw: bytes) -> tuple[email.message.Message | None, list[str]]:
    problems: list[str] = []
    if len(raw) > MAX_RAW_BYTES:
        raw = raw[:MAX_RAW_BYTES]
        problems.append(
            f"メールが {MAX_RAW_BYTES // (1024 * 1024)} MB を超えるため先頭のみ扱いました"
        )
    try:
        return email.message_from_bytes(raw), problems
    # The stdlib parser on hostile input: its failures are not documented (deep nesting
    # recurses); a mail it cannot split is still recorded, with this line.
    except Exception:
        return None, [*problems, "メールの構造を解析できませんでした"]


# --- The mail -----------------------------------------------------------------------------------------


def decode_mail(raw: bytes, *, charset_override: str | None = None) -> DecodedMail:
    """Raw bytes to a DecodedMail; never raises. charset_override (a source's setting) takes the
    place of the body's declared charset, for a 消防本部 that labels its mail wrongly."""
    message, problems = _parse(raw)
    if message is None:
        return DecodedMail(
            None, "", "", (), None, "", "", None, None, DecodeStatus.EMPTY, (), tuple(problems)
        )
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        headers.setdefault(name.lower(), []).append(value)
    subject = decode_header_value(_first(headers, "subject"), what="件名")
    from_name, from_address = _mailbox(_first(headers, "from"))
    text_part, html = _text_part(message)
    body = _body(text_part, html=html, override=charset_override or None)
    attachments = tuple(
        MailAttachment(name, part.get_content_type(), len(_payload(part)))
        for part, name in ((p, _filename(p)) for p in _leaves(message))
        if part is not text_part and _is_attachment(part, name)
    )
    date, date_problem = _date(_first(headers, "date"))
    message_id, id_problem = _message_id(_first(headers, "message-id"))
    problems.extend((*body.problems, *subject.problems, *from_name.problems))
    problems.extend(p for p in (date_problem, id_problem) if p)
    if any("\ufffd" in attachment.filename for attachment in attachments):
        problems.append("添付ファイル名の一部を復号できず「\ufffd」に置き換えました")
    return DecodedMail(
        message_id=message_id,
        header_from=from_address,
        from_name=from_name.text,
        to=_recipients(headers.get("to", [])),
        date=date,
        subject=subject.text,
        body=body.text,
        charset_declared=body.declared,
        charset_used=body.charset,
        decode_status=_worst(body.status, subject.status, from_name.status),
        attachments=attachments,
        problems=tuple(dict.fromkeys(problems)),
    )


def _first(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


def _header_text(value: str) -> str:
    return decode_header_value(value, what="ヘッダー").text


def _address(raw: str) -> str:
    address = raw.strip().lower()
    ok = address.isascii() and address.isprintable() and " " not in address and "@" in address
    return address if ok else ""


def _is_plain(value: str) -> bool:
    return value.isascii() and "\x1b" not in value


def _pairs(value: str) -> list[tuple[str, str]]:
    """(display name, address) pairs. ASCII values are split first and the names decoded after,
    so a decoded name with a comma or angle bracket cannot move the address; raw 8-bit or
    ISO-2022 values must be decoded first (JIS bytes include "(" and ",")."""
    if _is_plain(value):
        return getaddresses([re.sub(r"\r?\n(?=[ \t])", "", value)])
    return getaddresses([_header_text(value)])


def _mailbox(value: str) -> tuple[_Decoded, str]:
    if _is_plain(value):
        name, address = next(iter(_pairs(value)), ("", ""))
        return decode_header_value(name, what="差出人名"), _address(address)
    whole = decode_header_value(value, what="差出人名")
    name, address = next(iter(getaddresses([whole.text])), ("", ""))
    return replace(whole, text=name.strip()), _address(address)


def _recipients(values: list[str]) -> tuple[str, ...]:
    pairs = [pair for value in values[:MAX_ADDRESSES] for pair in _pairs(value)]
    addresses = (_address(address) for _name, address in pairs[:MAX_ADDRESSES])
    return tuple(dict.fromkeys(a for a in addresses if a))


def _date(value: str) -> tuple[datetime | None, str | None]:
    if not value.strip():
        return None, "Date ヘッダーがありません"
    try:
        parsed = parsedate_to_datetime(_header_text(value))
        # RFC 5322: "-0000" (a naive result) is UTC with the local zone unknown.
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC), None
    except (ValueError, TypeError, IndexError, OverflowError):
        return None, "Date ヘッダーを日時として読めません"


def _message_id(value: str) -> tuple[str | None, str | None]:
    text = _header_text(value)
    if not text:
        return None, None
    if len(text) > MAX_MESSAGE_ID_CHARS or not (text.isascii() and text.isprintable()):
        return None, "Message-ID が長すぎるか不正なため使いません"
    return text, None
