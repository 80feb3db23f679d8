//! TLS configuration: a configured certificate and key, or a self-signed certificate that is
//! generated on first start and kept in the data directory.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM certificate chain and PEM private key, e.g. from the municipality's CA.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate kept in this directory (`cert.pem`, `key.pem`), made on first use.
    SelfSigned { dir: PathBuf },
}

/// Load (or create) the certificate and build the rustls server configuration
/// (ALPN: h2 and http/1.1). Returns the config and the certificate file used.
pub fn server_config(source: &TlsSource) -> anyhow::Result<(Arc<rustls::ServerConfig>, PathBuf)> {
    let (cert_path, key_path) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned { dir } => ensure_self_signed(dir)?,
    };
    let certs = rustls_pemfile::certs(&mut BufReader::new(
        fs::File::open(&cert_path).with_context(|| format!("cannot open TLS certificate {}", cert_path.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("{} is not a PEM certificate file", cert_path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", cert_path.display());
    }
    let key = rustls_pemfile::private_key(&mut BufReader::new(
        fs::File::open(&key_path).with_context(|| format!("cannot open TLS key {}", key_path.display()))?,
    ))
    .with_context(|| format!("{} is not a PEM private key file", key_path.display()))?
    .with_context(|| format!("{} holds no private key", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not belong together")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), cert_path))
}

/// Create `dir/cert.pem` and `dir/key.pem` unless both exist. The certificate names
/// localhost, 127.0.0.1, ::1 and this machine's host name.
pub fn ensure_self_signed(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(h) = fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() && !names.iter().any(|n| n == h) {
            names.push(h.to_string());
        }
    }
    let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "datakube (self-signed, development)");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "datakube");
    let key_pair = rcgen::KeyPair::generate().context("generating a TLS key")?;
    let c = params.self_signed(&key_pair).context("self-signing the certificate")?;
    // Write to temporary names first so a crash never leaves one file without the other.
    let (cert_tmp, key_tmp) = (dir.join("cert.pem.tmp"), dir.join("key.pem.tmp"));
    fs::write(&cert_tmp, c.pem())?;
    write_private(&key_tmp, key_pair.serialize_pem().as_bytes())?;
    fs::rename(&key_tmp, &key)?;
    fs::rename(&cert_tmp, &cert)?;
    tracing::info!("generated a self-signed TLS certificate: {}", cert.display());
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, _) = server_config(&TlsSource::SelfSigned { dir: dir.path().into() }).unwrap();
        let pem1 = fs::read(dir.path().join("cert.pem")).unwrap();
        let (_c2, _) = server_config(&TlsSource::SelfSigned { dir: dir.path().into() }).unwrap();
        assert_eq!(pem1, fs::read(dir.path().join("cert.pem")).unwrap());
        assert_eq!(c1.alpn_protocols.len(), 2);
    }

    #[test]
    fn garbage_certificate_gives_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        fs::write(&cert, "not a certificate").unwrap();
        fs::write(&key, "not a key").unwrap();
        let err = server_config(&TlsSource::Files {
            cert: cert.clone(),
            key,
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("c.pem"), "{err:#}");
    }
}
