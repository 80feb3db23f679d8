"""Independent sources of truth for the client tests.

Nothing here asks the server. Expected names and captions come from the cube definitions
(`cube-definitions/*.yaml`, read with PyYAML), expected member lists from
`data/municipalities.csv` (Python's csv module) and expected numbers from hand-written SQL in
DuckDB over the Parquet files in the server's data directory (layout: docs/datasets.md).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import duckdb
import yaml

REPO = Path(__file__).resolve().parents[2]
CUBE_DEFINITIONS = Path(os.environ.get("DATAKUBE_CUBE_DEFINITIONS", REPO / "cube-definitions"))

# The server's development identity (README.md, "Development users"): password = user name;
# admin sees all 98 municipalities, aarhus and laesoe only their own (kommunekode) in cubes of
# class `individual`.
DEV_USERS = {"admin": None, "aarhus": 751, "laesoe": 825}

# LocaleIdentifier → caption language in the cube definitions (docs/cube-definitions.md:
# Danish by default, English to clients with a non-Danish locale).
DANISH, ENGLISH = 1030, 1033
LANG = {DANISH: "da", ENGLISH: "en"}


# ---------------------------------------------------------------------------------------------
# Cube definitions


@dataclass
class Level:
    name: str
    caption: dict


@dataclass
class Hierarchy:
    name: str
    caption: dict
    levels: list[Level]


@dataclass
class Dimension:
    name: str
    caption: dict
    hierarchies: list[Hierarchy]

    def hierarchy(self, name: str) -> Hierarchy:
        return next(h for h in self.hierarchies if h.name == name)


@dataclass
class Measure:
    name: str
    caption: dict
    visible: bool
    format_string: str | None


@dataclass
class Cube:
    name: str
    caption: dict
    dimensions: list[Dimension]
    measures: list[Measure] = field(default_factory=list)

    def dimension(self, name: str) -> Dimension:
        return next(d for d in self.dimensions if d.name == name)

    def measure(self, name: str) -> Measure:
        return next(m for m in self.measures if m.name == name)


@dataclass
class Catalog:
    name: str
    caption: dict
    cubes: list[Cube]

    def cube(self, name: str) -> Cube:
        return next(c for c in self.cubes if c.name == name)


def _hierarchies(d: dict) -> list[Hierarchy]:
    if "hierarchies" in d:
        hs = d["hierarchies"]
    else:  # a dimension with its levels directly (one hierarchy named like the dimension)
        hs = [{"name": d["name"], "caption": d["caption"], "levels": d.get("levels", [])}]
    return [
        Hierarchy(h["name"], h["caption"], [Level(lv["name"], lv["caption"]) for lv in h.get("levels", [])])
        for h in hs
    ]


def load_catalog(folder: Path = CUBE_DEFINITIONS) -> Catalog:
    """Read the catalog, the shared dimensions and the cubes, in file order (cubes by file name)."""
    docs = []
    for path in sorted(folder.rglob("*.y*ml")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        with open(path, encoding="utf-8") as f:
            docs.append(yaml.safe_load(f))
    catalog = next(d["catalog"] for d in docs if "catalog" in d)
    shared = {d["dimension"]["name"]: d["dimension"] for d in docs if "dimension" in d}
    cubes = []
    for doc in (d["cube"] for d in docs if "cube" in d):
        dims = []
        for entry in doc.get("dimensions", []):
            if "shared" in entry:
                sd = shared[entry["shared"]]
                hs = _hierarchies(sd)
                if "use_hierarchies" in entry:
                    hs = [h for h in hs if h.name in entry["use_hierarchies"]]
                dims.append(Dimension(sd["name"], sd["caption"], hs))
            else:
                dims.append(Dimension(entry["name"], entry["caption"], _hierarchies(entry)))
        measures = [
            Measure(m["name"], m["caption"], m.get("visible", True), m.get("format_string"))
            for m in doc.get("measures", [])
        ]
        cubes.append(Cube(doc["name"], doc["caption"], dims, measures))
    return Catalog(catalog["name"], catalog["caption"], cubes)


# ---------------------------------------------------------------------------------------------
# Municipalities (data/municipalities.csv: kommunekode,navn,regionskode,region,indbyggere_2020,cvr)


@dataclass(frozen=True)
class Municipality:
    code: int
    name: str
    region_code: int
    region: str


def municipalities() -> list[Municipality]:
    with open(REPO / "data" / "municipalities.csv", encoding="utf-8", newline="") as f:
        return [
            Municipality(int(r["kommunekode"]), r["navn"], int(r["regionskode"]), r["region"])
            for r in csv.DictReader(f)
        ]


def regions() -> dict[int, str]:
    """regionskode → Danish region name."""
    return {m.region_code: m.region for m in municipalities()}


# ---------------------------------------------------------------------------------------------
# Hand-written SQL over the server's Parquet files


class Oracle:
    """Answers the test questions with plain SQL in DuckDB over `<data-dir>/datasets`."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.con = duckdb.connect()
        rows = [(m.code, m.name, m.region_code, m.region) for m in municipalities()]
        self.con.execute("CREATE TABLE csv_kommune (kommunekode INTEGER, navn VARCHAR, regionskode INTEGER, region VARCHAR)")
        self.con.executemany("INSERT INTO csv_kommune VALUES (?, ?, ?, ?)", rows)

    def table(self, dataset: str, table: str) -> str:
        """A `read_parquet(...)` expression for a table of the dataset's current snapshot."""
        ds = self.data_dir / "datasets" / dataset
        snapshot = (ds / "CURRENT").read_text().strip()
        base = ds / "snapshots" / snapshot / table
        pattern = base / "aar=*" / "data_0.parquet" if any(base.glob("aar=*")) else base / "data_0.parquet"
        return f"read_parquet('{pattern}', hive_partitioning = true)"

    def rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    @cached_property
    def postering(self) -> str:
        return self.table("oekonomi", "postering")

    def region_names_en(self) -> dict[int, str]:
        """regionskode → English region name, from the shared kommune dimension table."""
        k = self.table("faelles", "kommune")
        return dict(self.rows(f"SELECT DISTINCT regionskode, region_navn_en FROM {k}"))

    def years(self) -> list[int]:
        m = self.table("faelles", "maaned")
        return [r[0] for r in self.rows(f"SELECT DISTINCT aar FROM {m} ORDER BY aar")]

    def regnskab_total(self) -> float | None:
        return self.rows(f"SELECT sum(beloeb)::DOUBLE FROM {self.postering} WHERE beloebstype_kode = 'R'")[0][0]

    def regnskab_by_region(self) -> dict[str, float | None]:
        """Danish region name → sum of beloeb with beloebstype_kode 'R' (region from the CSV)."""
        got = dict(
            self.rows(
                f"""SELECT k.region, sum(p.beloeb)::DOUBLE
                    FROM {self.postering} p JOIN csv_kommune k USING (kommunekode)
                    WHERE p.beloebstype_kode = 'R'
                    GROUP BY k.region"""
            )
        )
        return {name: got.get(name) for name in regions().values()}

    def regnskab_by_kommune(self) -> dict[str, float | None]:
        """Municipality name (CSV) → Regnskab."""
        got = dict(
            self.rows(
                f"""SELECT k.navn, sum(p.beloeb)::DOUBLE
                    FROM {self.postering} p JOIN csv_kommune k USING (kommunekode)
                    WHERE p.beloebstype_kode = 'R'
                    GROUP BY k.navn"""
            )
        )
        return {m.name: got.get(m.name) for m in municipalities()}

    def by_region(self, dataset: str, table: str, *aggregates: str) -> dict[str, tuple]:
        """Danish region name → the aggregate expressions over the fact table, per the CSV's
        kommune → region mapping; regions without facts get NULLs."""
        cols = ", ".join(f"({a})::DOUBLE" for a in aggregates)
        got = {
            r[0]: tuple(r[1:])
            for r in self.rows(
                f"""SELECT k.region, {cols}
                    FROM {self.table(dataset, table)} f JOIN csv_kommune k USING (kommunekode)
                    GROUP BY k.region"""
            )
        }
        return {name: got.get(name, (None,) * len(aggregates)) for name in regions().values()}

    def regnskab_by_region_and_year(self) -> dict[tuple, float]:
        """(region, year caption) → Regnskab, only the non-empty combinations."""
        return {
            (region, str(aar)): v
            for region, aar, v in self.rows(
                f"""SELECT k.region, p.aar, sum(p.beloeb)::DOUBLE
                    FROM {self.postering} p JOIN csv_kommune k USING (kommunekode)
                    WHERE p.beloebstype_kode = 'R'
                    GROUP BY ALL"""
            )
        }

    def finance_by_year(self, kommunekode: int | None = None) -> dict[str, tuple]:
        """Year caption → (Regnskab, Budget, Afvigelse, Forbrugsprocent), per the measure
        definitions in okonomi.yaml: Afvigelse = Regnskab - Budget, Forbrugsprocent =
        Regnskab / Budget (NULL where Budget = 0)."""
        where = f"AND kommunekode = {int(kommunekode)}" if kommunekode is not None else ""
        got = {
            aar: (r, b)
            for aar, r, b in self.rows(
                f"""SELECT aar,
                           (sum(beloeb) FILTER (WHERE beloebstype_kode = 'R'))::DOUBLE,
                           (sum(beloeb) FILTER (WHERE beloebstype_kode = 'B'))::DOUBLE
                    FROM {self.postering} WHERE true {where} GROUP BY aar"""
            )
        }
        out = {}
        for aar in self.years():
            r, b = got.get(aar, (None, None))
            afv = None if r is None and b is None else (r or 0.0) - (b or 0.0)
            pct = None if not b else (r or 0.0) / b
            out[str(aar)] = (r, b, afv, pct)
        return out


