//! A fresh CA and a server certificate for 127.0.0.1 and localhost, made at start-up.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// A fresh test CA and a server certificate it signed.
pub struct TestCertificates {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, PEM and DER.
    pub cert_pem: String,
    pub cert_der: rustls::pki_types::CertificateDer<'static>,
    /// The server's private key, PKCS#8 PEM and DER.
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

impl TestCertificates {
    /// A CA named `ca_name` and a TLS server certificate it signed for `common_name`, the DNS names
    /// `dns_names` and, when `loopback_ip`, 127.0.0.1.
    pub fn issue(
        ca_name: &str,
        common_name: &str,
        dns_names: &[&str],
        loopback_ip: bool,
    ) -> Result<TestCertificates, rcgen::Error> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, SanType,
        };
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(dns_names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        if loopback_ip {
            params
                .subject_alt_names
                .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer)?;
        Ok(TestCertificates {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        })
    }

    /// A rustls server configuration with this certificate, offering `alpn` protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into()),
            )?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

pub(crate) fn tls_config() -> anyhow::Result<(rustls::ServerConfig, String)> {
    let certs = TestCertificates::issue(
        "fake-apiserver-ca",
        "kube-apiserver",
        &["localhost", "kubernetes", "kubernetes.default.svc"],
        true,
    )?;
    let config = certs.server_config(&[b"h2", b"http/1.1"])?;
    Ok((config, certs.ca_pem))
}
