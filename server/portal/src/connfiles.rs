//! Connection files for one cube: an Office Data Connection (`.odc`, Excel) and a Power BI
//! data source file (`.pbids`), pre-filled with the server's XMLA URL and the catalog, plus the
//! MSOLAP connection string to copy. None holds a password: the client asks for it (a personal
//! access token).

use datakube_auth::util::html_escape;
use datakube_model::{Catalog, Cube, Lang};

/// `Locale Identifier` for a language: 1030 Danish captions and number format, 1033 English.
pub fn lcid(lang: Lang) -> u32 {
    match lang {
        Lang::Da => 1030,
        Lang::En => 1033,
    }
}

/// The MSOLAP connection string (as examples/excel/make-odc.sh writes it). `Integrated
/// Security=Basic` makes MSOLAP send the typed user name and password (the token) as HTTP
/// Basic after the server's 401 challenge.
pub fn connection_string(xmla_url: &str, catalog: &str, lang: Lang) -> String {
    format!(
        "Provider=MSOLAP.8;Integrated Security=Basic;Persist Security Info=True;User ID=;Data Source={};Initial Catalog={};Locale Identifier={}",
        conn_value(xmla_url),
        conn_value(catalog),
        lcid(lang)
    )
}

/// A connection-string value: quoted when it holds `;`, `"` or `'` (OLE DB rules).
fn conn_value(v: &str) -> String {
    if v.contains([';', '"', '\'']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// `FLIS-Okonomi`: catalog and cube with Danish letters folded to ASCII and anything but
/// letters, digits, `-` and `_` dropped (safe as a file name everywhere).
pub fn file_stem(catalog: &str, cube: &str) -> String {
    let fold = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                'Æ' => out.push_str("Ae"),
                'æ' => out.push_str("ae"),
                'Ø' => out.push('O'),
                'ø' => out.push('o'),
                'Å' => out.push_str("Aa"),
                'å' => out.push_str("aa"),
                c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => out.push(c),
                ' ' => out.push('_'),
                _ => {}
            }
        }
        out
    };
    format!("{}-{}", fold(catalog), fold(cube))
}

/// The `.odc` file of `cube`: opens a PivotTable on the cube in Excel (double-click).
pub fn odc(xmla_url: &str, catalog: &Catalog, cube: &Cube, lang: Lang) -> String {
    let conn = connection_string(xmla_url, &catalog.name, lang);
    let title = format!("{} – {}", catalog.name, cube.caption.get(lang));
    let desc_da = cube.description.as_ref().map(|d| d.get(Lang::Da)).unwrap_or_default();
    let desc_en = cube.description.as_ref().map(|d| d.get(Lang::En)).unwrap_or_default();
    let e = |s: &str| html_escape(s);
    format!(
        r#"<html xmlns:o="urn:schemas-microsoft-com:office:office"
xmlns="http://www.w3.org/TR/REC-html40">

<head>
<meta http-equiv=Content-Type content="text/x-ms-odc; charset=utf-8">
<meta name=ProgId content=ODC.Cube>
<meta name=SourceType content=OLEDB>
<meta name=Catalog content="{catalog}">
<meta name=Table content="{cube}">
<title>{title}</title>
<xml id=docprops><o:DocumentProperties
  xmlns:o="urn:schemas-microsoft-com:office:office"
  xmlns="http://www.w3.org/TR/REC-html40">
  <o:Name>{title}</o:Name>
  <o:Description>{desc_da} / {desc_en}</o:Description>
  <o:Keywords>datakube; {catalog}; {cube}</o:Keywords>
 </o:DocumentProperties>
</xml><xml id=msodc><odc:OfficeDataConnection
  xmlns:odc="urn:schemas-microsoft-com:office:odc"
  xmlns="http://www.w3.org/TR/REC-html40">
  <odc:Connection odc:Type="OLEDB">
   <odc:ConnectionString>{conn}</odc:ConnectionString>
   <odc:CommandType>Cube</odc:CommandType>
   <odc:CommandText>{cube}</odc:CommandText>
  </odc:Connection>
 </odc:OfficeDataConnection>
</xml>
</head>

<body>
<h1>{title}</h1>
<p>{desc_da}</p>
<p lang=en>{desc_en}</p>
<p>Åbn filen i Excel (dobbeltklik), og log på med et vilkårligt brugernavn og din personlige adgangstoken som adgangskode.<br>
<span lang=en>Open this file in Excel (double-click) and log on with any user name and your personal access token as the password.</span></p>
<p>Server: <code>{url}</code> · Katalog/catalog: <code>{catalog}</code> · Kube/cube: <code>{cube}</code></p>
</body>

</html>
"#,
        catalog = e(&catalog.name),
        cube = e(&cube.name),
        title = e(&title),
        desc_da = e(desc_da),
        desc_en = e(desc_en),
        conn = e(&conn),
        url = e(xmla_url),
    )
}

/// The `.pbids` file: Power BI Desktop opens "Get data" on the server and catalog (the
/// format has no field for a cube; Power BI's navigator lists the cubes). Import mode: a live
/// connection would send DAX, and datakube answers MDX.
pub fn pbids(xmla_url: &str, catalog: &Catalog) -> String {
    let v = serde_json::json!({
        "version": "0.1",
        "connections": [{
            "details": {
                "protocol": "analysis-services",
                "address": { "server": xmla_url, "database": catalog.name },
                "authentication": null,
                "query": null
            },
            "options": {},
            "mode": "Import"
        }]
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_strings() {
        assert_eq!(file_stem("FLIS", "Økonomi"), "FLIS-Okonomi");
        assert_eq!(file_stem("FLIS", "Beskæftigelse"), "FLIS-Beskaeftigelse");
        assert_eq!(file_stem("FLIS", "a/../b c"), "FLIS-ab_c");
        let s = connection_string("https://h:1/xmla", "FLIS", Lang::En);
        assert!(s.contains("Data Source=https://h:1/xmla;Initial Catalog=FLIS;Locale Identifier=1033"));
        assert!(connection_string("https://h/xmla", "A;B", Lang::Da).contains("Initial Catalog=\"A;B\""));
    }
}
