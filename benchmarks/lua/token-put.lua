-- IMDSv2 token request: PUT /latest/api/token with the TTL header.
wrk.method = "PUT"
wrk.path = "/latest/api/token"
wrk.headers["X-aws-ec2-metadata-token-ttl-seconds"] = "21600"
