#!/usr/bin/env python3
"""HTTP/1.1 conformance and hostile-input probe for the gateway (or any HTTP/1.1 server).

    python3 tests/http1/probe.py --host 127.0.0.1 --port N [--only ID...] [--json]
    (also: --list, --report FILE, --timeout S, --head-limit N; see --help)

Every case opens its own TCP connection, sends raw bytes (possibly in several timed parts),
reads what comes back until the server closes, the expected number of responses has come
(then lingers a little to see whether the server closes), or the case's timeout, parses the
HTTP/1.x responses (status line, fields, a body framed by Content-Length, chunked or the
close; several pipelined responses; 1xx interim responses) and judges them: PASS, WARN
(allowed by the RFC but weaker) or FAIL, with a reason and the RFC section checked (RFC 9110
semantics, RFC 9112 HTTP/1.1). Exit status 1 if any case FAILs.

The server under test is expected to route every path to an echo upstream that answers 200
with JSON of what it received: {"method", "path", "query", "headers" (lower-case names),
"body", "bodyLength", ...}. That shows which framing the server used (did the upstream get
"hello" or ""?) and which request was answered (a smuggled request shows up by its path).

Expectations follow the RFCs, not any one server; where the RFC allows several behaviours
each is accepted (WARN for the weaker one). Python 3 standard library only.
"""

import argparse
import fnmatch
import json
import random
import re
import select
import socket
import sys
import time

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

# --------------------------------------------------------------------------------------
# Sending and receiving
# --------------------------------------------------------------------------------------


class Part:
    """Bytes to send `at` seconds after connecting (or as soon as an interim response
    arrived, with `on_interim`); `shut_wr` half-closes the connection after them."""

    def __init__(self, data=b"", at=0.0, on_interim=False, shut_wr=False):
        self.data = data
        self.at = at
        self.on_interim = on_interim
        self.shut_wr = shut_wr


class Resp:
    def __init__(self, version, status, reason, headers, head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] as received (str, latin-1)
        self.head = head
        self.body = b""
        self.complete = False
        self.interim = 100 <= status < 200 and status != 101
        self.chunked = False

    def header(self, name):
        """All values of field `name`, joined with ", " (None if absent)."""
        vals = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(vals) if vals else None

    def json(self):
        try:
            v = json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        return v if isinstance(v, dict) else None


STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?\r?$")
HEAD_END = re.compile(rb"\r?\n\r?\n")


def parse_responses(buf, methods, eof):
    """The HTTP/1.x responses in `buf` in order (the last one may be incomplete), and a
    parse error if the bytes stop looking like HTTP/1. `methods[i]` is the method of the
    i-th request (HEAD and CONNECT change how a response is framed)."""
    out, pos, ri, err = [], 0, 0, None
    buf = bytes(buf)
    while pos < len(buf):
        if not buf.startswith(b"HTTP/", pos):
            rest = buf[pos:]
            if not (len(rest) < 5 and b"HTTP/".startswith(rest)):
                err = f"not an HTTP/1 response at byte {pos}: {rest[:24]!r}"
            break
        m = HEAD_END.search(buf, pos)
        if not m:
            break  # the head is not complete yet
        head = buf[pos : m.start()]
        lines = re.split(rb"\r?\n", head)
        sl = STATUS_LINE.match(lines[0])
        if not sl:
            err = f"bad status line {lines[0][:60]!r}"
            break
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
        r = Resp(
            f"HTTP/{sl.group(1).decode()}.{sl.group(2).decode()}",
            int(sl.group(3)),
            (sl.group(4) or b"").decode("latin-1"),
            headers,
            head.decode("latin-1"),
        )
        out.append(r)
        pos = m.end()
        if r.interim:
            r.complete = True
            continue
        method = methods[ri] if ri < len(methods) else "GET"
        ri += 1
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        if r.status == 101 or (method == "CONNECT" and 200 <= r.status < 300):
            # Another protocol (or a tunnel) follows: keep the rest as this one's body.
            r.body, r.complete, pos = buf[pos:], True, len(buf)
            break
        if method == "HEAD" or r.status in (204, 304):
            r.complete = True
            continue
        if te:
            if te.split(",")[-1].strip() == "chunked":
                r.chunked = True
                body, p, done, cerr = decode_chunked(buf, pos)
                r.body = body
                if cerr:
                    err = f"bad chunked response body: {cerr}"
                    break
                if not done:
                    break
                r.complete, pos = True, p
                continue
            r.body, r.complete, pos = buf[pos:], eof, len(buf)
            break
        if cl is not None:
            try:
                n = int(cl.split(",")[0].strip())
            except ValueError:
                err = f"bad Content-Length in the response: {cl!r}"
                break
            r.body = buf[pos : pos + n]
            if len(buf) - pos < n:
                break
            r.complete, pos = True, pos + n
            continue
        r.body, r.complete, pos = buf[pos:], eof, len(buf)
        break
    return out, err


def decode_chunked(buf, p):
    """(body, end position, complete, error) of a chunked body starting at `p`."""
    body = b""
    while True:
        e = buf.find(b"\n", p)
        if e < 0:
            return body, p, False, None
        line = buf[p:e].rstrip(b"\r")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            return body, p, False, f"chunk size {line[:20]!r}"
        p = e + 1
        if size == 0:
            while True:  # trailer section, up to the empty line
                e = buf.find(b"\n", p)
                if e < 0:
                    return body, p, False, None
                line, p = buf[p:e].rstrip(b"\r"), e + 1
                if not line:
                    return body, p, True, None
        if len(buf) < p + size + 1:
            body += buf[p : p + size]
            return body, p, False, None
        body += buf[p : p + size]
        p += size
        if buf.startswith(b"\r\n", p):
            p += 2
        elif buf.startswith(b"\n", p):
            p += 1
        elif len(buf) - p < 2:
            return body, p, False, None
        else:
            return body, p, False, "no CRLF after chunk data"


class Result:
    def __init__(self):
        self.responses = []
        self.parse_error = None
        self.closed = False  # the server ended the connection (EOF or reset)
        self.reset = False
        self.timed_out = False  # the case's timeout came while still waiting
        self.send_error = None
        self.connect_error = None
        self.raw = b""
        self.elapsed = 0.0
        self.interim_before = None  # an interim response came before an on_interim part

    @property
    def finals(self):
        return [r for r in self.responses if not r.interim]

    @property
    def statuses(self):
        return [r.status for r in self.responses]

    def status(self, i=0):
        f = self.finals
        return f[i].status if i < len(f) else None

    def echo(self, i=0):
        """The echo upstream's JSON in final response `i` (None if it is not that)."""
        f = self.finals
        if i >= len(f) or not f[i].complete:
            return None
        j = f[i].json()
        return j if j is not None and "method" in j and "path" in j else None

    def echo_paths(self):
        return [(self.echo(i) or {}).get("path") for i in range(len(self.finals))]


def run_case(case, args, ctx):
    r = Result()
    parts, expect = case.fn(ctx)
    if isinstance(parts, (bytes, bytearray)):
        parts = [Part(bytes(parts))]
    timeout = case.timeout or args.timeout
    linger = case.linger if case.linger is not None else args.linger
    start = time.monotonic()
    try:
        sock = socket.create_connection((args.host, args.port), timeout=2)
    except OSError as e:
        r.connect_error = str(e)
        return r, expect
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    deadline = start + timeout
    linger_until = None
    buf = bytearray()
    pi, pending, shut_after = 0, b"", False
    eof = False
    parsed = ([], None)
    try:
        while True:
            now = time.monotonic()
            if now >= deadline or (linger_until is not None and now >= linger_until):
                break
            interims = sum(1 for x in parsed[0] if x.interim)
            # The next part, when its time has come.
            while not pending and pi < len(parts) and r.send_error is None:
                p = parts[pi]
                if now - start >= p.at or (p.on_interim and interims):
                    if p.on_interim and r.interim_before is None:
                        r.interim_before = interims > 0
                    pending, shut_after, pi = memoryview(p.data), p.shut_wr, pi + 1
                    if not pending and shut_after:
                        sock.shutdown(socket.SHUT_WR)
                        shut_after = False
                else:
                    break
            wake = [deadline]
            if linger_until is not None:
                wake.append(linger_until)
            if not pending and pi < len(parts) and r.send_error is None:
                wake.append(start + parts[pi].at)
                if parts[pi].on_interim:
                    wake.append(now + 0.02)
            wait = max(0.0, min(wake) - now)
            rl, wl, _ = select.select([sock], [sock] if pending else [], [], wait)
            if wl and pending:
                try:
                    n = sock.send(pending)
                    pending = pending[n:]
                    if not pending and shut_after:
                        sock.shutdown(socket.SHUT_WR)
                        shut_after = False
                except BlockingIOError:
                    pass
                except OSError as e:  # EPIPE, ECONNRESET: the server gave up on us
                    r.send_error, pending = e.strerror or str(e), b""
            if rl:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    data = None
                except ConnectionResetError:
                    data, r.reset = b"", True
                if data is not None:
                    if not data:
                        eof = True
                    else:
                        buf += data
                    parsed = parse_responses(buf, case.methods, eof)
                    done = sum(1 for x in parsed[0] if not x.interim and x.complete)
                    if linger_until is None and (
                        done >= case.want or (case.stop and case.stop(bytes(buf)))
                    ):
                        linger_until = time.monotonic() + linger
                    if eof:
                        break
    finally:
        sock.close()
    r.elapsed = time.monotonic() - start
    r.closed = eof
    r.raw = bytes(buf)
    r.responses, r.parse_error = parse_responses(buf, case.methods, eof)
    r.timed_out = not eof and linger_until is None
    return r, expect


# --------------------------------------------------------------------------------------
# Building requests
# --------------------------------------------------------------------------------------


def b(x):
    return x if isinstance(x, bytes) else x.encode("latin-1")


class Ctx:
    def __init__(self, args):
        self.host = args.host_header
        self.head_limit = args.head_limit

    def req(self, line, *fields, body=b"", host=True):
        """A request: `line`, a Host field (unless host=False), `fields`, the empty line,
        then `body` (nothing is computed: framing fields are given explicitly)."""
        out = b(line) + b"\r\n"
        if host:
            out += b"Host: " + b(self.host) + b"\r\n"
        for f in fields:
            out += b(f) + b"\r\n"
        return out + b"\r\n" + b(body)

    def get(self, path, *fields):
        return self.req(f"GET {path} HTTP/1.1", *fields)

    def post(self, path, body, *fields):
        body = b(body)
        return self.req(f"POST {path} HTTP/1.1", f"Content-Length: {len(body)}", *fields, body=body)


def chunked(*pieces):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), b(p)) for p in pieces) + b"0\r\n\r\n"


# --------------------------------------------------------------------------------------
# Judging
# --------------------------------------------------------------------------------------


def desc(r, i=0):
    """A short description of final response i (status, and the gateway's error)."""
    f = r.finals
    if i >= len(f):
        return "no response"
    s = str(f[i].status)
    j = f[i].json()
    if j and "error" in j:
        s += f" ({j.get('error')})"
    return s


def smuggled(r, *bad):
    """The first final response that answered one of the `bad` paths (a request the
    server must not have seen as a request), or None."""
    for i, p in enumerate(r.echo_paths()):
        if p in bad:
            return f"response {i + 1} answered {p} (a request smuggled past the framing)"
    return None


