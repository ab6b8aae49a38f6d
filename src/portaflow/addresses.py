"""Which of this host's addresses the workers on compute nodes can reach: one rule for Parsl's interchange
(on the driver) and Dask's scheduler (in a step's job).

Why it matters: a listener on 127.0.0.1 is unreachable from every other host, and nothing fails: workers
retry until the walltime. A login or compute node usually has several addresses (loopback, a public
interface, the cluster network, InfiniBand), and only some of them are reachable from the nodes.

The rule, first answer wins:
1. the profile's `network.address` (where the caller passes it: it names the driver, never a step's job);
2. the address of the profile's `network.interface` on this host;
3. the local end of the route toward a host where workers run (`peers`: what the site's scheduler says about
   its nodes, e.g. SLURM's NodeAddr, or the host a job was submitted from): the address those hosts are
   reached from is, with symmetric routing, the address they reach us at. A loopback answer counts only when
   the peer itself is loopback (a scheduler whose nodes are this host);
4. Parsl's `address_by_route`: the local end of the route toward a public address (no packet is sent);
5. Parsl's `address_by_hostname`: what this host's fully qualified name resolves to.
Loopback answers from 4 and 5 are skipped; when nothing else is left, `AddressError` says what was tried
and which profile keys set the address.

A profile's own choice (1, 2) is checked where it can be without a probe job: an address must be one of this
host's (else the listener cannot bind: Parsl's interchange dies and its workers wait until the walltime), and
a loopback address is refused when the scheduler names peers on other hosts. Both fail at once, naming the key.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from portaflow.errors import InputError

log = logging.getLogger(__name__)

PUBLIC_TARGET = "8.8.8.8"
"""Where Parsl's address_by_route and Dask's get_ip point a UDP socket to learn the outgoing address (a connect
on a UDP socket sends nothing)."""


@dataclass(frozen=True)
class AddressChoice:
    """An address and how it was chosen (for the log and the manifest)."""

    address: str
    chosen_by: str

    def as_record(self) -> dict[str, str]:
        return {"address": self.address, "chosen_by": self.chosen_by}


class AddressError(InputError):
    """The profile's `network` names an address workers cannot reach (or this host does not have), or no
    address but loopback was found. Exit 2: nothing is submitted."""


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def local_addresses() -> dict[str, list[str]]:
    """Each local interface's IPv4 addresses."""
    import psutil  # distributed's dependency; imported here so the helpers stay light

    return {name: [str(i.address) for i in infos if i.family == socket.AF_INET] for name, infos in psutil.net_if_addrs().items()}


def interface_address(interface: str) -> str:
    """The IPv4 address of a local interface; AddressError naming the interfaces there are otherwise."""
    addresses = local_addresses()
    if addresses.get(interface):
        return addresses[interface][0]
    why = "has no IPv4 address" if interface in addresses else "does not exist"
    raise AddressError(f"network.interface: {interface!r} {why} on {socket.gethostname()} "
                       f"(interfaces here: {_describe(addresses)})")


def interface_of(address: str) -> str | None:
    """The local interface that holds `address` (None: not an address of this host), for messages and reports."""
    ip = _resolve(address)
    return next((name for name, ips in sorted(local_addresses().items()) if ip in ips), None)


def _describe(addresses: dict[str, list[str]]) -> str:
    return ", ".join(f"{name} {'/'.join(ips) or '(no IPv4)'}" for name, ips in sorted(addresses.items())) or "none"


def route_source(target: str) -> str | None:
    """The local address of the route toward `target` (a name or an IPv4 address); None when the name does
    not resolve or there is no route. A UDP connect picks the route without sending anything."""
    try:
        ip = socket.getaddrinfo(target, None, socket.AF_INET)[0][4][0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((ip, 9))
            return str(sock.getsockname()[0])
    except OSError:
        return None


def hostname_address() -> tuple[str, str | None]:
    """This host's fully qualified name and what it resolves to (None if it does not)."""
    name = socket.getfqdn()
    try:
        return name, socket.gethostbyname(name)
    except OSError:
        return name, None


def choose_address(*, address: str | None = None, interface: str | None = None, peers: Iterable[str] = (),
                   what: str = "workers") -> AddressChoice:
    """The address `what` (the workers of a Parsl executor, of a Dask scheduler) reach this host at, by the
    rule in the module's docstring. `address`/`interface`: the profile's `network` keys (pass `address` only
    where it names this host). `peers`: hosts where the workers run, as far as the scheduler knows."""
    peers = list(dict.fromkeys(p for p in peers if p))
    if address or interface:
        if address:
            key, choice = "network.address", AddressChoice(address, "network.address in the site profile")
            here = local_addresses()
            if not any(_resolve(address) in ips for ips in here.values()):
                raise AddressError(f"{key}: {address} is not an address of {socket.gethostname()}, so nothing can "
                                   f"listen there for {what} (addresses here: {_describe(here)})")
        else:
            key, choice = "network.interface", AddressChoice(interface_address(str(interface)), f"network.interface {interface} in the site profile")
        remote = [p for p in peers if not _resolves_to_loopback(p)]
        if is_loopback(choice.address) and remote:
            raise AddressError(f"{key}: {choice.address} is loopback, which {what} on {', '.join(remote[:3])} cannot reach; "
                               f"name this host's address on their network (network.address) or its interface (network.interface)")
        return _chosen(choice, what)
    tried = []
    for peer in peers:
        source = route_source(peer)
        if source and (not is_loopback(source) or _resolves_to_loopback(peer)):
            return _chosen(AddressChoice(source, f"route toward {peer}, a host where {what} run"), what)
        tried.append(f"route toward {peer}: {source or 'no route, or the name does not resolve'}")
    source = route_source(PUBLIC_TARGET)
    if source and not is_loopback(source):
        return _chosen(AddressChoice(source, f"route toward {PUBLIC_TARGET} (as Parsl's address_by_route)"), what)
    tried.append(f"route toward {PUBLIC_TARGET}: {source or 'no route'}")
    name, resolved = hostname_address()
    if resolved and not is_loopback(resolved):
        return _chosen(AddressChoice(resolved, f"host name {name} (as Parsl's address_by_hostname)"), what)
    tried.append(f"host name {name}: {resolved or 'does not resolve'}")
    raise AddressError(
        f"no address of {socket.gethostname()} that {what} on other hosts can reach (tried: {'; '.join(tried)}); "
        "set network.address or network.interface in the site profile")


def _resolve(name: str) -> str | None:
    """A name's (or an address's own) first IPv4 address; None if it does not resolve."""
    try:
        return str(socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0])
    except OSError:
        return None


def _resolves_to_loopback(peer: str) -> bool:
    return is_loopback(_resolve(peer) or "")


def _chosen(choice: AddressChoice, what: str) -> AddressChoice:
    log.info("%s reach this host (%s) at %s: %s", what, socket.gethostname(), choice.address, choice.chosen_by)
    return choice
