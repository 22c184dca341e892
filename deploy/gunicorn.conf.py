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
# gthread, closing the port as soon as a node is told to stop, so that nginx sends new requests to the
# other node instead of into a queue nobody reads (deploy/gunicorn_worker.py).
worker_class = "deploy.gunicorn_worker.DrainingThreadWorker"
loglevel = "warning"
# Load Tollgate before listening: a node that is (re)starting refuses connections, and nginx sends them to
# the other node, instead of accepting requests that wait until its workers have loaded the application.
preload_app = True
# Longer than nginx keeps an idle upstream connection (keepalive_timeout in deploy/nginx/tollgate.conf):
# the proxy, never the node, closes an idle connection, so a request is never sent on one being closed.
keepalive = 75
