-- Appended for the memory run: each wrk thread stops after IMDS_STOP_AFTER responses, so that
-- a run issues a fixed number of requests (threads x IMDS_STOP_AFTER, plus those in flight).
local limit = tonumber(os.getenv("IMDS_STOP_AFTER") or "0")
local seen = 0
response = function(status, headers, body)
  seen = seen + 1
  if limit > 0 and seen >= limit then wrk.thread:stop() end
end
-- wrk itself keeps sleeping until -d runs out; load.py sends it SIGINT once its threads are idle.
