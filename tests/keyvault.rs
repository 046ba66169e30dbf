//! Key Vault through the real Azure SDK, against a fake vault that speaks Key Vault's wire protocol
//! (see `support/keyvault.rs`): the product reads `https://myvault.vault.azure.net/` as in production,
//! reached through a CONNECT proxy (`HTTPS_PROXY`) with a test CA (`SSL_CERT_FILE`) and a fake `az`.
//!
//! Each scenario runs `kubectl_backstage::secrets::read_secret` in a child process of this test binary
//! (the `child_process_entry` test, which does nothing unless `KEYVAULT_TEST_CHILD` is set), so that
//! each has its own, clean environment.

#[path = "support/keyvault.rs"]
mod keyvault;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyvault::{AZ_TOKEN, AzLogin, FakeKeyVault, RecordedRequest, SCOPE, TENANT_ID};
use kubectl_backstage::options::AzureAuth;
use kubectl_backstage::secrets::{KeyVaultSecret, SecretError, read_secret};

const CHILD: &str = "KEYVAULT_TEST_CHILD";
const SECRET_VALUE: &str = "s3cr3t-Pa55-sentinel-7f3a";
const BASE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
const AZ_ARGS: &str = "account get-access-token -o json --scope https://vault.azure.net/.default";
const NOT_SIGNED_IN_HINT: &str = "; sign in with `az login`, or pick another way with --azure-auth";
const SERVICE_PRINCIPAL_HINT: &str =
    "; check AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID";
const WORKLOAD_HINT: &str = "; check the pod's service account federation (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)";

/// The child's side: reads the secret described by `KEYVAULT_TEST_CHILD` and prints one `RESULT` line.
#[test]
fn child_process_entry() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut fields = spec.split('\n');
    let (vault_url, secret, auth) = (
        fields.next().unwrap(),
        fields.next().unwrap(),
        fields.next().unwrap_or(""),
    );
    let auth = (!auth.is_empty())
        .then(|| <AzureAuth as clap::ValueEnum>::from_str(auth, false).expect("auth"));
    // As `main` does first thing.
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("one provider");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secret = KeyVaultSecret {
        vault_url: vault_url.into(),
        secret: secret.into(),
        auth,
    };
    match runtime.block_on(read_secret(&secret)) {
        Ok(password) => println!("RESULT OK {}", password.expose()),
        Err(e) => println!("RESULT ERR {} {e}", variant(&e)),
    }
}

fn variant(e: &SecretError) -> &'static str {
    match e {
        SecretError::EnvMissing { .. } => "EnvMissing",
        SecretError::NotFound { .. } => "NotFound",
        SecretError::NotSignedIn { .. } => "NotSignedIn",
        SecretError::Forbidden { .. } => "Forbidden",
        SecretError::SecretNotFound { .. } => "SecretNotFound",
        SecretError::VaultUnreachable { .. } => "VaultUnreachable",
        SecretError::KeyVault { .. } => "KeyVault",
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Value(String),
    /// The variant's name and the whole message.
    Error(&'static str, String),
}

/// Runs `read_secret` in a child with only the given environment (and a `HOME`).
fn read(vault_url: &str, secret: &str, auth: Option<&str>, env: &[(String, String)]) -> Outcome {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", BASE_PATH)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(
            CHILD,
            format!("{vault_url}\n{secret}\n{}", auth.unwrap_or("")),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("read_secret did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no result from the child:\n{stdout}\n{stderr}"));
    if let Some(value) = line.strip_prefix("OK ") {
        return Outcome::Value(value.to_string());
    }
    let (name, message) = line.strip_prefix("ERR ").unwrap().split_once(' ').unwrap();
    let name = [
        "NotSignedIn",
        "Forbidden",
        "SecretNotFound",
        "VaultUnreachable",
        "KeyVault",
        "EnvMissing",
        "NotFound",
    ]
    .into_iter()
    .find(|v| *v == name)
    .unwrap();
    Outcome::Error(name, message.to_string())
}

fn fake() -> FakeKeyVault {
    let fake = FakeKeyVault::start("myvault");
    fake.add_secret("db-password", SECRET_VALUE);
    fake.forbid("locked");
    fake
}

fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// `read` of `secret` from the fake vault, with the fake's environment and the default auth.
fn read_default(fake: &FakeKeyVault, secret: &str) -> Outcome {
    read(&fake.vault_url(), secret, None, &fake.env(BASE_PATH))
}

