-- Reads and writes, 4:1: subscription reads, plan updates (to the primary), profile reads.
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local c = require("common")
local plans = {"free", "pro", "team"}
request = function()
  local n = math.random(1, 200)
  if math.random() < 0.2 then
    return wrk.format("PUT", "/api/subscriptions/" .. c.user(n), c.headers({["Content-Type"] = "application/json"}),
                      string.format('{"plan":"%s"}', plans[math.random(#plans)]))
  end
  return wrk.format("GET", "/api/subscriptions/" .. c.user(n), c.headers())
end
