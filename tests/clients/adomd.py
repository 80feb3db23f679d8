"""Microsoft ADOMD.NET (the client library of Power BI Desktop and SSMS) on Debian's Mono.

The DLL ships inside the PyPI package `pbi-pyadomd`; its own Python wrapper is Windows-only, so
the package is never imported: the DLL is loaded from the package folder with
`clr.AddReference`, on Mono through pythonnet and clr_loader (see
/work/shared/reference/clients.md). Importing this module starts Mono once per process.

On Mono almost every transport or parse failure inside ADOMD.NET surfaces as
`DllNotFoundException: ole32.dll` (its error path calls COM). Faults the server sends as SOAP
faults arrive as `AdomdErrorResponseException` with the server's message. To see the bytes, run
with XMLA_TRACE=1 (see README.md).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

from clr_loader import get_mono
import pythonnet

with warnings.catch_warnings():
    # clr_loader warns that Mono < 6.12 "is known to be problematic"; Debian 12 has 6.8 and the
    # tests pass on it.
    warnings.simplefilter("ignore", UserWarning)
    pythonnet.set_runtime(get_mono())

import clr  # noqa: E402  (must come after set_runtime)

_spec = importlib.util.find_spec("pbi_pyadomd")
if _spec is None or _spec.origin is None:
    raise ImportError("PyPI package pbi-pyadomd is not installed: run tests/clients/install.sh")
DLL_DIR = os.path.dirname(_spec.origin)
if DLL_DIR not in sys.path:
    sys.path.append(DLL_DIR)

clr.AddReference("System")
clr.AddReference("System.Data")
clr.AddReference("Microsoft.AnalysisServices.AdomdClient")

from System import Convert, DBNull  # noqa: E402
from System.Globalization import CultureInfo  # noqa: E402
from System.Net import ServicePointManager  # noqa: E402
from System.Net.Security import RemoteCertificateValidationCallback  # noqa: E402
from Microsoft.AnalysisServices.AdomdClient import (  # noqa: E402
    AdomdCommand,
    AdomdConnection,
    AdomdErrorResponseException,
    AdomdRestrictionCollection,
)

# The test server's certificate is self-signed: accept it on the .NET side.
_accept_any = RemoteCertificateValidationCallback(lambda *args: True)
ServicePointManager.ServerCertificateValidationCallback = _accept_any

__all__ = [
    "AdomdCommand",
    "AdomdConnection",
    "AdomdErrorResponseException",
    "connection_string",
    "open_connection",
    "schema_rows",
    "to_float",
]


def connection_string(url: str, locale: int, user: str, password: str, catalog: str = "FLIS") -> str:
    # User ID/Password: without them ADOMD.NET asks Mono for a Windows identity and fails. It
    # sends them as HTTP Basic after the server's 401 challenge.
    # LocaleIdentifier: Mono's culture is invariant (LCID 127) unless the string sets one.
    return (
        f"Data Source={url};Catalog={catalog};User ID={user};Password={password};"
        f"LocaleIdentifier={locale};Connect Timeout=60;Timeout=120"
    )


def open_connection(url: str, locale: int, user: str, password: str, catalog: str = "FLIS") -> AdomdConnection:
    conn = AdomdConnection(connection_string(url, locale, user, password, catalog))
    conn.Open()
    return conn


def schema_rows(conn: AdomdConnection, rowset: str, **restrictions) -> list[dict]:
    """A Discover request through `GetSchemaDataSet`: the rows as dicts (DBNull → None)."""
    rc = AdomdRestrictionCollection()
    for k, v in restrictions.items():
        rc.Add(k, v)
    table = conn.GetSchemaDataSet(rowset, rc).Tables[0]
    cols = [c.ColumnName for c in table.Columns]
    out = []
    for row in table.Rows:
        out.append({c: (None if isinstance(row[c], DBNull) else row[c]) for c in cols})
    return out


def to_float(v) -> float | None:
    """A cell value (None, a Python number, or a boxed System.Decimal) as a float."""
    if v is None or isinstance(v, DBNull):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return float(Convert.ToDouble(v, CultureInfo.InvariantCulture))
