//! `TestAzurite`: Azurite's Blob service (npm `azurite`, installed by `.ci/run` under
//! `target/azurite`) started by the test itself over HTTPS with a certificate the test generates,
//! `--oauth basic`, a loopback port and a temporary location. The broker reaches it with a token from
//! the emulator's managed-identity endpoint, as it reaches Azure Storage with the Function App's.
//!
//! Without Azurite a test fails under `CI=true` and says how to install it; elsewhere it prints that and
//! returns `None`, so `cargo test` still needs only the Rust toolchain.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::new_guid;

/// The version `.ci/run` installs (the last whose engines accept Node 20).
pub const AZURITE_VERSION: &str = "3.35.0";
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Azurite's well-known development account; the first path segment of its URLs.
const ACCOUNT: &str = "devstoreaccount1";
/// The Blob API version the raw calls below speak (Azurite 3.35's own).
const API_VERSION: &str = "2025-11-05";

pub struct TestAzurite {
    /// `https://127.0.0.1:<port>/devstoreaccount1`
    pub account_url: String,
    /// PEM of the CA that signed Azurite's certificate.
    pub ca_pem: String,
    dir: PathBuf,
    child: Option<Child>,
}

/// Where the installed Azurite's Blob entry point is: `AZURITE_BLOB_MAIN`, else `.ci/run`'s install.
fn blob_main() -> Option<PathBuf> {
    let path = std::env::var_os("AZURITE_BLOB_MAIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/azurite/node_modules/azurite/dist/src/blob/main.js")
        });
    path.is_file().then_some(path)
}

impl TestAzurite {
    /// Starts Azurite, or explains how to install it (a failure under `CI=true`, `None` elsewhere).
    pub async fn start() -> Option<Self> {
        let Some(main) = blob_main() else {
            let how = format!(
                "Azurite is not installed; install it with \
                 `npm install --prefix target/azurite azurite@{AZURITE_VERSION}` (Node 20), as .ci/run does, \
                 or point AZURITE_BLOB_MAIN at its dist/src/blob/main.js"
            );
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{how}");
            }
            eprintln!("SKIPPED (not in CI): {how}");
            return None;
        };
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("azurite-{}", new_guid()));
        std::fs::create_dir_all(&dir).expect("create Azurite's directory");
        let (ca_pem, cert_pem, key_pem) = certificates();
        std::fs::write(dir.join("cert.pem"), cert_pem).expect("write cert.pem");
        std::fs::write(dir.join("key.pem"), key_pem).expect("write key.pem");
        let mut child = Command::new("node")
            .arg(main)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
                "--oauth",
                "basic",
            ])
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--location"])
            .arg(dir.join("data"))
            .arg("--cert")
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node (Node 20 is needed for Azurite)");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let listening = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.expect("read Azurite's stdout") {
                if let Some(url) = line.split("successfully listens on ").nth(1) {
                    return url.trim().to_owned();
                }
            }
            panic!("Azurite exited before it listened");
        })
        .await
        .unwrap_or_else(|_| panic!("Azurite did not listen within {START_TIMEOUT:?}"));
        // Keep draining stdout so Azurite never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Self {
            account_url: format!("{listening}/{ACCOUNT}"),
            ca_pem,
            dir,
            child: Some(child),
        })
    }

    /// The URL of container `name`, as `BROKER_DELEGATION_STORE` takes it.
    pub fn container_url(&self, name: &str) -> String {
        format!("{}/{name}", self.account_url)
    }

    /// A client that trusts Azurite's CA only.
    pub fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("parse the CA");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .expect("build the Azurite client")
    }

    /// A CA bundle with the emulator's CA and Azurite's, for the broker's `SSL_CERT_FILE`.
    pub fn trust_bundle(&self, emulator: &TestEmulator) -> PathBuf {
        let emulator_ca = std::fs::read_to_string(&emulator.ready.ca_file).expect("read ca.pem");
        let path = self.dir.join("bundle.pem");
        std::fs::write(&path, format!("{emulator_ca}\n{}", self.ca_pem)).expect("write bundle.pem");
        path
    }

    /// Creates container `name` with a storage token from the emulator's identity endpoint.
    pub async fn create_container(&self, emulator: &TestEmulator, name: &str) {
        let token = storage_token(emulator).await.0;
        let response = self
            .client()
            .put(format!("{}?restype=container", self.container_url(name)))
            .bearer_auth(token)
            .header("x-ms-version", API_VERSION)
            .header("content-length", "0")
            .send()
            .await
            .expect("create the container");
        assert_eq!(
            response.status(),
            201,
            "create container: {:?}",
            response.text().await
        );
    }

    /// The raw bytes of every blob in container `name`.
    pub async fn raw_blobs(&self, emulator: &TestEmulator, name: &str) -> Vec<Vec<u8>> {
        let token = storage_token(emulator).await.0;
        let client = self.client();
        let listing = client
            .get(format!(
                "{}?restype=container&comp=list",
                self.container_url(name)
            ))
            .bearer_auth(&token)
            .header("x-ms-version", API_VERSION)
            .send()
            .await
            .expect("list blobs")
            .text()
            .await
            .expect("read the listing");
        let mut blobs = Vec::new();
        for part in listing.split("<Name>").skip(1) {
            let blob = part.split("</Name>").next().expect("a blob name");
            let bytes = client
                .get(format!("{}/{blob}", self.container_url(name)))
                .bearer_auth(&token)
                .header("x-ms-version", API_VERSION)
                .send()
                .await
                .expect("read a blob")
                .bytes()
                .await
                .expect("read a blob's bytes");
            blobs.push(bytes.to_vec());
        }
        blobs
    }

    /// Writes `bytes` over blob `blob` in container `name`, unconditionally (as an attacker with
    /// write access to the container could).
    pub async fn overwrite_blob(
        &self,
        emulator: &TestEmulator,
        name: &str,
        blob: &str,
        bytes: Vec<u8>,
    ) {
        let token = storage_token(emulator).await.0;
        let response = self
            .client()
            .put(format!("{}/{blob}", self.container_url(name)))
            .bearer_auth(token)
            .header("x-ms-version", API_VERSION)
            .header("x-ms-blob-type", "BlockBlob")
            .body(bytes)
            .send()
            .await
            .expect("write a blob");
        assert_eq!(
            response.status(),
            201,
            "overwrite blob: {:?}",
            response.text().await
        );
    }

    /// Stops Azurite (the store becomes unreachable).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("stop Azurite");
        }
    }
}

