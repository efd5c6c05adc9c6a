"""The event log in Japanese (issue #18): one table of labels for every action code, outcome,
target type and detail key the services record, and the details of an event as 項目/内容 rows.

A code without a label is shown as it is (a newer code, or one from an older release), never
dropped; tests/services/test_event_labels.py fails when a code the services record is missing here.
"""

from __future__ import annotations

import json
from typing import Any

from models.callout import CalloutKind
from models.enums import LEVEL_LABELS, AuditCategory, Function

ACTION_LABELS: dict[str, str] = {
    # 認証・認可
    "login.success": "ログイン",
    "login.failure": "ログイン失敗",
    "logout": "ログアウト",
    "session.end": "セッション終了",
    "session.lock": "登録コード誤入力によるセッション終了",
    "permission_denied": "権限のない操作の拒否",
    "local_account.create": "ローカルアカウントの作成",
    "local_account.password_reset": "パスワードの再設定",
    "registration.issue": "LINE登録コードの発行",
    "registration.reissue": "LINE登録コードの再発行",
    "registration.batch_issue": "LINE登録コードの一括発行",
    "registration.redeem": "LINE登録コードの入力",
    "registration.lock": "LINE登録コードのロック",
    "line.link": "LINE連携",
    "line.unlink": "LINE連携の解除",
    "line.friendship": "LINE友だち状態の変化",
    # 団員
    "member.create": "団員の登録",
    "member.update": "団員情報の変更",
    "member.suspend": "団員の利用停止",
    "member.reactivate": "団員の利用再開",
    "member.retire": "団員の退団",
    "member.readmit": "団員の再入団",
    "member.recover": "締め出しからの復旧（運営）",
    "member.import": "団員のCSV一括登録",
    "member.export": "団員のCSV出力",
    "member.affiliation_rename": "所属名の一括変更",
    "role.create": "役職の作成",
    "role.rename": "役職名の変更",
    "role.remap": "役職の階級の変更",
    "role.delete": "役職の削除",
    "permission.update": "権限の変更",
    # 消防水利
    "water_source.create": "消防水利の登録",
    "water_source.update": "消防水利の変更",
    "water_source.delete": "消防水利の削除",
    "water_source.bulk_create": "消防水利の一括登録",
    "water_source.import": "消防水利のファイル取込",
    "water_source.export": "消防水利の出力",
    "water_source.list_export": "消防水利一覧の出力",
    "water_source.inspect": "水利点検の記録",
    "import_mapping.save": "取込の列対応の保存",
    "import_mapping.delete": "取込の列対応の削除",
    # 災害出動
    "incident.create": "災害の登録",
    "incident.set_status": "災害の状況の変更",
    "incident.confirm_review": "災害の確認",
    "incident.read": "災害情報の既読",
    "incident.locate": "災害地点の特定",
    "incident.pin_position": "災害地点の指定",
    **{f"callout.{kind.value}": f"出動連絡: {kind.label}" for kind in CalloutKind},
    "callout.answer": "出動の回答",
    "callout.answer_proxy": "出動の代理回答",
    "callout.withdrawn": "出動連絡の取消",
    "callout.send_failed": "出動連絡の送信失敗",
    "callout.selftest_start": "自己診断の開始",
    "callout.selftest_hour": "自己診断の時刻の変更",
    "callout_rules.update": "呼び出しルールの変更",
    "callout_settings.update": "出動連絡の設定の変更",
    "mail_source.create": "指令メール受信元の登録",
    "mail_source.update": "指令メール受信元の変更",
    "mail_source.rotate_address": "受信アドレスの再発行",
    "mail.receive": "メール受信",
    "mail.raw_view": "受信メール原文の表示",
    "mail.purge_raw": "受信メール原文の削除",
    "line.webhook": "LINEからの通知の受信",
    "line.webhook_refused": "LINEからの通知の拒否",
    "external.call": "外部サービスの呼び出し",
    # 出動報告
    "reports.requested": "出動報告の依頼",
    "reports.saved": "出動報告の保存",
    "reports.submitted": "出動報告の提出",
    "reports.declined": "出動報告の辞退",
    "reports.approved": "出動報告の承認",
    "reports.returned": "出動報告の差戻し",
    "reports.from_inspection": "水利点検からの出動報告",
    "reports.export": "出動報告の出力",
    "reports.chain.save": "承認経路の保存",
    "reports.reward_table.save": "報酬表の保存",
    # バックアップ・設定・記録
    "backup.create": "バックアップの作成",
    "backup.restore": "バックアップからの復元",
    "backup.pre_change": "変更前バックアップの作成",
    "backup.pre_change_open": "変更前バックアップの表示",
    "backup.pre_change_purge": "変更前バックアップの削除",
    "brigade_settings.update": "団設定の変更",
    "event_log.view": "イベントログの閲覧",
    "event_log.view_detail": "イベント詳細の表示",
    "event_log.export": "イベントログの出力",
    "event_log.verify": "イベントログの改ざん検証",
    "audit.purge": "保存期間を過ぎた記録の削除",
    # 運営（団の作成・鍵・お知らせ）
    "tenant.create": "消防団の作成",
    "tenant.cancel": "消防団の解約",
    "tenant.delete_data": "消防団のデータ削除",
    "key.master_rewrap": "マスター鍵の更新",
    "key.data_rotate.start": "データ鍵の更新開始",
    "key.data_rotate.finish": "データ鍵の更新完了",
    "key.destroy": "データ鍵の破棄",
    "key.adopt_wrapped": "復元したデータベースへの鍵の引継ぎ",
    "notice.publish": "お知らせの掲載",
    "notice.withdraw": "お知らせの取下げ",
    "notice.mail": "お知らせのメール送信",
}