def reject(
    r, ok=(400,), warn=(), close=WARN, must_close=False, bad=(), what="invalid request", accepted=FAIL, nonhttp=FAIL
):
    """The request is invalid: a status in `ok` passes (and the connection must be
    closed after it if `must_close`), one in `warn` warns, closing without a response is
    judged `close`, a 2xx/3xx `accepted` (FAIL unless said otherwise), a 5xx FAILs,
    another 4xx warns; an answer that is not HTTP/1 at all is judged `nonhttp`."""
    if (s := smuggled(r, *bad)):
        return FAIL, s
    st = r.status()
    if st is None and r.parse_error and r.raw:
        return nonhttp, f"{what}: answered with no HTTP/1 status line (HTTP/0.9?): {r.raw[:20]!r}"
    if st is None:
        if r.closed:
            return close, f"{what}: closed without a response"
        return FAIL, f"{what}: no response and the connection stayed open"
    if st in ok:
        if must_close and len(r.finals) > 1:
            return FAIL, f"{desc(r)} but a later request on the connection was answered (MUST close)"
        if must_close and not r.closed:
            return FAIL, f"{desc(r)} but the connection stayed open (MUST close)"
        return PASS, f"{what} refused: {desc(r)}" + (", closed" if r.closed else "")
    if st in warn:
        return WARN, f"{what} refused with {desc(r)} (expected {'/'.join(map(str, ok))})"
    if 400 <= st < 500:
        return WARN, f"{what} refused with {desc(r)} (expected {'/'.join(map(str, ok))})"
    if st >= 500:
        return FAIL, f"{what} answered {desc(r)}: a server error for a client error"
    return accepted, f"{what} accepted: {desc(r)}"


def accept(r, i=0, body=None, method=None, path=None, query=None, refused=WARN, why="valid request"):
    """Request i is valid: it must reach the echo upstream with these properties. A 4xx
    is judged `refused` (WARN: stricter than needed), anything else FAILs."""
    st = r.status(i)
    e = r.echo(i)
    if st is None:
        how = "the connection was closed" if r.closed else "timed out"
        return FAIL, f"{why}: no response {i + 1} ({how})"
    if e is None or not 200 <= st < 300:
        if 400 <= st < 500:
            return refused, f"{why} refused: {desc(r, i)}"
        return FAIL, f"{why}: got {desc(r, i)}, not the echo's 2xx"
    for k, want in (("body", body), ("method", method), ("path", path), ("query", query)):
        if want is not None and e.get(k) != want:
            return FAIL, f"the upstream saw {k} {e.get(k)!r}, not {want!r}"
    return PASS, f"{st}, upstream saw {e.get('method')} {e.get('path')} body {short(e.get('body'))}"


def short(s, n=24):
    s = repr(s)
    return s if len(s) <= n else s[: n - 3] + "..."


def body_error(r, bad=(), what="malformed chunked body"):
    """The request head was fine, its body framing is not. The server may already have
    forwarded the head (a proxy streams bodies), so 400, another 4xx or closing without
    a response all pass; a 5xx warns (it blames the upstream); a 2xx FAILs (a broken
    message was handled as complete); the connection must be closed after, since the
    next message cannot be found (RFC 9112 §6.3, §8)."""
    if (s := smuggled(r, *bad)):
        return FAIL, s
    st = r.status()
    if st is None:
        if r.closed:
            return PASS, f"{what}: closed without a response"
        return FAIL, f"{what}: no response and the connection stayed open (timed out)"
    if len(r.finals) > 1:
        return FAIL, f"{what}: {desc(r)} then more responses on the same connection"
    if 200 <= st < 400:
        e = r.echo()
        seen = f" (upstream saw body {short(e.get('body'))})" if e else ""
        return FAIL, f"{what} accepted: {desc(r)}{seen}"
    if not r.closed:
        return FAIL, f"{what}: {desc(r)} but the connection stayed open"
    if st >= 500:
        return WARN, f"{what}: {desc(r)}, closed (a 4xx would be right)"
    return PASS, f"{what}: {desc(r)}, closed"


def framing_ok(r, first_body, second="/second", what="request"):
    """Request 1 (body `first_body`) and a pipelined GET `second` are both answered, in
    order: the framing of request 1 was understood exactly."""
    v, why = accept(r, 0, body=first_body, why=what)
    if v != PASS:
        return v, why
    e = r.echo(1)
    if e is None:
        if r.status(1) is None:
            return WARN, f"{why}; the pipelined GET {second} was not answered"
        return FAIL, f"{why}; then {desc(r, 1)} for the pipelined GET {second} (framing off)"
    if e.get("path") != second or e.get("method") != "GET":
        return FAIL, f"second response answered {e.get('method')} {e.get('path')}, not GET {second}"
    return PASS, f"{why}; then GET {second} answered"


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------

CASES = []


class Case:
    def __init__(self, id, group, rfc, fn, want, timeout, linger, methods, stop):
        self.id, self.group, self.rfc, self.fn = id, group, rfc, fn
        self.want, self.timeout, self.linger = want, timeout, linger
        self.methods, self.stop = methods or [], stop


def case(id, group, rfc, want=1, timeout=None, linger=None, methods=None, stop=None):
    def deco(fn):
        assert all(c.id != id for c in CASES), id
        CASES.append(Case(id, group, rfc, fn, want, timeout, linger, methods, stop))
        return fn

    return deco


SMUG, LINE, HDR, BODY = "smuggling", "request-line", "headers", "bodies-misc"

# ---- Smuggling and message framing (RFC 9112 §6, §7) ---------------------------------


def cl_te_expect(r):
    # TE overrides CL; the server MAY reject the request or process it by TE alone, and
    # MUST close the connection after responding either way (RFC 9112 §6.1). A forwarding
    # intermediary MUST remove the received Content-Length first (§6.3 item 3).
    if (s := smuggled(r, "/smuggled")):
        return FAIL, s
    st = r.status()
    if st == 400:
        if len(r.finals) > 1:
            return FAIL, "400 but a later request on the connection was answered"
        if not r.closed:
            return FAIL, "400 but the connection stayed open (MUST close)"
        return PASS, "refused: 400, closed"
    e = r.echo()
    if e is None:
        if st is None and r.closed:
            return WARN, "closed without a response (400 expected)"
        return FAIL, f"got {desc(r)}"
    if e.get("body") != "hello":
        return FAIL, f"framed by Content-Length: upstream saw body {short(e.get('body'))}, not 'hello'"
    if e.get("headers", {}).get("content-length") == "4":
        return FAIL, "the received Content-Length: 4 was forwarded with the chunked body"
    if len(r.finals) > 1:
        return FAIL, f"processed by TE but then answered {desc(r, 1)} on the same connection (MUST close)"
    if not r.closed:
        return FAIL, "processed by TE (body 'hello') but the connection stayed open (MUST close)"
    return PASS, "processed by Transfer-Encoding (body 'hello'), then closed"


@case("smug-cl-te", SMUG, "RFC 9112 §6.1, §6.3", want=2)
def _(c):
    # Content-Length then Transfer-Encoding: chunked. By CL (4) the body is "5\r\nh" and
    # "ello..." is garbage; by TE the body is "hello" and GET /smuggled is a second request,
    # which must not be answered since the server MUST close after such a request.
    return (
        c.req("POST /cl-te HTTP/1.1", "Content-Length: 4", "Transfer-Encoding: chunked", body=chunked("hello"))
        + c.get("/smuggled")
    ), cl_te_expect


@case("smug-te-cl", SMUG, "RFC 9112 §6.1, §6.3", want=2)
def _(c):
    # The same with Transfer-Encoding first: the order of the fields must not matter.
    return (
        c.req("POST /te-cl HTTP/1.1", "Transfer-Encoding: chunked", "Content-Length: 4", body=chunked("hello"))
        + c.get("/smuggled")
    ), cl_te_expect


@case("smug-cl-te-zero", SMUG, "RFC 9112 §6.1, §6.3", want=2)
def _(c):
    # Classic TE.CL probe: CL covers the whole chunked body plus a smuggled request; by TE
    # the body ends at the last chunk and GET /smuggled follows. Either way the server MUST
    # close after responding, so /smuggled is never answered.
    tail = c.get("/smuggled")
    body = chunked("hello") + tail
    return (
        c.req("POST /cl-te-zero HTTP/1.1", f"Content-Length: {len(body)}", "Transfer-Encoding: chunked", body=body)
    ), cl_te_expect


def cl_invalid(c, value, path):
    return c.req(f"POST {path} HTTP/1.1", f"Content-Length: {value}", body="hello") + c.get("/second")


def cl_invalid_expect(r):
    # Invalid Content-Length without TE: unrecoverable framing error; the server MUST
    # respond 400 and then close (RFC 9112 §6.3 item 5).
    return reject(r, ok=(400,), must_close=True, bad=("/second",), what="invalid Content-Length")


@case("smug-cl-dup-diff", SMUG, "RFC 9112 §6.3 (5)", want=2)
def _(c):
    # Two Content-Length lines with different values: invalid, 400 and close.
    return (
        c.req("POST /dup HTTP/1.1", "Content-Length: 5", "Content-Length: 6", body="hello!") + c.get("/second")
    ), cl_invalid_expect


@case("smug-cl-list-diff", SMUG, "RFC 9112 §6.3 (5)", want=2)
def _(c):
    # A list of different values "5, 6": invalid, 400 and close.
    return (c.req("POST /list HTTP/1.1", "Content-Length: 5, 6", body="hello!") + c.get("/second")), cl_invalid_expect


def cl_same_expect(r):
    # A list whose values are all the same valid value MAY be processed with that value
    # (RFC 9112 §6.3 item 5); rejecting it with 400 (and closing) is also right.
    if r.status() == 400:
        return reject(r, must_close=True, bad=("/second",), what="repeated Content-Length")
    return framing_ok(r, "hello", what="repeated identical Content-Length")


@case("smug-cl-list-same", SMUG, "RFC 9112 §6.3 (5)", want=2)
def _(c):
    # "Content-Length: 5, 5": either 400 or processed as 5.
    return (c.req("POST /list-same HTTP/1.1", "Content-Length: 5, 5", body="hello") + c.get("/second")), cl_same_expect


@case("smug-cl-dup-same", SMUG, "RFC 9112 §6.3 (5)", want=2)
def _(c):
    # Two identical "Content-Length: 5" lines (a list of the same value): 400 or as 5.
    return (
        c.req("POST /dup-same HTTP/1.1", "Content-Length: 5", "Content-Length: 5", body="hello") + c.get("/second")
    ), cl_same_expect


# Content-Length = 1*DIGIT (RFC 9110 §8.6): any other value is invalid, and an invalid
# Content-Length is an unrecoverable error: 400 and close (RFC 9112 §6.3 item 5). A lenient
# parse ("+5" as 5) is how two parsers disagree on where a body ends.
for _id, _value in [
    ("smug-cl-negative", "-5"),
    ("smug-cl-plus", "+5"),
    ("smug-cl-hex", "0x5"),
    ("smug-cl-decimal", "5.0"),
    ("smug-cl-empty", ""),
    ("smug-cl-inner-space", "5 5"),
    ("smug-cl-letters", "5abc"),
]:

    def _make(value, path):
        return lambda c: (cl_invalid(c, value, path), cl_invalid_expect)

    case(_id, SMUG, "RFC 9110 §8.6, RFC 9112 §6.3 (5)", want=2)(_make(_value, "/" + _id))


@case("smug-cl-overflow", SMUG, "RFC 9110 §8.6, RFC 9112 §6.3 (5)", want=2)
def _(c):
    # A recipient MUST anticipate large numerals and prevent integer overflow or precision
    # loss (RFC 9110 §8.6): 99999999999999999999 must not wrap to a small length. 400 (an
    # unusable length) or 413 (too large) with a close are both right.
    def expect(r):
        return reject(r, ok=(400, 413), must_close=True, bad=("/second",), what="overflowing Content-Length")

    return cl_invalid(c, "99999999999999999999", "/cl-overflow"), expect


def cl_valid(c, value, path):
    return c.req(f"POST {path} HTTP/1.1", f"Content-Length: {value}", body="hello") + c.get("/second")


