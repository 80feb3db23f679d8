//! `Format=Tabular` for MDX: the cellset flattened into a rowset, as SSAS does for clients
//! that cannot read MDDataSets: one column per row-axis hierarchy (member captions), then one
//! column per column-axis tuple (cell values).

use datakube_xmla::cellset::{CellSet, CellValue};
use datakube_xmla::mddataset::xml_encode_name;
use datakube_xmla::rowset::{Column, Rowset, Value, XsdType, opt};

use crate::drillthrough::intern;
use crate::error::{QueryError, Result};

pub fn flatten(cs: &CellSet) -> Result<Rowset> {
    if cs.axes.len() > 2 {
        return Err(QueryError::Unsupported(format!(
            "Format=Tabular flattens at most two axes; this query has {}",
            cs.axes.len()
        )));
    }
    let by_ordinal: std::collections::HashMap<u64, &CellValue> =
        cs.cells.iter().map(|c| (c.ordinal, &c.value)).collect();
    let value = |ordinal: u64| -> Value {
        match by_ordinal.get(&ordinal).copied() {
            None | Some(CellValue::Suppressed) => Value::Null,
            Some(CellValue::Int(i)) => Value::Int((*i).into()),
            Some(CellValue::Long(i)) => Value::Int(*i),
            Some(CellValue::Double(d)) => Value::Double(*d),
            Some(CellValue::Decimal(d)) => Value::Str(d.clone()),
            Some(CellValue::Str(s)) => Value::Str(s.clone()),
            Some(CellValue::Bool(b)) => Value::Bool(*b),
        }
    };
    let col_tuples: Vec<String> = match cs.axes.first() {
        None => vec!["Value".to_string()],
        Some(a) => a
            .tuples
            .iter()
            .map(|t| t.iter().map(|m| m.unique_name.clone()).collect::<Vec<_>>().join("."))
            .collect(),
    };
    let row_axis = cs.axes.get(1);
    let mut columns: Vec<Column> = Vec::new();
    if let Some(a) = row_axis {
        for h in &a.hierarchies {
            columns.push(opt(
                intern(&xml_encode_name(&format!("{h}.[MEMBER_CAPTION]"))),
                XsdType::String,
            ));
        }
    }
    for name in &col_tuples {
        columns.push(opt(intern(&xml_encode_name(name)), XsdType::Double));
    }
    let n_cols = col_tuples.len() as u64;
    let mut rows = Vec::new();
    match row_axis {
        None => rows.push((0..n_cols).map(value).collect()),
        Some(a) => {
            for (r, t) in a.tuples.iter().enumerate() {
                let mut row: Vec<Value> = t.iter().map(|m| Value::Str(m.caption.clone())).collect();
                row.extend((0..n_cols).map(|c| value(r as u64 * n_cols + c)));
                rows.push(row);
            }
        }
    }
    Ok(Rowset::new(columns, rows))
}
