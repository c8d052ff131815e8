-- IMDSv1: a plain GET of a leaf (the URL's path).
wrk.method = "GET"
