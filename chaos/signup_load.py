"""Sign-up load: the site under gunicorn with production settings on PostgreSQL and Redis,
wrk posting sign-ups for DURATION seconds (new addresses, repeats of earlier ones and
invalid ones), a real Celery worker sending the confirmations to an SMTP sink.

Verdict: no 5xx and no socket errors; every accepted sign-up is stored once (one subscriber
per address, one sign-up row in the consent log per accepted request) and got exactly one
confirmation email at the sink.

    .venv/bin/python chaos/signup_load.py [--duration 60] [--connections 16]
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.support import verdict  # noqa: E402
from tests.support.databases import base_env, fresh_database  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import start_gunicorn, start_worker  # noqa: E402
from tests.support.smtp_sink import SmtpSink  # noqa: E402

# One request in ten repeats an address sent five requests earlier, one in ten is invalid.
WRK_SCRIPT = r"""
local counter = 1
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  n = 0
  statuses = {}
end
function request()
  n = n + 1
  local email
  if n % 10 == 3 then
    email = "not-an-email-" .. id .. "-" .. n
  elseif n % 10 == 7 and n > 10 then
    email = "load-" .. id .. "-" .. (n - 5) .. "%40example.org"
  else
    email = "load-" .. id .. "-" .. n .. "%40example.org"
  end
  local body = "csrfmiddlewaretoken=__TOKEN__&email=" .. email .. "&topics=agents&topics=code&frequency=daily"
  return wrk.format("POST", "/", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "csrftoken=__COOKIE__",
    ["Referer"] = "__ORIGIN__/",
  }, body)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for status, count in pairs(t:get("statuses")) do
      all[tostring(status)] = (all[tostring(status)] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(all) do table.insert(parts, string.format('"%s": %d', status, count)) end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    table.concat(parts, ", ")))
end
"""


def csrf_pair(origin: str) -> tuple[str, str]:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(f"{origin}/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    cookie = next(c.value for c in jar if c.name == "csrftoken")
    return token, cookie


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--web-threads", type=int, default=4, help="1 = gunicorn's sync workers")
    args = parser.parse_args()

    sink = SmtpSink(keep_messages=False).start()
    port = free_port()
    env = base_env(
        "nl_chaos_signup", 8,
        SITE_URL=f"http://127.0.0.1:{port}",
        EMAIL_PROVIDER="smtp", EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port,
        # The load comes from one address: lift the per-IP limit (hostile_input.py checks it).
        SIGNUP_RATE_LIMIT="100000000/m",
    )
    print("Preparing database ...", flush=True)
    fresh_database(env)
    subprocess.run([sys.executable, "-c", "import django"], check=True)
    start_gunicorn(env, port, workers=args.web_workers, threads=args.web_threads)
    start_worker(env, "signup", concurrency=2)
    origin = f"http://127.0.0.1:{port}"
    token, cookie = csrf_pair(origin)

    script = WRK_SCRIPT.replace("__TOKEN__", token).replace("__COOKIE__", cookie).replace("__ORIGIN__", origin)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    print(f"wrk: {args.connections} connections for {args.duration} s against {origin}/ (gunicorn, {args.web_workers} workers x {args.web_threads} threads)", flush=True)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s", "-s", f.name, origin + "/"],
        capture_output=True, text=True, timeout=args.duration + 60,
    ).stdout
    print(out)
    stats = json.loads(re.search(r"WRK_JSON (\{.*\})", out).group(1))
    statuses = {int(k): v for k, v in stats["statuses"].items()}
    accepted = statuses.get(303, 0)  # redirect-after-POST to /check-inbox/
    server_errors = sum(v for k, v in statuses.items() if k >= 500)
    socket_errors = stats["connect_errors"] + stats["read_errors"] + stats["write_errors"] + stats["timeouts"]

    print("Waiting for the worker to send every confirmation ...", flush=True)
    t0 = time.monotonic()
    sink.wait_for_total(accepted, timeout=max(60, accepted / 50))
    drain = time.monotonic() - t0
    time.sleep(5)  # the in-flight requests' emails, and anything beyond the expected count, show up now

    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        per_address = dict(conn.execute(
            """SELECT lower(s.email), count(e.id) FROM subscriptions_subscriber s
               JOIN subscriptions_consentevent e ON e.subscriber_id = s.id AND e.kind = 'signup'
               GROUP BY lower(s.email)""").fetchall())
        subscribers = conn.execute("SELECT count(*), count(DISTINCT lower(email)) FROM subscriptions_subscriber").fetchone()
        invalid_stored = conn.execute("SELECT count(*) FROM subscriptions_subscriber WHERE email LIKE 'not-an-email%%'").fetchone()[0]
    signup_rows = sum(per_address.values())
    mismatched = [a for a, n in per_address.items() if sink.per_recipient.get(a, 0) != n]
    unexpected = [a for a in sink.per_recipient if a not in per_address]

    seconds = stats["duration_us"] / 1e6
    print(f"\nrequests: {stats['requests']} in {seconds:.1f} s = {stats['requests'] / seconds:.0f} req/s")
    print(f"latency: p50 {stats['p50_us'] / 1000:.1f} ms, p90 {stats['p90_us'] / 1000:.1f} ms, p99 {stats['p99_us'] / 1000:.1f} ms, max {stats['max_us'] / 1000:.1f} ms")
    print(f"responses by status: {dict(sorted(statuses.items()))}; socket errors: {socket_errors}")
    print(f"accepted sign-ups (303): {accepted}; refused as invalid (400): {statuses.get(400, 0)}")
    print(f"subscribers stored: {subscribers[0]} ({subscribers[1]} distinct addresses); sign-up log rows: {signup_rows}")
    print(f"confirmation emails at the sink: {sink.total} (drained {drain:.1f} s after the load ended)")
    print(f"addresses whose email count differs from their accepted sign-ups: {len(mismatched)}; emails to unknown addresses: {len(unexpected)}")
    return verdict({
        "no 5xx responses": server_errors == 0,
        "no socket errors or time-outs": socket_errors == 0,
        "each address stored once": subscribers[0] == subscribers[1],
        "no invalid address stored": invalid_stored == 0,
        # wrk stops without reading the answers to the requests in flight (at most one per
        # connection); the server still handles them.
        f"one sign-up log row per accepted request (+ at most {args.connections} in flight at the stop)":
            accepted <= signup_rows <= accepted + args.connections,
        "exactly one confirmation email per stored sign-up": not mismatched and not unexpected and sink.total == signup_rows,
    })


if __name__ == "__main__":
    sys.exit(main())
