"""A guard that makes any attempt to reach the network fail and leave a trace: name lookups of other hosts
and connections to anything but this machine raise, and each attempt is appended to a log file that the
tests check is empty. Installed in the test process (conftest) and, through `network_guard/sitecustomize.py`
on PYTHONPATH, in every command the tests run as a separate process."""

from __future__ import annotations

import os
import socket

LOG_VARIABLE = "CXR_AGE_NETWORK_LOG"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}


def _record(what: str, log: str) -> None:
    with open(log, "a") as handle:
        handle.write(f"{os.getpid()} {what}\n")
    raise ConnectionRefusedError(f"network access blocked by the test guard: {what}")


def _host(address: object) -> str:
    return str(address[0]) if isinstance(address, tuple) else str(address)


def install(log: str) -> None:
    """Refuse and log every non-local name lookup and connection made through Python's socket module."""
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: object) -> None:
        if self.family != socket.AF_UNIX and _host(address) not in LOCAL_HOSTS:
            _record(f"connect {address}", log)
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if self.family != socket.AF_UNIX and _host(address) not in LOCAL_HOSTS:
            _record(f"connect {address}", log)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
        if host is not None and str(host) not in LOCAL_HOSTS:
            _record(f"lookup {host}", log)
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.getaddrinfo = guarded_getaddrinfo


def install_from_environment() -> None:
    if os.environ.get(LOG_VARIABLE):
        install(os.environ[LOG_VARIABLE])
