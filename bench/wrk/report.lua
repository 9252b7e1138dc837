-- wrk script for bench/ingest.py.
--   wrk ... -s report.lua URL -- hello                  plain GET (the hello-world baseline)
--   wrk ... -s report.lua URL -- deliveries.tsv THREADS  POST pre-signed webhook deliveries
-- deliveries.tsv: one "tenant<TAB>sha256=<hex><TAB>json body" per line, every body distinct (the
-- webhook deduplicates on tenant + ticket + body hash, so a repeated body would not insert). Thread i
-- sends lines i, i+THREADS, ... once each; `wrapped` counts a thread running out (then it repeats).
-- done() prints one line "WRK_RESULT {json}" with latency percentiles, errors and status counts.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  requests = {}
  index = 0
  accepted, duplicate, ok, other, wrapped = 0, 0, 0, 0, 0
  if args[1] == nil or args[1] == "hello" then
    return
  end
  local stride = tonumber(args[2])
  local n = 0
  for line in io.lines(args[1]) do
    if n % stride == id then
      local tenant, signature, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/webhook/servicedesk", {
        ["Content-Type"] = "application/json",
        ["X-Tenant-ID"] = tenant,
        ["X-ServiceDesk-Signature"] = signature,
      }, body)
    end
    n = n + 1
  end
end

function request()
  if #requests == 0 then
    return wrk.request()
  end
  index = index + 1
  if index > #requests then
    index = 1
    wrapped = wrapped + 1
  end
  return requests[index]
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  elseif status == 200 then
    ok = ok + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total = { accepted = 0, ok = 0, other = 0, wrapped = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(total) do
      total[name] = total[name] + (thread:get(name) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "mean_us": %.1f, "p50_us": %d, '
      .. '"p90_us": %d, "p99_us": %d, "max_us": %d, "status_202": %d, "status_200": %d, '
      .. '"status_other": %d, "wrapped": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    total.accepted, total.ok, total.other, total.wrapped))
end
