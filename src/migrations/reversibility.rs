//! Whether migrations can be undone: each file is loaded with Node's `require`, as Knex's migrator
//! loads it for `migrate:down`, where the source's files are (a local folder, a pod over exec, or the
//! preflight pod of an `image:REF`), and its `down` is classified: a function with a body that does
//! something, an empty one (`async function down() {}`, or only comments), one that only throws, or
//! none. One `node -e` run checks every file; the paths go in on stdin.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::runner::{RunnerError, run_node};
use super::source::SourcePlace;
use crate::knex::packages::MigrationTableSource;
use crate::knex::plan::DownState;
use crate::kube::Cluster;

/// The script: reads `{"files": [absolute paths]}` on stdin, prints `[{"file", "down"}]`.
/// Comments are stripped and whitespace collapsed before the function's text is matched against
/// the empty forms (a function, method or arrow function with `{}` as body, or an arrow function
/// returning `undefined`, `null`, `void 0` or `Promise.resolve()`).
const CHECK_SCRIPT: &str = r#"
const fs = require('fs');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const strip = (s) => s.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:\\])\/\/[^\n]*/g, '$1').replace(/\s+/g, ' ').trim();
const emptyForms = [
  /^(async )?(function ?\*? ?[\w$]* ?)?([\w$]+ ?)?\([^()]*\) ?(=> ?)?\{ ?\}$/,
  /^(async )?[\w$]+ ?=> ?\{ ?\}$/,
  /^(async )?(\([^()]*\)|[\w$]+) ?=> ?(undefined|null|void 0|Promise\.resolve\(\))$/,
];
const out = [];
for (const file of input.files) {
  let down;
  try {
    const m = require(file);
    down = m && (typeof m.down === 'function' ? m.down : (m.default && m.default.down));
  } catch (e) { out.push({ file, down: 'unloadable' }); continue; }
  if (typeof down !== 'function') { out.push({ file, down: 'missing' }); continue; }
  const text = strip(Function.prototype.toString.call(down));
  if (emptyForms.some((r) => r.test(text))) out.push({ file, down: 'empty' });
  else if (/^[^{]*\{ ?throw [^;{}]*;? ?\}$/.test(text)) out.push({ file, down: 'throws' });
  else out.push({ file, down: 'present' });
}
process.stdout.write(JSON.stringify(out));
"#;

/// Each checked file's `down`, by its absolute path (`directory/file`).
pub type DownChecks = BTreeMap<String, DownState>;

#[derive(Debug, thiserror::Error)]
pub enum ReversibilityError {
    #[error(transparent)]
    Runner(#[from] RunnerError),
    #[error("checking the migrations' down() with node failed: {message}")]
    Script { message: String },
}

#[derive(Deserialize)]
struct Checked {
    file: String,
    down: DownState,
}

/// The path a check is keyed by.
pub fn path_of(directory: &str, file: &str) -> String {
    format!("{}/{file}", directory.trim_end_matches('/'))
}

/// Every migration file of `tables`, as paths to check.
pub fn all_files(tables: &[MigrationTableSource]) -> Vec<String> {
    tables
        .iter()
        .flat_map(|t| t.files.iter().map(|f| path_of(&t.directory, f)))
        .collect()
}

/// Loads each file with Node where the files are and says what its `down` is. `cluster` is needed
/// for a pod.
pub async fn check_downs(
    place: &SourcePlace,
    cluster: Option<&Cluster>,
    files: &[String],
) -> Result<DownChecks, ReversibilityError> {
    if files.is_empty() {
        return Ok(DownChecks::new());
    }
    let stdin = serde_json::json!({ "files": files })
        .to_string()
        .into_bytes();
    let output = run_node(place, cluster, CHECK_SCRIPT, stdin, None).await?;
    if output.exit_code != Some(0) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Err(ReversibilityError::Script {
            message: format!(
                "node exited {}: {first}",
                output.exit_code.map_or("?".into(), |c| c.to_string())
            ),
        });
    }
    let checked: Vec<Checked> =
        serde_json::from_slice(&output.stdout).map_err(|e| ReversibilityError::Script {
            message: format!("unexpected output: {e}"),
        })?;
    Ok(checked.into_iter().map(|c| (c.file, c.down)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script itself, run by the local node on files of every form.
    #[tokio::test]
    async fn the_script_tells_empty_missing_throwing_and_real_downs_apart() {
        let dir = tempfile::tempdir().unwrap();
        let forms = [
            (
                "1_empty.js",
                "exports.up = async function up(knex) { await knex.schema.createTable('a', () => {}); };\nexports.down = async function down() {};\n",
                "empty",
            ),
            (
                "2_comments.js",
                "exports.up = async () => {};\nexports.down = async function down(knex) {\n  // nothing to undo\n  /* really */\n};\n",
                "empty",
            ),
            (
                "3_arrow.js",
                "exports.up = async () => {};\nexports.down = async (knex) => {};\n",
                "empty",
            ),
            (
                "4_method.js",
                "module.exports = { async up() {}, async down(_knex) { } };\n",
                "empty",
            ),
            ("5_missing.js", "exports.up = async () => {};\n", "missing"),
            (
                "6_real.js",
                "exports.up = async () => {};\nexports.down = async function down(knex) {\n  await knex.schema.dropTable('a'); // gone\n};\n",
                "present",
            ),
            (
                "7_throws.js",
                "exports.up = async () => {};\nexports.down = async function down() { throw new Error('irreversible'); };\n",
                "throws",
            ),
            ("8_broken.js", "exports.up = async () => {;\n", "unloadable"),
            (
                "9_expression.js",
                "exports.up = async () => {};\nexports.down = (knex) => knex.schema.dropTable('a');\n",
                "present",
            ),
            (
                "10_resolve.js",
                "exports.up = async () => {};\nexports.down = () => Promise.resolve();\n",
                "empty",
            ),
        ];
        let mut files = Vec::new();
        for (name, text, _) in forms {
            std::fs::write(dir.path().join(name), text).unwrap();
            files.push(path_of(&dir.path().display().to_string(), name));
        }
        let place = SourcePlace::Local {
            cwd: dir.path().to_path_buf(),
        };
        let checks = check_downs(&place, None, &files)
            .await
            .expect("node runs the check script (is node installed?)");
        let got: Vec<(String, String)> = forms
            .iter()
            .zip(&files)
            .map(|((name, _, _), path)| {
                let down = serde_json::to_value(checks[path]).unwrap();
                (name.to_string(), down.as_str().unwrap().to_string())
            })
            .collect();
        let want: Vec<(String, String)> = forms
            .iter()
            .map(|(name, _, down)| (name.to_string(), down.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