def cl_valid_expect(r):
    # The value is valid (OWS around a field value is not part of it, RFC 9110 §5.5;
    # leading zeros are DIGITs): body "hello", then the pipelined GET. A 400 is stricter
    # than the RFC (WARN).
    return framing_ok(r, "hello", what="valid Content-Length")


for _id, _value in [
    ("smug-cl-leading-zeros", "005"),
    ("smug-cl-ows-trailing", "5 "),
    ("smug-cl-ows-tab", "\t5\t"),
    ("smug-cl-ows-leading", "   5"),
]:

    def _make(value, path):
        return lambda c: (cl_valid(c, value, path), cl_valid_expect)

    case(_id, SMUG, "RFC 9110 §5.5, §8.6", want=2)(_make(_value, "/" + _id))


@case("smug-cl-short-body", SMUG, "RFC 9112 §6.3 (6), §8")
def _(c):
    # CL 10 but only 5 octets, then the client half-closes: the message is incomplete and
    # the recipient MUST consider it so and close (RFC 9112 §6.3 item 6); a server MAY send
    # an error first (§8). Forwarding it as a complete 5-octet request is a FAIL.
    def expect(r):
        e = r.echo()
        st = r.status()
        if e is not None:
            cl = e.get("headers", {}).get("content-length")
            if cl == "5" or (e.get("bodyLength") == 5 and cl != "10"):
                return FAIL, "the truncated body was forwarded as a complete 5-octet message"
            return WARN, f"{desc(r)}: upstream answered a truncated body (CL {cl}, saw {e.get('bodyLength')} octets)"
        if st is None:
            if r.closed:
                return PASS, "incomplete request: closed without a response"
            return WARN, "incomplete request: no response, connection still open at the timeout"
        if 200 <= st < 300:
            return FAIL, f"incomplete request answered {desc(r)}"
        return PASS, f"incomplete request: {desc(r)}" + (", closed" if r.closed else "")

    return [
        Part(c.req("POST /short HTTP/1.1", "Content-Length: 10", body="hello")),
        Part(b"", at=0.2, shut_wr=True),
    ], expect


@case("smug-cl-body-has-request", SMUG, "RFC 9112 §6.3 (6)", want=2)
def _(c):
    # The content is exactly Content-Length octets, whatever they look like: a request
    # inside the body is body, not a request (GET /smuggled must never be answered); the
    # GET /second after it is the next request.
    inner = c.get("/smuggled")

    def expect(r):
        if (s := smuggled(r, "/smuggled")):
            return FAIL, s
        return framing_ok(r, inner.decode(), what="body that looks like a request")

    return c.post("/carrier", inner) + c.get("/second"), expect


@case("smug-pipeline-2get", SMUG, "RFC 9112 §9.3.2", want=2)
def _(c):
    # Pipelined requests: the server MUST send the responses in the order the requests
    # were received.
    def expect(r):
        p = r.echo_paths()
        if p[:2] == ["/one", "/two"]:
            return PASS, "both answered in order"
        if p[:1] == ["/one"] and r.status(1) is None:
            return WARN, "only the first pipelined request was answered"
        return FAIL, f"answered {p} (statuses {r.statuses}), not /one then /two"

    return c.get("/one") + c.get("/two"), expect


@case("smug-pipeline-mixed", SMUG, "RFC 9112 §6.3, §9.3.2", want=3, methods=["POST", "HEAD", "GET"])
def _(c):
    # POST with a body, HEAD, GET in one write: each message is delimited by its own
    # framing, and the HEAD response has no body (RFC 9112 §6.3 item 1).
    def expect(r):
        e0, e2 = r.echo(0), r.echo(2)
        if r.status(1) is None or r.status(2) is None:
            return FAIL, f"not all three answered: statuses {r.statuses}"
        if not e0 or e0.get("body") != "abc":
            return FAIL, f"POST: {desc(r, 0)} body {short((e0 or {}).get('body'))}"
        if r.finals[1].body:
            return FAIL, "the HEAD response had a body"
        if not 200 <= r.status(1) < 300:
            return FAIL, f"HEAD answered {desc(r, 1)}"
        if not e2 or e2.get("path") != "/three":
            return FAIL, f"third response {desc(r, 2)} is not GET /three's"
        return PASS, "POST, HEAD, GET answered in order, framed right"

    return c.post("/one", "abc") + c.req("HEAD /two HTTP/1.1") + c.get("/three"), expect


def te_req(c, te, path, body=None, extra=()):
    body = chunked("hello") if body is None else body
    return c.req(f"POST {path} HTTP/1.1", f"Transfer-Encoding: {te}", *extra, body=body) + c.get("/second")


def te_not_final_expect(r):
    # chunked is not the final coding of a request: the length cannot be determined; the
    # server MUST respond 400 and then close (RFC 9112 §6.3 item 4). 501 (unknown coding,
    # RFC 9112 §6.1 SHOULD) with a close is safe but not what §6.3 asks (WARN).
    if r.status() == 501 and r.closed and len(r.finals) == 1:
        return WARN, "501 (unknown coding) and closed; §6.3 asks for 400"
    return reject(r, ok=(400,), must_close=True, bad=("/second",), what="chunked not the final coding")


@case("smug-te-xchunked", SMUG, "RFC 9112 §6.3 (4)", want=2)
def _(c):
    # "xchunked" is not "chunked": no chunked coding at all, so 400 and close.
    return te_req(c, "xchunked", "/te-xchunked"), te_not_final_expect


@case("smug-te-gzip", SMUG, "RFC 9112 §6.1, §6.3 (4)", want=2)
def _(c):
    # "gzip" alone: chunked is not the final coding of a request: 400 and close.
    return te_req(c, "gzip", "/te-gzip"), te_not_final_expect


@case("smug-te-identity", SMUG, "RFC 9112 §6.3 (4), §7", want=2)
def _(c):
    # "identity" is no transfer coding (removed from the registry); chunked is not final.
    return te_req(c, "identity", "/te-identity"), te_not_final_expect


@case("smug-te-two-fields", SMUG, "RFC 9110 §5.3, RFC 9112 §6.3 (4)", want=2)
def _(c):
    # Two Transfer-Encoding lines combine into "chunked, identity" (RFC 9110 §5.3): chunked
    # is then not final: 400 and close. A parser reading only the first line is smuggleable.
    return te_req(c, "chunked", "/te-two", extra=("Transfer-Encoding: identity",)), te_not_final_expect


@case("smug-te-vtab", SMUG, "RFC 9110 §5.5, RFC 9112 §6.3 (4)", want=2)
def _(c):
    # A vertical tab is not OWS: "\x0bchunked" is not "chunked" (and a CTL in a field value
    # is invalid outside a safe context, RFC 9110 §5.5). Expect 400 (or 501) and close;
    # decoding it as chunked is lenient (WARN) as long as nothing is smuggled.
    def expect(r):
        if r.status() in (400, 501):
            return reject(r, ok=(400, 501), must_close=True, bad=("/second",), what="TE with a vertical tab")
        v, why = framing_ok(r, "hello", what="TE with a vertical tab")
        return (WARN, why + " (treated \\x0bchunked as chunked)") if v == PASS else (v, why)

    return te_req(c, "\x0bchunked", "/te-vtab"), expect


def te_valid_expect(r):
    # The field value is "chunked" as far as the RFC goes (OWS is not part of a value,
    # RFC 9110 §5.5; coding names are case-insensitive, RFC 9112 §7): decode it as chunked.
    # A 400 is stricter than needed (WARN); any other framing FAILs.
    return framing_ok(r, "hello", what="valid chunked request")


@case("smug-te-trailing-space", SMUG, "RFC 9110 §5.5, RFC 9112 §6.1", want=2)
def _(c):
    # "chunked " with a trailing space: the value is "chunked".
    return te_req(c, "chunked ", "/te-space"), te_valid_expect


@case("smug-te-case", SMUG, "RFC 9112 §7", want=2)
def _(c):
    # "Chunked": transfer-coding names are case-insensitive.
    return te_req(c, "Chunked", "/te-case"), te_valid_expect


@case("smug-te-chunked-twice", SMUG, "RFC 9112 §6.1", want=2)
def _(c):
    # "chunked, chunked": a sender MUST NOT apply chunked more than once; the message is
    # malformed. 400 (and close) is right; decoding it once is lenient (WARN); anything
    # that lets GET /second be misframed FAILs.
    def expect(r):
        if r.status() in (400, 501):
            return reject(r, ok=(400, 501), must_close=True, bad=("/second",), what="chunked applied twice")
        v, why = framing_ok(r, "hello", what="chunked applied twice")
        return (WARN, why + " (decoded once)") if v == PASS else (v, why)

    return te_req(c, "chunked, chunked", "/te-twice"), expect


@case("smug-te-gzip-chunked", SMUG, "RFC 9112 §6.1", want=2)
def _(c):
    # "gzip, chunked": framing is fine (chunked is final) but a server that does not
    # understand a coding SHOULD respond 501. 400 also passes; forwarding it (200) warns.
    def expect(r):
        if r.status() in (400, 501):
            st = r.status()
            if (s := smuggled(r, "/second")):
                return FAIL, s
            return PASS, f"unknown coding refused: {desc(r)}" + (", closed" if r.closed else "")
        v, why = framing_ok(r, "hello", what="gzip, chunked")
        return (WARN, why + " (a coding it cannot decode was accepted; 501 expected)") if v == PASS else (v, why)

    return te_req(c, "gzip, chunked", "/te-gzip-chunked"), expect


@case("smug-te-space-before-colon", SMUG, "RFC 9112 §5.1", want=2)
def _(c):
    # "Transfer-Encoding : chunked" alongside a Content-Length: whitespace between a field
    # name and the colon: the server MUST reject the request with 400.
    def expect(r):
        return reject(r, ok=(400,), bad=("/second",), what="whitespace before the colon")

    return (
        c.req("POST /te-ws HTTP/1.1", "Content-Length: 4", "Transfer-Encoding : chunked", body=chunked("hello"))
        + c.get("/second")
    ), expect


@case("smug-te-http10", SMUG, "RFC 9112 §6.1", want=2)
def _(c):
    # An HTTP/1.0 message with Transfer-Encoding MUST be treated as having faulty framing,
    # even with a Content-Length, and the connection closed after processing it. 400 or a
    # close pass; a 200 then a close warns; answering the next request FAILs.
    def expect(r):
        if (s := smuggled(r, "/second", "/smuggled")):
            return FAIL, s
        st = r.status()
        if st is None:
            return (PASS, "closed without a response") if r.closed else (FAIL, "no response, still open")
        if len(r.finals) > 1:
            return FAIL, f"{desc(r)} then answered another request (MUST close)"
        if not r.closed:
            return FAIL, f"{desc(r)} but the connection stayed open (MUST close)"
        if st == 400:
            return PASS, "400, closed"
        if 200 <= st < 300:
            return WARN, f"{desc(r)} then closed (processed a faulty-framed request)"
        return WARN, f"{desc(r)}, closed"

    return (
        c.req(
            "POST /te-http10 HTTP/1.0",
            "Connection: keep-alive",
            "Content-Length: 4",
            "Transfer-Encoding: chunked",
            body=chunked("hello"),
        )
        + c.req("GET /second HTTP/1.0", "Connection: keep-alive")
    ), expect


@case("smug-te-obs-fold", SMUG, "RFC 9112 §5.2", want=2)
def _(c):
    # "Transfer-Encoding:" followed by an obs-fold line " chunked": the server MUST either
    # reject with 400 or replace the fold with SP before interpreting the value (it is then
    # "chunked"). Both pass; any other framing FAILs.
    def expect(r):
        if r.status() == 400:
            return reject(r, ok=(400,), bad=("/second",), what="obs-fold in Transfer-Encoding")
        return framing_ok(r, "hello", what="obs-fold unfolded")

    return (
        c.req("POST /te-fold HTTP/1.1", "Transfer-Encoding:", " chunked", body=chunked("hello")) + c.get("/second")
    ), expect


