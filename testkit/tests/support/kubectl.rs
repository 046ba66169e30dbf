//! The real kubectl against a fake API server, with a HOME and kubeconfig of its own: shared by
//! the testkit tests that drive the fake with kubectl (`#[path = "support/kubectl.rs"] mod kubectl;`).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use backstage_testkit::FakeApiServer;

pub struct Kubectl {
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn for_server(server: &FakeApiServer) -> Kubectl {
        let home = tempfile::tempdir().expect("temp HOME");
        let kubeconfig = home.path().join("kubeconfig.yaml");
        server
            .write_kubeconfig(&kubeconfig, "fake", Some("backstage"), "t")
            .expect("kubeconfig written");
        Kubectl { home, kubeconfig }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let bin = std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("kubectl"))
                    .find(|p| p.is_file())
            })
            .expect("kubectl is not on PATH: this test runs the real kubectl; run scripts/setup-machine.sh");
        Command::new(bin)
            .args(args)
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("kubectl runs")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// stderr of a command that must fail with exit code 1.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}
