//! Build information for `--version` and `version --client`: the git commit, the build date and the
//! target triple, handed to the crate as `KUBECTL_BACKSTAGE_GIT_COMMIT`, `KUBECTL_BACKSTAGE_BUILD_DATE`
//! and `KUBECTL_BACKSTAGE_TARGET`. No crates: `git` is asked when it is there, the date is computed
//! from seconds since the epoch.
//!
//! - commit: `$KUBECTL_BACKSTAGE_GIT_COMMIT` when set (builds from a source tarball), else
//!   `git rev-parse --short=12 HEAD`, else `unknown`.
//! - date: `$SOURCE_DATE_EPOCH` (reproducible builds) when set, else now; UTC, as an RFC 3339 date.
//! - target: cargo's `TARGET`.
//!
//! The script reruns only when HEAD moves (`.git/HEAD`, the ref it points to, `packed-refs`) or one
//! of those variables changes, not on every build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KUBECTL_BACKSTAGE_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let commit = match std::env::var("KUBECTL_BACKSTAGE_GIT_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_string(),
        _ => {
            watch_git_head();
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());

    println!("cargo:rustc-env=KUBECTL_BACKSTAGE_GIT_COMMIT={commit}");
    println!(
        "cargo:rustc-env=KUBECTL_BACKSTAGE_BUILD_DATE={}",
        date(seconds)
    );
    println!("cargo:rustc-env=KUBECTL_BACKSTAGE_TARGET={target}");
}

/// Runs git in the package's folder; its trimmed output when it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Reruns the script when HEAD moves: HEAD itself (of this worktree), the branch it points to and
/// packed-refs (both in the common git folder). Only existing files are named: cargo reruns every
/// time for a missing one.
fn watch_git_head() {
    let (Some(git_dir), Some(common_dir)) = (
        git(&["rev-parse", "--absolute-git-dir"]),
        git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
    ) else {
        return;
    };
    let mut watched = vec![PathBuf::from(&git_dir).join("HEAD")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(Path::new(&git_dir).join(&branch));
        watched.push(Path::new(&common_dir).join(&branch));
    }
    watched.push(Path::new(&common_dir).join("packed-refs"));
    for path in watched.iter().filter(|p| p.is_file()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// `YYYY-MM-DD` (UTC) of a time in seconds since the epoch (Howard Hinnant's civil-from-days).
fn date(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
