"""Cluster addresses, checked before anything starts (no Ray import: the CLI checks them before
it imports Ray, reads data or tokenises). Every refusal is one line within ``DEADLINE`` seconds:

* ``host:port`` (``run --address``): a TCP connection, then the HTTP/2 handshake that Ray's GCS
  (a gRPC server) answers with a SETTINGS frame; a port that answers otherwise (a web server, the
  Ray dashboard) or not at all is refused instead of leaving Ray to retry for minutes;
* ``ray://`` (Ray Client) and ``http://`` (the dashboard) addresses cannot run a sweep: refused
  at once, naming ``submit-job``;
* ``submit-job``'s address: ``http(s)://host:port``, asked for ``/api/version`` (a Ray dashboard
  answers it); one without a scheme is a GCS address, checked as above (Ray then asks the GCS
  where its dashboard is).

A cluster whose GCS listens on loopback only (``ray start --head --node-ip-address=127.0.0.1``
with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps its ``127.0.0.1`` address only when the
driver sets the same variable before Ray is imported: otherwise Ray replaces a loopback host by
the machine's external address (``ray._private.services.resolve_ip_for_localhost``) and never
reaches the GCS. ``LOOPBACK_ENV`` is that setting; :func:`is_loopback` says when it applies.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from ..errors import UserError, within

DEADLINE = 7.0       # seconds for the whole check of one address (name lookup, connection, answer)
TIMEOUT = 3.0        # seconds for the connection, and again for the answer
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}   # Ray keeps 127.0.0.1 as the node's address
# The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers with its SETTINGS.
H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
JOBS_HINT = "submit-job takes the Ray dashboard's address, e.g. --address http://<head>:8265"


def check_client_address(address: str) -> None:
    """Ray Client (``ray://``) runs Tune's controller on the head and cannot carry the driver's
    store writer; a dashboard address (``http://``) is for job submission. Both: one line."""
    if address.startswith("ray://"):
        raise UserError(f"{address}: Ray Client (ray://) addresses cannot run a sweep; submit it as a Ray Job "
                        f"instead: glue-sweep submit-job SWEEP --address http://<head>:8265")
    if address.startswith(("http://", "https://")):
        raise UserError(f"{address} is a Ray dashboard address: submit the sweep to it with "
                        f"glue-sweep submit-job SWEEP --address {address} (run --address takes host:port or auto)")


def host_port(address: str, default_port: int | None = None) -> tuple[str, int]:
    try:
        url = urlparse(address if "://" in address else f"tcp://{address}")
        default = default_port or {"ray": 10001, "http": 80, "https": 443}.get(url.scheme, 6379)
        host, port = url.hostname, url.port or default
    except ValueError as e:   # a port that is not a number, or out of range
        raise UserError(f"cluster address {address!r} is not host:port or ray://host:port ({e})") from None
    if not host:
        raise UserError(f"cluster address {address!r} is not host:port or ray://host:port")
    return host, port


def is_loopback(address: str | None) -> bool:
    """Whether a cluster address names this machine's loopback (127.0.0.1, ::1, localhost)."""
    if not address or address in ("auto", "local"):
        return False
    try:
        host = host_port(address)[0]
    except UserError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cluster_file() -> Path:
    """Where ``ray start`` leaves the address of the machine's running cluster."""
    return Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray" / "ray_current_cluster"


def auto_address() -> str:
    """The running local cluster's address for ``--address auto``, checked to answer: a stale
    cluster file is one line at once, not minutes of Ray's retries."""
    path = cluster_file()
    try:
        address = path.read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        raise UserError(f"--address auto: no running Ray cluster on this machine ({path} is missing); start one "
                        f"with `ray start --head` or drop --address for a local Ray") from None
    check_address(address, what=f"the cluster named in {path} (stale: is it still running?)")
    return address


def resolve(address: str | None) -> str | None:
    """``run --address`` as the driver uses it: ``auto`` read from the cluster file; every address checked."""
    if not address:
        return None
    address = auto_address() if address == "auto" else address
    check_address(address)
    return address


def _speaks_http2(host: str, port: int) -> str | None:
    """None when the peer answers the HTTP/2 preface with a SETTINGS frame (a gRPC server, as a
    Ray GCS is), else what it did instead. Raises OSError when it cannot be reached."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.settimeout(TIMEOUT)
        try:
            s.sendall(H2_HELLO)
            data = b""
            while len(data) < 9:
                chunk = s.recv(9 - len(data))
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            return f"it accepts connections but says nothing within {TIMEOUT:g} s"
        except OSError as e:   # reset by the peer
            return f"it closed the connection ({e.strerror or e})"
    if len(data) == 9 and data[3] == 0x04 and data[5:9] == b"\x00\x00\x00\x00":
        return None
    if data.startswith((b"HTTP/", b"<")):   # a status line, or an HTML error page (an HTTP/0.9-style answer)
        return "an HTTP/1 server answers there (a web server, or a Ray dashboard: that port is for submit-job)"
    return "it closed the connection" if not data else f"it answers {data[:9]!r}, not HTTP/2 as a gRPC server does"


def check_address(address: str, what: str = "") -> None:
    """Fail fast, with one line, when a cluster address is malformed, cannot be reached, or is
    not a Ray GCS."""
    if address in ("auto", "local"):
        return
    check_client_address(address)
    host, port = host_port(address)
    what = what or "the Ray cluster"

    def probe():
        try:
            wrong = _speaks_http2(host, port)
        except (OSError, OverflowError) as e:
            raise UserError(f"cannot reach {what} at {address} ({getattr(e, 'strerror', None) or e})") from None
        # with TLS (RAY_USE_TLS) the GCS's handshake is TLS's, not HTTP/2's in the clear
        if wrong and os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", ""):
            raise UserError(f"{address} is not a Ray cluster's GCS address: {wrong} (give the head's GCS port, "
                            f"`ray start --head --port`, default 6379)")

    within(DEADLINE, probe, f"cannot reach {what} at {address} (no answer within {DEADLINE:g} s)")


def jobs_address(address: str | None) -> str | None:
    """The address ``submit-job`` gives Ray's Jobs client, checked. Ray prefers
    ``RAY_API_SERVER_ADDRESS`` and ``RAY_ADDRESS`` to the argument; ``--address``, when given,
    is set there so that the address checked is the one used."""
    if address:
        os.environ["RAY_API_SERVER_ADDRESS"] = address
    address = os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        if cluster_file().is_file():
            auto_address()
        return None
    if address.startswith("ray://"):
        raise UserError(f"{address}: Ray Client addresses cannot submit jobs; {JOBS_HINT}")
    if address == "auto":
        auto_address()
    elif address.startswith(("http://", "https://")):
        check_dashboard(address)
    elif "://" in address:
        raise UserError(f"{address}: unknown scheme; {JOBS_HINT}")
    else:   # a GCS address: Ray asks it where the dashboard is
        try:
            check_address(address, what="the Ray cluster")
        except UserError as e:
            raise UserError(f"{e}; {JOBS_HINT}") from None
    return address


def check_dashboard(url: str) -> None:
    """One line unless a Ray dashboard answers at ``url`` (its ``/api/version``; a dashboard
    with token authentication answers 401 or 403 without the token)."""
    host_port(url)

    def probe():
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/api/version", timeout=TIMEOUT) as r:
                body = r.read(4096)
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                return
            raise UserError(f"{url} is not a Ray dashboard: /api/version answers HTTP {e.code}; {JOBS_HINT}") from None
        except (OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise UserError(f"cannot reach the Ray dashboard at {url} "
                            f"({getattr(reason, 'strerror', None) or reason})") from None
        try:
            ok = "ray_version" in json.loads(body)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise UserError(f"{url} is not a Ray dashboard (its /api/version names no Ray version); {JOBS_HINT}")

    within(DEADLINE, probe, f"cannot reach the Ray dashboard at {url} (no answer within {DEADLINE:g} s)")
