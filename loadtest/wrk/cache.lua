-- Cache hits: one user's subscription, the same identity every time (Authorization), so after
-- the first request every answer comes from the gateway's cache.
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local c = require("common")
local path = "/api/subscriptions/" .. c.user(42)
request = function()
  -- Many addresses (the per-address limit stays out of the way), one identity (the entry).
  return wrk.format("GET", path, c.headers({["Authorization"] = "Bearer wrk-cache-user"}))
end