def chunk_req(c, path, body):
    return c.req(f"POST {path} HTTP/1.1", "Transfer-Encoding: chunked", body=body)


@case("smug-chunk-size-overflow", SMUG, "RFC 9112 §7.1")
def _(c):
    # Recipients MUST anticipate large hex numerals and prevent overflow: a chunk size of
    # FFFFFFFFFFFFFFFF0 must be refused, not wrapped to 0xF0 or 0.
    return chunk_req(c, "/chunk-overflow", b"FFFFFFFFFFFFFFFF0\r\nhello\r\n0\r\n\r\n"), body_error


@case("smug-chunk-size-negative", SMUG, "RFC 9112 §7.1")
def _(c):
    # chunk-size = 1*HEXDIG: "-5" is invalid.
    return chunk_req(c, "/chunk-neg", b"-5\r\nhello\r\n0\r\n\r\n"), body_error


@case("smug-chunk-size-0x", SMUG, "RFC 9112 §7.1", want=2)
def _(c):
    # "0x5" is not 1*HEXDIG; read as "0" it would end the body and make "hello..." the next
    # request. Must be refused.
    return chunk_req(c, "/chunk-0x", b"0x5\r\nhello\r\n0\r\n\r\n") + c.get("/second"), (
        lambda r: body_error(r, bad=("/second",))
    )


@case("smug-chunk-missing-crlf", SMUG, "RFC 9112 §7.1")
def _(c):
    # chunk = chunk-size CRLF chunk-data CRLF: data not followed by CRLF is malformed.
    return chunk_req(c, "/chunk-nocrlf", b"5\r\nhelloXX0\r\n\r\n"), body_error


@case("smug-chunk-size-trailing-ws", SMUG, "RFC 9112 §7.1, §7.1.1")
def _(c):
    # "5 " then CRLF: only BWS before ";" of an extension is allowed after the size. A
    # 400 passes; accepting it is lenient (WARN).
    def expect(r):
        v, why = body_error(r, what="chunk size with trailing whitespace")
        if v == FAIL and (e := r.echo()) and e.get("body") == "hello" and r.status() == 200:
            return WARN, "accepted a chunk size with trailing whitespace (lenient)"
        return v, why

    return chunk_req(c, "/chunk-ws", b"5 \r\nhello\r\n0\r\n\r\n"), expect


@case("smug-chunk-bare-lf", SMUG, "RFC 9112 §2.2, §7.1")
def _(c):
    # Chunk framing with bare LF: the bare-LF leniency of §2.2 covers the start line and
    # fields only. Refusing passes; decoding it is lenient (WARN).
    def expect(r):
        v, why = body_error(r, what="chunk framing with bare LF")
        if v == FAIL and (e := r.echo()) and e.get("body") == "hello" and r.status() == 200 and len(r.finals) == 1:
            return WARN, "accepted bare LF in chunk framing (lenient)"
        return v, why

    return chunk_req(c, "/chunk-lf", b"5\nhello\n0\n\n"), expect


@case("smug-chunk-ext", SMUG, "RFC 9112 §7.1.1", want=2)
def _(c):
    # A recipient MUST ignore unrecognized chunk extensions: ";a=b" is fine.
    return chunk_req(c, "/chunk-ext", b"5;a=b\r\nhello\r\n0\r\n\r\n") + c.get("/second"), (
        lambda r: framing_ok(r, "hello", what="chunk extension")
    )


@case("smug-chunk-ext-quoted", SMUG, "RFC 9112 §7.1.1", want=2)
def _(c):
    # chunk-ext-val may be a quoted-string, with BWS around ";" and "=".
    return chunk_req(c, "/chunk-ext-q", b'5 ; a = "b c;d"\r\nhello\r\n0\r\n\r\n') + c.get("/second"), (
        lambda r: framing_ok(r, "hello", what="quoted chunk extension")
    )


@case("smug-chunk-ext-long", SMUG, "RFC 9112 §7.1.1")
def _(c):
    # A server ought to limit the total length of chunk extensions and answer 4xx over its
    # limit: 100 KB of extension. Refusing (4xx or close) passes; accepting it warns.
    def expect(r):
        st = r.status()
        if st is not None and 200 <= st < 300:
            e = r.echo() or {}
            if e.get("body") == "hello":
                return WARN, "accepted 100 KB of chunk extensions"
        return body_error(r, what="100 KB chunk extension")

    return chunk_req(c, "/chunk-ext-long", b"5;a=" + b"x" * 100_000 + b"\r\nhello\r\n0\r\n\r\n"), expect


@case("smug-chunk-trailers", SMUG, "RFC 9112 §7.1.2", want=2)
def _(c):
    # A trailer section after the last chunk is part of the message: the body is "hello"
    # and the next request starts after the trailer's empty line.
    return chunk_req(c, "/chunk-trailers", b"5\r\nhello\r\n0\r\nX-Trailer: v\r\n\r\n") + c.get("/second"), (
        lambda r: framing_ok(r, "hello", what="chunked body with trailers")
    )


@case("smug-chunk-uppercase-hex", SMUG, "RFC 9112 §7.1", want=2)
def _(c):
    # HEXDIG includes upper and lower case: sizes "A" and "a" are 10.
    return (
        chunk_req(c, "/chunk-hex", b"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n") + c.get("/second")
    ), (lambda r: framing_ok(r, "0123456789abcdefghij", what="hex chunk sizes"))


@case("smug-chunk-truncated", SMUG, "RFC 9112 §7.1, §8")
def _(c):
    # A chunked body without its last chunk, then the client half-closes: incomplete; it
    # must not be handled as complete (2xx FAILs). Closing, with or without a 4xx, passes.
    def expect(r):
        return body_error(r, what="truncated chunked body")

    return [Part(chunk_req(c, "/chunk-trunc", b"5\r\nhello\r\n")), Part(b"", at=0.2, shut_wr=True)], expect


# ---- Request line (RFC 9112 §3, RFC 9110 §9) -------------------------------------------


def bad_line(r, close=WARN, what="invalid request line", ok=(400,), accepted=FAIL, nonhttp=FAIL):
    # Recipients of an invalid request-line SHOULD respond with 400 (or a 301 with the
    # target encoded) and SHOULD NOT autocorrect and process it (RFC 9112 §3); a close
    # without a response is weaker (WARN).
    return reject(r, ok=ok, close=close, what=what, accepted=accepted, nonhttp=nonhttp)


@case("line-unknown-method", LINE, "RFC 9110 §9.1")
def _(c):
    # FOO is a valid token: an unknown method SHOULD get 501 (or 405 if known but not
    # allowed); forwarding it is fine. 400 (it is well-formed) or a 5xx other than 501 FAIL.
    def expect(r):
        st, e = r.status(), r.echo()
        if e and e.get("method") == "FOO":
            return PASS, "forwarded as FOO"
        if st in (405, 501):
            return PASS, f"{desc(r)}"
        if st is None:
            return FAIL, "no response" + (" (closed)" if r.closed else "")
        return FAIL, f"{desc(r)} for a well-formed request with an unknown method"

    return c.req("FOO /method HTTP/1.1"), expect


@case("line-lowercase-method", LINE, "RFC 9110 §9.1")
def _(c):
    # The method token is case-sensitive: "get" is not GET. Forwarded as "get" or refused
    # with 405/501 passes; handled as GET FAILs; 400 warns (it is a valid token).
    def expect(r):
        st, e = r.status(), r.echo()
        if e:
            if e.get("method") == "get":
                return PASS, "forwarded as 'get'"
            return FAIL, f"'get' reached the upstream as {e.get('method')!r}"
        if st in (405, 501):
            return PASS, desc(r)
        if st is not None and 400 <= st < 500:
            return WARN, f"{desc(r)} (a valid token; 405/501 expected)"
        return FAIL, desc(r) + (" (closed)" if r.closed else "")

    return c.req("get /lower HTTP/1.1"), expect


@case("line-method-bad-chars", LINE, "RFC 9110 §9.1, RFC 9112 §3")
def _(c):
    # method = token; "G(E)T" has delimiters: an invalid request line, 400.
    return c.req("G(E)T / HTTP/1.1"), (lambda r: bad_line(r, what="method with delimiters"))


@case("line-method-long", LINE, "RFC 9112 §3")
def _(c):
    # A method longer than any the server implements SHOULD get 501; a 100 KB method may
    # also exceed the head limit (400/414/431) or the connection be closed: all pass.
    def expect(r):
        return reject(r, ok=(400, 405, 414, 431, 501), close=PASS, what="100 KB method")

    return c.req("M" * 100_000 + " / HTTP/1.1"), expect


@case("line-missing-version", LINE, "RFC 9112 §3")
def _(c):
    # "GET / " with an empty version: invalid request line: 400 or a close. An HTTP/0.9
    # answer (a bare body) is legacy that RFC 9112 no longer defines (WARN).
    return c.req("GET / "), (lambda r: bad_line(r, close=PASS, nonhttp=WARN, what="empty HTTP version"))


@case("line-http09", LINE, "RFC 9112 §2.3, §3")
def _(c):
    # "GET /" without a version (HTTP/0.9 style): not an HTTP/1.1 request line. A 400 or a
    # close pass; an HTTP/0.9 answer (a body with no status line: legacy that RFC 9112 no
    # longer defines, and no way to signal errors) warns; a 2xx FAILs.
    def expect(r):
        return bad_line(r, close=PASS, nonhttp=WARN, what="request without a version")

    return b"GET /\r\n\r\n", expect


@case("line-http12", LINE, "RFC 9110 §2.5")
def _(c):
    # HTTP/1.2: a higher minor version SHOULD be processed as the highest minor the
    # recipient implements (1.1). 200 (answered as HTTP/1.1) or 505 pass; 400 warns.
    def expect(r):
        st = r.status()
        if st == 505:
            return PASS, "505"
        v, why = accept(r, why="HTTP/1.2 request")
        if v == PASS and r.finals[0].version != "HTTP/1.1":
            return WARN, f"{why}, answered as {r.finals[0].version}"
        return v, why

    return c.req("GET /v12 HTTP/1.2"), expect


@case("line-http20", LINE, "RFC 9110 §2.5, RFC 9112 §2.3")
def _(c):
    # "GET / HTTP/2.0" in HTTP/1 syntax: major version 2 is not this protocol. 505 is the
    # answer (RFC 9110 §15.6.6), 400 or a close pass too; handling it as HTTP/1.1 FAILs.
    return c.req("GET / HTTP/2.0"), (lambda r: reject(r, ok=(505, 400), close=PASS, what="HTTP/2.0 request line"))


@case("line-http-lowercase", LINE, "RFC 9112 §2.3")
def _(c):
    # HTTP-name is %s"HTTP", case-sensitive: "http/1.1" is invalid: 400 (a close warns).
    return c.req("GET / http/1.1"), (lambda r: bad_line(r, what="lower-case http/1.1"))


@case("line-version-two-digits", LINE, "RFC 9112 §2.3")
def _(c):
    # HTTP-version = HTTP-name "/" DIGIT "." DIGIT: "HTTP/1.10" is invalid: 400 or 505.
    # Reading it as a higher 1.x minor version is autocorrecting (a SHOULD NOT): WARN.
    return c.req("GET / HTTP/1.10"), (
        lambda r: bad_line(r, ok=(400, 505), accepted=WARN, what="version HTTP/1.10")
    )


@case("line-multiple-spaces", LINE, "RFC 9112 §3")
def _(c):
    # Components are separated by one SP, but recipients MAY parse on whitespace word
    # boundaries: 400 or 200 both pass.
    def expect(r):
        if r.status() == 400:
            return PASS, "400 (strict single-SP parsing)"
        return accept(r, path="/ms", why="request line with double spaces")

    return c.req("GET  /ms  HTTP/1.1"), expect


