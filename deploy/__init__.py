"""What production starts (gunicorn configuration, systemd units, the nginx site) and `make smoke`, which
starts those very files' commands (deploy/smoke.py)."""
