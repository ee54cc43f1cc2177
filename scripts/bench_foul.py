#!/usr/bin/env python3
"""Foul-weather quota benchmark (scripts/bench-foul.sh): one Headroom binary in front of its
own supplier simulator on 127.0.0.1, one scenario, one JSON line out.

  impatient  GitHub headers, 5 per 4 s, 1.5 s per answer. One patient request lets Headroom
             learn the quota, then 64 clients that give up after 0.4 s, 8 at a time.
  slow       GitHub headers, 20 per 2 s, 2 s per answer; 32 clients, 160 requests, patient.
  tightened  GitHub headers, 20 per 2 s, halved to 10 from the window after the 80th request
             (POST /__limit); 32 clients, 200 requests, patient.

Reports the simulator's upstream 429s (as its quota decided them), what it admitted, client
non-200s, wall time and quota use: admitted / (limit * windows that saw requests). Bounded: every client request has a
timeout and the run a deadline.
"""

import argparse
import concurrent.futures
import json
import subprocess
import tempfile
import time
import urllib.request

import requests

from bench_common import free_port, wait_port

SCENARIOS = {
    # limit, window s, latency, clients, requests, client timeout s
    "impatient": (5, 4, "1500ms", 8, 64, 0.4),
    "slow": (20, 2, "2s", 32, 160, 30.0),
    "tightened": (20, 2, "0s", 32, 200, 30.0),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sim-bin", help="binary whose simulator to use (default: --bin)")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    args = ap.parse_args()
    limit, window, latency, clients, total, timeout = SCENARIOS[args.scenario]
    sim_port, hr_port, admin_port = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [args.sim_bin or args.bin, "simulate", "--listen", f"127.0.0.1:{sim_port}", "--limit", str(limit),
             "--window", f"{window}s", "--latency", latency, "--convention", "github"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(sim_port)
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(f"""[server]
listen = "127.0.0.1:{hr_port}"
admin_listen = "127.0.0.1:{admin_port}"

[[upstream]]
name = "sim"
prefix = "/sim"
url = "http://127.0.0.1:{sim_port}"
max_concurrency = {clients}
""")
        procs.append(subprocess.Popen(
            [args.bin, "--config", f.name], env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(hr_port)
        url = f"http://127.0.0.1:{hr_port}/sim/records"
        session = requests.Session()
        session.trust_env = False
        if args.scenario == "impatient":
            session.get(url, timeout=10)  # learn the quota
        started = time.time()
        statuses = []

        def one(n):
            if args.scenario == "tightened" and n == 80:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{sim_port}/__limit?limit={limit // 2}", method="POST")
                urllib.request.urlopen(req).read()
            # A fresh connection per request, closed when the client gives up (as a poller
            # whose HTTP library times out does).
            with requests.Session() as s:
                s.trust_env = False
                try:
                    return s.get(url, timeout=timeout).status_code
                except requests.RequestException:
                    return 0

        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            statuses = list(pool.map(one, range(total)))
        elapsed = time.time() - started
        # Attempts whose clients left may still be out: let them land (bounded).
        time.sleep(2.0)
        stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sim_port}/__stats"))
        # The windows the supplier saw requests in (the limit is fixed except in "tightened",
        # where the wall time against the same run's baseline is the measure).
        windows = max(1, len(stats["windows"]))
        admitted = sum(w["admitted"] for w in stats["windows"])
        # Rejections as the quota decided them: a 429 whose connection Headroom dropped
        # during the simulated latency never reaches the response counters.
        rejected = sum(w["rejected"] for w in stats["windows"])
        print(json.dumps({
            "scenario": args.scenario,
            "upstream_429": rejected,
            "admitted": admitted,
            "client_non200": sum(1 for s in statuses if s != 200),
            "seconds": round(elapsed, 2),
            "quota_use": round(admitted / (limit * windows), 2),
        }))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
