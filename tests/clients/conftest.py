"""Fixtures shared by the real-client tests. The server is started by run.sh, which passes:

DATAKUBE_URL        https://127.0.0.1:PORT/xmla of the running server (required)
DATAKUBE_DATA_DIR   its --data-dir (Parquet files for the expected numbers, tls/cert.pem)
DATAKUBE_SERVER_LOG its log file: the lines it wrote during a failed test are shown with it
DATAKUBE_USER, DATAKUBE_PASSWORD  a login that sees all rows (default: the dev user admin/admin)
XMLA_TRACE=1        send the clients through xmla_proxy.py (plain HTTP) and show the raw
                    requests and responses of a failed test; the full log goes to XMLA_TRACE_LOG
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import support


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the client tests with tests/clients/run.sh", returncode=4)
    return value


@pytest.fixture(scope="session")
def server_url() -> str:
    return _env("DATAKUBE_URL")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(_env("DATAKUBE_DATA_DIR"))


@pytest.fixture(scope="session")
def cert_file(data_dir: Path) -> str:
    return os.environ.get("DATAKUBE_TLS_CERT") or str(data_dir / "tls" / "cert.pem")


@pytest.fixture(scope="session")
def credentials() -> tuple[str, str]:
    """User and password that see every row (override with DATAKUBE_USER/DATAKUBE_PASSWORD)."""
    return os.environ.get("DATAKUBE_USER", "admin"), os.environ.get("DATAKUBE_PASSWORD", "admin")


_trace_log: str | None = None


@pytest.fixture(scope="session")
def client_url(server_url: str):
    """The URL the clients connect to: the server, or the logging proxy in front of it.

    The proxy runs as a separate process: in a thread of this process it would wait for the
    GIL while pythonnet holds it during a blocking ADOMD.NET call, and every ADOMD.NET request
    would stall for the connection's Timeout."""
    global _trace_log
    if os.environ.get("XMLA_TRACE") != "1":
        yield server_url
        return
    import subprocess
    import sys
    from urllib.parse import urlsplit

    u = urlsplit(server_url)
    log = os.environ.get("XMLA_TRACE_LOG") or str(Path(os.environ.get("TMPDIR", "/tmp")) / "datakube-xmla-trace.log")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("xmla_proxy.py")), "--upstream", f"{u.scheme}://{u.netloc}", "--log", log],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # "proxy listening on http://127.0.0.1:PORT, forwarding to …"
    if not line.startswith("proxy listening on "):
        proc.kill()
        pytest.exit(f"xmla_proxy.py did not start: {line!r}", returncode=4)
    _trace_log = log
    try:
        yield line.split()[3].rstrip(",") + u.path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def model() -> support.Catalog:
    return support.load_catalog()


@pytest.fixture(scope="session")
def oracle(data_dir: Path) -> support.Oracle:
    return support.Oracle(data_dir)


def _size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    item._dk_offsets = (_size(os.environ.get("DATAKUBE_SERVER_LOG")), _size(_trace_log))
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows what the server logged, and with XMLA_TRACE=1 the raw exchanges,
    while it ran."""
    report = yield
    if call.when != "call" or not report.failed or not hasattr(item, "_dk_offsets"):
        return report
    sources = [("datakube log", os.environ.get("DATAKUBE_SERVER_LOG")), ("XMLA exchanges", _trace_log)]
    for (title, path), offset in zip(sources, item._dk_offsets):
        if not path or _size(path) <= offset:
            continue
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
        if len(text) > 20000:
            text = "…\n" + text[-20000:]
        report.sections.append((title + " during this test", text))
    return report
