#!/usr/bin/env python3
"""Poller side of scripts/bench-quota.sh: WORKERS threads send REQUESTS GETs in total.

Two client styles:
  urllib3  the typical backoff client: requests + urllib3 Retry(total=10, backoff_factor=0.2,
           status_forcelist=[429, 500, 502, 503, 504], respect_retry_after_header=True),
           one Session per worker thread;
  plain    requests with no retry at all, one Session per worker thread (meant to go through
           Headroom, which does the pacing and retrying).

The run starts at the next multiple of --window since the Unix epoch (the simulator's quota
windows are aligned to it), so the ideal time for REQUESTS at LIMIT per window is
(ceil(REQUESTS / LIMIT) - 1) * WINDOW. The run is bounded by --timeout: requests still
pending then count as non-200 ("timeout") and the process exits anyway.

Prints one line: upstream_429 client_non200 seconds quota_use max_429_per_window statuses
where upstream_429 and max_429_per_window come from the simulator's GET /__stats, seconds
runs from the window start to the last response and quota_use = ideal / seconds.
"""

import argparse
import collections
import concurrent.futures
import json
import math
import os
import sys
import threading
import time
import urllib.request

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


def session_factory(mode):
    def make():
        s = requests.Session()
        s.trust_env = False  # loopback only: never through an environment proxy
        if mode == "urllib3":
            retry = Retry(
                total=10,
                backoff_factor=0.2,
                status_forcelist=[429, 500, 502, 503, 504],
                respect_retry_after_header=True,
                allowed_methods=frozenset(["GET", "HEAD", "OPTIONS"]),
                raise_on_status=False,  # hand back the last response so its status is recorded
            )
            adapter = HTTPAdapter(max_retries=retry)
        else:
            adapter = HTTPAdapter(max_retries=0)
        s.mount("http://", adapter)
        return s

    return make


def fetch_stats(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as r:
        return json.load(r)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="URL every GET goes to")
    p.add_argument("--stats", required=True, help="the simulator's /__stats URL")
    p.add_argument("--mode", choices=["urllib3", "plain"], required=True)
    p.add_argument("--requests", type=int, default=160)
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--limit", type=int, default=20, help="simulator quota per window")
    p.add_argument("--window", type=float, default=2.0, help="simulator window, seconds")
    p.add_argument("--timeout", type=float, default=120.0, help="bound on the whole run, seconds")
    p.add_argument("--json", help="also write the per-request details here")
    a = p.parse_args()

    ideal = (math.ceil(a.requests / a.limit) - 1) * a.window
    local = threading.local()
    make = session_factory(a.mode)

    def one(i):
        if not hasattr(local, "s"):
            local.s = make()
        try:
            r = local.s.get(f"{a.url}/item/{i}", timeout=(5, a.timeout))
            r.content  # noqa: B018 - read the body, as a poller would
            status = r.status_code
        except requests.RequestException as e:
            status = f"error:{type(e).__name__}"
        return status, time.time()

    # Start at the next window boundary, with at least 0.3 s to spare.
    now = time.time()
    start = math.ceil(now / a.window) * a.window
    if start - now < 0.3:
        start += a.window
    time.sleep(start - time.time())

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=a.workers)
    futures = [pool.submit(one, i) for i in range(a.requests)]
    deadline = start + a.timeout
    done, _ = concurrent.futures.wait(futures, timeout=max(0.0, deadline - time.time()))
    timed_out = time.time() >= deadline and len(done) < len(futures)

    statuses, last = [], start
    for f in futures:
        if f in done:
            status, end = f.result()
            last = max(last, end)
        else:
            status = "timeout"
        statuses.append(status)
    seconds = a.timeout if timed_out else last - start

    stats = fetch_stats(a.stats)
    max_rejected = max((w["rejected"] for w in stats.get("windows", [])), default=0)
    non200 = sum(1 for s in statuses if s != 200)
    counts = collections.Counter(str(s) for s in statuses)
    summary = ",".join(f"{k}x{v}" for k, v in sorted(counts.items()))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"start": start, "seconds": seconds, "ideal": ideal, "statuses": statuses,
                       "stats": stats}, fh)
    print(f"{stats['rate_limited']} {non200} {seconds:.2f} {ideal / seconds:.2f} {max_rejected} {summary}")
    sys.stdout.flush()
    # Worker threads still blocked after a timeout must not keep the process alive.
    os._exit(0)


if __name__ == "__main__":
    main()
