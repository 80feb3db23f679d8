"""PyPI `netas-xmla-with-dax` (Python 3 fork of olap.xmla, on zeep) against datakube.

zeep builds its requests from the package's own XMLA WSDL, so these tests check the server
against a client that validates answers against a schema rather than Microsoft's parser.
Expected values come from support.py (cube definitions, CSV, SQL over Parquet).

TLS: the client trusts exactly the server's self-signed certificate (<data-dir>/tls/cert.pem).
The requests Session handed to zeep has `trust_env = False`: otherwise requests lets the
REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE environment variables override the session's `verify`, and the
self-signed certificate is rejected even with `sslverify=False`.
"""

from __future__ import annotations

import pytest
import requests
import zeep.exceptions
from olap.xmla import xmla
from olap.xmla.interfaces import XMLAException

import support
from support import DANISH, ENGLISH, LANG, QUERIES

LOCALES = pytest.mark.parametrize("locale", [ENGLISH, DANISH], ids=["en-1033", "da-1030"])
CUBES = [c.name for c in support.load_catalog().cubes]


def connect(client_url: str, cert_file: str, login: tuple[str, str]):
    session = requests.Session()
    session.trust_env = False
    verify = cert_file if client_url.startswith("https:") else True
    # `auth` becomes the session's HTTP Basic credentials, sent with every request
    return xmla.XMLAProvider().connect(location=client_url, sslverify=verify, session=session, auth=login)


@pytest.fixture(scope="module")
def source(client_url, cert_file, credentials):
    return connect(client_url, cert_file, credentials)


def discover(source, rowset: str, locale: int | None = None, **restrictions) -> list:
    props = {"Catalog": "FLIS"}
    if locale is not None:
        props["LocaleIdentifier"] = locale
    return source.Discover(rowset, restrictions or None, props)


# --- connecting --------------------------------------------------------------------------------


def test_tls_verification_is_on(server_url):
    """Without the certificate pinned the client refuses the self-signed certificate."""
    session = requests.Session()
    session.trust_env = False
    plain = xmla.XMLAProvider().connect(location=server_url, sslverify=True, session=session)
    with pytest.raises(requests.exceptions.SSLError):
        plain.getCatalogs()


def test_wrong_password_is_refused(client_url, cert_file, credentials):
    bad = connect(client_url, cert_file, (credentials[0], credentials[1] + "-wrong"))
    with pytest.raises(zeep.exceptions.TransportError) as e:
        bad.getCatalogs()
    assert e.value.status_code == 401


def test_catalogs(source, model):
    assert [c.CATALOG_NAME for c in source.getCatalogs()] == [model.name]


def test_session_begin_and_end(source):
    source.BeginSession()
    try:
        assert source.sessionId, "BeginSession returned no SessionId"
        assert [r.CATALOG_NAME for r in discover(source, "DBSCHEMA_CATALOGS")] == ["FLIS"]
    finally:
        source.EndSession()
    assert source.sessionId is None


def test_unknown_rowset_is_a_fault(source):
    with pytest.raises(XMLAException):
        source.Discover("MDSCHEMA_NO_SUCH_ROWSET")


# --- metadata ----------------------------------------------------------------------------------


def test_cube_names_through_the_object_api(source, model):
    names = [c.CUBE_NAME for c in source.getCatalog("FLIS").getCubes()]
    assert sorted(names) == sorted(c.name for c in model.cubes)
    assert sorted(names) == sorted(["Befolkning", "Benchmark", "Beskæftigelse", "Økonomi", "Personale", "Skole"])


@LOCALES
def test_cube_captions(source, model, locale):
    got = {r.CUBE_NAME: r.CUBE_CAPTION for r in discover(source, "MDSCHEMA_CUBES", locale)}
    assert got == {c.name: c.caption[LANG[locale]] for c in model.cubes}


@LOCALES
@pytest.mark.parametrize("cube_name", CUBES)
def test_dimensions_and_hierarchies(source, model, cube_name, locale):
    lang = LANG[locale]
    want = model.cube(cube_name)
    dims = [
        (r.DIMENSION_UNIQUE_NAME, r.DIMENSION_CAPTION)
        for r in sorted(discover(source, "MDSCHEMA_DIMENSIONS", locale, CUBE_NAME=cube_name), key=lambda r: int(r.DIMENSION_ORDINAL))
        if r.DIMENSION_UNIQUE_NAME != "[Measures]"
    ]
    assert dims == [(f"[{d.name}]", d.caption[lang]) for d in want.dimensions]
    hiers = {
        (r.HIERARCHY_UNIQUE_NAME, r.HIERARCHY_CAPTION)
        for r in discover(source, "MDSCHEMA_HIERARCHIES", locale, CUBE_NAME=cube_name)
        if r.DIMENSION_UNIQUE_NAME != "[Measures]"
    }
    assert hiers == {(f"[{d.name}].[{h.name}]", h.caption[lang]) for d in want.dimensions for h in d.hierarchies}


@LOCALES
def test_okonomi_levels(source, model, locale):
    rows = discover(source, "MDSCHEMA_LEVELS", locale, CUBE_NAME="Økonomi")
    got = {}
    for r in sorted(rows, key=lambda r: int(r.LEVEL_NUMBER)):
        if r.DIMENSION_UNIQUE_NAME != "[Measures]" and int(r.LEVEL_TYPE) != 1:  # 1 = MDLEVEL_TYPE_ALL
            got.setdefault(r.HIERARCHY_UNIQUE_NAME, []).append((r.LEVEL_UNIQUE_NAME, r.LEVEL_CAPTION))
    want = {
        f"[{d.name}].[{h.name}]": [(f"[{d.name}].[{h.name}].[{lv.name}]", lv.caption[LANG[locale]]) for lv in h.levels]
        for d in model.cube("Økonomi").dimensions
        for h in d.hierarchies
    }
    assert got == want
    assert [u for u, _ in got["[Kommune].[Geografi]"]] == ["[Kommune].[Geografi].[Region]", "[Kommune].[Geografi].[Kommune]"]


