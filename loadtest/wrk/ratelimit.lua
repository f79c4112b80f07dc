-- Rate limited: logins from one address (the demo allows 5 a minute): wrk's "Non-2xx" line
-- counts the 429s.
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local c = require("common")
local body = '{"email":"user42@example.com","password":"password"}'
request = function()
  return wrk.format("POST", "/api/auth/login",
                    {["X-Forwarded-For"] = "10.9.9.9", ["Content-Type"] = "application/json"}, body)
end
