"""A small IMAP4rev1 server on 127.0.0.1 for the mail poller's tests, spoken over real sockets.

It implements what a poller of one mailbox needs, as RFC 3501 and RFC 2177 (IDLE) describe it:
CAPABILITY, LOGIN, SELECT, SEARCH UNSEEN, FETCH BODY[] / BODY.PEEK[] (only BODY[] sets \\Seen),
STORE +FLAGS, IDLE/DONE, NOOP and LOGOUT, each also in its UID form where IMAP has one.

Tests deliver mails (FakeImap.deliver), read which are seen and which commands came in (names
only, so a password can never show up in an assertion message), and inject failures: the
connection is dropped after a number of further commands, or every open connection at once.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

# How often an idling connection looks for new mail and for the client's DONE, and how often
# the server looks for its shutdown.
IDLE_TICK_SECONDS = 0.05
# A connection that says nothing for this long is closed, so no handler thread outlives a test.
READ_TIMEOUT_SECONDS = 10
TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|\([^)]*\)|[^\s()]+')


@dataclass
class StoredMail:
    uid: int
    raw: bytes
    flags: set[str] = field(default_factory=set)


class _Dropped(Exception):
    """The injected failure: the connection is closed without an answer."""


class FakeImap:
    def __init__(
        self,
        *,
        username: str = "dispatch@example.jp",
        password: str = "s3cret-pw",
        idle: bool = True,
        idle_restates_exists: bool = False,
    ) -> None:
        self.username, self.password = username, password
        self.capabilities = "IMAP4rev1 IDLE" if idle else "IMAP4rev1"
        # Some servers repeat the mailbox size as IDLE starts, new mail or not.
        self.idle_restates_exists = idle_restates_exists
        self.commands: list[str] = []
        self.logins = 0
        self._mails: list[StoredMail] = []
        self._next_uid = 1
        self._drop_in: int | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(IDLE_TICK_SECONDS,), daemon=True
        )

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self) -> FakeImap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self.drop_all()
        self._server.server_close()
        self._thread.join(timeout=5)

    def deliver(self, raw: bytes) -> int:
        """A new unseen mail in the mailbox; returns its UID."""
        with self._lock:
            uid = self._next_uid
            self._next_uid += 1
            self._mails.append(StoredMail(uid, raw))
        return uid

    def is_seen(self, uid: int) -> bool:
        with self._lock:
            return any(m.uid == uid and "\\Seen" in m.flags for m in self._mails)

    def drop_after(self, commands: int) -> None:
        """Answer `commands` more commands, then close the connection instead of the next answer."""
        with self._lock:
            self._drop_in = commands

    def drop_all(self) -> None:
        """Close every open connection now, as a server restart or a network cut would."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _count_command(self, name: str) -> None:
        with self._lock:
            self.commands.append(name)
            if self._drop_in is not None:
                self._drop_in -= 1
                if self._drop_in < 0:
                    self._drop_in = None
                    raise _Dropped

    def _snapshot(self) -> list[StoredMail]:
        with self._lock:
            return list(self._mails)

    def _add_flag(self, uid: int, flag: str) -> None:
        with self._lock:
            for mail in self._mails:
                if mail.uid == uid:
                    mail.flags.add(flag)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeImap


