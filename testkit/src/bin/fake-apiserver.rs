//! Runs the fake Kubernetes API server until killed (for benchmarks and demos).

use std::path::PathBuf;
use std::time::Duration;

use backstage_testkit::{FakeApiServer, Fixtures, ServerOptions};
use clap::Parser;

/// A fake Kubernetes API server with Backstage fixtures, for kubectl and kubectl-backstage.
#[derive(Parser, Debug)]
#[command(name = "fake-apiserver")]
struct Args {
    /// A folder of fixture YAML files, or `incident` for the built-in set.
    #[arg(long, default_value = "incident")]
    fixtures: String,
    /// Add this many healthy generated pods in `backstage`.
    #[arg(long, default_value_t = 0)]
    pods: usize,
    /// Add this many generated events in `backstage`.
    #[arg(long, default_value_t = 0)]
    events: usize,
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Serve https with a generated CA (written into the kubeconfig).
    #[arg(long)]
    tls: bool,
    /// Require this bearer token (it is also what the kubeconfig carries).
    #[arg(long)]
    token: Option<String>,
    /// Write the kubeconfig here instead of printing it to stderr.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Context name in the kubeconfig.
    #[arg(long, default_value = "fake")]
    context: String,
    /// Namespace of the kubeconfig's context.
    #[arg(long, default_value = "backstage")]
    namespace: String,
    /// Cap every list page at this many items.
    #[arg(long)]
    max_page: Option<usize>,
    /// Serve the Flux kinds (HelmRelease, Kustomization, image automation).
    #[arg(long)]
    flux: bool,
    /// Delay every response by this many milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Answer 403 for VERB:RESOURCE (repeatable), e.g. list:events.
    #[arg(long = "forbid", value_name = "VERB:RESOURCE")]
    forbid: Vec<String>,
    /// Let exec into POD run in the local folder DIR (repeatable), as POD=DIR.
    #[arg(long = "pod-root", value_name = "POD=DIR")]
    pod_root: Vec<String>,
    /// Let port-forwards to PORT of POD lead to the local ADDR (repeatable), as POD:PORT=ADDR,
    /// e.g. backstage-6c9f8d7b54-k4m2x:7007=127.0.0.1:7007.
    #[arg(long = "pod-port", value_name = "POD:PORT=ADDR")]
    pod_port: Vec<String>,
    /// An image the fake registry has (repeatable), as REF=DIR: created pods using it become ready
    /// and exec in them runs in DIR; pods with other images fail to pull.
    #[arg(long = "register-image", value_name = "REF=DIR")]
    register_image: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut fixtures = if args.fixtures == "incident" {
        Fixtures::incident()
    } else {
        Fixtures::load(std::path::Path::new(&args.fixtures))?
    };
    fixtures = fixtures
        .with_generated_pods(args.pods)
        .with_generated_events(args.events);
    for pr in &args.pod_root {
        let (pod, dir) = pr
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--pod-root wants POD=DIR, got {pr:?}"))?;
        fixtures.set_pod_root(pod, std::fs::canonicalize(dir)?);
    }
    for pp in &args.pod_port {
        let parsed = pp.split_once('=').and_then(|(left, addr)| {
            let (pod, port) = left.rsplit_once(':')?;
            Some((pod, port.parse::<u16>().ok()?, addr.parse().ok()?))
        });
        let (pod, port, addr) =
            parsed.ok_or_else(|| anyhow::anyhow!("--pod-port wants POD:PORT=ADDR, got {pp:?}"))?;
        fixtures.set_pod_port(pod, port, addr);
    }
    let mut forbidden = Vec::new();
    for f in &args.forbid {
        let (verb, resource) = f
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--forbid wants VERB:RESOURCE, got {f:?}"))?;
        forbidden.push((verb.to_string(), resource.to_string()));
    }
    let server = FakeApiServer::start(ServerOptions {
        tls: args.tls,
        fixtures,
        port: args.port,
        token: args.token.clone(),
        forbidden,
        latency: args.latency_ms.map(Duration::from_millis),
        max_page: args.max_page,
        flux: args.flux,
        ..Default::default()
    })?;
    for ri in &args.register_image {
        // The directory is after the last '=' (references have no '=').
        let (reference, dir) = ri
            .rsplit_once('=')
            .ok_or_else(|| anyhow::anyhow!("--register-image wants REF=DIR, got {ri:?}"))?;
        server.register_image(reference, std::fs::canonicalize(dir)?);
    }
    let token = args.token.as_deref().unwrap_or("fake-token");
    let kubeconfig = server.kubeconfig_yaml(&args.context, Some(&args.namespace), token);
    match &args.kubeconfig_out {
        Some(path) => std::fs::write(path, kubeconfig)?,
        None => eprint!("{kubeconfig}"),
    }
    println!("listening on {}", server.url());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