@case("line-tab-separators", LINE, "RFC 9112 §3")
def _(c):
    # HTAB may be treated as the SP separator (MAY), or refused: 400 or 200 pass.
    def expect(r):
        if r.status() == 400:
            return PASS, "400 (strict SP parsing)"
        return accept(r, path="/tab", why="request line with tabs")

    return c.req("GET\t/tab\tHTTP/1.1"), expect


@case("line-fragment", LINE, "RFC 9112 §3.2.1")
def _(c):
    # origin-form = absolute-path [ "?" query ]: no fragment. 400 passes; accepting it
    # (fragment dropped or kept) is lenient (WARN).
    def expect(r):
        if r.status() == 400:
            return PASS, "400"
        v, why = accept(r, why="target with a fragment")
        if v == PASS:
            return WARN, f"accepted; upstream saw path {r.echo().get('path')!r} query {r.echo().get('query')!r}"
        return v, why

    return c.req("GET /frag#section HTTP/1.1"), expect


@case("line-nul-in-target", LINE, "RFC 9112 §3, RFC 3986")
def _(c):
    # A NUL octet in the request-target: an invalid request line, 400.
    return c.req("GET /a\x00b HTTP/1.1"), (lambda r: bad_line(r, what="NUL in the target"))


@case("line-nonascii-target", LINE, "RFC 9112 §3, RFC 3986 §2")
def _(c):
    # Raw non-ASCII octets are not URI characters: invalid; a recipient SHOULD NOT
    # autocorrect and process it. 400 passes; processing it warns.
    def expect(r):
        if r.echo():
            return WARN, f"processed; upstream saw path {r.echo().get('path')!r}"
        return bad_line(r, what="non-ASCII octets in the target")

    return c.req(b"GET /caf\xc3\xa9 HTTP/1.1"), expect


@case("line-space-in-target", LINE, "RFC 9112 §3")
def _(c):
    # "GET /a b HTTP/1.1": a space inside the target makes four words: invalid, 400.
    # Reading it as target "/a b" is autocorrecting (WARN).
    def expect(r):
        if r.echo():
            return WARN, f"processed; upstream saw path {r.echo().get('path')!r}"
        return bad_line(r, what="space in the target")

    return c.req("GET /a b HTTP/1.1"), expect


@case("line-asterisk-get", LINE, "RFC 9112 §3.2.4")
def _(c):
    # asterisk-form is only for a server-wide OPTIONS: "GET *" is invalid: 400 (another
    # 4xx warns, a 2xx warns, a 5xx FAILs).
    def expect(r):
        st = r.status()
        if st is not None and 200 <= st < 300:
            return WARN, f"GET * answered {desc(r)}"
        return bad_line(r, what="GET *")

    return c.req("GET * HTTP/1.1"), expect


@case("line-options-asterisk", LINE, "RFC 9110 §9.3.7, RFC 9112 §3.2.4")
def _(c):
    # "OPTIONS *" is valid: any answer but a server error (or nothing) passes.
    def expect(r):
        st = r.status()
        if st is None:
            return WARN, "closed without a response" if r.closed else "no response"
        if st >= 500 and st != 501:
            return FAIL, f"OPTIONS * answered {desc(r)}"
        return PASS, f"OPTIONS * answered {desc(r)}"

    return c.req("OPTIONS * HTTP/1.1"), expect


@case("line-absolute-form", LINE, "RFC 9112 §3.2.2")
def _(c):
    # A server MUST accept the absolute-form; the host of the target wins over Host, and a
    # forwarded request gets a Host generated from the target, not the received one.
    def expect(r):
        v, why = accept(r, path="/abs", query="x=1", why="absolute-form target")
        if v != PASS:
            return v, why
        h = r.echo().get("headers", {})
        for name in ("host", "x-forwarded-host"):
            if "other.test" in (h.get(name) or ""):
                return FAIL, f"the upstream got {name}: {h.get(name)} (the Host field), not the target's host"
        return PASS, f"{why}; host {h.get('host')!r}"

    return (
        c.req(f"GET http://{c.host}/abs?x=1 HTTP/1.1", "Host: other.test", host=False)
    ), expect


@case("line-authority-form-get", LINE, "RFC 9112 §3.2.3")
def _(c):
    # authority-form is only used for CONNECT: "GET host:80" is invalid: 400.
    return c.req(f"GET {c.host}:80 HTTP/1.1"), (lambda r: bad_line(r, what="authority-form with GET"))


@case("line-connect", LINE, "RFC 9110 §9.3.6", methods=["CONNECT"])
def _(c):
    # CONNECT asks for a tunnel; a gateway for API routes must not open one: any 4xx/5xx
    # passes, a 2xx (a tunnel) FAILs.
    def expect(r):
        st = r.status()
        if st is None:
            return WARN, "closed without a response" if r.closed else "no response"
        if 200 <= st < 300:
            return FAIL, f"CONNECT answered {desc(r)} (a tunnel?)"
        if st >= 400:
            return PASS, f"no tunnel: {desc(r)}"
        return WARN, f"CONNECT answered {desc(r)}"

    return c.req(f"CONNECT {c.host}:443 HTTP/1.1", f"Host: {c.host}:443", host=False), expect


@case("line-long-url", LINE, "RFC 9112 §3, RFC 9110 §15.5.15")
def _(c):
    # A request-target longer than the server wishes to parse MUST get 414. 414 passes; 400
    # or 431 (refused by a head-size limit) warn; accepting a 100 KB URL FAILs.
    def expect(r):
        st = r.status()
        if st is not None and 200 <= st < 300:
            return FAIL, "accepted a 100 KB target"
        return reject(r, ok=(414,), warn=(400, 431), what="100 KB target")

    return c.req("GET /" + "a" * 100_000 + " HTTP/1.1"), expect


@case("line-leading-crlf", LINE, "RFC 9112 §2.2")
def _(c):
    # A server SHOULD ignore at least one empty line (CRLF) before the request-line: 200;
    # a 400 or a close warns (a SHOULD not followed).
    def expect(r):
        if r.status() is None and r.closed:
            return WARN, "closed without a response (SHOULD ignore one empty line)"
        return accept(r, path="/crlf", why="request after one empty line")

    return b"\r\n" + c.get("/crlf"), expect


@case("line-leading-crlf-many", LINE, "RFC 9112 §2.2")
def _(c):
    # Three empty lines first: only one need be ignored, so 400 passes as well as 200; a
    # close without a response warns (a bad message SHOULD get 400, RFC 9112 §2.2).
    def expect(r):
        if r.status() == 400:
            return PASS, "400 (ignores only one empty line)"
        if r.status() is None and r.closed:
            return WARN, "closed without a response"
        return accept(r, path="/crlf3", why="request after three empty lines")

    return b"\r\n\r\n\r\n" + c.get("/crlf3"), expect


@case("line-no-target", LINE, "RFC 9112 §3")
def _(c):
    # "GET HTTP/1.1": two words, no target: invalid, 400 or a close.
    return b"GET HTTP/1.1\r\nHost: " + b(c.host) + b"\r\n\r\n", (
        lambda r: bad_line(r, close=PASS, what="request line without a target")
    )


@case("line-target-no-slash", LINE, "RFC 9112 §3.2.1")
def _(c):
    # origin-form starts with "/": "GET x" is invalid: 400 (a 404 warns, a 2xx FAILs).
    return c.req("GET x HTTP/1.1"), (lambda r: bad_line(r, what="target not starting with /"))


@case("line-bare-lf", LINE, "RFC 9112 §2.2")
def _(c):
    # A recipient MAY recognize a single LF as a line terminator: 200 or 400 pass.
    def expect(r):
        if r.status() == 400:
            return PASS, "400 (CRLF required)"
        return accept(r, path="/lf", why="request with bare LF line ends")

    return b"GET /lf HTTP/1.1\nHost: " + b(c.host) + b"\n\n", expect


@case("line-bare-cr", LINE, "RFC 9112 §2.2", want=2)
def _(c):
    # A bare CR MUST be treated as invalid or replaced by SP: "GET /cr HTTP/1.1\rHost: x"
    # is then an invalid request line; treating CR as a line end FAILs.
    def expect(r):
        return reject(r, ok=(400,), close=WARN, bad=("/cr",), what="bare CR after the request line")

    return b"GET /cr HTTP/1.1\rHost: " + b(c.host) + b"\r\n\r\n" + c.get("/second"), expect


# ---- Header fields (RFC 9110 §5, §7; RFC 9112 §3.2, §5, §9) --------------------------


def bad_field(r, what, bad=(), close=WARN):
    # Invalid field syntax: 400 (RFC 9112 §2.2: a server SHOULD respond 400 to octets that
    # do not match the grammar; several cases are MUSTs, noted at the case).
    return reject(r, ok=(400,), close=close, bad=bad, what=what)


@case("hdr-host-missing", HDR, "RFC 9112 §3.2")
def _(c):
    # A server MUST respond 400 to an HTTP/1.1 request without a Host field.
    return c.req("GET /nohost HTTP/1.1", host=False), (lambda r: bad_field(r, "HTTP/1.1 without Host"))


@case("hdr-host-missing-http10", HDR, "RFC 9112 §3.2")
def _(c):
    # Host is only required in HTTP/1.1: an HTTP/1.0 request without it is valid (200;
    # 400 warns).
    return c.req("GET /nohost10 HTTP/1.0", host=False), (lambda r: accept(r, path="/nohost10", why="HTTP/1.0 without Host"))


@case("hdr-host-dup", HDR, "RFC 9112 §3.2")
def _(c):
    # More than one Host field line: the server MUST respond 400.
    return c.req("GET /twohosts HTTP/1.1", "Host: other.test"), (lambda r: bad_field(r, "two Host fields"))


@case("hdr-host-dup-same", HDR, "RFC 9112 §3.2")
def _(c):
    # Two identical Host lines are still "more than one Host header field line": 400.
    return c.req("GET /twohosts HTTP/1.1", f"Host: {c.host}"), (lambda r: bad_field(r, "two identical Host fields"))


@case("hdr-host-space", HDR, "RFC 9112 §3.2, RFC 3986 §3.2.2")
def _(c):
    # Host = uri-host [ ":" port ]: "bad host" is an invalid field value: 400 (MUST).
    return c.req("GET / HTTP/1.1", "Host: bad host", host=False), (lambda r: bad_field(r, "Host with a space"))


@case("hdr-host-slash", HDR, "RFC 9112 §3.2, RFC 3986 §3.2.2")
def _(c):
    # "host/evil" is no uri-host: 400 (MUST).
    return c.req("GET / HTTP/1.1", f"Host: {c.host}/evil", host=False), (lambda r: bad_field(r, "Host with a path"))


@case("hdr-host-userinfo", HDR, "RFC 9112 §3.2, RFC 9110 §4.2.4")
def _(c):
    # Host carries no userinfo: "user@host" is invalid: 400 (MUST).
    return c.req("GET / HTTP/1.1", f"Host: user@{c.host}", host=False), (lambda r: bad_field(r, "Host with userinfo"))


@case("hdr-host-bad-port", HDR, "RFC 9112 §3.2, RFC 3986 §3.2.3")
def _(c):
    # port = *DIGIT: "host:abc" is invalid: 400 (MUST).
    return c.req("GET / HTTP/1.1", f"Host: {c.host}:abc", host=False), (lambda r: bad_field(r, "Host with a bad port"))


@case("hdr-host-empty", HDR, "RFC 9112 §3.2")
def _(c):
    # An empty Host is what a client sends when the target URI has no authority; a server
    # may accept it (origin-form target) or refuse it (it needs a host): 200 and 400 pass.
    def expect(r):
        if r.status() == 400:
            return PASS, f"{desc(r)}"
        return accept(r, path="/emptyhost", why="empty Host")

    return c.req("GET /emptyhost HTTP/1.1", "Host:", host=False), expect


