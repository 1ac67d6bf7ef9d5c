//! Mutual TLS between peers. Each node's certificate names it (`node-ID.raftkv`), signed by a
//! CA every node trusts: the dialer checks the certificate of the node it meant to reach, and
//! the listener checks that the certificate of a connecting node names the id it claims in its
//! hello frame. `raftkv certs` makes a local CA and node certificates for trying it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The DNS name a node's certificate carries.
pub fn node_name(id: u64) -> String {
    format!("node-{id}.raftkv")
}

/// The TLS settings of one node.
#[derive(Clone)]
pub struct TlsConfig {
    /// For the peer listener (client certificates required).
    pub server: Arc<ServerConfig>,
    /// For dialing peers (presents this node's certificate).
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig")
    }
}

/// Loads `ca.pem`, `nodeID.pem` and `nodeID-key.pem` from `dir`.
pub fn load(dir: &Path, id: u64) -> Result<TlsConfig, String> {
    let read_certs = |name: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        let path = dir.join(name);
        CertificateDer::pem_file_iter(&path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let ca = read_certs("ca.pem")?;
    let certs = read_certs(&format!("node{id}.pem"))?;
    let key_path = dir.join(format!("node{id}-key.pem"));
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots.add(c).map_err(|e| format!("ca.pem: {e}"))?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| e.to_string())?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(TlsConfig {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// Whether a (chain-verified) peer certificate names node `id`.
pub fn cert_names_node(cert: &CertificateDer<'_>, id: u64) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(node_name(id)) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}

/// `raftkv certs`: writes a CA and certificates for nodes `1..=nodes` into `dir`.
pub fn make_certs(dir: &Path, nodes: u64) -> Result<(), String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let e = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "raftkv local CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let write = |name: String, text: String| {
        std::fs::write(dir.join(&name), text).map_err(|err| format!("{name}: {err}"))
    };
    write("ca.pem".into(), ca_cert.pem())?;
    write("ca-key.pem".into(), ca_key.serialize_pem())?;
    for id in 1..=nodes {
        let key = KeyPair::generate().map_err(e)?;
        let mut p =
            CertificateParams::new(vec![node_name(id), "localhost".to_string()]).map_err(e)?;
        p.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        p.distinguished_name.push(DnType::CommonName, node_name(id));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &ca_cert, &ca_key).map_err(e)?;
        write(format!("node{id}.pem"), cert.pem())?;
        write(format!("node{id}-key.pem"), key.serialize_pem())?;
    }
    Ok(())
}
