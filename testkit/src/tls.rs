//! A private CA and a server certificate signed by it, for tests of TLS clients (the
//! image registry client, span export to an https:// collector).

use std::{
    error::Error,
    path::{Path, PathBuf},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// The PEM files [`private_ca`] wrote.
#[derive(Clone, Debug)]
pub struct PrivateCa {
    /// The CA's certificate: what a client must trust.
    pub ca: PathBuf,
    /// The server's certificate, for 127.0.0.1 and localhost.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A new private CA and a certificate for 127.0.0.1 and localhost signed by it, as PEM
/// files in `dir` (`ca.pem`, `server.pem`, `server-key.pem`).
pub fn private_ca(dir: &Path) -> Result<PrivateCa, Box<dyn Error + Send + Sync>> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "apiroutes test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
        .signed_by(&key, &issuer)?;
    let out = PrivateCa {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    std::fs::write(&out.ca, ca_cert.pem())?;
    std::fs::write(&out.cert, cert.pem())?;
    std::fs::write(&out.key, key.serialize_pem())?;
    Ok(out)
}
