#!/usr/bin/env python3
"""Fleet benchmark (scripts/bench-replicas.sh): N Headroom replicas (separate processes) in
front of one simulated supplier account, sharing its quota through one redis-server, or
each alone. One JSON line out per run.

  --replicas N --store redis|none --convention github|ietf|retry-after

32 clients spread over the replicas (client c on replica c % N), 160 requests, quota 20 per
2 s. Reports the simulator's upstream 429s (as its quota decided them), client non-200s and
quota use: admitted / (limit * windows), over the windows fully inside the run. Loopback only;
every request has a timeout and the run a deadline.
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

LIMIT, WINDOW, CLIENTS, TOTAL = 20, 2, 32, 160


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--replicas", type=int, required=True)
    ap.add_argument("--store", choices=["redis", "none"], required=True)
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--convention", required=True)
    ap.add_argument("--prefix", default="bench")
    args = ap.parse_args()
    sim_port = free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [args.bin, "simulate", "--listen", f"127.0.0.1:{sim_port}", "--limit", str(LIMIT),
             "--window", f"{WINDOW}s", "--convention", args.convention],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(sim_port)
        urls = []
        for _ in range(args.replicas):
            port, admin = free_port(), free_port()
            store = ""
            if args.store == "redis":
                store = f'\n[store]\nredis_url = "{args.redis_url}"\nkey_prefix = "{args.prefix}"\n'
            with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
                f.write(f"""[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"

[[upstream]]
name = "sim"
prefix = "/sim"
url = "http://127.0.0.1:{sim_port}"
max_concurrency = {CLIENTS}

[upstream.queue]
max_wait = "60s"
{store}""")
            procs.append(subprocess.Popen(
                [args.bin, "--config", f.name], env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(port)
            urls.append(f"http://127.0.0.1:{port}/sim/records")
        # Every replica has heartbeated (1 s period) before the load starts.
        time.sleep(1.2)
        counter = iter(range(TOTAL))

        def client(c):
            statuses = []
            with requests.Session() as s:
                s.trust_env = False
                for _ in counter:
                    try:
                        statuses.append(s.get(urls[c % len(urls)], timeout=90).status_code)
                    except requests.RequestException:
                        statuses.append(0)
            return statuses

        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            statuses = [s for part in pool.map(client, range(CLIENTS)) for s in part]
        elapsed = time.time() - started
        stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sim_port}/__stats"))
        windows = stats["windows"]
        inner = windows[1:-1] or windows
        used = sum(w["admitted"] for w in inner) / (LIMIT * max(1, len(inner)))
        print(json.dumps({
            "convention": args.convention,
            "replicas": args.replicas,
            "store": args.store,
            "upstream_429": sum(w["rejected"] for w in windows),
            "client_non200": sum(1 for s in statuses if s != 200),
            "requests": len(statuses),
            "seconds": round(elapsed, 2),
            "quota_use": round(used, 2),
        }))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
