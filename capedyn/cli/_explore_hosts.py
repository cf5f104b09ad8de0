"""The host names the explorer answers to, from the address it binds (DNS rebinding: a
page on another site whose name is re-pointed at 127.0.0.1 must not reach the explorer,
so a request naming any other host is refused), and the warning for a public address."""

from __future__ import annotations

import ipaddress
import socket
from typing import Iterable

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> list[str]:
    """Host names a browser may use for the explorer bound at ``host``: the loopback
    names, the bound address itself, for a wildcard bind this machine's names, and
    ``extra`` (from ``--allow-host``)."""
    names = list(LOOPBACK_NAMES)
    if not _is_loopback(host) and not _is_wildcard(host):
        names.append(host)
    if _is_wildcard(host):
        for name in {socket.gethostname(), socket.getfqdn()}:
            names.append(name)
            try:
                names += [a[4][0] for a in socket.getaddrinfo(name, None)]
            except OSError:
                pass
    names += [e.strip() for e in extra if e.strip()]
    return list(dict.fromkeys(names))


def exposure_warning(host: str) -> str | None:
    """A warning when ``host`` lets other machines reach the explorer (it has no login)."""
    if _is_loopback(host):
        return None
    where = "every network this machine is on" if _is_wildcard(host) else f"the network of {host}"
    return (f"--host {host} opens the explorer to {where}; anyone who can reach this "
            "machine can use it (there is no login). Use the default 127.0.0.1 unless "
            "that is what you want")
