"""Which sockets a process tree listens on, and which of them are reachable beyond loopback.

``make serve`` runs this over the Ray processes it started (GCS, raylet, agents, workers,
Serve's proxy) and prints the result; with Ray's token auth off it refuses to run when any of
them listens on a non-loopback address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    process: str

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.address.split("%")[0]).is_loopback
        except ValueError:
            return False


def listeners(root_pid: int) -> list[Listener]:
    """TCP listening sockets of ``root_pid`` and all its descendants."""
    root = psutil.Process(root_pid)
    pids = {root_pid} | {p.pid for p in root.children(recursive=True)}
    found = set()
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                name = "?"
            found.add(Listener(conn.laddr.ip, conn.laddr.port, name))
    return sorted(found, key=lambda item: (item.process, item.port))


def exposed(root_pid: int) -> list[Listener]:
    return [item for item in listeners(root_pid) if not item.loopback]
