//! TLS for PostgreSQL with libpq's `sslmode` meanings, over rustls (ring).
//!
//! - `disable`: no TLS.
//! - `require`: TLS, any certificate — unless a root certificate is given, then as `verify-ca` (libpq
//!   does the same when `root.crt` exists).
//! - `verify-ca`: the certificate must chain to the root certificate; the host name is not checked.
//! - `verify-full`: chain and host name.
//!
//! Without `sslrootcert`, `verify-*` trust the public web roots (Azure Database for PostgreSQL serves
//! certificates from public CAs).

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};

use super::DbError;
use crate::options::SslMode;

/// The rustls client configuration for a mode, or `None` for `disable`.
pub fn client_config(
    mode: SslMode,
    root_cert: Option<&Path>,
) -> Result<Option<ClientConfig>, DbError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Tls {
            message: e.to_string(),
        })?;
    let roots = || -> Result<Arc<RootCertStore>, DbError> {
        let mut store = RootCertStore::empty();
        match root_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| DbError::RootCert {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                if certs.is_empty() {
                    return Err(DbError::RootCert {
                        path: path.to_path_buf(),
                        message: "no certificate in the file".into(),
                    });
                }
                for cert in certs {
                    store.add(cert).map_err(|e| DbError::RootCert {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                }
            }
            None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(Arc::new(store))
    };
    let webpki = |roots: Arc<RootCertStore>| {
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| DbError::Tls {
                message: e.to_string(),
            })
    };
    let config = match (mode, root_cert) {
        (SslMode::Disable, _) => return Ok(None),
        (SslMode::Require, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                provider: provider.clone(),
                chain: None,
            }))
            .with_no_client_auth(),
        (SslMode::Require, Some(_)) | (SslMode::VerifyCa, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                provider: provider.clone(),
                chain: Some(webpki(roots()?)?),
            }))
            .with_no_client_auth(),
        (SslMode::VerifyFull, _) => builder
            .with_root_certificates(roots()?)
            .with_no_client_auth(),
    };
    Ok(Some(config))
}

/// `require` (`chain: None`): encrypt, accept whatever certificate the server shows. `verify-ca`
/// (`chain: Some`): the chain must be valid; a certificate for another name is accepted. Either way
/// the handshake's signatures are checked with the provider's algorithms.
#[derive(Debug)]
struct Verifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(TlsError::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(TlsError::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
