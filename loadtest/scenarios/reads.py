"""Read-only traffic: subscriptions and profiles, from every region (a cache-heavy mix)."""

DESCRIPTION = "reads of subscriptions and profiles only"


def setup(user):
    # Logged in: the cache keys each user's entries by their Authorization header.
    response = user.post("/api/auth/login", {"email": user.email, "password": "password"}, name="POST /api/auth/login")
    user.token = (response.json() or {}).get("token")


def read_subscription(user):
    user.get("/api/subscriptions/%s" % user.id, name="GET /api/subscriptions/{user}")


def browse(user):
    other = user.rng.randint(1, 200)
    user.get("/api/users/%s" % ("00000000-0000-4000-8000-%012x" % other), name="GET /api/users/{id}")


TASKS = [(2, read_subscription), (1, browse)]