@case("hdr-ws-before-colon", HDR, "RFC 9112 §5.1")
def _(c):
    # A server MUST reject with 400 a request with whitespace between a field name and
    # the colon.
    return c.req("GET / HTTP/1.1", "X-Foo : bar"), (lambda r: bad_field(r, "space before the colon"))


@case("hdr-tab-before-colon", HDR, "RFC 9112 §5.1")
def _(c):
    # The same with HTAB.
    return c.req("GET / HTTP/1.1", "X-Foo\t: bar"), (lambda r: bad_field(r, "tab before the colon"))


@case("hdr-no-colon", HDR, "RFC 9112 §5")
def _(c):
    # field-line = field-name ":" OWS field-value OWS: a line without a colon is invalid.
    return c.req("GET / HTTP/1.1", "X-Foo bar"), (lambda r: bad_field(r, "field line without a colon"))


@case("hdr-no-colon-bare", HDR, "RFC 9112 §5, §2.2")
def _(c):
    # A line that is only a name ("X-No-Colon"), no colon: invalid; 400. Accepting it
    # (dropped, or as an empty field) is lenient (WARN); the upstream must not see
    # anything else.
    def expect(r):
        if (e := r.echo()):
            v = e.get("headers", {}).get("x-no-colon")
            return WARN, "accepted, " + ("the line dropped" if v is None else f"forwarded as x-no-colon: {v!r}")
        return bad_field(r, "field line without a colon")

    return c.req("GET / HTTP/1.1", "X-No-Colon"), expect


@case("hdr-empty-name", HDR, "RFC 9110 §5.1, RFC 9112 §5")
def _(c):
    # field-name = token (1*tchar): ": x" has an empty name: invalid, 400. Dropping the
    # line and going on warns.
    def expect(r):
        if r.echo():
            return WARN, "accepted (the empty-named field dropped or forwarded)"
        return bad_field(r, "empty field name")

    return c.req("GET / HTTP/1.1", ": x"), expect


@case("hdr-nonascii-name", HDR, "RFC 9110 §5.1")
def _(c):
    # A field name is a token: non-ASCII octets make it invalid: 400. Accepting it with
    # the field dropped warns; forwarding the invalid name FAILs.
    def expect(r):
        e = r.echo()
        if e:
            names = list(e.get("headers", {}))
            if any(not n.isascii() for n in names):
                return FAIL, "an invalid field name was forwarded"
            return WARN, "accepted, the invalid field dropped"
        return bad_field(r, "non-ASCII field name")

    return c.req("GET / HTTP/1.1", b"X-F\xc3\xa9: x"), expect


def value_expect(what, ok_values):
    # CR, LF and NUL in a field value are invalid: a recipient MUST either reject the
    # message or replace each with SP before processing or forwarding it (RFC 9110 §5.5).
    def expect(r):
        e = r.echo()
        if e:
            v = e.get("headers", {}).get("x-foo")
            if v in ok_values:
                return PASS, f"accepted with the value sanitized: {v!r}"
            if v is None:
                return WARN, "accepted, the field dropped"
            return FAIL, f"forwarded {what} unchanged: {v!r}"
        return bad_field(r, what)

    return expect


@case("hdr-nul-value", HDR, "RFC 9110 §5.5")
def _(c):
    return c.req("GET /v HTTP/1.1", "X-Foo: a\x00b"), value_expect("NUL in a value", ("a b",))


@case("hdr-bare-cr-value", HDR, "RFC 9110 §5.5, RFC 9112 §2.2")
def _(c):
    # A bare CR inside a value (also: a bare CR is invalid or SP, RFC 9112 §2.2).
    return c.req("GET /v HTTP/1.1", "X-Foo: a\rb"), value_expect("bare CR in a value", ("a b",))


@case("hdr-ctl-value", HDR, "RFC 9110 §5.5")
def _(c):
    # Other CTLs (\x01) are invalid too, though a recipient MAY keep them in a safe
    # context: 400 passes, forwarding warns.
    def expect(r):
        e = r.echo()
        if e:
            return WARN, f"accepted, upstream saw x-foo {e.get('headers', {}).get('x-foo')!r}"
        return bad_field(r, "control character in a value")

    return c.req("GET /v HTTP/1.1", "X-Foo: a\x01b"), expect


@case("hdr-obs-fold", HDR, "RFC 9112 §5.2")
def _(c):
    # obs-fold in a request: the server MUST reject with 400 or replace each fold with SP.
    def expect(r):
        if r.status() == 400:
            return PASS, "400"
        e = r.echo()
        if e:
            v = e.get("headers", {}).get("x-foo") or ""
            if "\r" in v or "\n" in v:
                return FAIL, f"forwarded the fold: {v!r}"
            if re.fullmatch(r"a +b", v):
                return PASS, f"unfolded to {v!r}"
            return FAIL, f"upstream saw x-foo {v!r}, neither refused nor unfolded"
        return bad_field(r, "obs-fold")

    return c.req("GET /fold HTTP/1.1", "X-Foo: a", " b"), expect


@case("hdr-obs-fold-smuggle", HDR, "RFC 9112 §5.2", want=2)
def _(c):
    # A folded " Content-Length: 20" belongs to the previous field's value: taking it as a
    # Content-Length would swallow GET /second as a body.
    def expect(r):
        if r.status() == 400:
            return reject(r, ok=(400,), what="obs-fold hiding a Content-Length")
        return framing_ok(r, "", what="obs-fold hiding a Content-Length")

    return c.req("GET /fold2 HTTP/1.1", "X-Foo: a", " Content-Length: 20") + c.get("/second"), expect


@case("hdr-ws-first-line", HDR, "RFC 9112 §2.2")
def _(c):
    # Whitespace between the start line and the first field: the recipient MUST reject
    # the message or ignore each whitespace-preceded line. 400 or the line ignored pass;
    # the field reaching the upstream FAILs.
    def expect(r):
        if r.status() == 400:
            return PASS, "400"
        e = r.echo()
        if e and "x-ignored" in e.get("headers", {}):
            return FAIL, "the whitespace-preceded line was processed as a field"
        return accept(r, path="/wsfirst", why="whitespace-preceded first line")

    return b"GET /wsfirst HTTP/1.1\r\n X-Ignored: 1\r\nHost: " + b(c.host) + b"\r\n\r\n", expect


@case("hdr-value-ows", HDR, "RFC 9110 §5.5")
def _(c):
    # A field value does not include leading or trailing whitespace: "  a b \t" is "a b".
    def expect(r):
        v, why = accept(r, path="/ows", why="value with OWS")
        if v != PASS:
            return v, why
        got = r.echo().get("headers", {}).get("x-foo")
        if got == "a b":
            return PASS, "upstream saw 'a b'"
        return WARN, f"upstream saw x-foo {got!r}"

    return c.req("GET /ows HTTP/1.1", "X-Foo:   a b \t"), expect


@case("hdr-underscore-name", HDR, "RFC 9110 §5.1")
def _(c):
    # "_" is a tchar: X_Foo is a valid field name and should reach the upstream (dropping
    # it warns: some servers do, to avoid X-Foo/X_Foo confusion in CGI-style environments).
    def expect(r):
        v, why = accept(r, path="/us", why="field name with an underscore")
        if v == PASS and "x_foo" not in r.echo().get("headers", {}):
            return WARN, "accepted but X_Foo was dropped"
        return v, why

    return c.req("GET /us HTTP/1.1", "X_Foo: 1"), expect


def too_large(r, what, ok=(431, 400)):
    # A server that receives a field line, value or set of fields larger than it wishes
    # to process MUST respond with a 4xx (RFC 9110 §5.4); 431 is the code for it
    # (RFC 6585 §5). Accepting an unbounded head FAILs.
    st = r.status()
    if st is not None and 200 <= st < 300:
        return FAIL, f"accepted {what}"
    return reject(r, ok=ok, what=what)


@case("hdr-long-value", HDR, "RFC 9110 §5.4, RFC 6585 §5")
def _(c):
    return c.req("GET / HTTP/1.1", "X-Long: " + "v" * 100_000), (lambda r: too_large(r, "100 KB field value"))


@case("hdr-long-name", HDR, "RFC 9110 §5.4, RFC 6585 §5")
def _(c):
    return c.req("GET / HTTP/1.1", "X-" + "n" * 100_000 + ": v"), (lambda r: too_large(r, "100 KB field name"))


@case("hdr-many", HDR, "RFC 9110 §5.4, RFC 6585 §5")
def _(c):
    return c.req("GET / HTTP/1.1", *[f"X-H{i}: v" for i in range(10_000)]), (
        lambda r: too_large(r, "10,000 fields")
    )


def padded_head(c, path, total):
    """A GET whose head is exactly `total` octets: 1 KiB lines X-Pad-NNN: vvv."""
    base = c.req(f"GET {path} HTTP/1.1")
    fields, size = [], len(base)
    i = 0
    while size < total:
        room = total - size - len(f"X-Pad-{i:03d}: ") - 2
        n = min(1024 - len(f"X-Pad-{i:03d}: ") - 2, room)
        if n < 1:  # too little room for one more line: lengthen the last
            fields[-1] += "v" * (total - size)
            size = total
            break
        fields.append(f"X-Pad-{i:03d}: " + "v" * n)
        size += len(fields[-1]) + 2
        i += 1
    out = c.req(f"GET {path} HTTP/1.1", *fields)
    assert len(out) == total, (len(out), total)
    return out


@case("hdr-head-under-limit", HDR, "RFC 9110 §5.4")
def _(c):
    # A head 1 KiB under the server's limit (--head-limit, the gateway's 64 KiB): served.
    # Fields in 1 KiB lines (fewer than 100 of them).
    return padded_head(c, "/under", c.head_limit - 1024), (
        lambda r: accept(r, path="/under", refused=FAIL, why=f"{c.head_limit - 1024}-octet head")
    )


@case("hdr-head-over-limit", HDR, "RFC 9110 §5.4, RFC 6585 §5")
def _(c):
    # A head 1 KiB over the limit: 431 (the gateway's contract; 400 warns).
    return padded_head(c, "/over", c.head_limit + 1024), (
        lambda r: too_large(r, f"{c.head_limit + 1024}-octet head", ok=(431,))
    )


@case("hdr-expect-100", HDR, "RFC 9110 §10.1.1, §15.2.1")
def _(c):
    # Expect: 100-continue with content to follow: the server either sends 100 (Continue)
    # and then the final response after the content, or answers finally at once; the
    # client sends the content on 100 or after 1 s. [100, 200] and [200] both pass, with
    # the upstream seeing the whole body.
    def expect(r):
        v, why = accept(r, body="hello", why="Expect: 100-continue")
        if v != PASS:
            return v, why
        s = r.statuses
        if s[:1] == [100]:
            late = "" if r.interim_before else " (the 100 came after the client gave up waiting)"
            return PASS, f"100 then {r.status()}{late}; {why}"
        if 100 in s:
            return FAIL, f"statuses {s}: a 100 after the final response"
        return PASS, f"no 100 (client sent the body after 1 s); {why}"

    return [
        Part(c.req("POST /expect HTTP/1.1", "Content-Length: 5", "Expect: 100-continue")),
        Part(b"hello", at=1.0, on_interim=True),
    ], expect


@case("hdr-expect-100-no-body", HDR, "RFC 9110 §10.1.1")
def _(c):
    # 100-continue with Content-Length: 0: the server MAY omit the 100 when the framing
    # says there is no content: 200, with or without a 100 first.
    def expect(r):
        v, why = accept(r, body="", why="Expect: 100-continue, no content")
        if v == PASS and 100 in r.statuses:
            return PASS, why + " (sent a 100 anyway)"
        return v, why

    return c.req("POST /expect0 HTTP/1.1", "Content-Length: 0", "Expect: 100-continue"), expect