/// The fake's environment without `key`.
fn env_without(fake: &FakeKeyVault, key: &str) -> Vec<(String, String)> {
    fake.env(BASE_PATH)
        .into_iter()
        .filter(|(k, _)| k != key)
        .collect()
}

/// The fake's environment with a service principal whose client secret is `client_secret`.
fn service_principal_env(fake: &FakeKeyVault, client_secret: &str) -> Vec<(String, String)> {
    with(
        fake.env(BASE_PATH),
        &[
            ("AZURE_CLIENT_ID", SP_ID),
            ("AZURE_CLIENT_SECRET", client_secret),
            ("AZURE_TENANT_ID", TENANT_ID),
        ],
    )
}

/// The HTTP statuses the vault answered, in order.
fn vault_statuses(fake: &FakeKeyVault) -> Vec<u16> {
    fake.vault_requests().iter().map(|r| r.status).collect()
}

/// The requests to Entra ID's token endpoint.
fn token_requests(fake: &FakeKeyVault) -> Vec<RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.host == "login.microsoftonline.com")
        .collect()
}

/// A port of 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// No request to the fake carried the secret's value.
fn assert_value_never_sent(fake: &FakeKeyVault) {
    for r in fake.requests() {
        assert!(
            !r.contains(SECRET_VALUE),
            "a request carried the secret: {r:?}"
        );
    }
}

/// An error is one line and carries neither the secret's value nor a token.
fn assert_clean(message: &str) {
    assert!(
        !message.contains('\n') && !message.contains('\r'),
        "not one line: {message:?}"
    );
    assert!(
        !message.contains(SECRET_VALUE) && !message.contains("eyJ0eXAi"),
        "leaks: {message}"
    );
}

#[test]
fn reads_the_secret_with_the_azure_cli_login() {
    let fake = fake();
    let outcome = read_default(&fake, "db-password");
    assert_eq!(outcome, Outcome::Value(SECRET_VALUE.into()));

    // The challenge flow: first without a token (401), then with the CLI's token.
    let requests = fake.vault_requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.host.as_str(), r.path()),
            ("GET", "myvault.vault.azure.net", "/secrets/db-password/")
        );
        assert!(
            r.query().is_some_and(|q| q.starts_with("api-version=")),
            "{r:?}"
        );
    }
    assert_eq!(
        (requests[0].header("authorization"), requests[0].status),
        (None, 401)
    );
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Bearer {AZ_TOKEN}").as_str())
    );
    assert_eq!(requests[1].status, 200);
    assert_eq!(fake.requests().len(), 2, "no other endpoint was asked");
    // The token came from `az` for the vault's scope, and the vault was reached through the proxy.
    assert_eq!(fake.az_calls(), vec![AZ_ARGS.to_string()]);
    assert_eq!(
        fake.tunnels(),
        vec!["myvault.vault.azure.net:443".to_string()]
    );
    assert_value_never_sent(&fake);
}

#[test]
fn the_test_ca_is_what_makes_the_fake_trusted() {
    let fake = fake();
    let env = env_without(&fake, "SSL_CERT_FILE");
    let outcome = read(&fake.vault_url(), "db-password", None, &env);
    assert_eq!(
        outcome,
        Outcome::Error(
            "KeyVault",
            "reading secret \"db-password\" from Key Vault https://myvault.vault.azure.net/ failed: TLS with the vault \
             failed (invalid peer certificate: UnknownIssuer); if a proxy or a private CA signs its certificate, trust \
             that CA with SSL_CERT_FILE"
                .into()
        )
    );
    assert!(fake.requests().is_empty());
    assert!(fake.az_calls().is_empty());
}

#[test]
fn a_forbidden_secret_is_403() {
    let fake = fake();
    let outcome = read_default(&fake, "locked");
    assert_eq!(
        outcome,
        Outcome::Error(
            "Forbidden",
            "Key Vault https://myvault.vault.azure.net/ refused access to secret \"locked\" (403): give the signed-in \
             identity `get` permission on secrets"
                .into()
        )
    );
    assert_eq!(vault_statuses(&fake), vec![401, 403]);
}

#[test]
fn an_unknown_secret_is_404() {
    let fake = fake();
    let outcome = read_default(&fake, "no-such-secret");
    assert_eq!(
        outcome,
        Outcome::Error(
            "SecretNotFound",
            "Key Vault https://myvault.vault.azure.net/ has no secret \"no-such-secret\" (404)"
                .into()
        )
    );
    assert_eq!(vault_statuses(&fake), vec![401, 404]);
}

