//! The libpq password file (`~/.pgpass`, `PGPASSFILE`): `host:port:database:user:password` lines, `*`
//! matching anything, `\:` and `\\` escaped, first match wins. Like libpq, a file readable by group or
//! others is ignored.

use std::path::Path;

use super::Password;

pub fn lookup(path: &Path, host: &str, port: u16, database: &str, user: &str) -> Option<Password> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "password file has group or world access; ignoring it (chmod 0600)");
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = |field: &str, value: &str| field == "*" || field == value;
            (matches(&fields[0], host)
                && matches(&fields[1], &port)
                && matches(&fields[2], database)
                && matches(&fields[3], user))
            .then(|| Password::new(fields[4..].join(":")))
        })
}

fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_line_with_wildcards_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "# comment\nother:5432:*:pgadmin:nope\ndb.example:*:backstage_plugin_auth:pgadmin:auth\\:pw\ndb.example:5432:*:pgadmin:general\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let get = |db: &str| {
            lookup(&path, "db.example", 5432, db, "pgadmin").map(|p| p.expose().to_string())
        };
        assert_eq!(get("backstage_plugin_auth").as_deref(), Some("auth:pw"));
        assert_eq!(get("backstage_plugin_catalog").as_deref(), Some("general"));
        assert_eq!(lookup(&path, "db.example", 5432, "x", "someone"), None);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert_eq!(get("x"), None, "a world-readable file is ignored");
    }
}
