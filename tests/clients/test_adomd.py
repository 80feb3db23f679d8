"""Microsoft ADOMD.NET against datakube: what Power BI Desktop and SSMS use, on Mono.

Every test opens its own connection, as a report would, so one protocol problem fails the tests
that meet it and not the rest. Expected values come from the cube definitions, the CSV of
municipalities and hand-written SQL over the Parquet files (support.py), never from the server.
"""

from __future__ import annotations

import pytest

import support
from support import DANISH, ENGLISH, LANG, QUERIES

import adomd  # starts Mono and loads ADOMD.NET; fails loudly if install.sh has not run

LOCALES = pytest.mark.parametrize("locale", [ENGLISH, DANISH], ids=["en-1033", "da-1030"])


@pytest.fixture
def connect(client_url, credentials):
    opened = []

    def _connect(locale: int = ENGLISH, catalog: str = "FLIS", login: tuple[str, str] = credentials):
        conn = adomd.open_connection(client_url, locale, *login, catalog=catalog)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        try:
            conn.Close()
        except Exception:  # noqa: BLE001 - a failed test may leave it broken
            pass


def visible_levels(hierarchy):
    """A hierarchy's levels without the (All) level."""
    return [lv for lv in hierarchy.Levels if str(lv.LevelType) != "All"]


# --- connecting --------------------------------------------------------------------------------


def test_open_begins_a_session_and_close_ends_it(connect):
    conn = connect()
    assert str(conn.State) == "Open"
    assert conn.SessionID, "BeginSession gave ADOMD.NET no session id"
    conn.Close()
    assert str(conn.State) == "Closed"


def test_unknown_catalog_is_refused_with_a_fault(connect):
    with pytest.raises(adomd.AdomdErrorResponseException) as e:
        connect(catalog="NoSuchCatalog")
    assert "NoSuchCatalog" in str(e.value.Message)


def test_wrong_password_is_refused(connect, credentials):
    # After a 401 with wrong credentials ADOMD.NET on Mono can only say
    # "DllNotFoundException: ole32.dll" (its error path calls COM); any exception will do.
    with pytest.raises(Exception):
        connect(login=(credentials[0], credentials[1] + "-wrong"))


# --- metadata ----------------------------------------------------------------------------------


def test_cube_names(connect, model):
    names = [c.Name for c in connect().Cubes]
    assert sorted(names) == sorted(c.name for c in model.cubes)
    assert sorted(names) == sorted(["Befolkning", "Benchmark", "Beskæftigelse", "Økonomi", "Personale", "Skole"])


def test_metadata_collections_can_be_read_twice(connect):
    """A second look at a collection makes ADOMD.NET check its cache: MDSCHEMA_CUBES with
    <Content>Data</Content>, whose answer must be the rows without the xsd:schema."""
    conn = connect()
    first = [c.Name for c in conn.Cubes]
    assert [c.Name for c in conn.Cubes] == first
    cube = conn.Cubes["Økonomi"]
    assert [m.Name for m in cube.Measures] == [m.Name for m in cube.Measures]


@LOCALES
def test_cube_captions(connect, model, locale):
    captions = {c.Name: c.Caption for c in connect(locale).Cubes}
    assert captions == {c.name: c.caption[LANG[locale]] for c in model.cubes}


@pytest.mark.parametrize("cube_name", [c.name for c in support.load_catalog().cubes])
def test_dimensions_and_hierarchies(connect, model, cube_name):
    cube = connect(ENGLISH).Cubes[cube_name]
    want = model.cube(cube_name)
    dims = [d for d in cube.Dimensions if d.UniqueName != "[Measures]"]
    assert [(d.UniqueName, d.Caption) for d in dims] == [(f"[{d.name}]", d.caption["en"]) for d in want.dimensions]
    for d, wd in zip(dims, want.dimensions):
        got = [(h.UniqueName, h.Caption) for h in d.Hierarchies]
        assert got == [(f"[{wd.name}].[{h.name}]", h.caption["en"]) for h in wd.hierarchies], d.UniqueName


@LOCALES
def test_okonomi_levels(connect, model, locale):
    cube = connect(locale).Cubes["Økonomi"]
    lang = LANG[locale]
    for wd in model.cube("Økonomi").dimensions:
        for wh in wd.hierarchies:
            h = cube.Dimensions[wd.name].Hierarchies[wh.name]
            got = [(lv.UniqueName, lv.Caption) for lv in visible_levels(h)]
            want = [(f"[{wd.name}].[{wh.name}].[{lv.name}]", lv.caption[lang]) for lv in wh.levels]
            assert got == want, h.UniqueName
    geo = cube.Dimensions["Kommune"].Hierarchies["Geografi"]
    assert [lv.Name for lv in visible_levels(geo)] == ["Region", "Kommune"]


def test_okonomi_level_member_counts(connect):
    geo = connect().Cubes["Økonomi"].Dimensions["Kommune"].Hierarchies["Geografi"]
    counts = {lv.Name: lv.MemberCount for lv in visible_levels(geo)}
    assert counts == {"Region": len(support.regions()), "Kommune": len(support.municipalities())}
    assert counts == {"Region": 5, "Kommune": 98}


@pytest.mark.parametrize("cube_name", [c.name for c in support.load_catalog().cubes])
def test_measures(connect, model, cube_name):
    cube = connect(ENGLISH).Cubes[cube_name]
    measures = list(cube.Measures)
    got = [(m.UniqueName, m.Caption) for m in measures]
    want = [(f"[Measures].[{m.name}]", m.caption["en"]) for m in model.cube(cube_name).measures if m.visible]
    assert got == want
    if cube_name == "Økonomi":
        assert [m.Name for m in measures] == ["Regnskab", "Budget", "Afvigelse", "Forbrugsprocent"]