def test_okonomi_level_cardinality(source):
    hierarchy = source.getCatalog("FLIS").getCube("Økonomi").getHierarchy("[Kommune].[Geografi]")
    counts = {lv.LEVEL_NAME: int(lv.LEVEL_CARDINALITY) for lv in hierarchy.getLevels() if int(lv.LEVEL_TYPE) != 1}
    assert counts == {"Region": len(support.regions()), "Kommune": len(support.municipalities())}


@pytest.mark.parametrize("cube_name", CUBES)
def test_measures(source, model, cube_name):
    rows = discover(source, "MDSCHEMA_MEASURES", ENGLISH, CUBE_NAME=cube_name)
    got = {(r.MEASURE_UNIQUE_NAME, r.MEASURE_CAPTION) for r in rows}
    assert got == {(f"[Measures].[{m.name}]", m.caption["en"]) for m in model.cube(cube_name).measures if m.visible}
    if cube_name == "Økonomi":
        assert sorted(r.MEASURE_NAME for r in rows) == sorted(["Regnskab", "Budget", "Afvigelse", "Forbrugsprocent"])


# --- members -----------------------------------------------------------------------------------


@LOCALES
def test_region_members(source, oracle, locale):
    rows = discover(source, "MDSCHEMA_MEMBERS", locale, CUBE_NAME="Økonomi", LEVEL_UNIQUE_NAME="[Kommune].[Geografi].[Region]")
    names = support.regions() if locale == DANISH else oracle.region_names_en()
    assert sorted(r.MEMBER_CAPTION for r in rows) == sorted(names.values())


def test_kommune_members_through_the_object_api(source):
    level = source.getCatalog("FLIS").getCube("Økonomi").getHierarchy("[Kommune].[Geografi]").getLevel("[Kommune].[Geografi].[Kommune]")
    members = level.getMembers()
    assert len(members) == 98
    assert sorted(m.MEMBER_CAPTION for m in members) == sorted(m.name for m in support.municipalities())


def test_children_of_each_region(source):
    """TREE_OP=CHILDREN from every region gives the municipalities the CSV puts in it."""
    level = source.getCatalog("FLIS").getCube("Økonomi").getHierarchy("[Kommune].[Geografi]").getLevel("[Kommune].[Geografi].[Region]")
    want: dict[str, list[str]] = {}
    for m in support.municipalities():
        want.setdefault(m.region, []).append(m.name)
    got = {}
    for region in level.getMembers():
        # MEMBER_NAME is the Danish name (region_navn) whatever the locale
        got[region.MEMBER_NAME] = sorted(k.MEMBER_CAPTION for k in region.getChildren())
        assert int(region.CHILDREN_CARDINALITY) == len(got[region.MEMBER_NAME])
    assert got == {r: sorted(ks) for r, ks in want.items()}


# --- MDX ---------------------------------------------------------------------------------------


def cell_value(cell):
    value = cell.get("Value") if cell else None
    if isinstance(value, dict):  # xsi:type other than double/int is kept as {"text": …}
        value = value.get("text")
    return None if value is None else float(value)


def result_rows(result) -> dict:
    """{member caption(s) on Axis1: value, or tuple of values across Axis0}."""
    cols = len(result.getAxisTuple("Axis0"))
    out = {}
    for r, members in enumerate(result.getAxisTuple("Axis1")):
        captions = tuple(m.Caption for m in members) if isinstance(members, list) else (members.Caption,)
        values = tuple(cell_value(result.getCellByOrdinal(r * cols + c)) for c in range(cols))
        out[captions[0] if len(captions) == 1 else captions] = values[0] if cols == 1 else values
    return out


@pytest.mark.parametrize("query", list(QUERIES))
def test_execute(source, oracle, query):
    mdx, expected = QUERIES[query]
    result = source.Execute(mdx, Catalog="FLIS", LocaleIdentifier=DANISH)
    support.assert_cells(result_rows(result), expected(oracle), query)


def test_execute_grand_total(source, oracle):
    result = source.Execute("SELECT [Measures].[Regnskab] ON 0 FROM [Økonomi]", Catalog="FLIS", LocaleIdentifier=ENGLISH)
    assert support.close(cell_value(result.getCellByOrdinal(0)), oracle.regnskab_total())


def test_bad_mdx_is_a_fault(source):
    with pytest.raises(XMLAException):
        source.Execute("SELECT FROM [NoSuchCube]", Catalog="FLIS")


@pytest.mark.parametrize("user", ["aarhus", "laesoe"])
def test_row_scope_of_a_municipal_user(client_url, cert_file, oracle, user):
    """The development users see only their own municipality (README.md)."""
    scoped = connect(client_url, cert_file, (user, user))
    mdx, _ = QUERIES["finance_by_year"]
    result = scoped.Execute(mdx, Catalog="FLIS", LocaleIdentifier=DANISH)
    support.assert_cells(result_rows(result), oracle.finance_by_year(support.DEV_USERS[user]), f"{mdx} as {user}")