def close(a: float | None, b: float | None, rel: float = 1e-9, abs_: float = 0.005) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_)


def assert_cells(got: dict, expected: dict, what: str) -> None:
    """Compare {row caption: value or tuple of values} with a readable message."""
    assert list(got) == list(expected) or set(got) == set(expected), (
        f"{what}: row captions differ\n got: {list(got)}\nwant: {list(expected)}"
    )
    bad = []
    for key, want in expected.items():
        g = got[key]
        ws = want if isinstance(want, tuple) else (want,)
        gs = g if isinstance(g, tuple) else (g,)
        if len(ws) != len(gs) or not all(close(x, y) for x, y in zip(gs, ws)):
            bad.append(f"  {key}: got {g!r}, want {want!r}")
    assert not bad, f"{what}: {len(bad)} of {len(expected)} rows differ\n" + "\n".join(bad[:20])


# ---------------------------------------------------------------------------------------------
# MDX questions both clients ask, with the oracle's answer: {row: value or tuple of values},
# a row being the caption of its member, or a tuple of captions for a crossjoin. Rows are captioned in Danish (LocaleIdentifier 1030), the names in municipalities.csv.

AARHUS = 751  # [Kommune].[Geografi].[Kommune].&[751] is Aarhus (cube-definitions/dimensions/kommune.yaml)
FINANCE_MEASURES = ("Regnskab", "Budget", "Afvigelse", "Forbrugsprocent")
_MEASURE_SET = "{" + ", ".join(f"[Measures].[{m}]" for m in FINANCE_MEASURES) + "}"

