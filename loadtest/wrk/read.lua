-- Read-only: subscriptions and profiles of 200 users, from every region.
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local c = require("common")
request = function()
  local n = math.random(1, 200)
  local path = (math.random() < 0.6) and ("/api/subscriptions/" .. c.user(n)) or ("/api/users/" .. c.user(n))
  return wrk.format("GET", path, c.headers())
end