@case("hdr-expect-unknown", HDR, "RFC 9110 §10.1.1")
def _(c):
    # An expectation other than 100-continue MAY get 417: 417 and 200 pass.
    def expect(r):
        if r.status() == 417:
            return PASS, "417"
        return accept(r, body="hello", why="Expect: something-else")

    return c.req("POST /expect-x HTTP/1.1", "Content-Length: 5", "Expect: something-else", body="hello"), expect


@case("hdr-connection-close", HDR, "RFC 9112 §9.6", want=2)
def _(c):
    # A server that receives "close" MUST close the connection after the final response to
    # that request and MUST NOT process further requests received on it.
    def expect(r):
        v, why = accept(r, path="/close", why="Connection: close")
        if v != PASS:
            return v, why
        if len(r.finals) > 1:
            return FAIL, f"answered a request sent after Connection: close ({desc(r, 1)})"
        if not r.closed:
            return FAIL, "the connection stayed open after Connection: close"
        if "close" not in (r.finals[0].header("connection") or "").lower():
            return PASS, "closed (the response did not say Connection: close, a SHOULD)"
        return PASS, "answered, Connection: close, closed"

    return c.get("/close", "Connection: close") + c.get("/after-close"), expect


@case("hdr-http10-close", HDR, "RFC 9112 §9.3")
def _(c):
    # HTTP/1.0 without the keep-alive option: the connection closes after the response.
    def expect(r):
        v, why = accept(r, path="/http10", why="HTTP/1.0 request")
        if v != PASS:
            return v, why
        if not r.closed:
            return FAIL, "an HTTP/1.0 request without keep-alive left the connection open"
        return PASS, "answered, closed"

    return c.req("GET /http10 HTTP/1.0"), expect


@case("hdr-http10-keepalive", HDR, "RFC 9112 §9.3, RFC 9112 Appendix C.2.2", want=2)
def _(c):
    # HTTP/1.0 with "Connection: keep-alive": the server may honour it (then it must say
    # so in its response: Connection: keep-alive, since a 1.0 client assumes a close
    # otherwise) or close. Both pass; keeping it open silently warns.
    def expect(r):
        v, why = accept(r, path="/ka1", why="HTTP/1.0 keep-alive request")
        if v != PASS:
            return v, why
        if len(r.finals) == 1:
            if r.closed:
                return PASS, "answered, then closed (keep-alive not honoured)"
            return FAIL, "kept open but the second request was not answered"
        e = r.echo(1)
        if not e or e.get("path") != "/ka2":
            return FAIL, f"second response {desc(r, 1)} is not /ka2's"
        if "keep-alive" not in (r.finals[0].header("connection") or "").lower():
            return WARN, "kept alive without Connection: keep-alive in the response"
        return PASS, "kept alive (Connection: keep-alive), second request answered"

    return (
        c.req("GET /ka1 HTTP/1.0", "Connection: keep-alive") + c.req("GET /ka2 HTTP/1.0", "Connection: keep-alive")
    ), expect


@case("hdr-connection-option", HDR, "RFC 9110 §7.6.1")
def _(c):
    # Intermediaries MUST remove the fields named as connection options (X-Foo here) and
    # the Connection field itself before forwarding.
    def expect(r):
        v, why = accept(r, path="/hop", why="Connection: x-foo")
        if v != PASS:
            return v, why
        h = r.echo().get("headers", {})
        if "x-foo" in h:
            return FAIL, f"X-Foo (named in Connection) was forwarded: {h['x-foo']!r}"
        if "x-foo" in (h.get("connection") or "").lower():
            return FAIL, f"the Connection field was forwarded: {h['connection']!r}"
        if h.get("x-bar") != "keep":
            return FAIL, "X-Bar (an end-to-end field) was not forwarded"
        return PASS, "X-Foo removed, X-Bar forwarded"

    return c.get("/hop", "Connection: x-foo", "X-Foo: secret", "X-Bar: keep"), expect


@case("hdr-hop-by-hop-implicit", HDR, "RFC 9110 §7.6.1")
def _(c):
    # Intermediaries SHOULD remove fields known to be hop-by-hop even when not listed in
    # Connection: Proxy-Connection, Keep-Alive (forwarding them warns).
    def expect(r):
        v, why = accept(r, path="/hop2", why="hop-by-hop fields")
        if v != PASS:
            return v, why
        h = r.echo().get("headers", {})
        left = [n for n in ("proxy-connection", "keep-alive") if n in h]
        if left:
            return WARN, f"forwarded {', '.join(left)}"
        return PASS, "Proxy-Connection and Keep-Alive removed"

    return c.get("/hop2", "Proxy-Connection: keep-alive", "Keep-Alive: timeout=5"), expect


@case("hdr-te-trailers", HDR, "RFC 9110 §10.1.4, §7.6.1")
def _(c):
    # "TE: trailers" with "Connection: TE" (a sender of TE MUST list it in Connection):
    # an ordinary request; the received TE must not be forwarded as is beyond "trailers"
    # (an intermediary may send its own TE: trailers upstream).
    def expect(r):
        v, why = accept(r, path="/te", why="TE: trailers")
        if v != PASS:
            return v, why
        te = r.echo().get("headers", {}).get("te")
        if te not in (None, "trailers"):
            return FAIL, f"upstream saw te {te!r}"
        return PASS, why + (f"; upstream te {te!r}" if te else "")

    return c.get("/te", "TE: trailers", "Connection: TE"), expect


@case("hdr-te-gzip", HDR, "RFC 9110 §10.1.4, §7.6.1")
def _(c):
    # "TE: gzip" listed in Connection: hop-by-hop; it must not reach the upstream.
    def expect(r):
        v, why = accept(r, path="/te-gzip", why="TE: gzip")
        if v != PASS:
            return v, why
        te = r.echo().get("headers", {}).get("te")
        if te and "gzip" in te:
            return FAIL, f"the connection-specific TE {te!r} was forwarded"
        return PASS, why

    return c.get("/te-gzip", "TE: gzip", "Connection: TE"), expect


@case("hdr-upgrade-h2c", HDR, "RFC 9110 §7.8, RFC 9113 §3.1", methods=["GET"])
def _(c):
    # Upgrade: h2c: a server MAY ignore Upgrade and answer over HTTP/1.1 (200), or switch
    # (101, which MUST carry an Upgrade field naming the protocol). Both pass.
    def expect(r):
        st = r.status()
        if st == 101:
            up = (r.finals[0].header("upgrade") or "").lower()
            if up != "h2c":
                return FAIL, f"101 with Upgrade {up!r}, not h2c"
            return PASS, "101 to h2c"
        return accept(r, path="/h2c", refused=FAIL, why="Upgrade: h2c request")

    return (
        c.get(
            "/h2c",
            "Connection: Upgrade, HTTP2-Settings",
            "Upgrade: h2c",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        )
    ), expect


# ---- Bodies and miscellany ------------------------------------------------------------


@case("body-get-with-cl", BODY, "RFC 9110 §9.3.1, RFC 9112 §6.3", want=2)
def _(c):
    # Content in a GET has no defined semantics, but its framing is the same: the 5 octets
    # are the body (forwarded or dropped), and GET /second is the next request.
    def expect(r):
        e = r.echo()
        if e and e.get("body") not in ("hello", ""):
            return FAIL, f"upstream saw body {short(e.get('body'))}"
        if r.status() == 400:
            return reject(r, what="GET with a body")
        return framing_ok(r, e.get("body") if e else "hello", what="GET with a body")

    return c.req("GET /getbody HTTP/1.1", "Content-Length: 5", body="hello") + c.get("/second"), expect


@case("body-head", BODY, "RFC 9110 §9.3.2, RFC 9112 §6.3 (1)", want=2, methods=["HEAD", "GET"])
def _(c):
    # A response to HEAD ends at its empty line: no body (a body would be read as the start
    # of the next response; the pipelined GET must come out intact).
    def expect(r):
        st = r.status()
        if st is None or not 200 <= st < 300:
            return FAIL, f"HEAD answered {desc(r)}"
        if r.parse_error:
            return FAIL, f"the HEAD response carried a body? {r.parse_error}"
        e = r.echo(1)
        if not e or e.get("path") != "/second":
            return FAIL, f"the GET after HEAD got {desc(r, 1)}"
        return PASS, f"HEAD {st} without a body, then GET answered"

    return c.req("HEAD /head HTTP/1.1") + c.get("/second"), expect


@case("body-options", BODY, "RFC 9110 §9.3.7")
def _(c):
    # OPTIONS on a path: served (the route allows OPTIONS).
    return c.req("OPTIONS /opts HTTP/1.1"), (
        lambda r: accept(r, method="OPTIONS", path="/opts", why="OPTIONS request")
    )


@case("body-post-cl0", BODY, "RFC 9112 §6.3 (6)", want=2)
def _(c):
    # Content-Length: 0: an empty body, and the next request follows at once.
    return c.req("POST /cl0 HTTP/1.1", "Content-Length: 0") + c.get("/second"), (
        lambda r: framing_ok(r, "", what="POST with Content-Length: 0")
    )


@case("body-post-no-length", BODY, "RFC 9112 §6.3 (7), RFC 9110 §15.5.12", want=2)
def _(c):
    # A request with neither Content-Length nor Transfer-Encoding has no body; a server MAY
    # refuse it with 411. GET /second right after must be the next request.
    def expect(r):
        if r.status() == 411:
            if (s := smuggled(r)):
                return FAIL, s
            return PASS, "411 Length Required"
        return framing_ok(r, "", what="POST without a length")

    return c.req("POST /nolen HTTP/1.1") + c.get("/second"), expect


@case("body-chunked", BODY, "RFC 9112 §7.1", want=2)
def _(c):
    # A plain chunked body of two chunks, then a pipelined GET.
    return chunk_req(c, "/chunked", chunked("hello", " world")) + c.get("/second"), (
        lambda r: framing_ok(r, "hello world", what="chunked body")
    )


@case("body-chunked-large", BODY, "RFC 9112 §7.1")
def _(c):
    # 256 KiB in 64 KiB chunks: the whole body reaches the upstream.
    data = bytes(random.Random(1).choice(b"abcdefghijklmnop") for _ in range(256 * 1024))

    def expect(r):
        v, why = accept(r, path="/big", why="256 KiB chunked body")
        if v != PASS:
            return v, why
        e = r.echo()
        if e.get("bodyLength") != len(data) or e.get("body") != data.decode():
            return FAIL, f"upstream saw {e.get('bodyLength')} octets, not {len(data)} (or different ones)"
        return PASS, "upstream saw all 262144 octets"

    body = b"".join(b"%x\r\n%s\r\n" % (65536, data[i : i + 65536]) for i in range(0, len(data), 65536))
    return chunk_req(c, "/big", body + b"0\r\n\r\n"), expect


@case("body-cl-shorter-than-data", BODY, "RFC 9112 §6.3 (6)", want=2)
def _(c):
    # CL 3 then "hello": the body is "hel"; "lo" starts the next message ("loGET /second"
    # is then a request with method "loGET"); GET /second must never be answered as such.
    def expect(r):
        e = r.echo()
        if not e or e.get("body") != "hel":
            return FAIL, f"first request: {desc(r)} body {short((e or {}).get('body'))}, not 'hel'"
        e2 = r.echo(1)
        if e2 and e2.get("method") == "GET":
            return FAIL, "GET /second was answered: the extra octets were dropped, not read as the next message"
        return PASS, f"body 'hel'; the rest read as the next message ({desc(r, 1)})"

    return c.req("POST /short HTTP/1.1", "Content-Length: 3", body="hello") + c.get("/second"), expect


