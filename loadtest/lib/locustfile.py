"""The load-test kit's virtual users as Locust users (FastHttpUser), for `loadtest/run`.

A scenario file (loadtest/scenarios/NAME.py: `TASKS`, optional `setup`) becomes one Locust user
class: each virtual user acts as a distinct seeded user of the sample API, from its own region
and its own client addresses (X-Forwarded-For), keeps its session and read-your-writes tokens,
and records every request (time, name, status, latency, database node, X-Cache, region) for
the kit's report. `user.expect` checks (read-your-writes) count as violations.

Locust runs it in one process, or as a master and workers (`loadtest/run --workers N`; or by
hand on other machines: `locust -f loadtest/lib/locustfile.py --worker --master-host HOST`
with the same KIT_* environment). Workers send their records to the master in batches
(Locust's custom messages), so the report covers the whole run.

Settings come from the environment (loadtest/run sets them): KIT_SCENARIO (a path),
KIT_REGION_HEADER, KIT_SEEDED_USERS, KIT_SEED, KIT_WORKERS, KIT_MAX_REQUESTS.
"""
import importlib.util
import json
import os
import random
import sys
import time

import gevent
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadkit  # noqa: E402


def load_scenario(path):
    spec = importlib.util.spec_from_file_location("scenario", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not getattr(module, "TASKS", None):
        raise SystemExit("%s defines no TASKS" % path)
    return module


SCENARIO = load_scenario(os.environ["KIT_SCENARIO"])
REGION_HEADER = os.environ.get("KIT_REGION_HEADER", "CloudFront-Viewer-Country")
SEEDED_USERS = int(os.environ.get("KIT_SEEDED_USERS", "200"))
SEED = int(os.environ.get("KIT_SEED", "1"))
WORKERS = max(1, int(os.environ.get("KIT_WORKERS", "1")))
MAX_REQUESTS = int(os.environ["KIT_MAX_REQUESTS"]) if os.environ.get("KIT_MAX_REQUESTS") else None
IDENTITIES = list(range(1, SEEDED_USERS + 1))
random.Random(SEED).shuffle(IDENTITIES)


class Sink:
    """Where records go: the master's Recorder (set by loadtest/run), or, on a worker, batches
    sent to the master. Times are wall-clock seconds; the master makes them relative."""

    recorder = None  # loadkit.Recorder on the process that writes the report
    wall_start = None
    pending_rows = []
    pending_violations = []
    environment = None

    @classmethod
    def row(cls, row):
        if cls.recorder is not None:
            cls.recorder.add((row[0] - cls.wall_start,) + tuple(row[1:]))
        else:
            cls.pending_rows.append(row)

    @classmethod
    def violation(cls, at, text):
        if cls.recorder is not None:
            cls.recorder.violations.append((at - cls.wall_start, text))
        else:
            cls.pending_violations.append((at, text))

    @classmethod
    def flush(cls):
        if cls.recorder is None and cls.environment is not None and (cls.pending_rows or cls.pending_violations):
            rows, violations = cls.pending_rows, cls.pending_violations
            cls.pending_rows, cls.pending_violations = [], []
            cls.environment.runner.send_message("kit_records", {"rows": rows, "violations": violations})


class KitUser:
    """What a scenario function gets: the old engine's `User` interface over a Locust client."""

    region_header = REGION_HEADER

    def __init__(self, locust_user, index):
        self.locust = locust_user
        self.index = index
        self.rng = random.Random(SEED * 1000 + index)
        self.region = self.rng.choice(list(loadkit.REGIONS))
        # Distinct per virtual user: two users writing one row would see each other's writes.
        self.n = IDENTITIES[index % len(IDENTITIES)]
        self.id = loadkit.user_id(self.n)
        self.email = "user%d@example.com" % self.n
        # Many client addresses per user (the users behind a carrier NAT, say): the per-address
        # limit applies to each, so a long run does not turn into a rate-limit test.
        self.addresses = ["10.%d.%d.%d" % (index % 250 + 1, self.rng.randint(0, 255), self.rng.randint(1, 254))
                          for _ in range(1000)]
        self.token = None
        self.consistency = None

    def request(self, method, path, body=None, name=None, address=None, headers=None):
        region = loadkit.REGIONS[self.region] if self.region_header == "CloudFront-Viewer-Country" else self.region
        send = {self.region_header: region, "X-Forwarded-For": address or self.rng.choice(self.addresses)}
        if self.token:
            send["Authorization"] = "Bearer " + self.token
        if self.consistency:
            send["X-Gateway-Consistency-Token"] = self.consistency
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            send["Content-Type"] = "application/json"
        send.update(headers or {})
        at = time.time()
        started = time.monotonic()
        label = name or method + " " + path
        with self.locust.client.request(method, path, data=data, headers=send, name=label, catch_response=True) as raw:
            status = raw.status_code or 0
            error = None
            if status == 0:
                error = str(raw.error) if raw.error else "no response"
                raw.failure(error)
            elif status >= 500:
                raw.failure("status %d" % status)
            else:
                raw.success()  # 4xx are answers the scenarios expect (429, 404), not failures
            # geventhttpclient's headers are already case-insensitive: no copy per request.
            response = loadkit.Response(status, raw.headers if status and raw.headers is not None else {},
                                        raw.content if status else b"")
        latency = (time.monotonic() - started) * 1000
        if status:
            token = response.header("x-gateway-consistency-token")
            if token:
                self.consistency = token
        Sink.row((at, label, status, latency, response.header("x-db-node"), response.header("x-cache"), self.region,
                  status == 0 or status >= 500, error))
        return response

    def get(self, path, **options):
        return self.request("GET", path, **options)

    def put(self, path, body, **options):
        return self.request("PUT", path, body=body, **options)

    def post(self, path, body, **options):
        return self.request("POST", path, body=body, **options)

    def expect(self, condition, text):
        """A check the scenario makes (e.g. read-your-writes): a failure is a violation."""
        if not condition:
            Sink.violation(time.time(), text)
        return condition


_spawned = 0


class ScenarioUser(FastHttpUser):
    """One virtual user running the scenario's weighted tasks back to back."""

    wait_time = constant(0)
    # One keep-alive connection per virtual user, as a browser or app keeps.
    concurrency = 1
    network_timeout = 10.0
    connection_timeout = 10.0

    def on_start(self):
        global _spawned
        # The kit carries its tokens in headers (X-Gateway-Consistency-Token, Authorization), as
        # an app does: no cookie jar to fill and consult on every request.
        self.client.client.cookiejar = None
        runner = self.environment.runner
        worker = max(0, getattr(runner, "worker_index", 0))
        # Distinct indexes across workers: worker w gets w, w + WORKERS, w + 2 × WORKERS, ...
        self.kit = KitUser(self, worker + WORKERS * _spawned)
        _spawned += 1
        self.count = 0
        self.tasks_ = [t for _, t in SCENARIO.TASKS]
        self.weights_ = [w for w, _ in SCENARIO.TASKS]
        if hasattr(SCENARIO, "setup"):
            SCENARIO.setup(self.kit)

    @task
    def step(self):
        if MAX_REQUESTS is not None and self.count >= MAX_REQUESTS:
            raise StopUser()
        self.kit.rng.choices(self.tasks_, self.weights_)[0](self.kit)
        self.count += 1


@events.init.add_listener
def _on_init(environment, **_):
    Sink.environment = environment
    from locust.runners import MasterRunner, WorkerRunner
    if isinstance(environment.runner, WorkerRunner):
        def sender():
            while True:
                gevent.sleep(0.5)
                Sink.flush()
        gevent.spawn(sender)
    elif isinstance(environment.runner, MasterRunner):
        def received(environment, msg, **_):
            for row in msg.data["rows"]:
                Sink.row(tuple(row))
            for at, text in msg.data["violations"]:
                Sink.violation(at, text)
        environment.runner.register_message("kit_records", received)


@events.test_stop.add_listener
def _on_stop(environment, **_):
    Sink.flush()
    from locust.runners import WorkerRunner
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.send_message("kit_done", None)