def test_okonomi_measure_captions_in_danish(connect, model):
    cube = connect(DANISH).Cubes["Økonomi"]
    assert {m.Name: m.Caption for m in cube.Measures} == {m.name: m.caption["da"] for m in model.cube("Økonomi").measures}


# --- members through the MDSCHEMA_MEMBERS schema rowset (a Discover request) --------------------


@LOCALES
def test_region_members(connect, oracle, locale):
    rows = adomd.schema_rows(
        connect(locale),
        "MDSCHEMA_MEMBERS",
        CATALOG_NAME="FLIS",
        CUBE_NAME="Økonomi",
        LEVEL_UNIQUE_NAME="[Kommune].[Geografi].[Region]",
    )
    names = support.regions() if locale == DANISH else oracle.region_names_en()
    assert sorted(r["MEMBER_CAPTION"] for r in rows) == sorted(names.values())
    assert len(rows) == 5


def test_kommune_members_and_their_regions(connect):
    conn = connect(DANISH)
    restrict = dict(CATALOG_NAME="FLIS", CUBE_NAME="Økonomi")
    regions = adomd.schema_rows(conn, "MDSCHEMA_MEMBERS", LEVEL_UNIQUE_NAME="[Kommune].[Geografi].[Region]", **restrict)
    kommuner = adomd.schema_rows(conn, "MDSCHEMA_MEMBERS", LEVEL_UNIQUE_NAME="[Kommune].[Geografi].[Kommune]", **restrict)
    region_caption = {r["MEMBER_UNIQUE_NAME"]: r["MEMBER_CAPTION"] for r in regions}
    got = sorted((k["MEMBER_CAPTION"], region_caption.get(k["PARENT_UNIQUE_NAME"])) for k in kommuner)
    want = sorted((m.name, m.region) for m in support.municipalities())
    assert len(kommuner) == 98
    assert got == want


def test_level_get_members(connect):
    # Level.GetMembers() is not a Discover: ADOMD.NET sends
    # SELECT <level>.ALLMEMBERS DIMENSION PROPERTIES MEMBER_NAME, MEMBER_TYPE ON 0, {} ON 1 FROM [cube]
    level = connect(DANISH).Cubes["Økonomi"].Dimensions["Kommune"].Hierarchies["Geografi"].Levels["Region"]
    assert sorted(m.Caption for m in level.GetMembers()) == sorted(support.regions().values())


# --- MDX ---------------------------------------------------------------------------------------


def cellset_rows(cellset) -> dict:
    """{member caption(s) on axis 1: value, or tuple of values across axis 0}."""
    cols = cellset.Axes[0].Set.Tuples.Count
    out = {}
    for r, tup in enumerate(cellset.Axes[1].Set.Tuples):
        values = tuple(adomd.to_float(cellset.Cells[c, r].Value) for c in range(cols))
        captions = tuple(m.Caption for m in tup.Members)
        out[captions[0] if len(captions) == 1 else captions] = values[0] if cols == 1 else values
    return out


@pytest.mark.parametrize("query", list(QUERIES))
def test_execute(connect, oracle, query):
    mdx, expected = QUERIES[query]
    cellset = adomd.AdomdCommand(mdx, connect(DANISH)).ExecuteCellSet()
    support.assert_cells(cellset_rows(cellset), expected(oracle), query)


def test_execute_grand_total_with_format(connect, oracle, model):
    cellset = adomd.AdomdCommand("SELECT [Measures].[Regnskab] ON 0 FROM [Økonomi]", connect(ENGLISH)).ExecuteCellSet()
    cell = cellset.Cells[0]
    assert support.close(adomd.to_float(cell.Value), oracle.regnskab_total())
    assert '"kr."' in model.cube("Økonomi").measure("Regnskab").format_string
    assert cell.FormattedValue.endswith("kr."), cell.FormattedValue


def test_bad_mdx_raises_the_servers_fault(connect):
    conn = connect()
    with pytest.raises(adomd.AdomdErrorResponseException) as e:
        adomd.AdomdCommand("SELECT FROM [NoSuchCube]", conn).ExecuteCellSet()
    assert str(e.value.Message).strip()
    # The fault did not break the connection: metadata still answers.
    assert str(conn.State) == "Open"
    assert adomd.schema_rows(conn, "DBSCHEMA_CATALOGS")[0]["CATALOG_NAME"] == "FLIS"


def test_bad_mdx_fault_names_the_cube(connect):
    with pytest.raises(adomd.AdomdErrorResponseException) as e:
        adomd.AdomdCommand("SELECT FROM [NoSuchCube]", connect()).ExecuteCellSet()
    assert "NoSuchCube" in str(e.value.Message)


# --- row security: the development users see only their own municipality ------------------------


@pytest.mark.parametrize("user", ["aarhus", "laesoe"])
def test_row_scope_of_a_municipal_user(connect, oracle, user):
    kommunekode = support.DEV_USERS[user]
    conn = connect(DANISH, login=(user, user))
    mdx, _ = QUERIES["finance_by_year"]
    got = cellset_rows(adomd.AdomdCommand(mdx, conn).ExecuteCellSet())
    support.assert_cells(got, oracle.finance_by_year(kommunekode), f"{mdx} as {user}")
    total = adomd.AdomdCommand("SELECT [Measures].[Regnskab] ON 0 FROM [Økonomi]", conn).ExecuteCellSet()
    want = oracle.finance_by_year(kommunekode)
    assert support.close(adomd.to_float(total.Cells[0].Value), sum(v[0] or 0.0 for v in want.values()))
