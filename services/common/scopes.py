"""What an API token may do (contract, "For scripts"): each route names the one scope it needs.

A login token or the web page's cookie may do everything, account changes included; an API token
only what its scopes grant, and never account changes or minting tokens (routes that pass
`LOGIN_ONLY`)."""
JOBS_READ = "jobs:read"    # list, status, download, archive
JOBS_WRITE = "jobs:write"  # uploads (POST /upload, tus), delete
WEBHOOKS = "webhooks"      # create, list, delete webhooks and read their deliveries
ALL = (JOBS_READ, JOBS_WRITE, WEBHOOKS)
LOGIN_ONLY = None          # account, sessions and tokens: a login token or the cookie only
