//! Text that comes from the cluster is escaped before it reaches a terminal.

/// Replaces control characters (newlines, escapes, …) with visible escapes so that cluster-supplied text
/// cannot move the cursor or hide a line.
pub fn escape_control(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The tag of an image reference (`repo/name:tag@sha256:…` → `tag`), or the digest when there is no tag.
pub fn image_tag(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) => tag,
        None if image.contains('@') => image.rsplit('@').next().unwrap_or(image),
        None => "latest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(escape_control("plain text"), "plain text");
        assert_eq!(escape_control("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(escape_control("red\u{1b}[31m"), "red\\u{1b}[31m");
    }

    #[test]
    fn image_tags() {
        assert_eq!(
            image_tag("hmctspublic.azurecr.io/backstage/backstage:prod-1a2b3c4"),
            "prod-1a2b3c4"
        );
        assert_eq!(image_tag("localhost:5000/backstage"), "latest");
        assert_eq!(image_tag("postgres:16@sha256:abc"), "16");
        assert_eq!(image_tag("postgres@sha256:abc"), "sha256:abc");
    }
}
