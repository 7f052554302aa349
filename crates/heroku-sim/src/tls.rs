//! The simulator's TLS material: a throwaway CA and one server certificate signed by it, made
//! once per simulator process and shared by every redis-server (so a replica trusts its
//! primary over `tls-replication`).
//!
//! Heroku Key-Value Store: "All Key-Value Store plans require TLS connections", with
//! self-signed certificates that clients connect to without verifying
//! (Dev Center, "Upgrading a Heroku Key-Value Store Version",
//! <https://devcenter.heroku.com/articles/heroku-redis-version-upgrade>, and "Connecting to
//! Heroku Key-Value Store", <https://devcenter.heroku.com/articles/connecting-heroku-redis>;
//! the Heroku CLI's `redis:cli` connects with `rejectUnauthorized: false`). The CA here
//! is never trusted anywhere: clients turn verification off exactly as they must on Heroku,
//! and a client that does verify fails, as it would there.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::SimError;

/// PEM text of the CA certificate, the server certificate and the server's private key.
#[derive(Clone)]
pub(crate) struct Material {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Material { <pem> }")
    }
}

/// Makes a fresh CA and a server certificate for `127.0.0.1` and `localhost` signed by it
/// (ECDSA P-256, valid for 30 days). Pure: no file is written.
///
/// # Errors
/// The certificate library's error (only if the key cannot be generated or encoded).
pub(crate) fn generate() -> Result<Material, rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "upshift-sim throwaway CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Material {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Where a server finds its TLS material.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The process-wide material on disk, in a directory marked with this process's id (removed
/// with the process, or swept by the next simulator after a SIGKILL).
static FILES: tokio::sync::OnceCell<(tempfile::TempDir, Files)> =
    tokio::sync::OnceCell::const_new();

/// The process's TLS files, made on first use.
///
/// # Errors
/// [`SimError::TempDir`] when the directory or a file cannot be written,
/// [`SimError::SpawnRedis`] naming `addon` when the certificate cannot be made.
pub(crate) async fn files(addon: &str) -> Result<Files, SimError> {
    let (_, files) = FILES
        .get_or_try_init(|| async {
            let material = generate().map_err(|e| SimError::SpawnRedis {
                addon: addon.to_owned(),
                source: std::io::Error::other(format!(
                    "could not make the simulator's TLS certificate: {e}"
                )),
            })?;
            let dir = crate::redis_proc::owned_tempdir("upshift-sim-tls-")?;
            let files = Files {
                ca: dir.path().join("ca.pem"),
                cert: dir.path().join("cert.pem"),
                key: dir.path().join("key.pem"),
            };
            for (path, text) in [
                (&files.ca, &material.ca),
                (&files.cert, &material.cert),
                (&files.key, &material.key),
            ] {
                std::fs::write(path, text).map_err(|source| SimError::TempDir { source })?;
            }
            Ok::<_, SimError>((dir, files))
        })
        .await?;
    Ok(files.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_server_certificate_is_signed_by_a_separate_ca() {
        let m = super::generate().expect("material");
        assert!(m.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(m.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(m.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(m.ca, m.cert);
        assert_eq!(format!("{m:?}"), "Material { <pem> }", "no key in Debug");
    }
}
