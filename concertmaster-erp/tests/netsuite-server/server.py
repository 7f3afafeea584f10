"""A local stand-in for NetSuite's SuiteTalk REST API, for the connector tests.

It checks every request's token-based-auth signature as NetSuite does:
OAuth 1.0a, HMAC-SHA256, realm = account id, timestamp within five minutes,
nonce used once; the signature is verified by oauthlib, not by the code under
test. It answers with NetSuite's documented payloads: 204 + Location for
record writes, SuiteQL pages with hasMore/offset/totalResults, errors as
{"title", "status", "o:errorDetails": [...]}, 429 with Retry-After.

Usage: python server.py ACCOUNT CONSUMER_KEY CONSUMER_SECRET TOKEN_ID TOKEN_SECRET
Prints "listening on PORT" once it accepts requests on 127.0.0.1.
Test hooks (no auth): POST /__test/throttle?count=N[&retryAfter=S][&code=C],
GET /__test/stats, GET /__test/records/TYPE, POST /__test/faults?plan=K,K,...
(the next record writes, one entry each: "lost" carries the write out and
drops the connection unanswered, "slow:MS" answers MS milliseconds late,
"reset" drops the connection without writing, "ok" lets it through),
GET /__test/faults (what is left of the plan, and what was met).
"""
import io
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from oauthlib.common import Request
from oauthlib.oauth1.rfc5849 import signature, utils

ACCOUNT, CONSUMER_KEY, CONSUMER_SECRET, TOKEN_ID, TOKEN_SECRET = sys.argv[1:6]
REST = "/services/rest"
TYPES = {"vendor", "customer"}

lock = threading.Lock()
records = {t: {} for t in TYPES}  # type -> id -> record
next_id = [100]
idempotent = {}  # idempotency key -> (type, id)
nonces = set()
throttle = {"count": 0, "retryAfter": "1", "code": "CONCURRENCY_LIMIT_EXCEEDED"}
faults = {"plan": [], "applied": {}}
stats = {"requests": 0, "throttled": 0, "rejectedSignatures": 0, "creates": 0, "idempotentReplays": 0,
         "lastAuthorization": None}


def error(status, title, details):
    return status, {"type": f"https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.{status - 399}",
                    "title": title, "status": status, "o:errorDetails": details}


def invalid_login():
    return error(401, "Unauthorized", [{
        "detail": "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI "
                  "at Setup > Users/Roles > User Management > View Login Audit Trail.",
        "o:errorCode": "INVALID_LOGIN"}])


def check_signature(method, uri, authorization):
    """NetSuite's token-based-auth check; returns None when it passes."""
    if not authorization or not authorization.startswith("OAuth "):
        return "no OAuth header"
    header = dict(utils.parse_authorization_header(authorization))
    if header.get("realm") != ACCOUNT:
        return f"realm {header.get('realm')!r} is not the account"
    if header.get("oauth_signature_method") != "HMAC-SHA256":
        return "not HMAC-SHA256"
    if header.get("oauth_consumer_key") != CONSUMER_KEY or header.get("oauth_token") != TOKEN_ID:
        return "unknown consumer or token"
    if abs(int(header.get("oauth_timestamp", "0")) - time.time()) > 300:
        return "timestamp outside five minutes"
    nonce = (header.get("oauth_nonce"), header.get("oauth_timestamp"))
    with lock:
        if nonce in nonces:
            return "nonce used before"
        nonces.add(nonce)
    params = signature.collect_parameters(uri_query=urlparse(uri).query,
                                          headers={"Authorization": authorization},
                                          exclude_oauth_signature=False, with_realm=False)
    request = Request(uri, method)
    request.signature = dict(params).get("oauth_signature")
    request.params = [(k, v) for k, v in params if k != "oauth_signature"]
    if not signature.verify_hmac_sha256(request, CONSUMER_SECRET, TOKEN_SECRET):
        return "signature mismatch"
    return None


def validate(record_type, body):
    details = []
    if record_type == "vendor" and not body.get("companyName"):
        details.append({"detail": "Please enter value(s) for: Company Name", "o:errorCode": "USER_ERROR",
                        "o:errorPath": "companyName"})
    email = body.get("email")
    if email is not None and "@" not in str(email):
        details.append({"detail": "Invalid value for the resource or sub-resource field 'email'. "
                                  "Provide a valid value.", "o:errorCode": "INVALID_VALUE", "o:errorPath": "email"})
    return details


