-- IMDSv2: a GET of a leaf with a session token (fetched once by the driver, passed in IMDS_TOKEN).
wrk.method = "GET"
wrk.headers["X-aws-ec2-metadata-token"] = os.getenv("IMDS_TOKEN") or ""
