"""A login burst from one address: more logins than the login limit allows (the demo allows 5 a
minute per client), so most get 429 with Retry-After. Each user is one address."""

DESCRIPTION = "repeated logins from one address each: must hit the login rate limit"


def setup(user):
    user.burst_address = user.addresses[0]


def login(user):
    response = user.post("/api/auth/login", {"email": user.email, "password": "password"}, name="POST /api/auth/login",
                         address=user.burst_address)
    if response.status == 429:
        user.expect(response.header("retry-after") is not None, "a 429 without Retry-After")


TASKS = [(1, login)]
