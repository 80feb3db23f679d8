//! The configuration file (`--config datakube.toml` or `DATAKUBE_CONFIG`): its keys are the
//! long command-line options (`listen = "0.0.0.0:8443"`, `oidc-issuer = "…"`; `_` may stand
//! for `-`). Precedence: command line > environment > file > default. The file is applied by
//! setting each option's `DATAKUBE_*` environment variable when it is not set already, before
//! the command line is parsed, so clap's own env handling gives that order.
//!
//! [`markdown`] writes docs/configuration.md from the clap definitions (a test keeps the file
//! current).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::CommandFactory;

use crate::Cli;

/// The config file named by `--config <file>`, `--config=<file>` or `DATAKUBE_CONFIG`.
pub fn config_path(args: &[String]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("DATAKUBE_CONFIG").map(PathBuf::from)
}

/// Every option that has an environment variable: (long name, env name, help, default).
fn options() -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let cmd = Cli::command();
    let mut add = |c: &clap::Command| {
        for a in c.get_arguments() {
            let (Some(long), Some(env)) = (a.get_long(), a.get_env()) else {
                continue;
            };
            if out
                .iter()
                .any(|(l, _, _, _): &(String, String, String, String)| l == long)
            {
                continue;
            }
            let default = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().to_string())
                .collect::<Vec<_>>()
                .join(",");
            out.push((
                long.to_string(),
                env.to_string_lossy().to_string(),
                a.get_help().map(|h| h.to_string()).unwrap_or_default(),
                default,
            ));
        }
    };
    add(&cmd);
    if let Some(serve) = cmd.find_subcommand("serve") {
        add(serve);
    }
    if let Some(r) = cmd.find_subcommand("refresh") {
        add(r);
    }
    out
}

/// Read `path` and set the environment variable of every key not set in the environment.
pub fn apply(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the config file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let opts = options();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some((_, env, _, _)) = opts.iter().find(|(l, _, _, _)| *l == long) else {
            bail!(
                "{}: unknown key {key:?}; the keys are the long options of `datakube serve` (see docs/configuration.md)",
                path.display()
            );
        };
        let bad = || {
            anyhow::anyhow!(
                "{}: key {key:?}: expected a string, number, boolean or list",
                path.display()
            )
        };
        let text = match value {
            toml::Value::Array(items) => {
                let sep = if env == "DATAKUBE_SERVICE_ACCOUNTS" { " " } else { "," };
                items
                    .iter()
                    .map(|v| scalar(v).ok_or_else(bad))
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .join(sep)
            }
            v => scalar(v).ok_or_else(bad)?,
        };
        if std::env::var_os(env).is_none() {
            // SAFETY: called from `main` before any other thread exists.
            unsafe { std::env::set_var(env, text) };
        }
    }
    Ok(())
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// docs/configuration.md: every option with its environment variable, file key and default.
pub fn markdown() -> String {
    let mut s = String::from(
        "# Configuration\n\n\
<!-- Generated from the command-line definitions: `datakube config-reference > docs/configuration.md`. \
A unit test fails when this file is out of date. -->\n\n\
Every option of `datakube serve` (and the global ones) can be given three more ways besides the\n\
command line. Precedence: **command line > environment variable > configuration file > default**.\n\n\
- Environment: the `DATAKUBE_*` variable in the table.\n\
- Configuration file: `--config /config/datakube.toml` (or `DATAKUBE_CONFIG`), TOML, one key per\n\
  option, named like the long option (`oidc-issuer` or `oidc_issuer`). Lists are TOML arrays.\n\
  An unknown key is an error naming the file and the key.\n\n\
```toml\n\
listen = \"0.0.0.0:8443\"\n\
data-dir = \"/data\"\n\
cube-definitions = \"/config/cube-definitions\"\n\
log-format = \"json\"\n\
tls-cert = \"/config/tls/fullchain.pem\"\n\
tls-key = \"/config/tls/privkey.pem\"\n\
oidc-issuer = \"https://login.example.dk/realms/kommune\"\n\
oidc-audience = [\"datakube\"]\n\
reload-poll-seconds = 5\n\
keep-snapshots = 1\n\
```\n\n\
Secrets (`oidc-client-secret`) are better given as environment variables or a file readable\n\
only by the server's user.\n\n\
| file key / option | environment | default | meaning |\n|---|---|---|---|\n",
    );
    for (long, env, help, default) in options() {
        let help = help.replace('\n', " ").replace('|', "\\|");
        let default = if default.is_empty() {
            "—".to_string()
        } else {
            format!("`{default}`")
        };
        s.push_str(&format!("| `{long}` | `{env}` | {default} | {help} |\n"));
    }
    s.push_str(
        "\nLogging: `DATAKUBE_LOG` sets the level filter (`info` by default; e.g. \
`datakube=debug,info`), in the syntax of `tracing_subscriber::EnvFilter`.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_configuration_md_is_current() {
        let path = &format!(
            "{}/../../docs/configuration.md",
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
        );
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == super::markdown(),
            "docs/configuration.md is out of date: run `datakube config-reference > docs/configuration.md`"
        );
    }

    #[test]
    fn file_values_apply_below_the_environment_and_the_command_line() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("datakube.toml");
        std::fs::write(
            &f,
            "keep-snapshots = 3\nreload_poll_seconds = 9\ndemo-scale = 0.5\noidc-audience = [\"a\", \"b\"]\n",
        )
        .unwrap();
        // SAFETY: no other test of this binary reads or writes these variables.
        unsafe { std::env::set_var("DATAKUBE_RELOAD_POLL_SECONDS", "7") };
        super::apply(&f).unwrap();
        let serve = |args: &[&str]| {
            let mut all = vec!["datakube", "serve"];
            all.extend_from_slice(args);
            match crate::Cli::try_parse_from(all).unwrap().command {
                Some(crate::Command::Serve(a)) => a,
                _ => unreachable!(),
            }
        };
        let a = serve(&[]);
        assert_eq!(a.keep_snapshots, 3, "file over default");
        assert_eq!(a.reload_poll_seconds, 7, "environment over file");
        assert_eq!(a.demo_scale, 0.5);
        assert_eq!(a.oidc_audience, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(
            serve(&["--keep-snapshots", "5"]).keep_snapshots,
            5,
            "command line over file"
        );

        std::fs::write(&f, "no-such-option = 1\n").unwrap();
        let e = super::apply(&f).unwrap_err().to_string();
        assert!(e.contains("datakube.toml") && e.contains("no-such-option"), "{e}");
        std::fs::write(&f, "listen = \n").unwrap();
        assert!(super::apply(&f).unwrap_err().to_string().contains("datakube.toml"));
    }

    #[test]
    fn every_serve_option_has_an_environment_variable() {
        use clap::CommandFactory;
        let cmd = crate::Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        for a in serve.get_arguments().chain(cmd.get_arguments()) {
            if let Some(long) = a.get_long()
                && long != "help"
                && long != "version"
            {
                assert!(a.get_env().is_some(), "--{long} has no DATAKUBE_* variable");
            }
        }
    }
}
