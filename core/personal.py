"""The one registry of personal data (個人情報): which fields of which tables hold it, their
Japanese labels, and whether they are stored encrypted. Encryption (the `<name>_enc` columns and
the associated data each value is sealed with), the personal part of audit records, key
rotation, exports and the at-rest tests all read it here instead of spelling field names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PersonalField:
    table: str
    name: str
    label: str
    encrypted: bool = True

    @property
    def column(self) -> str:
        """The stored column: `<name>_enc` for an encrypted field."""
        return f"{self.name}_enc" if self.encrypted else self.name

    @property
    def aad(self) -> str:
        """The field part of the associated data its value is sealed with."""
        return f"{self.table}.{self.name}"


PERSONAL_FIELDS: tuple[PersonalField, ...] = (
    PersonalField("member", "name", "氏名"),
    PersonalField("member", "kana", "ふりがな"),
    PersonalField("member", "phone", "電話番号"),
    PersonalField("member", "email", "メールアドレス"),
    PersonalField("member", "address", "住所"),
    # Free text that carries health, family and work details (休団（療養）, 看護師).
    PersonalField("member", "notes", "備考"),
    PersonalField("water_inspection", "inspector_name", "点検者名"),
    PersonalField("water_inspection", "notes", "点検メモ"),
    # Kept in clear for operators only: brigade accounts hold none (migration u001).
    PersonalField("local_account", "display_name", "表示名", encrypted=False),
    # The LINE user id of a linked member, and of a sign-in still choosing its brigade (sealed
    # with a platform key, since no brigade is known yet).
    PersonalField("member_line", "sub", "LINEユーザーID"),
    PersonalField("line_pending_login", "sub", "LINEユーザーID"),
    # The personal part of an audit record (names, senders), shown only to イベントログ 管理.
    PersonalField("audit_event", "details", "イベントの個人情報部分"),
    # Dispatch: where a fire is (a house is someone's home), and the mail that said so.
    PersonalField("incident", "place", "発生場所"),
    PersonalField("incident", "landmark", "目標物"),
    PersonalField("incident", "map_url", "地図URL"),
    PersonalField("incident", "subject", "件名"),
    # The incident map (#22): the point on the map and the address searched for it.
    PersonalField("incident", "position", "発生地点（緯度経度・住所検索）"),
    PersonalField("inbound_mail", "raw", "メール原文"),
    PersonalField("inbound_mail", "envelope", "送信者・宛先・件名"),
    # The call-out (#21): the LINE message of a wave names the place; a LINE webhook event kept
    # until handled holds the member's LINE user id (sealed with a platform key).
    PersonalField("callout", "messages", "出動連絡の本文"),
    PersonalField("line_webhook_event", "event", "LINEの受信イベント"),
    # 出動報告 (#22): what a member did, and what a leader wrote when returning or approving it.
    PersonalField("activity_report", "activity", "活動内容"),
    PersonalField("activity_report", "returned", "差し戻しの理由"),
    PersonalField("report_step", "comment", "承認・差し戻しのコメント"),
    # The automatic backup taken before a bulk change (#17): the whole brigade's data, as the
    # base64 text of the backup ZIP.
    PersonalField("pre_change_backup", "data", "変更前の自動バックアップ"),
    # Not personal but secret, sealed with the brigade's data key like the rest (so key rotation
    # and the at-rest scan cover them): a receiving address's token, a mailbox password.
    PersonalField("mail_source", "address_token", "受信アドレスの秘密部分"),
    PersonalField("mail_source", "imap_password", "IMAPパスワード"),
)


def personal_fields(table: str, *, encrypted: bool | None = None) -> tuple[PersonalField, ...]:
    """A table's personal fields, in registry order; `encrypted` narrows to stored-encrypted
    (True) or stored-in-clear (False) ones."""
    return tuple(
        f
        for f in PERSONAL_FIELDS
        if f.table == table and (encrypted is None or f.encrypted == encrypted)
    )


def personal_names(table: str, *, encrypted: bool | None = None) -> tuple[str, ...]:
    return tuple(f.name for f in personal_fields(table, encrypted=encrypted))


def personal_field(table: str, name: str) -> PersonalField:
    """One registered field; an unregistered one is a programming error."""
    for f in PERSONAL_FIELDS:
        if (f.table, f.name) == (table, name):
            return f
    raise KeyError(f"{table}.{name} is not a registered personal field")


# The member fields stored encrypted, in the order the roster and the CSV know them.
ENCRYPTED_MEMBER_FIELDS = personal_names("member", encrypted=True)
