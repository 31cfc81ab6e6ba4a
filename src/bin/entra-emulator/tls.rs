//! The local certificate authority, the HTTPS server certificate it signs (SANs 127.0.0.1 and localhost),
//! and the rustls acceptor built from them (aws-lc-rs provider, ALPN http/1.1).

use crate::clock;
use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The CA certificate (PEM, for clients to trust) and the server-side TLS acceptor.
pub struct Tls {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

/// Generates a fresh CA and server certificate (ECDSA P-256, valid from yesterday for a year).
pub fn generate() -> anyhow::Result<Tls> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "entra-emulator local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut ca_params);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)
        .context("self-sign the CA")?;

    let server_key = KeyPair::generate()?;
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    set_validity(&mut server_params);
    let server_cert = server_params
        .signed_by(&server_key, &ca)
        .context("sign the server certificate")?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .context("build the TLS server configuration")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: ca.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}

fn set_validity(params: &mut CertificateParams) {
    let (year, month, day) = clock::ymd(clock::now() - 86_400);
    params.not_before = rcgen::date_time_ymd(year, month, day);
    let (year, month, day) = clock::ymd(clock::now() + 365 * 86_400);
    params.not_after = rcgen::date_time_ymd(year, month, day);
}
