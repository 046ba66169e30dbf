//! JSON that is safe on a terminal: serde_json leaves the C1 control characters (U+0080–U+009F)
//! raw, and some terminals act on them (U+009B is CSI), so they are written as `\u009b` escapes.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

/// Pretty JSON with C1 controls escaped, ending in a newline.
pub fn to_pretty_string<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, C1Escaping::default());
    value.serialize(&mut serializer).expect("reports serialize");
    out.push(b'\n');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// serde_json's pretty formatter, with string fragments scanned for C1 controls.
#[derive(Default)]
struct C1Escaping(PrettyFormatter<'static>);

fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

impl Formatter for C1Escaping {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(is_c1) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().expect("found a char there");
            write!(writer, "\\u{:04x}", c as u32)?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c1_controls_are_escaped_and_the_rest_is_serde_json() {
        let value = serde_json::json!({"message": "a\u{9b}31mb\u{1b}[0m é\u{85}", "n": [1, 2]});
        let text = to_pretty_string(&value);
        assert_eq!(
            text,
            "{\n  \"message\": \"a\\u009b31mb\\u001b[0m é\\u0085\",\n  \"n\": [\n    1,\n    2\n  ]\n}\n"
        );
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        let plain = serde_json::json!({"a": ["x", {"b": null}], "c": {}});
        assert_eq!(
            to_pretty_string(&plain),
            format!("{}\n", serde_json::to_string_pretty(&plain).unwrap())
        );
    }
}

#[cfg(test)]
mod yaml_tests {
    #[test]
    fn yaml_escapes_controls_itself() {
        let value = serde_json::json!({"message": "a\u{9b}31mb\u{1b}[0m\r"});
        let text = crate::render::yaml(&value);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
    }
}
