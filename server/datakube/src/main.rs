fn main() {
    let c = datakube_engine::duckdb::Connection::open_in_memory().unwrap();
    let mut s = c.prepare("select extension_name, loaded, installed, install_mode from duckdb_extensions() where loaded or installed").unwrap();
    let rows = s.query_map([], |r| Ok(format!("{} {} {} {:?}", r.get::<_,String>(0)?, r.get::<_,bool>(1)?, r.get::<_,bool>(2)?, r.get::<_,Option<String>>(3)?))).unwrap();
    for r in rows { println!("{}", r.unwrap()); }
}
