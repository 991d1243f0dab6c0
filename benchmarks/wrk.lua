-- wrk's requests for benchmarks/wrk.py, configured by the environment:
--   WRK_METHOD, WRK_AUTHORIZATION, WRK_BODY   one request sent again and again (built once, so
--                                             wrk runs no Lua per request)
--   WRK_REFRESH_TOKENS, WRK_CHAINS_PER_THREAD refresh grants instead: each thread holds a pool of
--                                             refresh tokens, one per connection; a request takes
--                                             one and its answer puts the rotated one back, so every
--                                             token is spent exactly once
-- done() prints the run's figures as one JSON line, the last line of stdout.

wrk.method = os.getenv("WRK_METHOD") or "GET"
local authorization = os.getenv("WRK_AUTHORIZATION") or ""
if authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end
local form = os.getenv("WRK_BODY") or ""
local refreshing = (os.getenv("WRK_REFRESH_TOKENS") or "") ~= ""
if form ~= "" or refreshing then
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = form
end

local threads = {}

function setup(thread)
  if refreshing then
    local all = {}
    for token in string.gmatch(os.getenv("WRK_REFRESH_TOKENS"), "[^,]+") do
      table.insert(all, token)
    end
    local per = tonumber(os.getenv("WRK_CHAINS_PER_THREAD"))
    local first = #threads * per
    thread:set("pool", table.concat(all, ",", first + 1, first + per))
    -- wrk calls the first thread's request() once before the run, to look at the request, and
    -- throws it away: that call must not spend a token
    thread:set("probe", #threads == 0)
  end
  table.insert(threads, thread)
end

local function encoded(value)
  return (value:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

if refreshing then
  tokens = {}
  starved = 0

  function init(args)
    for token in string.gmatch(pool or "", "[^,]+") do
      table.insert(tokens, token)
    end
  end

  function request()
    if probe then
      probe = false
      return wrk.format("POST", nil, nil, "grant_type=refresh_token&refresh_token=probe")
    end
    local token = table.remove(tokens)
    if token == nil then
      -- a chain broke (an answer without a refresh token): the server refuses this one, and
      -- it counts among the errors
      starved = starved + 1
      token = "spent"
    end
    return wrk.format("POST", nil, nil, "grant_type=refresh_token&refresh_token=" .. encoded(token))
  end

  function response(status, headers, body)
    local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if token then
      table.insert(tokens, token)
    end
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  local starving = 0
  for _, thread in ipairs(threads) do
    starving = starving + (thread:get("starved") or 0)
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
      .. '"starved": %d, "p50_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout, starving,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000
  ))
end
