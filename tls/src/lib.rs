//! Trust for the platform's outgoing TLS (span export in `apiroutes-kit`, image registries
//! in `apiroutes-image`): the system's root certificates, as kube's client in this
//! workspace uses them (rustls-native-certs: a company CA installed on the machine and
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` work as for curl), plus a PEM file of more.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

/// Why no trust could be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CA file could not be read, held no PEM certificate, or one was not usable.
    #[error("CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The root certificates to trust.
#[derive(Debug)]
pub struct Roots {
    pub store: RootCertStore,
    /// How many of the system's certificates were usable (0 tells a certificate error's
    /// reader why), and the first problem met loading them.
    pub system: usize,
    pub system_problem: Option<String>,
}

/// The system's root certificates (when `system`) and every certificate of `ca_file`.
pub fn roots(system: bool, ca_file: Option<&Path>) -> Result<Roots, Error> {
    let mut store = RootCertStore::empty();
    let (mut count, mut problem) = (0, None);
    if system {
        let native = rustls_native_certs::load_native_certs();
        problem = native.errors.first().map(ToString::to_string);
        count = store.add_parsable_certificates(native.certs).0;
    }
    if let Some(path) = ca_file {
        let bad = |reason: String| Error::CaFile {
            path: path.to_path_buf(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for cert in certs {
            store.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(Roots {
        store,
        system: count,
        system_problem: problem,
    })
}

/// A client configuration trusting `store` (ring, TLS 1.2 and 1.3, no client certificate).
pub fn client_config(store: RootCertStore) -> Result<ClientConfig, Error> {
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Setup(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [empty.clone(), dir.path().join("missing.pem")] {
            match roots(false, Some(&path)) {
                Err(Error::CaFile { path: p, .. }) => assert_eq!(p, path),
                other => panic!("{path:?}: {:?}", other.map(|r| r.store.len())),
            }
        }
        let e = roots(false, Some(&empty)).unwrap_err().to_string();
        assert!(e.ends_with("empty.pem: no PEM certificate in it"), "{e}");
    }

    #[test]
    fn without_the_system_store_only_the_file_counts() {
        let r = roots(false, None).unwrap();
        assert_eq!((r.store.len(), r.system), (0, 0));
        assert!(client_config(r.store).is_ok());
    }
}