# What a refused call was (permission_denied's 試みた操作): the action each service names at the
# access gate (services.base.transaction / require). Those it also records are labelled above.
ACTION_LABELS |= {
    "account.list": "アカウント一覧の表示",
    "backup.inspect": "バックアップの内容確認",
    "backup.pre_change_list": "変更前バックアップ一覧の表示",
    "board.read": "出動ボードの表示",
    "brigade.create": "消防団の作成",
    "brigade_settings.get": "団設定の表示",
    "callout.call_out": "出動連絡（手動）",
    "callout.escalate": "再通知・人員不足の確認",
    "callout.selftest_status": "自己診断の状態の表示",
    "callout.tally": "出動回答の集計",
    "callout.test_recipients": "テスト送信の宛先の表示",
    "callout.unit_choices": "呼び出せる分団の表示",
    "callout_rules.get": "呼び出しルールの表示",
    "callout_rules.offer": "呼び出しルールの選択肢の表示",
    "callout_settings.get": "出動連絡の設定の表示",
    "dashboard.view": "ダッシュボードの表示",
    "dispatch.statistics": "出動統計の表示",
    "event_log.actions": "イベントログの操作一覧",
    "event_log.actors": "イベントログの実行者一覧",
    "import_mapping.list": "取込の列対応の一覧",
    "incident.get": "災害の表示",
    "incident.history": "災害履歴の表示",
    "incident.history_filters": "災害履歴の絞り込み条件",
    "incident.list": "災害一覧の表示",
    "incident.member_view": "団員向け災害情報の表示",
    "incident.nearest_water": "災害地点付近の水利の表示",
    "incident.open_reviews": "要確認の災害の表示",
    "incident.position": "災害地点の表示",
    "incident.timeline": "災害の経過の表示",
    "key.data_rotate": "データ鍵の更新",
    "key.export_wrapped": "鍵の書き出し",
    "line.quota": "LINE送信数の確認",
    "line_outbox.claim": "LINE送信の取得",
    "line_outbox.finish": "LINE送信の完了",
    "mail.process": "指令メールの処理",
    "mail_log.list": "メール受信ログの表示",
    "mail_log.raw": "受信メール原文の取得",
    "mail_source.imap_list": "IMAP受信元の一覧",
    "mail_source.list": "指令メール受信元の一覧",
    "mail_source.preview": "指令メールの解析テスト",
    "member.affiliations": "所属一覧の表示",
    "member.bulk_affiliation": "所属の一括変更",
    "member.bulk_suspend": "団員の一括利用停止",
    "member.get": "団員情報の表示",
    "member.import_preview": "団員のCSV取込の確認",
    "member.line_links": "LINE連携状況の表示",
    "member.list": "団員名簿の表示",
    "member.scope": "編集できる範囲の確認",
    "notice.list": "お知らせ一覧の表示",
    "permission.list": "権限一覧の表示",
    "permission.preview": "権限のプレビュー",
    "permission.preview_choices": "権限プレビューの選択肢",
    "rank.list": "階級一覧の表示",
    "registration.batch_plan": "LINE登録コード一括発行の確認",
    "registration.batch_units": "LINE登録コード一括発行の所属一覧",
    "reports.approve": "出動報告の承認",
    "reports.categories": "出動報告の区分の表示",
    "reports.chain": "承認経路の表示",
    "reports.decline": "出動報告の辞退",
    "reports.export.preview": "出動報告の出力プレビュー",
    "reports.get": "出動報告の表示",
    "reports.inspections": "報告できる水利点検の表示",
    "reports.list": "出動報告一覧の表示",
    "reports.mine": "自分の出動報告の表示",
    "reports.pending": "承認待ちの出動報告の表示",
    "reports.reporters": "報告できる団員の表示",
    "reports.return": "出動報告の差戻し",
    "reports.reward_table.get": "報酬表の表示",
    "reports.reward_table.preview": "報酬表のプレビュー",
    "reports.save": "出動報告の保存",
    "role.list": "役職一覧の表示",
    "setup_checklist.view": "初期設定チェックリストの表示",
    "tenant.find": "消防団の検索",
    "tenant.list": "消防団一覧の表示",
    "tenant.pending_deletions": "削除予定の消防団の表示",
    "tenant.remaining_rows": "消防団の残りデータの確認",
    "water_source.get": "消防水利の表示",
    "water_source.inspections": "水利点検の記録の表示",
    "water_source.inspectors": "点検者の一覧",
    "water_source.list": "消防水利一覧の表示",
    "water_source.map": "水利マップの表示",
    "water_source.stamp": "消防水利の更新確認",
    "water_source.template": "消防水利の取込テンプレート",
}

