-- wrk script for the reference flow (`templates/flows/reference-lead-scoring.json`):
-- POSTs the Segment-style track bodies `trellis-bench` sends, a different lead each time.
--
--   wrk -t1 -c16 -d20s --latency -s tests/bench/reference.lua http://127.0.0.1:8080/hooks/lead
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local industries = { "ev-parts", "battery", "retail", "saas" }
local events = { "whitepaper_download", "page_view", "pricing_view" }
local i = 0

request = function()
  i = i + 1
  local body = string.format(
    '{"type":"track","userId":"u%d","event":"%s","properties":{"industry":"%s",'
      .. '"visits_7d":%d,"dwell_s":%d},"messageId":"m%d","timestamp":"2026-11-27T10:00:00Z"}',
    i, events[i % 3 + 1], industries[i % 4 + 1], i % 15, (i * 7) % 200, i)
  return wrk.format(nil, nil, nil, body)
end
