"""Fixtures: the real `headroom` binary as a supplier simulator and as the gateway in front
of it, each on free ports of 127.0.0.1."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

BIN = os.environ.get("HEADROOM_BIN", str(Path(__file__).resolve().parents[2] / "target/debug/headroom"))
STARTUP_DEADLINE_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)  # readiness polling of a starting process, not a test wait
    raise RuntimeError(f"nothing listening on {port} after {STARTUP_DEADLINE_S}s")


class Process:
    def __init__(self, args, port, env=None):
        self.port = port
        self.proc = subprocess.Popen(
            [BIN, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        wait_until_listening(port, self.proc)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture
def simulator():
    port = free_port()
    sim = Process(["simulate", "--listen", f"127.0.0.1:{port}", "--limit", "0"], port)
    sim.url = f"http://127.0.0.1:{port}"
    yield sim
    sim.stop()


@pytest.fixture
def gateway(simulator, tmp_path):
    port, admin = free_port(), free_port()
    config = tmp_path / "headroom.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
drain_timeout = "10s"

[[upstream]]
name = "supplier-a"
prefix = "/supplier-a"
url = "{simulator.url}/"
"""
    )
    gw = Process(["--config", str(config)], port)
    gw.url = f"http://127.0.0.1:{port}"
    gw.admin_url = f"http://127.0.0.1:{admin}"
    gw.upstream_url = simulator.url
    wait_until_listening(admin, gw.proc)
    yield gw
    assert gw.stop() == 0, "headroom exits 0 on SIGTERM"


@pytest.fixture
def session():
    with requests.Session() as s:
        s.trust_env = False
        yield s