#[test]
fn not_signed_in_to_the_azure_cli() {
    let fake = fake();
    fake.set_az(AzLogin::NotSignedIn);
    let outcome = read_default(&fake, "db-password");
    assert_eq!(
        outcome,
        Outcome::Error(
            "NotSignedIn",
            format!(
                "not signed in to Azure (Azure CLI): Please run 'az login' to setup account{NOT_SIGNED_IN_HINT}"
            )
        )
    );
    assert_eq!(fake.az_calls(), vec![AZ_ARGS.to_string()]);
    // Only the unauthenticated request that prompted the challenge reached the vault.
    let requests = fake.vault_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("authorization"), None);
}

#[test]
fn no_az_on_the_path() {
    let fake = fake();
    let env = env_without(&fake, "PATH");
    let outcome = read(&fake.vault_url(), "db-password", None, &env);
    assert_eq!(
        outcome,
        Outcome::Error(
            "NotSignedIn",
            format!("not signed in to Azure (Azure CLI): az not found on PATH{NOT_SIGNED_IN_HINT}")
        )
    );
}

#[test]
fn a_token_the_vault_rejects() {
    let fake = fake();
    let stranger = "eyJ0eXAiOiJKV1QifQ.token-from-another-tenant.sig";
    fake.set_az(AzLogin::Token(stranger.into()));
    let Outcome::Error(variant, message) = read_default(&fake, "db-password") else {
        panic!("a rejected token read the secret");
    };
    assert_eq!(variant, "KeyVault");
    assert_eq!(
        message,
        "reading secret \"db-password\" from Key Vault https://myvault.vault.azure.net/ failed: the vault did not accept \
         the Azure CLI token (401): AKV10032: Invalid issuer. Expected one of \
         https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"
    );
    assert_clean(&message);
}

#[test]
fn service_principal_asked_for_without_its_environment() {
    let fake = fake();
    let outcome = read(
        &fake.vault_url(),
        "db-password",
        Some("service-principal"),
        &fake.env(BASE_PATH),
    );
    assert_eq!(
        outcome,
        Outcome::Error(
            "NotSignedIn",
            format!(
                "not signed in to Azure (service principal): AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID \
                 are not set{SERVICE_PRINCIPAL_HINT}"
            )
        )
    );
    assert!(
        fake.requests().is_empty() && fake.az_calls().is_empty(),
        "nothing was asked"
    );
}

#[test]
fn workload_identity_asked_for_without_its_token_file() {
    let fake = fake();
    let env = with(
        fake.env(BASE_PATH),
        &[("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", TENANT_ID)],
    );
    let outcome = read(&fake.vault_url(), "db-password", Some("workload"), &env);
    assert_eq!(
        outcome,
        Outcome::Error(
            "NotSignedIn",
            format!(
                "not signed in to Azure (workload identity): AZURE_FEDERATED_TOKEN_FILE is not set{WORKLOAD_HINT}"
            )
        )
    );
}

const SP_ID: &str = "3f1c2b7a-0000-0000-0000-00000000c11e";
const SP_SECRET: &str = "sp-client-secret-value";

#[test]
fn a_service_principal_in_the_environment_comes_before_the_cli() {
    let fake = fake();
    fake.add_service_principal(SP_ID, SP_SECRET);
    let env = service_principal_env(&fake, SP_SECRET);
    assert_eq!(
        read(&fake.vault_url(), "db-password", None, &env),
        Outcome::Value(SECRET_VALUE.into())
    );

    assert!(fake.az_calls().is_empty(), "the CLI was not asked");
    let token_requests = token_requests(&fake);
    assert_eq!(token_requests.len(), 1);
    assert_eq!(
        token_requests[0].path(),
        format!("/{TENANT_ID}/oauth2/v2.0/token")
    );
    assert!(token_requests[0].body.contains(&format!(
        "scope={}",
        SCOPE.replace(':', "%3A").replace('/', "%2F")
    )));
    let vault = fake.vault_requests();
    assert_eq!(vault.len(), 2);
    assert_eq!(
        vault[1].header("authorization"),
        Some("Bearer eyJ0eXAiOiJKV1QifQ.service-principal-token-1.sig")
    );
    assert_eq!(
        fake.tunnels(),
        vec![
            "myvault.vault.azure.net:443".to_string(),
            "login.microsoftonline.com:443".to_string()
        ]
    );
    assert_value_never_sent(&fake);
}

