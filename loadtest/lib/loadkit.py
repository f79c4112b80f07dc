"""The load-test kit's engine: virtual users in threads, every request recorded, the gateway's
/metrics read before and after, chaos actions at set times, and a report (Markdown, PNG charts,
JSON) written at the end.

Scenario files (loadtest/scenarios/NAME.py) are plain Python: they define `TASKS`, a list of
(weight, function) pairs; each function gets a `User` and makes requests with `user.get`,
`user.put`, `user.post`. Optionally `setup(user)` (once per user, e.g. log in) and `USERS`,
`DESCRIPTION`.
"""
import http.client
import json
import os
import random
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request

REGIONS = {"us-east": "US", "eu-west": "DE", "ap-southeast": "SG"}


def user_id(n):
    """The sample API's seeded users: user N has this id and userN@example.com."""
    return "00000000-0000-4000-8000-%012x" % n


class Recorder:
    """Every request of the run: (seconds since start, name, status, latency ms, db node,
    X-Cache, region, failed, error)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows = []
        self.violations = []
        self.events = []
        self.start = time.monotonic()

    def now(self):
        return time.monotonic() - self.start

    def add(self, row):
        with self.lock:
            self.rows.append(row)

    def violation(self, text):
        with self.lock:
            self.violations.append((self.now(), text))

    def event(self, text):
        with self.lock:
            self.events.append((self.now(), text))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class User:
    """One virtual user: its own keep-alive connection, region, client addresses (sent in
    X-Forwarded-For, which the gateway believes from loopback when it trusts it), sample-domain
    user, session token and read-your-writes token."""

    region_header = "CloudFront-Viewer-Country"

    def __init__(self, index, base_url, recorder, rng, n, addresses_per_user=1000):
        self.index = index
        self.url = urllib.parse.urlsplit(base_url)
        self.recorder = recorder
        self.rng = rng
        self.region = rng.choice(list(REGIONS))
        # Distinct per virtual user: two users writing one row would see each other's writes.
        self.n = n
        self.id = user_id(self.n)
        self.email = "user%d@example.com" % self.n
        # Many client addresses per user (the users behind a carrier NAT, say): the per-address
        # limit applies to each, so a long run does not turn into a rate-limit test.
        self.addresses = ["10.%d.%d.%d" % (index % 250 + 1, rng.randint(0, 255), rng.randint(1, 254))
                          for _ in range(addresses_per_user)]
        self.token = None
        self.consistency = None
        self.connection = None

    def _connect(self):
        self.connection = http.client.HTTPConnection(self.url.hostname, self.url.port or 80, timeout=10)

    def request(self, method, path, body=None, name=None, address=None, headers=None):
        region = REGIONS[self.region] if self.region_header == "CloudFront-Viewer-Country" else self.region
        send = {self.region_header: region,
                "X-Forwarded-For": address or self.rng.choice(self.addresses)}
        if self.token:
            send["Authorization"] = "Bearer " + self.token
        if self.consistency:
            send["X-Gateway-Consistency-Token"] = self.consistency
        if body is not None:
            body = json.dumps(body).encode()
            send["Content-Type"] = "application/json"
        send.update(headers or {})
        started = time.monotonic()
        at = self.recorder.now()
        status, response, error = 0, None, None
        for attempt in range(2):
            try:
                if self.connection is None:
                    self._connect()
                self.connection.request(method, path, body=body, headers=send)
                raw = self.connection.getresponse()
                data = raw.read()
                response = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
                status = raw.status
                if raw.getheader("connection", "").lower() == "close":
                    self.connection.close()
                    self.connection = None
                break
            except (http.client.HTTPException, OSError) as problem:
                # A keep-alive connection the gateway closed while idle: one new attempt, as
                # browsers do; anything else is a failure the report shows.
                if self.connection is not None:
                    self.connection.close()
                    self.connection = None
                error = "%s: %s" % (type(problem).__name__, problem)
                if attempt == 1 or not isinstance(problem, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    break
        latency = (time.monotonic() - started) * 1000
        node = response.header("x-db-node") if response else None
        cache = response.header("x-cache") if response else None
        if response is not None:
            token = response.header("x-gateway-consistency-token")
            if token:
                self.consistency = token
        failed = response is None or status >= 500
        self.recorder.add((at, name or method + " " + path, status, latency, node, cache, self.region, failed,
                           error if response is None else None))
        return response or Response(0, {}, b"")

    def get(self, path, **options):
        return self.request("GET", path, **options)

    def put(self, path, body, **options):
        return self.request("PUT", path, body=body, **options)

    def post(self, path, body, **options):
        return self.request("POST", path, body=body, **options)

    def expect(self, condition, text):
        """A check the scenario makes (e.g. read-your-writes): a failure is a violation."""
        if not condition:
            self.recorder.violation(text)
        return condition


def run_users(scenario, base_url, users, duration, recorder, seed=1, users_in_db=200, max_requests=None):
    """Runs `users` virtual users for `duration` seconds (and at most `max_requests` each)."""
    stop = threading.Event()
    weights = [w for w, _ in scenario.TASKS]
    tasks = [t for _, t in scenario.TASKS]
    identities = list(range(1, users_in_db + 1))
    random.Random(seed).shuffle(identities)

    def body(index):
        rng = random.Random(seed * 1000 + index)
        user = User(index, base_url, recorder, rng, identities[index % len(identities)])
        if hasattr(scenario, "setup"):
            scenario.setup(user)
        count = 0
        while not stop.is_set() and (max_requests is None or count < max_requests):
            rng.choices(tasks, weights)[0](user)
            count += 1
        if user.connection:
            user.connection.close()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(users)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline and any(t.is_alive() for t in threads):
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)


# MARK: The gateway's counters

METRIC = re.compile(r'^([a-z_]+)(\{([^}]*)\})? ([0-9.eE+-]+)$')


def read_metrics(admin_url):
    text = urllib.request.urlopen(admin_url.rstrip("/") + "/metrics", timeout=10).read().decode()
    samples = {}
    for line in text.splitlines():
        match = METRIC.match(line)
        if not match:
            continue
        labels = tuple(sorted(re.findall(r'([a-z_]+)="([^"]*)"', match.group(3) or "")))
        samples[(match.group(1), labels)] = float(match.group(4))
    return samples


def metric_delta(before, after, name, **labels):
    """The change of a counter (summed over the label sets matching `labels`)."""
    total = 0.0
    for (metric, label_set), value in after.items():
        if metric != name:
            continue
        found = dict(label_set)
        if all(found.get(k) == v for k, v in labels.items()):
            total += value - before.get((metric, label_set), 0.0)
    return total


def label_values(samples, name, label):
    return sorted({dict(labels).get(label) for (metric, labels) in samples if metric == name} - {None})


def gateway_pools(admin_url):
    health = json.loads(urllib.request.urlopen(admin_url.rstrip("/") + "/health", timeout=10).read())
    return {pool["name"]: pool.get("region") or "-" for pool in health.get("pools", [])}


# MARK: Chaos

class Chaos:
    """Failures injected while the users run, through loadtest/stack."""

    ACTIONS = {
        "kill-replica-api": "kill the eu-west API server at 1/3 of the run, start it again at 2/3",
        "pause-replay": "pause WAL replay on eu-west at 1/3, resume at 2/3",
        "promote": "stop the primary database at 1/3 and promote eu-west",
        "kill-redis": "kill Redis at 1/3, start it again at 2/3",
    }

    def __init__(self, name, stack_tool, stack_state, recorder, duration):
        if name not in self.ACTIONS:
            raise SystemExit("unknown chaos %r; one of %s" % (name, ", ".join(self.ACTIONS)))
        self.name = name
        self.stack = [stack_tool, "--state", stack_state]
        self.recorder = recorder
        self.duration = duration
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.marks = {}

    def _stack(self, *arguments):
        subprocess.run(self.stack + list(arguments), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def _at(self, fraction):
        delay = self.recorder.start + self.duration * fraction - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _run(self):
        steps = {
            "kill-replica-api": [(1 / 3, "kill api-eu-west", ("kill", "api-eu-west")),
                                 (2 / 3, "start api-eu-west", ("start", "api-eu-west"))],
            "pause-replay": [(1 / 3, "pause replay eu-west", ("pause-replay", "eu-west")),
                             (2 / 3, "resume replay eu-west", ("resume-replay", "eu-west"))],
            "promote": [(1 / 3, "kill pg-us-east", ("kill", "pg-us-east")),
                        (1 / 3 + 0.05, "promote eu-west", ("promote", "eu-west"))],
            "kill-redis": [(1 / 3, "kill redis", ("kill", "redis")), (2 / 3, "start redis", ("start", "redis"))],
        }[self.name]
        for fraction, label, arguments in steps:
            self._at(fraction)
            self.recorder.event(label)
            self.marks[label] = self.recorder.now()
            try:
                self._stack(*arguments)
            except (subprocess.SubprocessError, OSError) as problem:
                self.recorder.event("%s failed: %s" % (label, problem))

    def start(self):
        self.thread.start()

    def join(self):
        self.thread.join(timeout=120)
