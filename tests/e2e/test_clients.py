"""Real HTTP clients (requests, aiohttp, httpx, curl) through the real binary, in front of
the real supplier simulator."""

import asyncio
import hashlib
import json
import subprocess

import aiohttp
import httpx


def test_requests_get_post_and_request_id(gateway, session):
    r = session.get(f"{gateway.url}/supplier-a/echo?lot=FSMA-204%2F42&since=2026-11-01", headers={"X-Request-Id": "poll-7"})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] == "poll-7"
    assert r.headers["Headroom-Attempts"] == "1"
    echoed = r.json()
    assert echoed["path"] == "/echo"
    assert echoed["query"] == "lot=FSMA-204%2F42&since=2026-11-01"
    headers = {k.lower(): v for k, v in echoed["headers"].items()}
    assert headers["x-request-id"] == ["poll-7"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]

    payload = {"lot": "FSMA-204-0042", "events": [{"cte": "shipping", "ts": "2026-11-20T08:00:00Z"}]}
    r = session.post(f"{gateway.url}/supplier-a/echo", json=payload)
    assert r.status_code == 200
    assert json.loads(r.json()["body"]) == payload


def test_requests_errors_are_json(gateway, session):
    r = session.get(f"{gateway.url}/nowhere/x")
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "no_route"
    assert body["upstream"] is None
    assert body["request_id"] == r.headers["X-Request-Id"]


def test_requests_streams_an_upload(gateway, session):
    chunk = bytes(range(256)) * 4096  # 1 MiB

    def body():
        for _ in range(16):
            yield chunk

    r = session.post(f"{gateway.url}/supplier-a/upload", data=body())
    assert r.status_code == 200
    assert r.json()["bytes"] == 16 * len(chunk)


def test_aiohttp_concurrent_pollers(gateway):
    async def main():
        async with aiohttp.ClientSession() as s:
            async def one(i):
                async with s.get(f"{gateway.url}/supplier-a/echo?i={i}") as r:
                    assert r.status == 200
                    return (await r.json())["query"]

            return await asyncio.gather(*(one(i) for i in range(50)))

    assert sorted(asyncio.run(main())) == sorted(f"i={i}" for i in range(50))


def test_httpx_download_is_intact(gateway):
    n = 5 * 1024 * 1024
    with httpx.Client(trust_env=False) as c:
        proxied = c.get(f"{gateway.url}/supplier-a/bytes/{n}")
        assert proxied.status_code == 200
        assert len(proxied.content) == n
        assert proxied.headers["content-length"] == str(n)
        # The same bytes come straight from the simulator.
        straight = c.get(f"{gateway.upstream_url}/bytes/{n}")
    assert hashlib.sha256(proxied.content).digest() == hashlib.sha256(straight.content).digest()


def test_curl_through_headroom(gateway):
    out = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-D", "-", "-H", "X-Request-Id: curl-1", f"{gateway.url}/supplier-a/echo?via=curl"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    head, _, body = out.partition("\n\n")  # text mode turned CRLF into LF
    assert head.startswith("HTTP/1.1 200")
    assert "x-request-id: curl-1" in head.lower()
    assert json.loads(body)["query"] == "via=curl"

    out = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", f"{gateway.url}/supplier-a/%2e%2e/__stats"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    assert out == "400"


def test_healthz(gateway, session):
    r = session.get(f"{gateway.admin_url}/healthz")
    assert r.status_code == 200


def test_aiohttp_pollers_never_see_a_429(tmp_path):
    """20 concurrent aiohttp pollers, 40 requests, a supplier allowing 10 per second (IETF
    headers): every poller gets 200 and the supplier (almost) never has to say 429."""
    from conftest import Process, free_port

    sim_port, port, admin = free_port(), free_port(), free_port()
    sim = Process(["simulate", "--listen", f"127.0.0.1:{sim_port}", "--limit", "10", "--window", "1s", "--convention", "ietf"], sim_port)
    config = tmp_path / "headroom.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{admin}"\n\n'
        f'[[upstream]]\nname = "paced"\nprefix = "/paced"\nurl = "http://127.0.0.1:{sim_port}"\n'
    )
    gw = Process(["--config", str(config)], port)
    try:
        async def main():
            async with aiohttp.ClientSession() as s:
                sem = asyncio.Semaphore(20)

                async def one(i):
                    async with sem, s.get(f"http://127.0.0.1:{port}/paced/lots?page={i}") as r:
                        return r.status, int(r.headers["Headroom-Attempts"])

                return await asyncio.gather(*(one(i) for i in range(40)))

        results = asyncio.run(main())
        assert [status for status, _ in results] == [200] * 40
        stats = httpx.get(f"http://127.0.0.1:{sim_port}/__stats").json()
        assert stats["ok"] == 40
        assert stats["rate_limited"] <= 2, stats
        assert all(w["admitted"] <= 10 for w in stats["windows"]), stats
    finally:
        assert gw.stop() == 0
        sim.stop()