#[test]
fn azure_auth_cli_uses_the_cli_even_with_a_service_principal_in_the_environment() {
    let fake = fake();
    fake.add_service_principal(SP_ID, SP_SECRET);
    let env = service_principal_env(&fake, SP_SECRET);
    assert_eq!(
        read(&fake.vault_url(), "db-password", Some("cli"), &env),
        Outcome::Value(SECRET_VALUE.into())
    );
    assert_eq!(fake.az_calls(), vec![AZ_ARGS.to_string()]);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.host != "login.microsoftonline.com")
    );
}

#[test]
fn a_wrong_client_secret() {
    let fake = fake();
    fake.add_service_principal(SP_ID, SP_SECRET);
    let env = service_principal_env(&fake, "not-the-secret");
    let outcome = read(&fake.vault_url(), "db-password", None, &env);
    assert_eq!(
        outcome,
        Outcome::Error(
            "NotSignedIn",
            format!(
                "not signed in to Azure (service principal): AADSTS7000215: Invalid client secret provided. Ensure the \
                 secret being sent in the request is the client secret value, not the client secret ID, for a secret \
                 added to app '{SP_ID}'{SERVICE_PRINCIPAL_HINT}"
            )
        )
    );
    let Outcome::Error(_, message) = outcome else {
        unreachable!()
    };
    assert!(!message.contains("not-the-secret"));
}

#[test]
fn workload_identity_in_the_environment_comes_first() {
    let fake = fake();
    let k8s_token = "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig";
    let token_file = fake.dir().join("azure-identity-token");
    std::fs::write(&token_file, k8s_token).unwrap();
    fake.add_workload_identity(SP_ID, k8s_token);
    fake.add_service_principal(SP_ID, SP_SECRET);
    let env = with(
        fake.env(BASE_PATH),
        &[
            ("AZURE_FEDERATED_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AZURE_CLIENT_ID", SP_ID),
            ("AZURE_TENANT_ID", TENANT_ID),
            // A service principal too: workload identity still comes first.
            ("AZURE_CLIENT_SECRET", SP_SECRET),
        ],
    );
    assert_eq!(
        read(&fake.vault_url(), "db-password", None, &env),
        Outcome::Value(SECRET_VALUE.into())
    );
    let token_requests = token_requests(&fake);
    assert_eq!(token_requests.len(), 1);
    assert!(
        token_requests[0]
            .body
            .contains(&format!("client_assertion={k8s_token}")),
        "{:?}",
        token_requests[0]
    );
    assert!(!token_requests[0].body.contains("client_secret"));
    assert_eq!(
        fake.vault_requests()[1].header("authorization"),
        Some("Bearer eyJ0eXAiOiJKV1QifQ.workload-token-1.sig")
    );
    assert!(fake.az_calls().is_empty());
}

#[test]
fn managed_identity_when_the_environment_shows_azure() {
    let fake = fake();
    fake.enable_managed_identity("identity-header-value");
    let mut env = fake.env(BASE_PATH);
    env.extend(fake.managed_identity_env());
    assert_eq!(
        read(&fake.vault_url(), "db-password", None, &env),
        Outcome::Value(SECRET_VALUE.into())
    );
    let msi: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/msi/token")
        .collect();
    assert_eq!(msi.len(), 1);
    assert_eq!(
        msi[0].header("x-identity-header"),
        Some("identity-header-value")
    );
    assert_eq!(
        fake.vault_requests()[1].header("authorization"),
        Some("Bearer eyJ0eXAiOiJKV1QifQ.managed-identity-token-1.sig")
    );
    assert!(fake.az_calls().is_empty());
}

#[test]
fn an_unknown_vault_name_is_unreachable() {
    // The proxy answers 502 for a host it cannot reach, as for a vault name that does not resolve.
    let fake = fake();
    let Outcome::Error(variant, message) = read(
        "https://typo.vault.azure.net/",
        "db-password",
        None,
        &fake.env(BASE_PATH),
    ) else {
        panic!("read a secret from nowhere");
    };
    assert_eq!(variant, "VaultUnreachable", "{message}");
    assert_eq!(
        message,
        "Key Vault https://typo.vault.azure.net/ cannot be reached (the HTTPS proxy could not connect to it: tunnel \
         error: unsuccessful); check the vault name (--vault) or --vault-url"
    );
    assert_clean(&message);
    assert!(
        fake.tunnels()
            .iter()
            .all(|t| t == "typo.vault.azure.net:443")
    );
    assert!(fake.az_calls().is_empty());
}

