-- Soak workload: an SDK-like mix that follows the server (a new token after a 401 or every sixth
-- request), counting 2xx/3xx, 4xx and 5xx per thread. The counters are globals so that done() can
-- read them from every thread (thread:get).
local token = ""
local i = 0
local role = os.getenv("IMDS_ROLE") or "app-role"
n2xx, n4xx, n5xx = 0, 0, 0
local threads = {}

function setup(thread) table.insert(threads, thread) end

function request()
  i = i + 1
  local k = i % 6
  if k == 0 or token == "" then
    return wrk.format("PUT", "/latest/api/token", { ["X-aws-ec2-metadata-token-ttl-seconds"] = "60" })
  end
  local h = { ["X-aws-ec2-metadata-token"] = token }
  if k == 1 then return wrk.format("GET", "/latest/meta-data/iam/security-credentials/", h) end
  if k == 2 then return wrk.format("GET", "/latest/meta-data/iam/security-credentials/" .. role, h) end
  if k == 3 then return wrk.format("GET", "/latest/meta-data/instance-id") end
  if k == 4 then return wrk.format("GET", "/latest/meta-data/spot/instance-action", h) end
  return wrk.format("GET", "/latest/meta-data/events/maintenance/scheduled", h)
end

function response(status, headers, body)
  if status >= 500 then n5xx = n5xx + 1 elseif status >= 400 then n4xx = n4xx + 1 else n2xx = n2xx + 1 end
  if status == 200 and #body == 56 and string.sub(body, 1, 5) == "AQAEA" then token = body end
  if status == 401 then token = "" end
end

function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("n2xx"); b = b + t:get("n4xx"); c = c + t:get("n5xx")
  end
  local e = summary.errors
  io.write(string.format(
    "SOAK requests=%d duration_us=%d s2xx=%d s4xx=%d s5xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, a, b, c, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