class _Handler(socketserver.StreamRequestHandler):
    # Unbuffered reads: the IDLE loop selects on the socket, which a read buffer would hide.
    rbufsize = 0
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.fake = self.server.fake
        self.request.settimeout(READ_TIMEOUT_SECONDS)
        # Answers go out line by line: without this, Nagle's algorithm and the client's delayed
        # ACK hold each further line back for tens of milliseconds.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.authenticated = False
        self.selected = False
        self.reported_exists = 0
        with self.fake._lock:
            self.fake._connections.add(self.request)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._connections.discard(self.request)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        self.send(b"* OK Fake IMAP ready")
        try:
            while True:
                line = self.rfile.readline(8192)
                if not line:
                    return
                tokens = TOKEN.findall(line.rstrip(b"\r\n"))
                if len(tokens) < 2:
                    self.send(b"* BAD no command")
                    continue
                tag, words = tokens[0], [t.decode() for t in tokens[1:]]
                uid = words[0].upper() == "UID"
                if uid:
                    words = words[1:]
                name = words[0].upper() if words else ""
                self.fake._count_command(f"UID {name}" if uid else name)
                if self._dispatch(tag, name, words[1:], uid) == "logout":
                    return
        except (_Dropped, OSError):
            return

    def _dispatch(self, tag: bytes, name: str, args: list[str], uid: bool) -> str | None:
        simple = {"CAPABILITY": self._capability, "NOOP": self._noop, "LOGIN": self._login}
        selected = {"SEARCH": self._search, "FETCH": self._fetch, "STORE": self._store}
        if name == "LOGOUT":
            self.send(b"* BYE logging out")
            self.send(tag + b" OK LOGOUT completed")
            return "logout"
        if name in simple and not uid:
            self.send(tag + b" " + simple[name](args))
        elif name == "SELECT" and self.authenticated and not uid:
            self.send(tag + b" " + self._select(args))
        elif name == "IDLE" and self.selected and not uid and "IDLE" in self.fake.capabilities:
            self._idle()
            self.send(tag + b" OK IDLE terminated")
        elif name in selected and self.selected:
            self.send(tag + b" " + selected[name](args, uid))
        else:
            self.send(tag + b" BAD command unknown or not allowed now")
        return None

    def send(self, data: bytes) -> None:
        self.wfile.write(data + b"\r\n")

    def _capability(self, args: list[str]) -> bytes:
        self.send(f"* CAPABILITY {self.fake.capabilities}".encode())
        return b"OK CAPABILITY completed"

    def _login(self, args: list[str]) -> bytes:
        if [_unquote(a) for a in args] != [self.fake.username, self.fake.password]:
            return b"NO [AUTHENTICATIONFAILED] invalid credentials"
        self.authenticated = True
        with self.fake._lock:
            self.fake.logins += 1
        return b"OK LOGIN completed"

    def _select(self, args: list[str]) -> bytes:
        if [_unquote(a) for a in args] != ["INBOX"]:
            return b"NO [NONEXISTENT] no such mailbox"
        mails = self.fake._snapshot()
        self.selected, self.reported_exists = True, len(mails)
        self.send(b"* FLAGS (\\Seen)")
        self.send(f"* {len(mails)} EXISTS".encode())
        self.send(b"* 0 RECENT")
        self.send(b"* OK [UIDVALIDITY 1] UIDs valid")
        self.send(f"* OK [UIDNEXT {self.fake._next_uid}] next UID".encode())
        return b"OK [READ-WRITE] SELECT completed"

    def _noop(self, args: list[str]) -> bytes:
        self._report_new_mail()
        return b"OK NOOP completed"

    def _search(self, args: list[str], uid: bool) -> bytes:
        if [a.upper() for a in args] != ["UNSEEN"]:
            return b"BAD only SEARCH UNSEEN is implemented"
        hits = [
            str(mail.uid if uid else seq)
            for seq, mail in _numbered(self.fake._snapshot())
            if "\\Seen" not in mail.flags
        ]
        self.send(" ".join(["* SEARCH", *hits]).encode())
        return b"OK SEARCH completed"

    def _fetch(self, args: list[str], uid: bool) -> bytes:
        if len(args) != 2 or args[1].upper().strip("()") not in ("BODY[]", "BODY.PEEK[]"):
            return b"BAD only FETCH BODY[] and BODY.PEEK[] are implemented"
        peek = "PEEK" in args[1].upper()
        for seq, mail in self._matching(args[0], uid):
            if not peek:
                self.fake._add_flag(mail.uid, "\\Seen")
            uid_item = f"UID {mail.uid} " if uid else ""
            head = f"* {seq} FETCH ({uid_item}BODY[] {{{len(mail.raw)}}}\r\n".encode()
            self.wfile.write(head + mail.raw + b")\r\n")
        return b"OK FETCH completed"

    def _store(self, args: list[str], uid: bool) -> bytes:
        if len(args) != 3 or args[1].upper() not in ("+FLAGS", "+FLAGS.SILENT"):
            return b"BAD only STORE +FLAGS is implemented"
        flags = args[2].strip("()").split()
        for seq, mail in self._matching(args[0], uid):
            for flag in flags:
                self.fake._add_flag(mail.uid, flag)
            if not args[1].upper().endswith(".SILENT"):
                uid_item = f"UID {mail.uid} " if uid else ""
                now = " ".join(sorted(mail.flags | set(flags)))
                self.send(f"* {seq} FETCH ({uid_item}FLAGS ({now}))".encode())
        return b"OK STORE completed"

    def _idle(self) -> None:
        self.send(b"+ idling")
        if self.fake.idle_restates_exists:
            self.send(f"* {self.reported_exists} EXISTS".encode())
        while True:
            self._report_new_mail()
            readable, _, _ = select.select([self.request], [], [], IDLE_TICK_SECONDS)
            if readable:
                line = self.rfile.readline(64)
                if not line:
                    raise _Dropped
                if line.strip().upper() == b"DONE":
                    return

    def _report_new_mail(self) -> None:
        exists = len(self.fake._snapshot())
        if exists > self.reported_exists:
            self.reported_exists = exists
            self.send(f"* {exists} EXISTS".encode())

    def _matching(self, message_set: str, uid: bool) -> Iterator[tuple[int, StoredMail]]:
        mails = list(_numbered(self.fake._snapshot()))
        if not mails:
            return
        top = mails[-1][1].uid if uid else len(mails)
        wanted = _parse_set(message_set, top)
        for seq, mail in mails:
            if (mail.uid if uid else seq) in wanted:
                yield seq, mail


def _numbered(mails: list[StoredMail]) -> Iterator[tuple[int, StoredMail]]:
    return enumerate(mails, start=1)


def _parse_set(message_set: str, top: int) -> set[int]:
    """An IMAP sequence set (1,3:5,7:*) as numbers; * is the highest number in the mailbox."""
    numbers: set[int] = set()
    for part in message_set.split(","):
        low, _, high = part.partition(":")
        first, last = (top if n == "*" else int(n) for n in (low, high or low))
        numbers.update(range(min(first, last), max(first, last) + 1))
    return numbers


def _unquote(arg: str) -> str:
    if len(arg) >= 2 and arg[0] == arg[-1] == '"':
        return re.sub(r"\\(.)", r"\1", arg[1:-1])
    return arg
