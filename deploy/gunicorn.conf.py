"""Tollgate's web server in production: gunicorn serving config.wsgi with threaded (gthread) workers.

deploy/systemd/tollgate-web@.service runs `gunicorn -c deploy/gunicorn.conf.py --bind 127.0.0.1:PORT
config.wsgi`; bench/run_endpoint.py, bench/compare.py, tests/config/test_deploy.py and `make smoke` start
Tollgate from this same file (overriding only `bind`), so the benchmarks measure what production runs.
Why this server and these numbers: the "Production web server" section of docs/operations.md.
"""

# Behind the TLS-terminating proxy, deploy/nginx/tollgate.conf (X-Forwarded-Proto is trusted;
# TOLLGATE_TRUSTED_PROXIES=1: the proxy sets X-Forwarded-For to the peer it saw).
bind = "0.0.0.0:8000"
# One process per core, each running the view on up to 32 threads: a run spends most of its time waiting
# on Anthropic, with no database connection held (docs/contract.md §11). Measured against 4 × 8 and
# against granian (2 × 32, 4 × 8) in bench/compare.py: none was faster or cheaper per run.
workers = 2
threads = 32
worker_class = "gthread"
loglevel = "warning"
