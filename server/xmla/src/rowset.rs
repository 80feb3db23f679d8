//! Tabular rowsets (`urn:…:rowset`): column definitions with XSD types, the inline
//! `xsd:schema` every Discover answer carries, and rows with children in exactly the schema's
//! column order, null columns omitted (as SSAS does; MSOLAP is strict about order).

use std::fmt::Write;

use crate::response::{NS_ROWSET, NS_XSD, NS_XSI, esc};
use crate::sink::{ClientGone, Finished, XmlSink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsdType {
    String,
    Boolean,
    Int,
    UnsignedInt,
    Short,
    UnsignedShort,
    Long,
    UnsignedLong,
    Double,
    DateTime,
    Uuid,
    /// A nested sequence of (Name, Type) rows, as in DISCOVER_SCHEMA_ROWSETS.Restrictions.
    Restrictions,
}

impl XsdType {
    fn schema_type(self) -> &'static str {
        match self {
            XsdType::String => "xsd:string",
            XsdType::Boolean => "xsd:boolean",
            XsdType::Int => "xsd:int",
            XsdType::UnsignedInt => "xsd:unsignedInt",
            XsdType::Short => "xsd:short",
            XsdType::UnsignedShort => "xsd:unsignedShort",
            XsdType::Long => "xsd:long",
            XsdType::UnsignedLong => "xsd:unsignedLong",
            XsdType::Double => "xsd:double",
            XsdType::DateTime => "xsd:dateTime",
            XsdType::Uuid => "uuid",
            XsdType::Restrictions => "",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: XsdType,
    /// `minOccurs="0"`: the column may be omitted from a row.
    pub optional: bool,
}

pub const fn col(name: &'static str, ty: XsdType) -> Column {
    Column {
        name,
        ty,
        optional: false,
    }
}
pub const fn opt(name: &'static str, ty: XsdType) -> Column {
    Column {
        name,
        ty,
        optional: true,
    }
}

/// A cell value in a rowset row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// (Name, Type) pairs for a nested Restrictions column.
    Restrictions(Vec<(String, String)>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<Option<String>> for Value {
    fn from(s: Option<String>) -> Self {
        s.map(Value::Str).unwrap_or(Value::Null)
    }
}

/// Write a rowset `<root>` with its schema and rows. Each row holds one value per column.
pub fn write_rowset(columns: &[Column], rows: &[Vec<Value>]) -> String {
    write_rowset_content(columns, rows, Content::SchemaData)
}

/// XMLA `Content`: what a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    SchemaData,
    /// Rows only (ADOMD.NET's cache checks ask for this and reject a schema).
    Data,
    /// The schema only.
    Schema,
    None,
}

impl Content {
    /// From the `Content` property; absent or unknown means SchemaData (Excel sends none).
    pub fn from_property(v: Option<&str>) -> Content {
        match v.map(str::trim) {
            Some(x) if x.eq_ignore_ascii_case("Data") => Content::Data,
            Some(x) if x.eq_ignore_ascii_case("Schema") => Content::Schema,
            Some(x) if x.eq_ignore_ascii_case("None") => Content::None,
            _ => Content::SchemaData,
        }
    }
}

/// Write a rowset `<root>` with the schema and/or rows as `content` asks.
pub fn write_rowset_content(columns: &[Column], rows: &[Vec<Value>], content: Content) -> String {
    let mut out = XmlSink::collect(2048 + rows.len() * columns.len() * 32);
    // A collecting sink never hands anything on, so it cannot fail.
    let _ = write_rowset_to(columns, rows, content, &mut out);
    match out.finish() {
        Ok(Finished::Whole(s)) => s,
        _ => unreachable!("a collecting sink keeps the whole document"),
    }
}

/// Write a rowset `<root>` into `out`, letting it hand the XML on in chunks after every
/// row. Stops when the client is gone.
pub fn write_rowset_to(
    columns: &[Column],
    rows: &[Vec<Value>],
    content: Content,
    out: &mut XmlSink<'_>,
) -> Result<(), ClientGone> {
    let _ = write!(
        out.buf,
        "<root xmlns=\"{NS_ROWSET}\" xmlns:xsd=\"{NS_XSD}\" xmlns:xsi=\"{NS_XSI}\">"
    );
    if matches!(content, Content::SchemaData | Content::Schema) {
        write_schema(&mut out.buf, columns);
    }
    let rows: &[Vec<Value>] = if matches!(content, Content::SchemaData | Content::Data) {
        rows
    } else {
        &[]
    };
    for row in rows {
        let s = &mut out.buf;
        s.push_str("<row>");
        for (c, v) in columns.iter().zip(row) {
            write_value(s, c, v);
        }
        s.push_str("</row>");
        out.checkpoint()?;
    }
    out.buf.push_str("</root>");
    Ok(())
}

/// A tabular result (`Format=Tabular` MDX, DRILLTHROUGH) before it is written: the executor
/// hands this over, and the XMLA service writes it while the response is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Rowset {
    pub columns: Vec<Column>,
    /// One value per column in each row.
    pub rows: Vec<Vec<Value>>,
}

impl Rowset {
    pub fn new(columns: Vec<Column>, rows: Vec<Vec<Value>>) -> Self {
        Rowset { columns, rows }
    }

    /// The `<root>` with the schema and every row, as one string.
    pub fn to_xml(&self) -> String {
        write_rowset(&self.columns, &self.rows)
    }

    /// Write the `<root>` with the schema and every row into `out`.
    pub fn write_to(&self, out: &mut XmlSink<'_>) -> Result<(), ClientGone> {
        write_rowset_to(&self.columns, &self.rows, Content::SchemaData, out)
    }
}

fn write_schema(s: &mut String, columns: &[Column]) {
    let _ = write!(
        s,
        "<xsd:schema targetNamespace=\"{NS_ROWSET}\" xmlns:sql=\"urn:schemas-microsoft-com:xml-sql\" elementFormDefault=\"qualified\">\
<xsd:element name=\"root\"><xsd:complexType><xsd:sequence minOccurs=\"0\" maxOccurs=\"unbounded\"><xsd:element name=\"row\" type=\"row\"/></xsd:sequence></xsd:complexType></xsd:element>\
<xsd:simpleType name=\"uuid\"><xsd:restriction base=\"xsd:string\"><xsd:pattern value=\"[0-9a-zA-Z]{{8}}-[0-9a-zA-Z]{{4}}-[0-9a-zA-Z]{{4}}-[0-9a-zA-Z]{{4}}-[0-9a-zA-Z]{{12}}\"/></xsd:restriction></xsd:simpleType>\
<xsd:complexType name=\"row\"><xsd:sequence>"
    );
    for c in columns {
        let min = if c.optional { " minOccurs=\"0\"" } else { "" };
        if c.ty == XsdType::Restrictions {
            let _ = write!(
                s,
                "<xsd:element sql:field=\"{n}\" name=\"{n}\"{min} maxOccurs=\"unbounded\"><xsd:complexType><xsd:sequence>\
<xsd:element name=\"Name\" type=\"xsd:string\" sql:field=\"Name\"/><xsd:element name=\"Type\" type=\"xsd:string\" sql:field=\"Type\"/>\
</xsd:sequence></xsd:complexType></xsd:element>",
                n = c.name
            );
        } else {
            let _ = write!(
                s,
                "<xsd:element sql:field=\"{n}\" name=\"{n}\" type=\"{t}\"{min}/>",
                n = c.name,
                t = c.ty.schema_type()
            );
        }
    }
    s.push_str("</xsd:sequence></xsd:complexType></xsd:schema>");
}

fn write_value(s: &mut String, c: &Column, v: &Value) {
    let n = c.name;
    // Tags with push_str: a 1,000-row drillthrough writes 9,000 values, and `write!` with
    // three arguments per value cost more than the values themselves.
    let open = |s: &mut String| {
        s.push('<');
        s.push_str(n);
        s.push('>');
    };
    let close = |s: &mut String| {
        s.push_str("</");
        s.push_str(n);
        s.push('>');
    };
    match v {
        Value::Null => {}
        Value::Str(x) => {
            open(s);
            s.push_str(&esc(x));
            close(s);
        }
        Value::Bool(b) => {
            open(s);
            s.push_str(if *b { "true" } else { "false" });
            close(s);
        }
        Value::Int(i) => {
            open(s);
            let _ = write!(s, "{i}");
            close(s);
        }
        Value::Double(d) => {
            open(s);
            s.push_str(&crate::format_double(*d));
            close(s);
        }
        Value::Restrictions(list) => {
            for (name, ty) in list {
                let _ = write!(s, "<{n}><Name>{}</Name><Type>{}</Type></{n}>", esc(name), esc(ty));
            }
        }
    }
}
