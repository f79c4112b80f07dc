"""Users of the sample domain: they log in, read their subscription (cached per user), update it
and read it back at once (read-your-writes: they must see their own write), look at profiles,
and record activities. Spread over three regions and many client addresses."""

DESCRIPTION = "log in, read the subscription, update it and read it back, browse"
PLANS = ["free", "pro", "team", "enterprise"]


def setup(user):
    response = user.post("/api/auth/login", {"email": user.email, "password": "password"}, name="POST /api/auth/login")
    body = response.json() or {}
    user.token = body.get("token")


def read_subscription(user):
    user.get("/api/subscriptions/%s" % user.id, name="GET /api/subscriptions/{user}")


def update_and_read_back(user):
    plan = user.rng.choice(PLANS)
    written = user.put("/api/subscriptions/%s" % user.id, {"plan": plan}, name="PUT /api/subscriptions/{user}")
    if written.status != 200:
        return
    read = user.get("/api/subscriptions/%s" % user.id, name="GET /api/subscriptions/{user} (after write)")
    if read.status == 200:
        seen = (read.json() or {}).get("plan")
        user.expect(seen == plan, "user %d wrote plan %s and read %s from %s (%s)"
                    % (user.n, plan, seen, read.header("x-db-node"), read.header("x-cache")))


def browse(user):
    other = user.rng.randint(1, 200)
    user.get("/api/users/%s" % ("00000000-0000-4000-8000-%012x" % other), name="GET /api/users/{id}")


def record_activity(user):
    user.post("/api/activities", {"user_id": user.id, "action": "page_view", "metadata": {"page": "dashboard"}},
              name="POST /api/activities")


TASKS = [(6, read_subscription), (2, update_and_read_back), (3, browse), (1, record_activity)]
