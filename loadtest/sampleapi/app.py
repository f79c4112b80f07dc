"""The sample API: a small SaaS backend over users, subscriptions and activities.

A WSGI app for gunicorn (gthread workers), one psycopg connection pool per worker process. Each
instance talks to one PostgreSQL node (DATABASE_URL) and says in every response which node
answered and whether it was in recovery, so tests and load tests can see where a request went:

    X-DB-Node: <the node's cluster_name>     X-DB-Recovery: true | false
    X-API-Server: <API_NAME>                 X-API-Region: <API_REGION>
    X-DB-LSN: <pg_current_wal_lsn() after the commit>   (writes only)

Endpoints: GET /api/health/, POST /api/auth/login, GET /api/me, GET /api/users/{id},
GET|PUT|PATCH /api/subscriptions/{user_id}, POST /api/activities.

Login answers a JWT as SimpleJWT would (HS256 with SESSION_SECRET, PyJWT from Debian's
python3-jwt): sub and user_id are the user, plan the subscription's plan, valid for an hour.
GET /api/me trusts X-User-Id, which the gateway sets from a verified token.

Environment: DATABASE_URL, API_NAME, API_REGION, SESSION_SECRET, POOL_MIN (2), POOL_MAX (10),
POOL_TIMEOUT (seconds to wait for a connection, 30).
"""
import hashlib
import hmac
import json
import os
import re
import threading
import time
import uuid

import jwt
import psycopg
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/app")
API_NAME = os.environ.get("API_NAME", "api")
API_REGION = os.environ.get("API_REGION", "local")
SECRET = os.environ.get("SESSION_SECRET", "sample-api-secret").encode()
POOL_MIN = int(os.environ.get("POOL_MIN", "2"))
POOL_MAX = int(os.environ.get("POOL_MAX", "10"))
POOL_TIMEOUT = float(os.environ.get("POOL_TIMEOUT", "30"))

_pool = None
_pool_lock = threading.Lock()


def pool():
    """The worker's pool, made on first use (after gunicorn forked the worker)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ConnectionPool(
                DATABASE_URL, min_size=POOL_MIN, max_size=POOL_MAX, timeout=POOL_TIMEOUT, max_idle=10,
                kwargs={"autocommit": True, "connect_timeout": 3}, open=True,
            )
        return _pool


class HTTPError(Exception):
    def __init__(self, status, message, extra=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra or {}


def json_default(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def parse_uuid(text):
    try:
        return uuid.UUID(text)
    except ValueError:
        raise HTTPError(400, "not a valid id: " + text)


def read_json(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPError(400, "the body is not valid JSON")
    if not isinstance(body, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return body


def hash_password(password, salt="sampleapi", iterations=1000):
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def check_password(password, stored):
    try:
        _, iterations, salt, _ = stored.split("$")
    except ValueError:
        return False
    return hmac.compare_digest(hash_password(password, salt, int(iterations)), stored)


TOKEN_LIFETIME = 3600


def make_token(user_id, plan):
    now = int(time.time())
    claims = {"token_type": "access", "sub": str(user_id), "user_id": str(user_id), "plan": plan or "free",
              "iat": now, "exp": now + TOKEN_LIFETIME, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def node_state(cur):
    """The node's name and whether it is in recovery right now (it changes on promotion)."""
    cur.execute("SELECT current_setting('cluster_name') AS name, pg_is_in_recovery() AS recovery")
    row = cur.fetchone()
    return row["name"] or "unnamed", row["recovery"]


# --- Handlers: each gets (environ, cursor, match) and returns (status, body, headers) ---------

def health(environ, cur, match):
    name, recovery = environ["sampleapi.node"]
    return 200, {"status": "healthy", "service": API_NAME, "region": API_REGION, "database": "connected",
                 "db_node": name, "in_recovery": recovery}, {}


def login(environ, cur, match):
    body = read_json(environ)
    email, password = body.get("email"), body.get("password")
    if not email or not password:
        raise HTTPError(400, "email and password are required")
    cur.execute("SELECT id, password, is_active FROM users WHERE email = %s", (email,))
    row = cur.fetchone()
    if row is None or not row["is_active"] or not check_password(password, row["password"]):
        raise HTTPError(401, "wrong email or password")
    with cur.connection.transaction():
        cur.execute("UPDATE users SET last_login = now(), updated_at = now() WHERE id = %s", (row["id"],))
        cur.execute(
            "INSERT INTO user_activities (user_id, action, ip_address, user_agent) VALUES (%s, 'login', %s, %s)",
            (row["id"], client_ip(environ), environ.get("HTTP_USER_AGENT")),
        )
    cur.execute("SELECT plan FROM subscriptions WHERE user_id = %s", (row["id"],))
    subscription = cur.fetchone()
    token = make_token(row["id"], subscription["plan"] if subscription else None)
    headers = {"Set-Cookie": f"session={token}; Path=/; HttpOnly; SameSite=Lax"}
    return 200, {"user_id": row["id"], "token": token, "expires_in": TOKEN_LIFETIME}, headers


def me(environ, cur, match):
    user = environ.get("HTTP_X_USER_ID")
    if not user:
        raise HTTPError(401, "no verified user (the gateway sets X-User-Id from the token)")
    return get_user(environ, cur, re.match(r"(.*)", user))


