"""The load-test kit's parts besides the virtual users (which are Locust users, in
locustfile.py): the record of every request, the gateway's /metrics read before and after, and
chaos actions at set times. loadreport.py writes the report (Markdown, PNG charts, JSON).

Scenario files (loadtest/scenarios/NAME.py) are plain Python: they define `TASKS`, a list of
(weight, function) pairs; each function gets a user and makes requests with `user.get`,
`user.put`, `user.post`. Optionally `setup(user)` (once per user, e.g. log in) and `USERS`,
`DESCRIPTION`.
"""
import json
import re
import subprocess
import threading
import time
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
