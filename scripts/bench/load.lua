-- wrk script for scripts/bench-load. Args: WORKLOAD TOKEN [PATH] [CURSORS].
--   upload   POST a 4 KiB body under a new name each time
--   presign  POST /v1/presign for one key
--   fetch    GET PATH (a presigned URL's path and query: no token)
--   fetch-token  GET the same file by its key with the bearer token
--   list     GET /v1/files?category=exports&limit=100 (first page)
--   list-deep  the same at a random depth: a cursor drawn from the file CURSORS (one per line,
--            an empty line for the first page)
math.randomseed(os.time())
local counter = 0
function setup(thread)
  thread:set("id", tostring(math.random(1, 1000000000)))
end
function init(args)
  workload, token, target = args[1], args[2], args[3]
  auth = "Bearer " .. token
  body = string.rep("x", 4096)
  cursors = {}
  if workload == "list-deep" then
    for line in io.lines(args[4]) do cursors[#cursors + 1] = line end
  end
end
function request()
  if workload == "upload" then
    counter = counter + 1
    local path = "/v1/files?category=exports&filename=f-" .. id .. "-" .. counter .. ".txt"
    return wrk.format("POST", path, { ["Authorization"] = auth, ["Content-Type"] = "text/plain" }, body)
  elseif workload == "presign" then
    return wrk.format("POST", "/v1/presign", { ["Authorization"] = auth, ["Content-Type"] = "application/json" },
      '{"key":"tenant-bench/exports/seed.txt"}')
  elseif workload == "fetch" then
    return wrk.format("GET", target)
  elseif workload == "fetch-token" then
    return wrk.format("GET", "/v1/files/tenant-bench/exports/seed.txt", { ["Authorization"] = auth })
  elseif workload == "list-deep" then
    local cursor = cursors[math.random(1, #cursors)]
    local path = "/v1/files?category=exports&limit=100"
    if cursor ~= "" then path = path .. "&cursor=" .. cursor end
    return wrk.format("GET", path, { ["Authorization"] = auth })
  else
    return wrk.format("GET", "/v1/files?category=exports&limit=100", { ["Authorization"] = auth })
  end
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %.1f %.2f %.2f %.2f %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
