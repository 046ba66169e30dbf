//! Messages on stderr: the one place errors and notes are printed. Every message may carry text from
//! the cluster, a database, a file or the command line, so it is escaped here before it reaches a
//! terminal — an admission webhook's message cannot move the cursor or write the clipboard.

use std::io::IsTerminal;

use crate::model::text::escape_control;

/// A note on stderr (`note: …`): something the user should know, not an error.
pub fn note(message: &str) {
    eprintln!("note: {}", escape_control(message));
}

/// `-v` diagnostics go to stderr through `tracing`; without `-v` libraries stay quiet.
pub fn init_logging(verbose: u8) {
    let filter = match verbose {
        // Errors reach the user as one line from `main_entry`; libraries stay quiet unless asked.
        0 => "off",
        1 => "kubectl_backstage=info",
        2 => "kubectl_backstage=debug,kube=debug",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// A warning on stderr (`warning: …`): the command goes on.
pub fn warning(message: &str) {
    eprintln!("warning: {}", escape_control(message));
}

/// An `error:` line for a command that still ends with a report and an outcome of its own (a change
/// that stopped part-way, a wait that timed out).
pub fn error(message: &str) {
    eprint!("{}", error_lines(message));
}

/// A progress line on a terminal's stderr, redrawn in place.
pub fn progress(message: &str) {
    eprint!("\r\x1b[2K{}", escape_control(message));
}

/// Clears the progress line.
pub fn clear_progress() {
    eprint!("\r\x1b[2K");
}

/// A question on stderr, answered on stdin (`[y/N]`).
pub fn question(question: &str) {
    eprint!("{} [y/N] ", escape_control(question));
}

/// The lines printed for an error that ended the program: `error: …`, one line.
pub fn error_lines(message: &str) -> String {
    format!("error: {}\n", escape_control(message))
}

/// clap's multi-line usage error (message, tip, usage block, "for more information") as one `error:`
/// line and at most one `hint:` line: the tip, else the accepted values, else where the help is.
pub fn usage_error_lines(rendered: &str) -> String {
    let lines: Vec<&str> = rendered.lines().map(str::trim).collect();
    let first = lines
        .first()
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .unwrap_or("bad usage");
    // "the following required arguments were not provided:" is followed by the arguments.
    let message = if first.ends_with(':') {
        let rest: Vec<&str> = lines[1..]
            .iter()
            .take_while(|l| !l.is_empty())
            .copied()
            .collect();
        format!("{first} {}", rest.join(", "))
    } else {
        first.to_string()
    };
    let tip = lines
        .iter()
        .find_map(|l| l.strip_prefix("tip: "))
        .map(str::to_string);
    let values = lines.iter().find_map(|l| {
        l.strip_prefix("[possible values: ")
            .and_then(|v| v.strip_suffix(']'))
            .map(|v| format!("possible values: {v}"))
    });
    let help = lines
        .iter()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|usage| {
            let command: Vec<&str> = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect();
            format!("see `{} --help`", command.join(" "))
        });
    let mut out = error_lines(&message);
    if let Some(hint) = tip.or(values).or(help) {
        out.push_str(&format!("hint: {}\n", escape_control(&hint)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_blocks_become_one_error_and_one_hint() {
        let rendered = "error: unexpected argument '--forse' found\n\n  tip: a similar argument exists: '--force'\n\nUsage: kubectl backstage db unlock --plugin <ID> --force\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_error_lines(rendered),
            "error: unexpected argument '--forse' found\nhint: a similar argument exists: '--force'\n"
        );
        let rendered = "error: invalid value 'xml' for '--output <OUTPUT>'\n  [possible values: table, wide, json, yaml]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_error_lines(rendered),
            "error: invalid value 'xml' for '--output <OUTPUT>'\nhint: possible values: table, wide, json, yaml\n"
        );
        let rendered = "error: the following required arguments were not provided:\n  --plugin <ID>\n\nUsage: kubectl backstage db psql --plugin <ID> [-- <PSQL-ARGS>...]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_error_lines(rendered),
            "error: the following required arguments were not provided: --plugin <ID>\nhint: see `kubectl backstage db psql --help`\n"
        );
    }

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(
            error_lines("context \"a\u{1b}]52;c;ZXZpbA==\u{7}b\" not found\r"),
            "error: context \"a\\u{1b}]52;c;ZXZpbA==\\u{7}b\" not found\\r\n"
        );
    }
}
