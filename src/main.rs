//! The `kubectl-backstage` binary: everything lives in the library; this only hands over the exit code.

fn main() -> std::process::ExitCode {
    kubectl_backstage::main_entry()
}
