"""Every audit action code, outcome and target type the services record has a Japanese label
(issue #18): the source is read (AST) for what reaches services.audit.record, following an
action passed through helper parameters and module constants, so a new code cannot slip
through untranslated. Unknown codes are shown as they are; details become 項目/内容 rows."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from core.actor import ActorKind
from models.callout import CalloutKind
from services import event_labels
from services.event_labels import (
    ACTION_LABELS,
    ACTOR_LABELS,
    DETAIL_LABELS,
    OUTCOME_LABELS,
    TARGET_LABELS,
    action_label,
    actor_type_label,
    category_label,
    detail_rows,
    outcome_label,
    target_label,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "web", "integrations", "core", "app_pages", "ui")
RECORDERS = {"audit", "record", "_record", "record_platform"}  # calls that reach audit.record
GATES = {"transaction", "require"}  # the access gate: a refusal records the action as attempted
# A code built at run time: the site, and every code it can produce.
DYNAMIC = {
    ("services/dispatch/callout.py", "f'callout.{kind.value}'"): {
        f"callout.{kind.value}" for kind in CalloutKind
    },
}


def _name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


class Source:
    """The parsed modules, indexed once: each node's parent, calls by the name called, and
    assignments by the name assigned (with whether at module level)."""

    def __init__(self, trees: dict[Path, ast.Module]) -> None:
        self.parents: dict[ast.AST, ast.AST] = {}
        self.calls: dict[str, list[tuple[Path, ast.Call]]] = defaultdict(list)
        self.assigned: dict[str, list[tuple[Path, ast.Assign, bool]]] = defaultdict(list)
        for path, tree in trees.items():
            top = set(map(id, tree.body))
            for node in ast.walk(tree):
                for child in ast.iter_child_nodes(node):
                    self.parents[child] = node
                if isinstance(node, ast.Call):
                    self.calls[_name(node)].append((path, node))
                elif isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            self.assigned[target.id].append((path, node, id(node) in top))


class Recorded:
    """The literal values that reach the `field` keyword of the calls named in `seeds` (and, for
    the recorders' action, the first argument of tx.audit and the third of record_platform)."""

    def __init__(self, source: Source, field: str, seeds: set[str] = RECORDERS) -> None:
        self.source, self.field = source, field
        self.values: dict[str, str] = {}  # value -> where first seen
        self.unresolved: list[tuple[str, str]] = []  # (file, expression)
        self._seen: set[int] = set()
        for name in seeds:
            for path, call in source.calls[name]:
                for expr in self._arguments(call):
                    self._resolve(path, expr, call)

    def _arguments(self, call: ast.Call) -> list[ast.expr]:
        found = [k.value for k in call.keywords if k.arg == self.field]
        if self.field == "action":
            name = _name(call)
            if name == "audit" and isinstance(call.func, ast.Attribute) and call.args:
                found.append(call.args[0])
            elif name == "record_platform" and len(call.args) > 2:
                found.append(call.args[2])
        return found

    def _resolve(self, path: Path, expr: ast.expr, site: ast.AST) -> None:
        if id(expr) in self._seen:
            return
        self._seen.add(id(expr))
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            self.values.setdefault(expr.value, f"{path.relative_to(ROOT)}:{expr.lineno}")
        elif isinstance(expr, ast.IfExp):
            self._resolve(path, expr.body, site)
            self._resolve(path, expr.orelse, site)
        elif isinstance(expr, ast.Attribute) and self._constant(path, expr.attr):
            pass  # members.TABLE
        elif not (
            isinstance(expr, ast.Name)
            and (self._parameter(path, expr, site) or self._constant(path, expr.id))
        ):
            self.unresolved.append((str(path.relative_to(ROOT)), ast.unparse(expr)))

    def _parameter(self, path: Path, name: ast.Name, site: ast.AST) -> bool:
        """A parameter of the enclosing function: what its callers pass (a private function's
        callers in its own module only)."""
        func, parents = site, self.source.parents
        while func in parents and not isinstance(func, ast.FunctionDef):
            func = parents[func]
        if not isinstance(func, ast.FunctionDef):
            return False
        positional = [a.arg for a in func.args.posonlyargs + func.args.args]
        if name.id not in positional + [a.arg for a in func.args.kwonlyargs]:
            return False
        index = positional.index(name.id) if name.id in positional else None
        if index is not None and positional[:1] in (["self"], ["cls"]):
            index -= 1
        for where, call in self.source.calls[func.name]:
            if func.name.startswith("_") and where != path:
                continue
            passed = [k.value for k in call.keywords if k.arg == name.id]
            if index is not None and len(call.args) > index:
                passed.append(call.args[index])
            for expr in passed:
                self._resolve(where, expr, call)
        return True

    def _constant(self, path: Path, name: str) -> bool:
        """A constant of this module, or a module-level one imported from another."""
        found = False
        for where, node, top in self.source.assigned[name]:
            if where == path or top:
                found = True
                self._resolve(where, node.value, node)
        return found


@pytest.fixture(scope="module")
def trees() -> dict[Path, ast.Module]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    return {p: ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in [*files, ROOT / "cli.py"]}


@pytest.fixture(scope="module")
def source(trees) -> Source:
    return Source(trees)


def recorded_actions(source: Source) -> set[str]:
    scan = Recorded(source, "action")
    codes = set(scan.values)
    for site in scan.unresolved:
        assert site in DYNAMIC, f"an action code built at run time needs a DYNAMIC entry: {site}"
        codes |= DYNAMIC[site]
    return codes


def test_every_recorded_action_has_a_label(source):
    missing = recorded_actions(source) - set(ACTION_LABELS)
    assert not missing, f"add a Japanese label to services/event_labels.py: {sorted(missing)}"


def test_every_action_named_at_the_gate_has_a_label(source):
    """A refusal records the action the service named at the gate (試みた操作)."""
    scan = Recorded(source, "action", GATES)
    assert not scan.unresolved
    assert {"member.list", "member.create", "backup.restore", "event_log.view"} <= set(scan.values)
    missing = set(scan.values) - set(ACTION_LABELS)
    assert not missing, f"add a Japanese label to services/event_labels.py: {sorted(missing)}"


def test_the_scan_finds_codes_passed_through_helpers_and_constants(source):
    """The scan is not vacuous: literal calls, codes handed to a helper's parameter
    (set_status, the sign-in _log helpers), conditional codes and imported constants."""
    codes = recorded_actions(source)
    assert {
        "member.create",  # tx.audit("member.create", ...)
        "member.suspend",  # set_status(tx, member, ..., "member.suspend") -> tx.audit(action)
        "login.failure",  # _log(db, ..., "login.failure", ...) -> audit.record(action=action)
        "registration.lock",  # registrations._log, positional
        "session.lock",  # _log_platform(..., "session.lock"), a parameter with a default
        "reports.submitted",  # "reports.submitted" if submit else "reports.saved"
        "audit.purge",  # PURGE_ACTION, imported from services.audit_verify
        "notice.publish",  # record_platform(session, actor, "notice.publish", ...)
        "mail.receive",  # traffic_log._record(..., action="mail.receive")
        "callout.widen",  # f"callout.{kind.value}"
    } <= codes
    assert len(codes) > 90


def test_a_new_unlabelled_code_is_caught(source, trees):
    """Mutation check: a code a service would record without a label fails the completeness
    test's comparison."""
    probe = 'def f(tx):\n    tx.audit("member.teleport", target_type="member")\n'
    extra = Source({**trees, ROOT / "services" / "_probe.py": ast.parse(probe)})
    assert "member.teleport" not in recorded_actions(source)
    assert "member.teleport" in recorded_actions(extra) - set(ACTION_LABELS)


def test_a_code_built_at_run_time_must_be_declared(trees):
    probe = 'def f(tx, kind):\n    tx.audit(f"water_source.{kind}")\n'
    extra = Source({**trees, ROOT / "services" / "_probe.py": ast.parse(probe)})
    with pytest.raises(AssertionError, match="DYNAMIC"):
        recorded_actions(extra)


def test_every_recorded_outcome_has_a_label(source):
    scan = Recorded(source, "outcome")
    assert not scan.unresolved
    assert {"success", "failure", "denied", "expired", "rejected"} <= set(scan.values)
    assert set(scan.values) <= set(OUTCOME_LABELS), set(scan.values) - set(OUTCOME_LABELS)


def test_every_recorded_target_type_has_a_label(source, trees):
    scan = Recorded(source, "target_type")
    types = set(scan.values)
    # external.call names the service as its target: the integrations' service names
    assert scan.unresolved == [("services/traffic_log.py", "call.service")]
    for tree in (t for p, t in trees.items() if p.is_relative_to(ROOT / "integrations")):
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                if any(isinstance(t, ast.Name) and t.id.endswith("SERVICE") for t in node.targets):
                    types.add(node.value.value)
    assert {"member", "water_source", "incident", "line", "line-messaging", "imap"} <= types
    assert types <= set(TARGET_LABELS), types - set(TARGET_LABELS)


def test_every_actor_kind_has_a_label():
    assert {str(kind) for kind in ActorKind} <= set(ACTOR_LABELS)
    assert actor_type_label("machine") == "自動処理" and actor_type_label("x") == "x"


def test_labels_and_unknown_codes():
    assert action_label("member.create") == "団員の登録"
    assert action_label("login.success") == "ログイン"
    assert action_label("callout.widen") == "出動連絡: 応援要請"
    assert action_label("something.new") == "something.new"  # shown safely as the code
    assert outcome_label("success") == "成功" and outcome_label("failure") == "失敗"
    assert outcome_label("odd") == "odd"
    assert target_label("member") == "団員" and target_label("water_source") == "消防水利"
    assert target_label("other") == "other"
    assert category_label("auth") == "認証・認可" and category_label("x") == "x"
    assert all(ACTION_LABELS.values()) and all(DETAIL_LABELS.values())


def test_details_become_japanese_rows():
    rows = detail_rows(
        {
            "member_code": "0012",
            "before": {"status": "active"},
            "after": {"status": "suspended"},
            "sessions_revoked": 2,
            "sensitive": False,
            "reason": None,
            "units": ["第1分団", "第2分団"],
            "attempted": "member.list",
            "function": "roster",
            "required": "edit",
            "mystery": "x",
        }
    )
    assert rows == [
        ("団員番号", "0012"),
        ("変更前・状態", "active"),
        ("変更後・状態", "suspended"),
        ("終了したセッション", "2"),
        ("要注意", "いいえ"),
        ("理由", "-"),
        ("分団", '["第1分団", "第2分団"]'),
        ("試みた操作", "団員名簿の表示"),
        ("機能", "団員名簿"),
        ("必要な権限", "編集"),
        ("mystery", "x"),
    ]
    assert detail_rows({}) == []
    assert detail_rows({"before": {}, "after": "blocked"}) == [
        ("変更前", "{}"),
        ("変更後", "blocked"),
    ]


def test_the_module_names_no_code_twice():
    """One label per code: a dict literal silently keeps the last of two equal keys."""
    tree = ast.parse(Path(event_labels.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            assert len(keys) == len(set(keys)), [k for k in keys if keys.count(k) > 1]