CONDITION = re.compile(r"(?is)\s*(\w+)\s*(=|like)\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?)\s*(and\s+|$)")


def parse_conditions(text):
    """`a = 'x' AND b LIKE 'y%'` as [(column, op, value)]; None when it is not that."""
    conditions, at = [], 0
    while at < len(text):
        m = CONDITION.match(text, at)
        if not m:
            return None
        column, op, literal, _ = m.groups()
        value = literal[1:-1].replace("''", "'") if literal.startswith("'") else literal
        conditions.append((column.lower(), op.lower(), value))
        at = m.end()
    return conditions


def suiteql(query, limit, offset, base):
    q = query.strip()
    if re.fullmatch(r"(?i)select\s+1\s+as\s+ok\s+from\s+dual", q):
        rows = [{"ok": 1}]
    else:
        m = re.fullmatch(r"(?is)select\s+(.+?)\s+from\s+(\w+)(?:\s+where\s+(.+))?", q)
        conditions = parse_conditions(m.group(3)) if m and m.group(3) else []
        if not m or m.group(2).lower() not in TYPES or conditions is None:
            return error(400, "Bad Request", [{"detail": f"Invalid search query: {q}", "o:errorCode": "INVALID_PARAMETER",
                                               "o:errorQueryParam": "q"}])
        columns, table = m.group(1), m.group(2)
        with lock:
            rows = [{k.lower(): v for k, v in r.items()} for _, r in sorted(records[table.lower()].items())]
        for column, op, value in conditions:
            if op == "like":
                pattern = re.escape(value).replace("%", ".*")
                rows = [r for r in rows if re.fullmatch(pattern, str(r.get(column, "")))]
            else:
                rows = [r for r in rows if str(r.get(column, "")) == value]
        if columns.strip() != "*":
            wanted = [c.strip().lower() for c in columns.split(",")]
            rows = [{c: r.get(c) for c in wanted} for r in rows]
    page = rows[offset:offset + limit]
    has_more = offset + len(page) < len(rows)
    links = [{"rel": "self", "href": f"{base}?limit={limit}&offset={offset}"}]
    if has_more:
        links.append({"rel": "next", "href": f"{base}?limit={limit}&offset={offset + limit}"})
    return 200, {"links": links, "count": len(page), "hasMore": has_more,
                 "items": [dict(r, links=[]) for r in page], "offset": offset, "totalResults": len(rows)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=None, headers=()):
        fault = getattr(self, "fault", None)
        if fault == "lost":
            # Carried out, but the client never hears of it.
            self.drop()
            return None
        if fault and fault.startswith("slow:"):
            time.sleep(int(fault[5:]) / 1000)
        data = b"" if body is None else json.dumps(body).encode()
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/vnd.oracle.resource+json; type=error"
                                 if status >= 400 else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up before a late answer ("slow:MS").
            self.drop()

    def drop(self):
        """Closes the connection unanswered; what the handler writes after goes nowhere."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.wfile = io.BytesIO()

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def handle_any(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path.startswith("/__test/"):
            return self.test_hook(url.path, query)
        body = self.body()
        with lock:
            stats["requests"] += 1
            stats["lastAuthorization"] = self.headers.get("Authorization")
        problem = check_signature(self.command, f"http://{self.headers['Host']}{self.path}",
                                  self.headers.get("Authorization"))
        if problem:
            with lock:
                stats["rejectedSignatures"] += 1
            sys.stderr.write(f"rejected {self.command} {self.path}: {problem}\n")
            return self.answer(*invalid_login())
        with lock:
            throttled = throttle["count"] > 0
            if throttled:
                throttle["count"] -= 1
                stats["throttled"] += 1
        if throttled:
            headers = [("Retry-After", throttle["retryAfter"])] if throttle["retryAfter"] else []
            return self.answer(*error(429, "Too Many Requests", [{
                "detail": "Concurrent request limit exceeded. Request blocked.", "o:errorCode": throttle["code"]}]),
                headers=headers)

        path = url.path[len(REST):] if url.path.startswith(REST) else None
        if path == "/query/v1/suiteql" and self.command == "POST":
            if self.headers.get("Prefer") != "transient":
                return self.answer(*error(400, "Bad Request", [{
                    "detail": "The request is missing the required header Prefer: transient.",
                    "o:errorCode": "INVALID_HEADER", "o:errorHeader": "Prefer"}]))
            limit = int(query.get("limit", ["1000"])[0])
            offset = int(query.get("offset", ["0"])[0])
            return self.answer(*suiteql(body.get("q", ""), limit, offset,
                                        f"http://{self.headers['Host']}{url.path}"))
        m = re.fullmatch(r"/record/v1/(\w+)(?:/([^/]+))?", path or "")
        if not m or m.group(1) not in TYPES:
            return self.answer(*error(404, "Not Found", [{
                "detail": f"The record type [{m.group(1) if m else path}] is invalid.", "o:errorCode": "NONEXISTENT_ID"}]))
        record_type, key = m.group(1), unquote(m.group(2)) if m.group(2) else None
        self.fault = None
        if self.command in ("POST", "PUT", "PATCH"):
            with lock:
                kind = faults["plan"].pop(0) if faults["plan"] else None
                if kind and kind != "ok":
                    faults["applied"][kind] = faults["applied"].get(kind, 0) + 1
            if kind == "reset":
                self.drop()
                return None
            if kind != "ok":
                self.fault = kind
        location = lambda rid: f"http://{self.headers['Host']}{REST}/record/v1/{record_type}/{rid}"

        if self.command == "POST" and key is None:
            idem = self.headers.get("X-NetSuite-Idempotency-Key")
            with lock:
                if idem and idem in idempotent:
                    stats["idempotentReplays"] += 1
                    return self.answer(204, headers=[("Location", location(idempotent[idem][1]))])
            details = validate(record_type, body)
            if details:
                return self.answer(*error(400, "Bad Request", details))
            with lock:
                rid = str(next_id[0])
                next_id[0] += 1
                records[record_type][rid] = dict(body, id=rid)
                stats["creates"] += 1
                if idem:
                    idempotent[idem] = (record_type, rid)
            return self.answer(204, headers=[("Location", location(rid))])

        if key is None:
            return self.answer(*error(405, "Method Not Allowed", [{"detail": "Method not allowed.",
                                                                   "o:errorCode": "METHOD_NOT_ALLOWED"}]))
        with lock:
            if key.startswith("eid:"):
                rid = next((i for i, r in records[record_type].items() if r.get("externalId") == key[4:]), None)
            else:
                rid = key if key in records[record_type] else None
        if self.command == "GET":
            if rid is None:
                return self.answer(*error(404, "Not Found", [{"detail": "The record instance does not exist.",
                                                              "o:errorCode": "NONEXISTENT_ID"}]))
            with lock:
                return self.answer(200, records[record_type][rid])
        if self.command in ("PUT", "PATCH"):
            if self.command == "PATCH" and rid is None:
                return self.answer(*error(404, "Not Found", [{"detail": "The record instance does not exist.",
                                                              "o:errorCode": "NONEXISTENT_ID"}]))
            merged = dict(records[record_type].get(rid, {})) if rid else {}
            merged.update(body)
            if key.startswith("eid:"):
                merged["externalId"] = key[4:]
            details = validate(record_type, merged)
            if details:
                return self.answer(*error(400, "Bad Request", details))
            with lock:
                if rid is None:
                    rid = str(next_id[0])
                    next_id[0] += 1
                    stats["creates"] += 1
                records[record_type][rid] = dict(merged, id=rid)
            return self.answer(204, headers=[("Location", location(rid))])
        return self.answer(*error(405, "Method Not Allowed", [{"detail": "Method not allowed.",
                                                               "o:errorCode": "METHOD_NOT_ALLOWED"}]))

    def test_hook(self, path, query):
        if path == "/__test/faults":
            with lock:
                if self.command == "POST":
                    plan = query.get("plan", [""])[0]
                    faults["plan"] = [k for k in plan.split(",") if k]
                    faults["applied"] = {}
                    return self.answer(204)
                return self.answer(200, {"remaining": len(faults["plan"]), "applied": faults["applied"]})
        if path == "/__test/throttle" and self.command == "POST":
            with lock:
                throttle["count"] = int(query.get("count", ["1"])[0])
                throttle["retryAfter"] = query.get("retryAfter", ["1"])[0]
                throttle["code"] = query.get("code", ["CONCURRENCY_LIMIT_EXCEEDED"])[0]
            return self.answer(204)
        if path == "/__test/stats":
            with lock:
                return self.answer(200, dict(stats, records={t: len(r) for t, r in records.items()}))
        m = re.fullmatch(r"/__test/records/(\w+)", path)
        if m and m.group(1) in TYPES:
            with lock:
                return self.answer(200, sorted(records[m.group(1)].values(), key=lambda r: int(r["id"])))
        return self.answer(404, {"title": "no such test hook"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