ACTOR_LABELS: dict[str, str] = {  # core.actor.ActorKind, as the audit record's actor_type
    "member": "団員",
    "operator": "運営者",
    "system": "システム（コマンド）",
    "machine": "自動処理",
    "line": "LINEログイン（団員未確定）",
    "line_register": "LINEログイン（登録コード入力中）",
    "line_choose": "LINEログイン（消防団の選択中）",
}

OUTCOME_LABELS: dict[str, str] = {
    "success": "成功",
    "failure": "失敗",
    "denied": "拒否",
    "expired": "期限切れ",
    "rejected": "受付拒否",
}

TARGET_LABELS: dict[str, str] = {
    "member": "団員",
    "water_source": "消防水利",
    "incident": "災害",
    "activity_report": "出動報告",
    "report_month": "出動報告（月）",
    "report_settings": "出動報告の設定",
    "role": "役職",
    "permission": "権限",
    "affiliation": "所属",
    "local_account": "ローカルアカウント",
    "session": "セッション",
    "mail": "メール",
    "inbound_mail": "受信メール",
    "mail_source": "指令メール受信元",
    "callout_settings": "出動連絡の設定",
    "import_mapping": "取込の列対応",
    "backup": "バックアップ",
    "pre_change_backup": "変更前バックアップ",
    "brigade_settings": "団設定",
    "audit_event": "イベント",
    "tenant": "消防団",
    "maintenance_notice": "お知らせ",
    "line": "LINEログイン",
    "line-messaging": "LINE Messaging API",
    "imap": "メール受信（IMAP）",
    "smtp": "メール送信（SMTP）",
    "geocoder": "住所検索",
}