QUERIES = {
    "regnskab_by_region": (
        "SELECT [Measures].[Regnskab] ON 0, [Kommune].[Geografi].[Region].Members ON 1 FROM [Økonomi]",
        lambda o: o.regnskab_by_region(),
    ),
    "regnskab_by_kommune": (
        "SELECT [Measures].[Regnskab] ON COLUMNS, [Kommune].[Geografi].[Kommune].Members ON ROWS FROM [Økonomi]",
        lambda o: o.regnskab_by_kommune(),
    ),
    "regnskab_by_region_and_year_non_empty": (
        "SELECT [Measures].[Regnskab] ON 0, "
        "NON EMPTY CrossJoin([Kommune].[Geografi].[Region].Members, [Tid].[Kalender].[År].Members) ON 1 "
        "FROM [Økonomi]",
        lambda o: o.regnskab_by_region_and_year(),
    ),
    "personale_sum_and_distinct_count_by_region": (
        "SELECT {[Measures].[Fraværsdage], [Measures].[Ansatte]} ON 0, "
        "[Kommune].[Geografi].[Region].Members ON 1 FROM [Personale]",
        lambda o: o.by_region("personale", "fravaer", "sum(fravaersdage)", "count(DISTINCT medarbejder_id)"),
    ),
    "skole_distinct_count_and_average_by_region": (
        "SELECT {[Measures].[Elever], [Measures].[Gennemsnitskarakter]} ON 0, "
        "[Kommune].[Geografi].[Region].Members ON 1 FROM [Skole]",
        lambda o: o.by_region("skole", "elev_fag", "count(DISTINCT elev_id)", "avg(karakter)"),
    ),
    "finance_by_year": (
        f"SELECT {_MEASURE_SET} ON 0, [Tid].[Kalender].[År].Members ON 1 FROM [Økonomi]",
        lambda o: o.finance_by_year(),
    ),
    "finance_by_year_for_aarhus": (
        f"SELECT {_MEASURE_SET} ON 0, [Tid].[Kalender].[År].Members ON 1 FROM [Økonomi] "
        f"WHERE ([Kommune].[Geografi].[Kommune].&[{AARHUS}])",
        lambda o: o.finance_by_year(AARHUS),
    ),
}
