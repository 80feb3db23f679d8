//! The result of an MDX SELECT, ready to be written as an MDDataSet (`mddataset.rs`).
//! The query engine fills these types; the writer knows nothing about cubes or SQL.

/// One member of a tuple on an axis.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisMember {
    /// `[Kommune].[Geografi]` (or `[Measures]`).
    pub hierarchy: String,
    /// `[Kommune].[Geografi].[Kommune].&[751]`.
    pub unique_name: String,
    pub caption: String,
    /// `[Kommune].[Geografi].[Kommune]`; `[Kommune].[Geografi].[(All)]` for the All member;
    /// `[Measures].[MeasuresLevel]` for measures.
    pub level_unique_name: String,
    /// 0 for All members and measures.
    pub level_number: u32,
    /// Child count (low 16 bits, capped) plus flags; see [`display_info`].
    pub display_info: u32,
    /// Values of the requested DIMENSION PROPERTIES beyond the five standard ones, in the
    /// order of [`Axis::properties`]; `None` = omitted (null or not of this hierarchy).
    pub properties: Vec<Option<String>>,
}

/// A requested DIMENSION PROPERTY (beyond UName, Caption, LName, LNum, DisplayInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisProperty {
    /// The hierarchy the property belongs to (intrinsic properties such as
    /// PARENT_UNIQUE_NAME are declared for every hierarchy: one entry per hierarchy).
    pub hierarchy: String,
    /// Declared name, e.g. `[Kommune].[Geografi].[PARENT_UNIQUE_NAME]` or `[Kommune].[Geografi].[Kommune].[CVR]`.
    pub name: String,
    /// Element name before XML encoding, e.g. `PARENT_UNIQUE_NAME`, `CVR`.
    pub element: String,
    /// XSD type, e.g. `xsd:string`, `xsd:int`.
    pub xsd_type: String,
}

/// One axis (`Axis0`, `Axis1`, …) or the slicer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Axis {
    /// Hierarchy unique names, in tuple order.
    pub hierarchies: Vec<String>,
    /// Extra properties, grouped by hierarchy in `hierarchies` order.
    pub properties: Vec<AxisProperty>,
    /// Each tuple has one member per hierarchy, in `hierarchies` order; each member's
    /// `properties` has one entry per element of `properties` whose `hierarchy` equals the
    /// member's hierarchy, in that order.
    pub tuples: Vec<Vec<AxisMember>>,
}

/// A cell value with its XSD type.
#[derive(Debug, Clone, PartialEq)]
pub enum CellValue {
    Int(i32),
    Long(i64),
    Double(f64),
    /// A decimal number in its canonical text form (e.g. `1234.50`).
    Decimal(String),
    Str(String),
    Bool(bool),
    /// No value, only a formatted value: a cell suppressed by disclosure control.
    Suppressed,
}

/// A non-empty cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Zero-based; axis 0 varies fastest (see [`cell_ordinal`]).
    pub ordinal: u64,
    pub value: CellValue,
    pub formatted: Option<String>,
    pub format_string: Option<String>,
}

/// Cell properties that can be requested with CELL PROPERTIES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellProperty {
    Value,
    FormattedValue,
    FormatString,
    Language,
    BackColor,
    ForeColor,
    FontFlags,
    CellOrdinal,
}

impl CellProperty {
    pub fn from_name(name: &str) -> Option<CellProperty> {
        let n = name.trim().trim_start_matches('[').trim_end_matches(']');
        Some(match n.to_ascii_uppercase().as_str() {
            "VALUE" => CellProperty::Value,
            "FORMATTED_VALUE" => CellProperty::FormattedValue,
            "FORMAT_STRING" => CellProperty::FormatString,
            "LANGUAGE" => CellProperty::Language,
            "BACK_COLOR" => CellProperty::BackColor,
            "FORE_COLOR" => CellProperty::ForeColor,
            "FONT_FLAGS" => CellProperty::FontFlags,
            "CELL_ORDINAL" => CellProperty::CellOrdinal,
            _ => return None,
        })
    }

    /// SSAS's default when the statement has no CELL PROPERTIES clause.
    pub const DEFAULT: [CellProperty; 3] = [
        CellProperty::Value,
        CellProperty::FormattedValue,
        CellProperty::CellOrdinal,
    ];
}

/// A complete result.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSet {
    pub cube_name: String,
    /// xsd:dateTime strings for OlapInfo.
    pub last_data_update: String,
    pub last_schema_update: String,
    pub axes: Vec<Axis>,
    /// Every cube hierarchy not on another axis, at its default or WHERE member: one tuple.
    pub slicer: Axis,
    pub cell_properties: Vec<CellProperty>,
    /// LCID written as LANGUAGE.
    pub language: u32,
    /// Non-empty cells in ordinal order.
    pub cells: Vec<Cell>,
}

/// MDDISPINFO_DRILLED_DOWN: the next tuple's member at this position is a child of this one.
pub const DRILLED_DOWN: u32 = 0x10000;
/// MDDISPINFO_PARENT_SAME_AS_PREV: same parent as the previous tuple's member here.
pub const PARENT_SAME_AS_PREV: u32 = 0x20000;

/// DisplayInfo: the child count in the low 16 bits (capped at 0xFFFF) plus flags.
pub fn display_info(children: usize, drilled_down: bool, parent_same_as_prev: bool) -> u32 {
    let mut v = children.min(0xFFFF) as u32;
    if drilled_down {
        v |= DRILLED_DOWN;
    }
    if parent_same_as_prev {
        v |= PARENT_SAME_AS_PREV;
    }
    v
}

/// The ordinal of the cell at `positions` (one tuple index per axis; axis 0 fastest).
pub fn cell_ordinal(positions: &[usize], axis_lengths: &[usize]) -> u64 {
    let mut ordinal = 0u64;
    let mut stride = 1u64;
    for (p, len) in positions.iter().zip(axis_lengths) {
        ordinal += *p as u64 * stride;
        stride *= *len as u64;
    }
    ordinal
}