def get_user(environ, cur, match):
    user_id = parse_uuid(match.group(1))
    cur.execute(
        "SELECT id, email, name, role, is_active, last_login, created_at, updated_at FROM users WHERE id = %s",
        (user_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise HTTPError(404, "no such user")
    return 200, row, {}


def get_subscription(environ, cur, match):
    user_id = parse_uuid(match.group(1))
    cur.execute("SELECT * FROM subscriptions WHERE user_id = %s", (user_id,))
    row = cur.fetchone()
    if row is None:
        raise HTTPError(404, "no subscription for this user")
    return 200, row, {}


SUBSCRIPTION_FIELDS = {
    "plan": str, "status": str, "cancel_at_period_end": bool, "features": dict,
    "stripe_customer_id": str, "stripe_subscription_id": str,
}


def update_subscription(environ, cur, match):
    user_id = parse_uuid(match.group(1))
    body = read_json(environ)
    changes = {}
    for field, kind in SUBSCRIPTION_FIELDS.items():
        if field in body:
            if not isinstance(body[field], kind):
                raise HTTPError(400, f"{field} must be a {kind.__name__}")
            changes[field] = json.dumps(body[field]) if kind is dict else body[field]
    if environ["REQUEST_METHOD"] == "PUT" and "plan" not in changes:
        raise HTTPError(400, "PUT needs at least a plan")
    if not changes:
        raise HTTPError(400, "nothing to change")
    assignments = ", ".join(f"{field} = %({field})s" for field in changes)
    changes["user_id"] = user_id
    cur.execute(
        f"UPDATE subscriptions SET {assignments}, updated_at = now() WHERE user_id = %(user_id)s RETURNING *",
        changes,
    )
    row = cur.fetchone()
    if row is None:
        raise HTTPError(404, "no subscription for this user")
    return 200, row, {"X-DB-LSN": current_lsn(cur)}


def create_activity(environ, cur, match):
    body = read_json(environ)
    if "user_id" not in body or "action" not in body:
        raise HTTPError(400, "user_id and action are required")
    user_id = parse_uuid(str(body["user_id"]))
    try:
        cur.execute(
            "INSERT INTO user_activities (user_id, action, resource, resource_id, metadata, ip_address, user_agent) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id, created_at",
            (user_id, str(body["action"]), body.get("resource"), body.get("resource_id"),
             json.dumps(body.get("metadata")) if body.get("metadata") is not None else None,
             client_ip(environ), environ.get("HTTP_USER_AGENT")),
        )
    except errors.ForeignKeyViolation:
        raise HTTPError(404, "no such user")
    row = cur.fetchone()
    return 201, {"id": row["id"], "created_at": row["created_at"]}, {"X-DB-LSN": current_lsn(cur)}


def current_lsn(cur):
    cur.execute("SELECT pg_current_wal_lsn()::text AS lsn")
    return cur.fetchone()["lsn"]


def client_ip(environ):
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    if forwarded:
        return forwarded.split(",")[-1].strip()
    return environ.get("REMOTE_ADDR")


ROUTES = [
    ("GET", re.compile(r"^/api/health/?$"), health),
    ("POST", re.compile(r"^/api/auth/login/?$"), login),
    ("GET", re.compile(r"^/api/me/?$"), me),
    ("GET", re.compile(r"^/api/users/([^/]+)/?$"), get_user),
    ("GET", re.compile(r"^/api/subscriptions/([^/]+)/?$"), get_subscription),
    ("PUT", re.compile(r"^/api/subscriptions/([^/]+)/?$"), update_subscription),
    ("PATCH", re.compile(r"^/api/subscriptions/([^/]+)/?$"), update_subscription),
    ("POST", re.compile(r"^/api/activities/?$"), create_activity),
]


def application(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    headers = {"X-API-Server": API_NAME, "X-API-Region": API_REGION}
    status, body = 404, {"error": "no such endpoint"}
    matched = [(m, h, p.match(path)) for m, p, h in ROUTES if p.match(path)]
    if matched and not any(m == method or (m == "GET" and method == "HEAD") for m, _, _ in matched):
        status, body = 405, {"error": "method not allowed"}
    for route_method, handler, match in matched:
        if route_method != method and not (route_method == "GET" and method == "HEAD"):
            continue
        try:
            with pool().connection() as conn:
                with conn.cursor(row_factory=dict_row) as cur:
                    name, recovery = node_state(cur)
                    environ["sampleapi.node"] = (name, recovery)
                    headers["X-DB-Node"] = name
                    headers["X-DB-Recovery"] = "true" if recovery else "false"
                    status, body, extra = handler(environ, cur, match)
                    headers.update(extra)
        except HTTPError as error:
            status, body = error.status, {"error": error.message, **error.extra}
        except errors.ReadOnlySqlTransaction:
            status, body = 503, {"error": "this database is in recovery (read-only): writes go to the primary"}
        except (psycopg.OperationalError, PoolTimeout) as error:
            status, body = 503, {"status": "unhealthy", "database": "disconnected", "error": str(error).strip()[:200]}
        break
    data = (json.dumps(body, default=json_default) + "\n").encode()
    reason = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
              405: "Method Not Allowed", 503: "Service Unavailable"}.get(status, "Status")
    response_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    response_headers += list(headers.items())
    start_response(f"{status} {reason}", response_headers)
    return [b""] if method == "HEAD" else [data]
