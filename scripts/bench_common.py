"""Helpers shared by the Python benchmark drivers: free loopback ports, waiting for one."""

import socket
import sys
import time


def free_port():
    """A free TCP port on 127.0.0.1 (the OS picks it; closed again at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=15.0):
    """Waits until something listens on 127.0.0.1:port; exits the script after `deadline` s."""
    end = time.time() + deadline
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} did not open")