/// A v1 app token for `https://storage.azure.com` from the emulator's managed-identity endpoint, and
/// its expiry (unix seconds).
pub async fn storage_token(emulator: &TestEmulator) -> (String, i64) {
    let ready = &emulator.ready;
    let answer: Value = emulator
        .https_client()
        .get(identity_url(
            &ready.identity_endpoint,
            "https://storage.azure.com",
        ))
        .header("X-IDENTITY-HEADER", &ready.identity_header)
        .send()
        .await
        .expect("call the identity endpoint")
        .json()
        .await
        .expect("identity endpoint JSON");
    let token = answer["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let expires_on = answer["expires_on"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .expect("expires_on");
    (token, expires_on)
}

/// App Service's identity endpoint asked for `resource`.
fn identity_url(endpoint: &str, resource: &str) -> Url {
    Url::parse_with_params(
        endpoint,
        [("api-version", "2019-08-01"), ("resource", resource)],
    )
    .expect("the identity endpoint URL")
}

/// The emulator's managed identity as an Azure SDK credential, for the store used as a library.
#[derive(Debug)]
pub struct EmulatorIdentity {
    endpoint: String,
    header: String,
    client: reqwest::Client,
}

impl EmulatorIdentity {
    pub fn new(emulator: &TestEmulator) -> Arc<Self> {
        Arc::new(Self {
            endpoint: emulator.ready.identity_endpoint.clone(),
            header: emulator.ready.identity_header.clone(),
            client: emulator.https_client().clone(),
        })
    }
}

#[async_trait::async_trait]
impl TokenCredential for EmulatorIdentity {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let resource = scopes
            .first()
            .map(|scope| scope.trim_end_matches("/.default"))
            .unwrap_or_default();
        let answer: Value = self
            .client
            .get(identity_url(&self.endpoint, resource))
            .header("X-IDENTITY-HEADER", &self.header)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| {
                azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    err.to_string(),
                )
            })?
            .json()
            .await
            .map_err(|err| {
                azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    err.to_string(),
                )
            })?;
        let token = answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let expires_on = answer["expires_on"]
            .as_str()
            .and_then(|text| text.parse::<i64>().ok())
            .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok())
            .unwrap_or_else(time::OffsetDateTime::now_utc);
        Ok(AccessToken::new(Secret::new(token), expires_on))
    }
}

/// A fresh CA and a server certificate for 127.0.0.1 it signed: (CA PEM, certificate PEM, key PEM).
fn certificates() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "token-broker tests Azurite CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("self-sign the CA");
    let server_key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let server = params
        .signed_by(&server_key, &ca)
        .expect("sign the server certificate");
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

impl Drop for TestAzurite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