#[test]
fn a_host_that_does_not_resolve_is_unreachable() {
    let started = Instant::now();
    let Outcome::Error(variant, message) =
        read("https://no-such-vault.invalid/", "db-password", None, &[])
    else {
        panic!("read a secret from nowhere");
    };
    assert_eq!(variant, "VaultUnreachable", "{message}");
    assert!(
        message.starts_with("Key Vault https://no-such-vault.invalid/ cannot be reached ("),
        "{message}"
    );
    // The resolver's own words differ between libcs; they are about the lookup.
    assert!(message.contains("lookup"), "{message}");
    assert_clean(&message);
    eprintln!("unresolvable host reported in {:?}", started.elapsed());
}

#[test]
fn a_refused_connection_is_unreachable() {
    let port = closed_port();
    let url = format!("https://127.0.0.1:{port}/");
    let Outcome::Error(variant, message) = read(&url, "db-password", None, &[]) else {
        panic!("read a secret from a closed port");
    };
    assert_eq!(variant, "VaultUnreachable", "{message}");
    assert!(message.contains("Connection refused"), "{message}");
    assert_clean(&message);
}

#[test]
fn a_challenge_for_another_domain_gets_no_token() {
    // A host outside vault.azure.net that answers with Key Vault's challenge: the SDK's check refuses
    // to send it a token.
    let fake = fake();
    fake.tunnel_host("myvault.vault.example.com:443");
    let Outcome::Error(variant, message) = read(
        "https://myvault.vault.example.com/",
        "db-password",
        None,
        &fake.env(BASE_PATH),
    ) else {
        panic!("a token went to a host outside the challenge's domain");
    };
    assert_eq!(variant, "KeyVault", "{message}");
    assert_eq!(
        message,
        "reading secret \"db-password\" from Key Vault https://myvault.vault.example.com/ failed: the vault's \
         authentication challenge is not for its own domain, so no token was sent: challenge resource \
         'https://vault.azure.net/.default' doesn't match the requested domain 'myvault.vault.example.com'"
    );
    assert_clean(&message);
    assert!(fake.az_calls().is_empty(), "no token was even asked for");
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[test]
fn a_secret_name_that_would_change_the_path_is_refused() {
    let fake = fake();
    let outcome = read_default(&fake, "../keys/k");
    assert_eq!(
        outcome,
        Outcome::Error(
            "KeyVault",
            "reading secret \"../keys/k\" from Key Vault https://myvault.vault.azure.net/ failed: invalid secret name: \
             use 1 to 127 letters, digits and hyphens"
                .into()
        )
    );
    assert!(fake.requests().is_empty());
}

/// The real binary, with the fake's environment, reading the password of `db list`; the database
/// itself is a closed port, so the command fails after the password was read.
fn run_db_list(fake: &FakeKeyVault, secret: &str) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let port = closed_port();
    Command::new(env!("CARGO_BIN_EXE_kubectl-backstage"))
        .args([
            "db",
            "list",
            "--db-host",
            "127.0.0.1",
            "--db-port",
            &port.to_string(),
        ])
        .args([
            "--db-user",
            "backstage",
            "--vault",
            "myvault",
            "--secret",
            secret,
            "-v",
        ])
        .env_clear()
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .envs(fake.env(BASE_PATH))
        .output()
        .unwrap()
}

#[test]
fn the_binary_reads_the_password_from_the_vault() {
    let fake = fake();
    let out = run_db_list(&fake, "db-password");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains(SECRET_VALUE) && !stdout.contains(SECRET_VALUE),
        "{stderr}"
    );
    assert_eq!(vault_statuses(&fake), vec![401, 200], "{stderr}");
    assert_eq!(fake.az_calls(), vec![AZ_ARGS.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the database is a closed port: {stderr}"
    );
    assert!(
        stderr.contains(r#"reading a Key Vault secret credential="Azure CLI""#),
        "{stderr}"
    );
}

#[test]
fn the_binary_reports_a_forbidden_secret_in_one_line() {
    let fake = fake();
    let out = run_db_list(&fake, "locked");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        vec![
            "error: Key Vault https://myvault.vault.azure.net/ refused access to secret \"locked\" (403): give the \
             signed-in identity `get` permission on secrets"
        ],
        "{stderr}"
    );
}
