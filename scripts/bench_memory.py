"""Memory of a proxy holding many client connections, for scripts/bench-proxy.sh.

  bench_memory.py queued --proxy PORT --path /s/x --pid PID --count N [--metrics URL]
  bench_memory.py idle   --proxy PORT --path /s/x --pid PID --count N

`queued`: N connections each send one request that must wait (the upstream behind the proxy
holds its one concurrency slot), the RSS is read once N-1 wait, then every client leaves
and the RSS is read again once the queue is empty. `idle`: N keep-alive connections each
get one answer and stay open; RSS with them open, then after they close. The RSS held is
read 1 s after the last connection was opened, and again as the lowest within the next 12 s
while they are still held (settled). Prints one JSON object: rss_start_kib, rss_held_kib,
rss_settled_kib, rss_after_kib, per_connection_kib, per_connection_settled_kib. Loopback
only, bounded in count and time.
"""

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def queue_depth(metrics_url):
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    total = 0.0
    for match in re.finditer(r"^headroom_queue_depth\{[^}]*\} (\S+)$", text, re.M):
        total += float(match.group(1))
    return int(total)


async def open_all(port, count, request, read_answer):
    streams = []
    for start in range(0, count, 500):
        batch = [asyncio.open_connection("127.0.0.1", port) for _ in range(start, min(count, start + 500))]
        for reader, writer in await asyncio.gather(*batch):
            writer.write(request)
            streams.append((reader, writer))
        if read_answer:
            await asyncio.gather(*(read_head(reader) for reader, _ in streams[start:]))
    return streams


async def read_head(reader):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if length:
        await asyncio.wait_for(reader.readexactly(int(length.group(1))), 30)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head[:80])


async def lowest_for(pid, seconds, floor=0):
    """The lowest RSS within `seconds` (freed memory is given back with a delay), sooner once
    it is at `floor` or below."""
    deadline = time.monotonic() + seconds
    lowest = rss_kib(pid)
    while time.monotonic() < deadline and lowest > floor:
        await asyncio.sleep(0.25)
        lowest = min(lowest, rss_kib(pid))
    return lowest


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["queued", "idle"])
    parser.add_argument("--proxy", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--metrics")
    args = parser.parse_args()

    request = f"GET {args.path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    start = rss_kib(args.pid)
    streams = await open_all(args.proxy, args.count, request, read_answer=args.mode == "idle")
    if args.mode == "queued":
        deadline = time.monotonic() + 60
        while queue_depth(args.metrics) < args.count - 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {queue_depth(args.metrics)} queued")
            await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    held = rss_kib(args.pid)
    # Then the RSS they settle to while still held: memory a connection gives back when it
    # goes idle reaches the system after the allocator's decay time (about 10 s).
    settled = await lowest_for(args.pid, 12.0)
    for _, writer in streams:
        writer.close()
    streams.clear()
    if args.mode == "queued":
        deadline = time.monotonic() + 60
        while queue_depth(args.metrics) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    # Gone: back within 10% of the start is enough.
    after = await lowest_for(args.pid, 10.0, floor=start * 1.1)
    json.dump(
        {
            "rss_start_kib": start,
            "rss_held_kib": held,
            "rss_settled_kib": settled,
            "rss_after_kib": after,
            "per_connection_kib": round((held - start) / args.count, 2),
            "per_connection_settled_kib": round((settled - start) / args.count, 2),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    asyncio.run(main())