@case("body-204-no-content", BODY, "RFC 9110 §8.6, §15.3.5, RFC 9112 §6.3 (1)", want=2)
def _(c):
    # The echo answers ?status=204: a 204 ends at its empty line (no content), and a
    # server MUST NOT send Content-Length (nor Transfer-Encoding) in a 204. A body would
    # break the framing of the pipelined GET's response.
    def expect(r):
        st = r.status()
        if st != 204:
            return FAIL, f"expected the echo's 204, got {desc(r)}"
        f = r.finals[0]
        if r.parse_error:
            return FAIL, f"the 204 carried a body? {r.parse_error}"
        e = r.echo(1)
        if not e or e.get("path") != "/second":
            return FAIL, f"the GET after the 204 got {desc(r, 1)}"
        for name in ("content-length", "transfer-encoding"):
            if f.header(name) is not None:
                return FAIL, f"the 204 has {name}: {f.header(name)}"
        return PASS, "204 without a body or a length, then GET answered"

    return c.get("/nocontent?status=204") + c.get("/second"), expect


@case("body-slow-head", BODY, "RFC 9112 §2.2")
def _(c):
    # The head arriving in three parts 200 ms apart is one request.
    req = c.get("/slow", "X-Slow: 1")
    n = len(req) // 3
    return [Part(req[:n]), Part(req[n : 2 * n], at=0.2), Part(req[2 * n :], at=0.4)], (
        lambda r: accept(r, path="/slow", why="head sent in three parts")
    )


@case("body-slow-body", BODY, "RFC 9112 §6.3")
def _(c):
    # A body arriving in parts 200 ms apart is read to its Content-Length.
    return [
        Part(c.req("POST /slowbody HTTP/1.1", "Content-Length: 11")),
        Part(b"hello", at=0.2),
        Part(b" world", at=0.4),
    ], (lambda r: accept(r, body="hello world", why="body sent in parts"))


@case("body-keepalive-reuse", BODY, "RFC 9112 §9.3", want=3)
def _(c):
    # HTTP/1.1 connections persist by default: three requests one after the other (each
    # after the previous answer) on one connection.
    def expect(r):
        p = r.echo_paths()
        if p[:3] == ["/k1", "/k2", "/k3"]:
            return PASS, "three requests on one connection"
        return FAIL, f"answered {p} (statuses {r.statuses})"

    return [Part(c.get("/k1")), Part(c.get("/k2"), at=0.3), Part(c.get("/k3"), at=0.6)], expect


@case("misc-pipeline-after-error", BODY, "RFC 9112 §2.2, §5", want=3)
def _(c):
    # GET, an invalid request (space before a colon: a MUST-400, RFC 9112 §5.1), GET: the
    # first is answered, the second gets 400;
    # after a parse error the server SHOULD close (RFC 9112 §2.2), so answering the third
    # warns.
    def expect(r):
        if r.echo_paths()[:1] != ["/ok"]:
            return FAIL, f"first response {desc(r)}"
        if r.status(1) != 400:
            return FAIL if r.status(1) and r.status(1) < 400 else WARN, f"the invalid request got {desc(r, 1)}"
        if len(r.finals) > 2:
            return WARN, f"answered the request after the error ({desc(r, 2)})"
        return PASS, "200, 400, then closed" if r.closed else "200, 400"

    bad = c.req("GET /bad HTTP/1.1", "X-Foo : bar")
    return c.get("/ok") + bad + c.get("/third"), expect


@case("misc-response-version", BODY, "RFC 9110 §2.5, §6.6.1")
def _(c):
    # A server SHOULD answer with the highest version it conforms to with a major version
    # no higher than the request's (HTTP/1.1), and a 2xx MUST carry a Date (an origin
    # server with a clock; a proxy MUST add one when forwarding a response without).
    def expect(r):
        v, why = accept(r, path="/version", why="plain GET")
        if v != PASS:
            return v, why
        f = r.finals[0]
        if f.header("date") is None:
            return FAIL, "no Date in a 200"
        if f.version != "HTTP/1.1":
            return WARN, f"answered as {f.version}"
        return PASS, "HTTP/1.1 200 with Date"

    return c.get("/version"), expect


@case("misc-http10-no-chunked", BODY, "RFC 9112 §6.1")
def _(c):
    # A server MUST NOT send Transfer-Encoding in a response to an HTTP/1.0 request: the
    # streamed answer (?stream=3, no length known) is delimited by the close.
    def expect(r):
        st = r.status()
        if st is None:
            return FAIL, "no response"
        f = r.finals[0]
        if f.header("transfer-encoding"):
            return FAIL, f"Transfer-Encoding {f.header('transfer-encoding')!r} sent to an HTTP/1.0 client"
        if st != 200:
            return FAIL, desc(r)
        if not f.complete:
            return FAIL, "the body never ended"
        if b"data: 2" not in f.body:
            return FAIL, f"body {short(f.body)}"
        return PASS, "streamed without chunked, " + ("CL-framed" if f.header("content-length") else "close-delimited")

    return c.req("GET /stream?stream=3 HTTP/1.0"), expect


@case("misc-stream-chunked", BODY, "RFC 9112 §6.1, §7.1")
def _(c):
    # The same streamed answer to HTTP/1.1: chunked (or close-delimited), all of it.
    def expect(r):
        st = r.status()
        if st != 200 or not r.finals[0].complete:
            return FAIL, f"{desc(r)}" + ("" if st is None else " (incomplete)")
        if r.finals[0].body != b"data: 0\n\ndata: 1\n\ndata: 2\n\n":
            return FAIL, f"body {short(r.finals[0].body)}"
        return PASS, "3 events, " + ("chunked" if r.finals[0].chunked else "not chunked")

    return c.get("/stream?stream=3"), expect


@case("misc-binary-garbage", BODY, "RFC 9112 §2.2")
def _(c):
    # Octets that are not HTTP: a server SHOULD respond 400 and close; closing at once
    # passes too; hanging until the timeout FAILs.
    def expect(r):
        if r.parse_error and r.raw:
            return WARN, f"answered with something that is not HTTP/1: {r.raw[:20]!r}"
        st = r.status()
        if st is None:
            return (PASS, "closed") if r.closed else (FAIL, "no answer, the connection stayed open")
        if st == 400:
            return PASS, "400" + (", closed" if r.closed else "")
        return FAIL if st < 400 else WARN, f"garbage answered {desc(r)}"

    garbage = bytes(random.Random(7).randrange(256) for _ in range(512))
    return garbage + b"\r\n\r\n", expect


@case("misc-empty-connection", BODY, "RFC 9112 §9.5", timeout=2.0)
def _(c):
    # A client that connects and sends nothing: the server may close it whenever it likes
    # (it should, eventually). Closing or still waiting at the probe's timeout both pass;
    # any response FAILs... unless it is a 408 (a server MAY send one before closing).
    def expect(r):
        if r.raw:
            if r.status() == 408:
                return PASS, "408 then close"
            return FAIL, f"sent {r.raw[:30]!r} on an idle connection"
        return PASS, "closed" if r.closed else "still open at the timeout (closes on its own timer)"

    return [], expect


def h2_settings_seen(raw):
    p = 0
    while len(raw) - p >= 9:
        length = int.from_bytes(raw[p : p + 3], "big")
        if raw[p + 3] == 0x4 and int.from_bytes(raw[p + 5 : p + 9], "big") & 0x7FFFFFFF == 0:
            return True
        p += 9 + length
    return False


@case("misc-h2-preface", BODY, "RFC 9113 §3.3, §3.4", stop=h2_settings_seen)
def _(c):
    # HTTP/2 with prior knowledge on the cleartext port: a server speaking h2c answers the
    # preface with its SETTINGS frame (PASS); an HTTP/1-only server's 400/505 or a close
    # warns (no h2c).
    def expect(r):
        if h2_settings_seen(r.raw):
            return PASS, "SETTINGS frame received"
        st = r.status()
        if st is not None and st >= 400 or (st is None and r.closed):
            return WARN, f"no h2c: {desc(r)}" + (", closed" if r.closed else "")
        return FAIL, f"got {r.raw[:30]!r}"

    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    return preface, expect


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def fmt_closed(r):
    if r.reset:
        return "reset"
    if r.closed:
        return "yes"
    return "timeout" if r.timed_out else "no"


def fmt_status(r):
    if r.connect_error:
        return "-"
    s = ",".join(str(x) for x in r.statuses) or "-"
    if r.parse_error:
        s += "+?"
    return s


def body_text(resp, n=2000):
    t = resp.body.decode("utf-8", "replace")
    return t if len(t) <= n else t[:n] + "..."


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=False)
    ap.add_argument("--only", nargs="+", metavar="ID", help="case ids, groups or glob patterns")
    ap.add_argument("--json", action="store_true", help="print JSON results instead of lines")
    ap.add_argument("--report", metavar="FILE", help="also write the JSON results to FILE")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-case timeout (s), default 3")
    ap.add_argument("--linger", type=float, default=1.0, help="wait for a close after the last expected response (s)")
    ap.add_argument("--host-header", default="probe.test", help="Host field value sent")
    ap.add_argument("--head-limit", type=int, default=64 * 1024, help="server's head size limit (octets)")
    args = ap.parse_args()

    cases = CASES
    if args.only:
        cases = [
            c for c in CASES if any(c.id == p or c.group == p or fnmatch.fnmatch(c.id, p) for p in args.only)
        ]
        if not cases:
            sys.exit(f"no case matches {args.only}")
    if args.list:
        for c in cases:
            print(f"{c.id:<30} {c.group:<13} {c.rfc}")
        return 0
    if args.port is None:
        ap.error("--port is required")

    ctx = Ctx(args)
    results = []
    t0 = time.monotonic()
    for c in cases:
        r, expect = run_case(c, args, ctx)
        if r.connect_error:
            verdict, reason = FAIL, f"cannot connect: {r.connect_error}"
        else:
            try:
                verdict, reason = expect(r)
            except Exception as e:  # a bug in a case must not hide the others
                verdict, reason = FAIL, f"expectation raised {type(e).__name__}: {e}"
        if r.send_error and verdict != PASS:
            reason += f" [send: {r.send_error}]"
        res = {
            "id": c.id,
            "group": c.group,
            "rfc": c.rfc,
            "verdict": verdict,
            "reason": reason,
            "statuses": r.statuses,
            "bodies": [body_text(x) for x in r.finals],
            "closed": r.closed,
            "reset": r.reset,
            "timed_out": r.timed_out,
            "send_error": r.send_error,
            "parse_error": r.parse_error,
            "elapsed": round(r.elapsed, 3),
        }
        results.append(res)
        if not args.json:
            print(f"{verdict:<5} {c.id:<30} status={fmt_status(r):<9} closed={fmt_closed(r):<7} {reason}", flush=True)

    counts = {v: sum(1 for x in results if x["verdict"] == v) for v in (PASS, WARN, FAIL)}
    groups = {}
    for x in results:
        g = groups.setdefault(x["group"], {PASS: 0, WARN: 0, FAIL: 0})
        g[x["verdict"]] += 1
    summary = {
        "total": len(results),
        **{k.lower(): v for k, v in counts.items()},
        "groups": groups,
        "failed": [x["id"] for x in results if x["verdict"] == FAIL],
        "seconds": round(time.monotonic() - t0, 1),
        "target": f"{args.host}:{args.port}",
    }
    doc = {"summary": summary, "results": results}
    if args.report:
        with open(args.report, "w") as f:
            json.dump(doc, f, indent=1)
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        print()
    else:
        print()
        for g, n in groups.items():
            print(f"  {g:<13} {sum(n.values()):>3} cases: {n[PASS]} pass, {n[WARN]} warn, {n[FAIL]} fail")
        print(
            f"http1 probe: {len(results)} cases, {counts[PASS]} pass, {counts[WARN]} warn, "
            f"{counts[FAIL]} fail ({summary['seconds']} s)"
            + (f"; failed: {' '.join(summary['failed'])}" if summary["failed"] else "")
        )
    return 1 if counts[FAIL] else 0


if __name__ == "__main__":
    sys.exit(main())
