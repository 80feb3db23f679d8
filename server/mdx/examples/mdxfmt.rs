//! Parse MDX from stdin (or each argument) and print the canonical form or the error.
use std::io::Read;

fn main() {
    let mut inputs: Vec<String> = std::env::args().skip(1).collect();
    if inputs.is_empty() {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).expect("read stdin");
        inputs.push(s);
    }
    for src in inputs {
        match datakube_mdx::parse_statement(&src) {
            Ok(st) => println!("{st}"),
            Err(e) => match datakube_mdx::parse_expression(&src) {
                Ok(ex) => println!("{ex}"),
                Err(_) => println!("error: {e}"),
            },
        }
    }
}
