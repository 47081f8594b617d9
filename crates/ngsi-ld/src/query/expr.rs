//! A cursor over query text and the boolean-expression skeleton shared by `q`, `scopeQ` and `type`
//! expressions: `;` is AND, `|` is OR (and, for `type` and `scopeQ`, `,` is OR too), parentheses group,
//! and AND binds tighter than OR.

use crate::error::NgsiError;

/// The deepest parenthesis nesting accepted (guards the recursive-descent parser's stack).
pub const MAX_NESTING: usize = 64;

/// A syntax error with the byte position in the query text where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct SyntaxError {
    /// Byte offset into the query text.
    pub position: usize,
    /// What was expected or found.
    pub message: String,
}

impl SyntaxError {
    /// As an NGSI-LD `BadRequestData` error naming the parameter.
    pub fn into_ngsi(self, parameter: &str) -> NgsiError {
        NgsiError::bad_data(format!("invalid {parameter}: {self}"))
    }
}

/// A boolean combination of atoms. The AST is public so that a SQL backend can translate it.
#[derive(Debug, Clone, PartialEq)]
pub enum BoolExpr<T> {
    /// One atom.
    Atom(T),
    /// All of (`;`).
    And(Vec<BoolExpr<T>>),
    /// Any of (`|`, and `,` where it means OR).
    Or(Vec<BoolExpr<T>>),
}

impl<T> BoolExpr<T> {
    /// Evaluate with `atom` deciding each atom (short-circuiting).
    pub fn eval(&self, atom: &mut impl FnMut(&T) -> bool) -> bool {
        match self {
            BoolExpr::Atom(a) => atom(a),
            BoolExpr::And(items) => items.iter().all(|e| e.eval(atom)),
            BoolExpr::Or(items) => items.iter().any(|e| e.eval(atom)),
        }
    }

    /// Every atom, depth first.
    pub fn atoms(&self) -> Vec<&T> {
        let mut out = Vec::new();
        self.collect_atoms(&mut out);
        out
    }

    fn collect_atoms<'a>(&'a self, out: &mut Vec<&'a T>) {
        match self {
            BoolExpr::Atom(a) => out.push(a),
            BoolExpr::And(items) | BoolExpr::Or(items) => {
                items.iter().for_each(|e| e.collect_atoms(out))
            }
        }
    }
}

/// A byte cursor over query text.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    /// Current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The unread rest.
    pub fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    /// The text from byte offset `start` (an earlier position of this cursor) to the current one.
    pub fn since(&self, start: usize) -> &'a str {
        self.text.get(start..self.pos).unwrap_or_default()
    }

    /// The next character, if any.
    pub fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// True if the rest starts with `s`.
    pub fn starts_with(&self, s: &str) -> bool {
        self.rest().starts_with(s)
    }

    /// Consume `s` if the rest starts with it.
    pub fn eat(&mut self, s: &str) -> bool {
        if self.starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Consume one character.
    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Consume characters while `f` holds; return them.
    pub fn take_while(&mut self, mut f: impl FnMut(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        self.text.get(start..self.pos).unwrap_or_default()
    }

    /// A syntax error at the current position.
    pub fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            position: self.pos,
            message: message.into(),
        }
    }

    /// True at the end of the text.
    pub fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }
}

/// Parse a whole boolean expression: atoms from `atom`, operators `;` / `|` (and `,` as OR if
/// `comma_is_or`), parentheses. The whole text must be consumed.
pub fn parse_bool_expr<T>(
    text: &str,
    comma_is_or: bool,
    atom: &mut impl FnMut(&mut Cursor<'_>) -> Result<T, SyntaxError>,
) -> Result<BoolExpr<T>, SyntaxError> {
    let mut cursor = Cursor::new(text);
    if cursor.at_end() {
        return Err(cursor.error("empty expression"));
    }
    let expr = parse_or(&mut cursor, comma_is_or, atom, 0)?;
    if !cursor.at_end() {
        return Err(cursor.error(format!("unexpected `{}`", cursor.peek().unwrap_or(' '))));
    }
    Ok(expr)
}

fn parse_or<T>(
    c: &mut Cursor<'_>,
    comma_is_or: bool,
    atom: &mut impl FnMut(&mut Cursor<'_>) -> Result<T, SyntaxError>,
    depth: usize,
) -> Result<BoolExpr<T>, SyntaxError> {
    let mut items = vec![parse_and(c, comma_is_or, atom, depth)?];
    while c.eat("|") || (comma_is_or && c.eat(",")) {
        items.push(parse_and(c, comma_is_or, atom, depth)?);
    }
    Ok(if items.len() == 1 {
        items.pop().unwrap_or(BoolExpr::Or(Vec::new()))
    } else {
        BoolExpr::Or(items)
    })
}

fn parse_and<T>(
    c: &mut Cursor<'_>,
    comma_is_or: bool,
    atom: &mut impl FnMut(&mut Cursor<'_>) -> Result<T, SyntaxError>,
    depth: usize,
) -> Result<BoolExpr<T>, SyntaxError> {
    let mut items = vec![parse_factor(c, comma_is_or, atom, depth)?];
    while c.eat(";") {
        items.push(parse_factor(c, comma_is_or, atom, depth)?);
    }
    Ok(if items.len() == 1 {
        items.pop().unwrap_or(BoolExpr::And(Vec::new()))
    } else {
        BoolExpr::And(items)
    })
}

fn parse_factor<T>(
    c: &mut Cursor<'_>,
    comma_is_or: bool,
    atom: &mut impl FnMut(&mut Cursor<'_>) -> Result<T, SyntaxError>,
    depth: usize,
) -> Result<BoolExpr<T>, SyntaxError> {
    if c.eat("(") {
        if depth >= MAX_NESTING {
            return Err(c.error(format!("parentheses nested deeper than {MAX_NESTING}")));
        }
        let inner = parse_or(c, comma_is_or, atom, depth + 1)?;
        if !c.eat(")") {
            return Err(c.error("expected `)`"));
        }
        return Ok(inner);
    }
    if c.at_end() {
        return Err(c.error("unexpected end of expression"));
    }
    Ok(BoolExpr::Atom(atom(c)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Result<BoolExpr<String>, SyntaxError> {
        parse_bool_expr(text, true, &mut |c: &mut Cursor<'_>| {
            let n = c.take_while(|ch| ch.is_ascii_alphanumeric());
            if n.is_empty() {
                Err(c.error("expected a name"))
            } else {
                Ok(n.to_owned())
            }
        })
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let e = names("a;b|c").expect("parses");
        assert_eq!(
            e,
            BoolExpr::Or(vec![
                BoolExpr::And(vec![BoolExpr::Atom("a".into()), BoolExpr::Atom("b".into())]),
                BoolExpr::Atom("c".into())
            ])
        );
        let e = names("a;(b,c)").expect("parses");
        assert!(e.eval(&mut |n: &String| n == "a" || n == "c"));
        assert!(!e.eval(&mut |n: &String| n == "a"));
    }

    #[test]
    fn errors_carry_positions() {
        assert_eq!(names("a;(b").unwrap_err().position, 4);
        assert_eq!(names("a;;b").unwrap_err().position, 2);
        assert_eq!(names("a)b").unwrap_err().position, 1);
        assert_eq!(names("").unwrap_err().position, 0);
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(names(&deep).unwrap_err().message.contains("nested"));
    }
}
