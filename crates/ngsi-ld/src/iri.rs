//! Small IRI and name checks shared by the context processor, the entity parser and the query parsers.
//!
//! NGSI-LD only needs to know whether a string is an absolute IRI (`scheme:rest`, RFC 3987 section 2.2
//! scheme syntax, no whitespace or characters that are never allowed in an IRI); it never resolves
//! relative references, because NGSI-LD documents have no base IRI.

use std::sync::LazyLock;

/// Characters that RFC 3987 never allows unescaped in an IRI.
fn is_forbidden_iri_char(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
}

/// The scheme of `s` if it starts with `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`.
pub fn scheme(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let scheme = s.get(..colon)?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        Some(scheme)
    } else {
        None
    }
}

/// True if `s` is an absolute IRI: a scheme, a colon, and no forbidden characters.
pub fn is_absolute_iri(s: &str) -> bool {
    scheme(s).is_some() && first_char(s, &FORBIDDEN_IRI_ASCII, is_forbidden_iri_char).is_none()
}

/// The first character of `s` for which `forbidden` holds; `table` is `forbidden` over ASCII.
/// ASCII text (nearly every id and name) is checked a byte at a time against the table: these
/// checks run on every id, name and IRI of every payload, and decoding characters for them was
/// the largest single part of parsing an entity.
fn first_char(s: &str, table: &[bool; 128], forbidden: impl Fn(char) -> bool) -> Option<char> {
    if s.is_ascii() {
        s.bytes().find(|&b| table[usize::from(b)]).map(char::from)
    } else {
        s.chars().find(|&c| forbidden(c))
    }
}

/// `forbidden` over the ASCII characters.
fn ascii_table(forbidden: fn(char) -> bool) -> [bool; 128] {
    std::array::from_fn(|b| forbidden(char::from(b as u8)))
}

static FORBIDDEN_IRI_ASCII: LazyLock<[bool; 128]> =
    LazyLock::new(|| ascii_table(is_forbidden_iri_char));
static FORBIDDEN_NAME_ASCII: LazyLock<[bool; 128]> =
    LazyLock::new(|| ascii_table(is_forbidden_name_char));

/// The first character of `s` that NGSI-LD forbids in names ([`is_forbidden_name_char`]).
pub fn forbidden_name_char(s: &str) -> Option<char> {
    first_char(s, &FORBIDDEN_NAME_ASCII, is_forbidden_name_char)
}

/// True if `s` is a JSON-LD keyword form (`@` followed by ASCII letters only).
pub fn looks_like_keyword(s: &str) -> bool {
    s.len() > 1 && s.starts_with('@') && s[1..].chars().all(|c| c.is_ascii_alphabetic())
}

/// The JSON-LD 1.1 keywords.
pub const KEYWORDS: &[&str] = &[
    "@base",
    "@container",
    "@context",
    "@direction",
    "@graph",
    "@id",
    "@import",
    "@included",
    "@index",
    "@json",
    "@language",
    "@list",
    "@nest",
    "@none",
    "@prefix",
    "@propagate",
    "@protected",
    "@reverse",
    "@set",
    "@type",
    "@value",
    "@version",
    "@vocab",
];

/// True if `s` is one of the JSON-LD keywords.
pub fn is_keyword(s: &str) -> bool {
    s.starts_with('@') && KEYWORDS.contains(&s)
}

/// True if `c` is an RFC 3986 gen-delim, which makes a simple term usable as a prefix.
pub fn is_gen_delim(c: char) -> bool {
    matches!(c, ':' | '/' | '?' | '#' | '[' | ']' | '@')
}

/// Characters the NGSI-LD spec (4.6.2, 4.6.3) forbids in entity type and attribute names, because they
/// break the query language or HTML/URL embedding.
pub fn is_forbidden_name_char(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '<' | '>' | '"' | '\'' | '=' | ';' | '(' | ')')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_iris() {
        assert!(is_absolute_iri("urn:ngsi-ld:Vehicle:A1"));
        assert!(is_absolute_iri("https://example.org/a#b"));
        assert!(is_absolute_iri("x:"));
        assert!(!is_absolute_iri("Vehicle"));
        assert!(!is_absolute_iri("1abc:def"));
        assert!(!is_absolute_iri("urn:ngsi ld"));
        assert!(!is_absolute_iri(":abc"));
        assert!(!is_absolute_iri("urn:<a>"));
    }

    #[test]
    fn the_ascii_check_finds_what_the_character_check_finds() {
        let samples = [
            "urn:a b",
            "urn:a\tb",
            "urn:a\u{7f}",
            "urn:<a>",
            "urn:a\"b",
            "urn:a{b}",
            "urn:a|b",
            "urn:a\\b",
            "urn:a^b",
            "urn:a`b",
            "urn:ok",
            "urn:ünï",
            "urn:ünï b",
            "urn:\u{a0}",
            "urn:\u{2028}x",
            "name=1",
            "na;me",
            "n'a",
            "(x)",
            "plain",
        ];
        for s in samples {
            assert_eq!(
                first_char(s, &FORBIDDEN_IRI_ASCII, is_forbidden_iri_char).is_some(),
                s.chars().any(is_forbidden_iri_char),
                "{s:?}"
            );
            assert_eq!(
                forbidden_name_char(s).is_some(),
                s.chars().any(is_forbidden_name_char),
                "{s:?}"
            );
        }
        assert!(
            !is_absolute_iri("urn:\u{a0}x"),
            "a non-ASCII space is whitespace"
        );
        assert!(is_absolute_iri("urn:ünï"));
    }

    #[test]
    fn keyword_forms() {
        assert!(looks_like_keyword("@foo"));
        assert!(!looks_like_keyword("@"));
        assert!(!looks_like_keyword("@foo1"));
        assert!(is_keyword("@vocab"));
        assert!(!is_keyword("@foo"));
    }
}
