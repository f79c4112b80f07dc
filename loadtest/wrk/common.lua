-- Shared by the wrk scripts: sample-domain users and client addresses from a trusted proxy.
-- wrk -s loadtest/wrk/read.lua -t2 -c64 -d30s http://127.0.0.1:8080
local M = {}
local countries = {"US", "DE", "SG"}

function M.user(n)
  return string.format("00000000-0000-4000-8000-%012x", n)
end

-- Headers of one request: a region and one of many client addresses (the gateway believes
-- X-Forwarded-For from loopback when it lists 127.0.0.1 in trusted_proxies).
function M.headers(extra)
  local h = {
    ["CloudFront-Viewer-Country"] = countries[math.random(#countries)],
    ["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.random(1, 250), math.random(0, 255), math.random(1, 254)),
  }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

return M
