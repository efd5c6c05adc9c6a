"""Which pages an actor gets. A page the actor may not view is not registered at all."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.access import Need, allows
from core.actor import Actor, ActorKind
from services.catalog import Function, Level


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    function: Function | None  # None: every signed-in brigade user
    url_path: str
    level: Level = Level.VIEW  # what the function must reach for the page to be offered
    also: tuple[Need, ...] = ()  # what else the page's reads need (all of it, or no page)

    def offered_to(self, actor: Actor) -> bool:
        needs = ((Need(self.function, self.level),) if self.function else ()) + self.also
        return all(allows(actor, need) for need in needs)


# The sidebar's groups, in this order; a page not named here goes to the first (no heading).
SECTIONS: dict[str, tuple[str, ...]] = {
    "": ("home", "dashboard", "help"),
    "出動": ("incidents", "board", "turnout", "incident-history"),
    "出動報告": ("reports", "approvals"),
    "団員・水利": ("roster", "water-map", "inspections"),
    "データ": ("csv-import", "export", "restore", "event-log"),
    "設定": ("accounts", "permissions", "brigade-settings", "report-settings", "mail-sources"),
}
MEMBER_PAGES = (
    PageSpec(
        "app_pages/dashboard.py",
        "ダッシュボード",
        ":material/dashboard:",
        Function.DASHBOARD,
        "dashboard",
    ),
    PageSpec("app_pages/home.py", "ホーム", ":material/home:", None, "home"),
    # the manual: every signed-in member, since it holds no brigade data (docs/manual/)
    PageSpec("app_pages/help.py", "ヘルプ", ":material/help:", None, "help"),
    PageSpec(
        "app_pages/incidents.py",
        "災害出動",
        ":material/local_fire_department:",
        Function.DISPATCH,
        "incidents",
    ),
    PageSpec(
        "app_pages/board.py",
        "出動中の事案",
        ":material/dashboard_customize:",
        Function.DISPATCH,
        "board",
    ),
    PageSpec(
        "app_pages/turnout.py",
        "出動情報",
        ":material/directions_run:",
        Function.DISPATCH,
        "turnout",
    ),
    PageSpec(
        "app_pages/incident_history.py",
        "出動履歴",
        ":material/history:",
        Function.DISPATCH,
        "incident-history",
    ),
    PageSpec(
        "app_pages/reports.py",
        "出動報告",
        ":material/assignment:",
        Function.REPORTS,
        "reports",
    ),
    PageSpec(
        "app_pages/approvals.py",
        "報告の承認",
        ":material/approval:",
        Function.APPROVALS,
        "approvals",
        Level.EDIT,
    ),
    PageSpec("app_pages/roster.py", "団員名簿", ":material/groups:", Function.ROSTER, "roster"),
    PageSpec(
        "app_pages/water_map.py",
        "水利マップ",
        ":material/water_drop:",
        Function.WATER_SOURCES,
        "water-map",
    ),
    PageSpec(
        "app_pages/inspections.py",
        "水利点検",
        ":material/fact_check:",
        Function.INSPECTIONS,
        "inspections",
        also=(Need(Function.WATER_SOURCES, Level.VIEW),),  # the list is the water registry
    ),
    PageSpec(
        "app_pages/brigade_settings.py",
        "団設定",
        ":material/tune:",
        Function.SETTINGS,
        "brigade-settings",
    ),
    PageSpec(
        "app_pages/csv_import.py",
        "CSV一括登録",
        ":material/upload_file:",
        Function.CSV_IMPORT,
        "csv-import",
    ),
    PageSpec(
        "app_pages/data_export.py",
        "CSV出力・バックアップ",
        ":material/download:",
        Function.CSV_EXPORT,
        "export",
    ),
    PageSpec(
        "app_pages/restore.py",
        "復元",
        ":material/settings_backup_restore:",
        Function.RESTORE,
        "restore",
    ),
    PageSpec(
        "app_pages/event_log.py",
        "イベントログ",
        ":material/receipt_long:",
        Function.EVENT_LOGS,
        "event-log",
    ),
    PageSpec(
        "app_pages/accounts.py",
        "アカウント管理",
        ":material/manage_accounts:",
        Function.MEMBER_ACCOUNTS,
        "accounts",
    ),
    PageSpec(
        "app_pages/permissions.py",
        "役職・権限",
        ":material/admin_panel_settings:",
        Function.PERMISSIONS,
        "permissions",
    ),
    PageSpec(
        "app_pages/report_settings.py",
        "出動報告の設定",
        ":material/request_quote:",
        Function.REPORTS,
        "report-settings",
        Level.ADMIN,
    ),
    # The receiving address is a credential: only 管理 gets the page at all.
    PageSpec(
        "app_pages/mail_sources.py",
        "出動メール設定",
        ":material/forward_to_inbox:",
        Function.DISPATCH,
        "mail-sources",
        Level.ADMIN,
    ),
)
OPERATOR_PAGES = (
    PageSpec("app_pages/brigades.py", "消防団管理", ":material/apartment:", None, "brigades"),
    PageSpec("app_pages/notices_admin.py", "お知らせ管理", ":material/campaign:", None, "notices"),
)
LOGIN_PAGE = PageSpec("app_pages/login.py", "ログイン", ":material/login:", None, "login")
# A LINE login bound to no member reaches exactly one page: code entry, or the brigade choice.
LINE_PAGES = {
    ActorKind.LINE_REGISTER: PageSpec(
        "app_pages/line_register.py", "LINE連携の登録", ":material/key:", None, "line-register"
    ),
    ActorKind.LINE_CHOOSE: PageSpec(
        "app_pages/line_brigade.py", "消防団の選択", ":material/apartment:", None, "brigade"
    ),
}


def specs_for(actor: Actor | None) -> tuple[PageSpec, ...]:
    if actor is None:
        return (LOGIN_PAGE,)
    if actor.is_operator:
        return OPERATOR_PAGES
    if actor.kind in LINE_PAGES:
        return (LINE_PAGES[actor.kind],)
    return tuple(p for p in MEMBER_PAGES if p.offered_to(actor))


def pages_for(actor: Actor | None) -> list[st.Page] | dict[str, list[st.Page]]:
    """The pages st.navigation offers: a member's grouped into the SECTIONS (empty groups left
    out), anyone else's as one list."""
    specs = specs_for(actor)
    pages = [_page(spec) for spec in specs]
    if actor is None:
        # A signed-out browser that opened a page's address (a bookmark, the call-out's LINE
        # link) gets the login page there, not Streamlit's "page not found" dialog over it; the
        # login then returns to that address (app_pages/login.py).
        return pages + [
            st.Page(LOGIN_PAGE.path, title=LOGIN_PAGE.title, url_path=url)
            for url in _known_elsewhere(specs)
        ]
    # A signed-in actor who opens a page they may not see (a bookmark, an old link) gets a
    # Japanese refusal at that address (hidden from the menu), not Streamlit's English dialog;
    # a LINE login bound to no member gets its one page there (code entry, brigade choice).
    instead = LINE_PAGES[actor.kind].path if actor.kind in LINE_PAGES else NO_ACCESS_PAGE
    pages += [
        st.Page(instead, title=title, url_path=url, visibility="hidden")
        for url, title in _known_elsewhere(specs).items()
    ]
    if specs and all(s in MEMBER_PAGES for s in specs):
        section = {url: name for name, urls in SECTIONS.items() for url in urls}
        grouped: dict[str, list[st.Page]] = {name: [] for name in SECTIONS}
        for page in pages:
            grouped[section.get(page.url_path, "")].append(page)
        return {name: found for name, found in grouped.items() if found}
    return pages


NO_ACCESS_PAGE = "app_pages/no_access.py"


def _known_elsewhere(specs: tuple[PageSpec, ...]) -> dict[str, str]:
    """url path → title of every page of the app that `specs` do not hold."""
    shown = {spec.url_path for spec in specs}
    known = (*MEMBER_PAGES, *OPERATOR_PAGES, *LINE_PAGES.values())
    return {spec.url_path: spec.title for spec in known if spec.url_path not in shown}


def page_addresses() -> frozenset[str]:
    """Every page's address (url path), whoever may see it: any other is no page of the app
    (web/unknown_pages.py)."""
    every = (*MEMBER_PAGES, *OPERATOR_PAGES, *LINE_PAGES.values(), LOGIN_PAGE)
    return frozenset(spec.url_path for spec in every)


def _page(spec: PageSpec) -> st.Page:
    return st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path)
