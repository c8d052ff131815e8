-- What an SDK's credential provider does, cycled: PUT a token, list the role, get its credentials.
-- The GETs carry a token fetched once by the driver (IMDS_TOKEN): wrk cannot chain responses
-- across its connections without slowing itself down.
local i = 0
local token = os.getenv("IMDS_TOKEN") or ""
local role = os.getenv("IMDS_ROLE") or "app-role"
local put, list, creds
-- wrk.format with a header table of its own drops the command line's -H headers: Connection: close
-- is set here too, so that a keep-alive server (the Go mocks) answers one request per connection.
init = function(args)
  put = wrk.format("PUT", "/latest/api/token", { ["X-aws-ec2-metadata-token-ttl-seconds"] = "21600", ["Connection"] = "close" })
  list = wrk.format("GET", "/latest/meta-data/iam/security-credentials/", { ["X-aws-ec2-metadata-token"] = token, ["Connection"] = "close" })
  creds = wrk.format("GET", "/latest/meta-data/iam/security-credentials/" .. role, { ["X-aws-ec2-metadata-token"] = token, ["Connection"] = "close" })
end
request = function()
  i = i + 1
  local k = i % 3
  if k == 1 then return put elseif k == 2 then return list else return creds end
end