DETAIL_LABELS: dict[str, str] = {
    "before": "変更前",
    "after": "変更後",
    "changes": "変更内容",
    "changed": "変更",
    "member_code": "団員番号",
    "member_codes": "団員番号",
    "member": "団員",
    "members": "団員",
    "code": "番号",
    "codes": "番号",
    "name": "名称",
    "kind": "種別",
    "status": "状態",
    "rank": "階級",
    "rank_id": "階級",
    "role_ids": "役職",
    "affiliation": "所属",
    "unit": "所属",
    "number": "番号",
    "incident": "災害",
    "units": "分団",
    "targets": "対象人数",
    "messaged": "送信人数",
    "everyone": "全団員",
    "rules": "適用ルール",
    "answer": "回答",
    "via": "経路",
    "reason": "理由",
    "stage": "段階",
    "method": "方式",
    "filters": "絞り込み条件",
    "start": "開始",
    "end": "終了",
    "categories": "種別",
    "actor_id": "実行者",
    "actions": "操作",
    "target_type": "対象の種類",
    "target_id": "対象ID",
    "text": "キーワード（文字数）",
    "after_seq": "この連番より前",
    "shown": "表示件数",
    "seq": "連番",
    "personal_shown": "個人情報の表示",
    "rows": "件数",
    "count": "件数",
    "total": "合計",
    "created": "登録",
    "updated": "更新",
    "deleted": "削除",
    "retired": "退団",
    "truncated": "上限で打切り",
    "ok": "結果",
    "checked": "検証件数",
    "first_broken_seq": "不整合の連番",
    "purged_through": "削除済みの連番",
    "function": "機能",
    "required": "必要な権限",
    "attempted": "試みた操作",
    "permissions": "権限",
    "user_id": "登録ID",
    "expires_at": "有効期限",
    "sensitive": "要注意",
    "failed_attempts": "失敗回数",
    "session_failures": "セッションの失敗回数",
    "sessions_revoked": "終了したセッション",
    "login_name": "ログイン名",
    "login_name_length": "ログイン名の文字数",
    "size_bytes": "サイズ（バイト）",
    "size": "サイズ",
    "bytes": "バイト数",
    "parse_result": "解析結果",
    "parse_status": "解析状態",
    "message_id": "Message-ID（ハッシュ）",
    "mail_date": "メールの日時",
    "dkim": "DKIM",
    "encoding": "文字コード",
    "service": "サービス",
    "endpoint": "接続先",
    "latency_ms": "所要時間（ミリ秒）",
    "retry_key": "リトライキー",
    "attempt": "試行回数",
    "error": "エラー",
    "request_id": "リクエストID",
    "recipients": "宛先数",
    "quota_remaining": "残り送信数",
    "file": "ファイル",
    "filename": "ファイル名",
    "sheet": "シート",
    "layout": "形式",
    "sha256": "SHA-256",
    "entity": "対象データ",
    "inspected_on": "点検日",
    "last_inspected_on": "最終点検日",
    "inspection_id": "点検",
    "inspections_deleted": "削除した点検記録",
    "inspector_member_id": "点検者",
    "month": "対象月",
    "category": "区分",
    "activities": "活動",
    "title": "件名",
    "sent": "送信",
    "failed": "失敗",
    "without_address": "メールアドレスなし",
    "brigades": "消防団数",
    "operator": "運営者",
    "municipality": "市区町村",
    "cancelled_on": "解約日",
    "deletion_due": "削除予定日",
    "retention_days": "保存日数",
    "cutoff": "基準日時",
    "source": "発生元",
    "result": "結果",
    "alerted": "通知人数",
    "step": "手順",
    "steps": "手順",
    "failed_steps": "失敗した手順",
    "summary": "概要",
    "problems": "問題",
    "reassigned_to": "付け替え先",
    "of": "対象",
    "missing_rows": "見つからない行",
    "normalised": "正規化",
    "bulk": "一括",
    "transport": "送信方法",
    "chunks": "分割数",
    "eta_minutes": "到着予定（分）",
    "shortages": "人員不足",
    "final": "最終",
    "for_other": "代理",
    "include_sub_units": "下位の所属を含む",
    "lookup": "検索",
    "decode_status": "文字コードの判定",
    "encrypted": "暗号化",
    "started_at": "開始日時",
    "chain": "承認経路",
    "offer": "提示",
    "personal_fields": "個人情報の項目",
    "unchanged_applied": "変更なしで適用",
    "mails": "メール",
    "brigade": "消防団",
    "admin_role_given": "管理役職の付与",
}

BOOLEANS = {True: "はい", False: "いいえ"}
LEVELS = {level.name.lower(): label for level, label in LEVEL_LABELS.items()}


def action_label(code: str) -> str:
    return ACTION_LABELS.get(code, code)


def actor_type_label(code: str) -> str:
    return ACTOR_LABELS.get(code, code)


def outcome_label(code: str) -> str:
    return OUTCOME_LABELS.get(code, code)


def target_label(target_type: str) -> str:
    return TARGET_LABELS.get(target_type, target_type)


def category_label(category: str) -> str:
    try:
        return AuditCategory(category).label
    except ValueError:
        return category


def detail_label(key: str) -> str:
    return DETAIL_LABELS.get(key, key)


def function_label(value: str) -> str:
    return Function(value).label if value in set(Function) else value


# detail values that are themselves codes (a refusal's function, level and attempted action)
VALUE_LABELS = {
    "attempted": action_label,
    "function": function_label,
    "required": lambda value: LEVELS.get(value, value),
}


def detail_rows(details: dict[str, Any]) -> list[tuple[str, str]]:
    """An event's details as (項目, 内容): nested objects one level deep as 「変更前・状態」,
    deeper ones and lists as compact JSON; the codes of a refusal by their labels."""
    rows: list[tuple[str, str]] = []
    for key, value in details.items():
        if isinstance(value, dict) and value:
            rows += [
                (f"{detail_label(key)}・{detail_label(k)}", _text(v)) for k, v in value.items()
            ]
        elif key in VALUE_LABELS and isinstance(value, str):
            rows.append((detail_label(key), VALUE_LABELS[key](value)))
        else:
            rows.append((detail_label(key), _text(value)))
    return rows


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEANS[value]
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)
