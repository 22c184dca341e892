#!/usr/bin/env bash
# Brings up the whole product: migrate, seed the demo, then the sandbox upstream, the web server and
# (when a broker is configured) a Celery worker with beat. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
WEB_PORT="${TOLLGATE_WEB_PORT:-8000}"
SANDBOX_PORT="${TOLLGATE_SANDBOX_PORT:-8765}"
export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"
export TOLLGATE_SANDBOX_URL="${TOLLGATE_SANDBOX_URL:-http://127.0.0.1:${SANDBOX_PORT}}"

for port in "$WEB_PORT" "$SANDBOX_PORT"; do
  if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "Port $port on 127.0.0.1 is already in use; stop what holds it (or set TOLLGATE_WEB_PORT / TOLLGATE_SANDBOX_PORT)." >&2
    exit 1
  fi
done

$PY manage.py migrate --noinput
demo_output="$($PY manage.py seed_demo)"
dev_token="$(printf '%s\n' "$demo_output" | grep -o 'tg_dev_[0-9A-Za-z]*' | head -n 1)"

pids=()
stop_all() {
  trap - INT TERM EXIT
  if [ "${#pids[@]}" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  echo "Tollgate stopped."
}
trap stop_all INT TERM EXIT

$PY manage.py sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" &
pids+=($!)
$PY manage.py runserver "127.0.0.1:$WEB_PORT" --noreload &
pids+=($!)
if [ -n "${CELERY_BROKER_URL:-${REDIS_URL:-}}" ]; then
  .venv/bin/celery -A config worker --beat --loglevel INFO --concurrency 2 &
  pids+=($!)
  worker_note="a Celery worker with beat"
else
  # No broker, so no beat: the schedule (reaping, checkpoints, reminders, alerts) runs in a process of its own.
  $PY manage.py run_periodic_tasks &
  pids+=($!)
  worker_note="tasks run in-process (set REDIS_URL for a worker)"
fi

for _ in $(seq 1 240); do
  if $PY - "$WEB_PORT" <<'PYEOF' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2)
PYEOF
  sleep 0.5
done

cat <<BANNER

  Tollgate is running ($worker_note).

    Admin        http://127.0.0.1:$WEB_PORT/admin/
    API docs     http://127.0.0.1:$WEB_PORT/api/docs/
    Readiness    http://127.0.0.1:$WEB_PORT/readyz
    Sandbox      $TOLLGATE_SANDBOX_URL  (stands in for api.anthropic.com)

$(printf '%s\n' "$demo_output" | sed 's/^/  /')

  Try it: run the support-ticket summary (the e-mail and phone number never reach the upstream):
    curl -s http://127.0.0.1:$WEB_PORT/api/v1/prompts/support-summary/run \\
      -H "Authorization: Bearer $dev_token" -H "Content-Type: application/json" \\
      -d '{"variables": {"ticket": "My printer is on fire. Call me on +1 415 555 2671.", "customer_email": "jane@example.com"}}'
  The prompts this client may run:
    curl -s -H "Authorization: Bearer $dev_token" http://127.0.0.1:$WEB_PORT/api/v1/prompts
  The same prompt through the official Anthropic SDK, only its base URL and key changed:
    .venv/bin/python -c 'import anthropic; print(anthropic.Anthropic(base_url="http://127.0.0.1:$WEB_PORT/anthropic", api_key="$dev_token").messages.create(model="prompt:support-summary", max_tokens=300, messages=[{"role": "user", "content": "My printer is on fire. Call me on +1 415 555 2671."}]).content[0].text)'

  Ctrl-C stops everything.

BANNER

wait -n "${pids[@]}"
