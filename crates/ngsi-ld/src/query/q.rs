//! The NGSI-LD query language `q` (spec 4.9): parser, public AST and evaluator.
//!
//! Grammar (AND binds tighter than OR):
//!
//! ```text
//! Query      = Factor *( (";" / "|") Factor )
//! Factor     = "(" Query ")" / Term
//! Term       = "!" Path / Path [ Op Values ] / Path ("~=" / "!~=") Regex
//! Path       = Name *( "." Name ) *( "[" Name "]" )
//! Op         = "==" / "!=" / ">=" / ">" / "<=" / "<"
//! Values     = Value ".." Value / Value *( "," Value )
//! Value      = quoted string / number / true / false / DateTime / bare token (URI, date, time)
//! ```
//!
//! Semantics chosen where the spec is loose (documented so the SQL backend matches):
//! - A path's first name is an attribute (expanded with the request's context), or one of the entity
//!   system attributes `createdAt`/`modifiedAt`/`deletedAt`; further `.` names are sub-attributes (or the
//!   reserved `observedAt`, `createdAt`, `modifiedAt`, `unitCode`, `datasetId`), falling back to a member
//!   of a JSON object value; `[m]` selects member `m` of the value.
//! - Multi-attributes: the term matches if any instance matches. Array values: `==`, ranges, `>` etc.
//!   match if any element matches; `!=` matches if the target exists and no element equals.
//! - A missing target never matches a comparison (only `!path` matches it).
//! - Comparison: numbers numerically; strings lexicographically, except that when both sides parse as
//!   DateTimes they compare as instants; booleans by equality. Mixed kinds never match.
//! - Relationship targets compare on the object URI; LanguageProperty on every language's text;
//!   VocabProperty on the vocab term, matching either the literal or its expansion.

use regex::Regex;
use serde_json::Value;

use super::expr::{BoolExpr, Cursor, SyntaxError, parse_bool_expr};
use crate::context::Context;
use crate::model::{Attribute, AttributeValue, Entity, Timestamp};
use crate::time::{format_datetime, parse_datetime};

/// Largest compiled regex accepted (bytes of the compiled program), to bound memory per query.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A parsed `q` expression.
pub type QExpr = BoolExpr<QTerm>;

/// A path to a value inside an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    /// The name as written (for messages and SQL column naming).
    pub written: String,
    /// Expanded attribute name, or `createdAt`/`modifiedAt`/`deletedAt` for entity system attributes.
    pub attribute: String,
    /// Sub-attribute steps: expanded names, or the reserved `observedAt`, `createdAt`, `modifiedAt`,
    /// `unitCode`, `datasetId` (kept short). Each step also keeps its compact spelling for the
    /// value-member fallback.
    pub sub_attributes: Vec<PathStep>,
    /// `[member]` steps into the (JSON) value.
    pub members: Vec<String>,
}

/// One `.` step of a path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStep {
    /// Expanded name, or a reserved member name.
    pub expanded: String,
    /// As written.
    pub compact: String,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// A literal in a `q` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A JSON number.
    Number(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A quoted string or bare token; `expanded` is its vocabulary expansion (for VocabProperty).
    Text {
        /// The text.
        text: String,
        /// `ctx.expand_term(text)` if it differs from `text`.
        expanded: Option<String>,
        /// The text parsed as a DateTime, if it is one.
        datetime: Option<Timestamp>,
    },
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum QValue {
    /// One value.
    Single(Literal),
    /// `a,b,c`: equal to any (for `==`) / to none (for `!=`).
    List(Vec<Literal>),
    /// `a..b`: inclusive range.
    Range(Literal, Literal),
}

/// One term of a `q` expression.
#[derive(Debug, Clone)]
pub enum QTerm {
    /// `path`: the target exists.
    Exists(AttrPath),
    /// `!path`: the target does not exist.
    NotExists(AttrPath),
    /// `path op value`.
    Compare {
        /// Target.
        path: AttrPath,
        /// Operator.
        op: CompareOp,
        /// Value(s).
        value: QValue,
    },
    /// `path~=regex` (or `!~=` when `negated`).
    Pattern {
        /// Target.
        path: AttrPath,
        /// The compiled pattern (its source is `regex.as_str()`).
        regex: Regex,
        /// `!~=`.
        negated: bool,
    },
}

impl PartialEq for QTerm {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (QTerm::Exists(a), QTerm::Exists(b)) | (QTerm::NotExists(a), QTerm::NotExists(b)) => {
                a == b
            }
            (
                QTerm::Compare {
                    path: p1,
                    op: o1,
                    value: v1,
                },
                QTerm::Compare {
                    path: p2,
                    op: o2,
                    value: v2,
                },
            ) => p1 == p2 && o1 == o2 && v1 == v2,
            (
                QTerm::Pattern {
                    path: p1,
                    regex: r1,
                    negated: n1,
                },
                QTerm::Pattern {
                    path: p2,
                    regex: r2,
                    negated: n2,
                },
            ) => p1 == p2 && r1.as_str() == r2.as_str() && n1 == n2,
            _ => false,
        }
    }
}

/// Reserved sub-attribute names in paths.
const RESERVED_STEPS: &[&str] = &[
    "observedAt",
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "unitCode",
    "datasetId",
];
const ENTITY_SYSTEM: &[&str] = &["createdAt", "modifiedAt", "deletedAt"];

/// Parse `q` against `ctx` (which expands attribute names and vocab literals).
pub fn parse_q(text: &str, ctx: &Context) -> Result<QExpr, SyntaxError> {
    parse_bool_expr(text, false, &mut |c: &mut Cursor<'_>| parse_term(c, ctx))
}

fn is_name_char(c: char) -> bool {
    !c.is_whitespace()
        && !c.is_control()
        && !matches!(
            c,
            '=' | '!'
                | '<'
                | '>'
                | '~'
                | ';'
                | '|'
                | '('
                | ')'
                | '['
                | ']'
                | '.'
                | ','
                | '"'
                | '\''
        )
}

fn parse_name<'a>(c: &mut Cursor<'a>, what: &str) -> Result<&'a str, SyntaxError> {
    let name = c.take_while(is_name_char);
    if name.is_empty() {
        return Err(c.error(format!("expected {what}")));
    }
    Ok(name)
}

fn parse_path(c: &mut Cursor<'_>, ctx: &Context) -> Result<AttrPath, SyntaxError> {
    let start = c.pos();
    let first = parse_name(c, "an attribute name")?;
    let attribute = if ENTITY_SYSTEM.contains(&first) {
        first.to_owned()
    } else {
        ctx.expand_term(first).ok_or_else(|| SyntaxError {
            position: start,
            message: format!("`{first}` is mapped to null by the @context"),
        })?
    };
    let mut sub_attributes = Vec::new();
    while c.starts_with(".") && !c.starts_with("..") {
        c.bump();
        let name = parse_name(c, "a sub-attribute name")?;
        let expanded = if RESERVED_STEPS.contains(&name) {
            name.to_owned()
        } else {
            ctx.expand_term(name).unwrap_or_else(|| name.to_owned())
        };
        sub_attributes.push(PathStep {
            expanded,
            compact: name.to_owned(),
        });
    }
    let mut members = Vec::new();
    while c.eat("[") {
        let member = parse_name(c, "a member name")?;
        members.push(member.to_owned());
        if !c.eat("]") {
            return Err(c.error("expected `]`"));
        }
    }
    let written = c.since(start).to_owned();
    Ok(AttrPath {
        written,
        attribute,
        sub_attributes,
        members,
    })
}

fn parse_op(c: &mut Cursor<'_>) -> Option<Op> {
    // Longest operators first.
    for (text, op) in [
        ("!~=", Op::NotMatch),
        ("~=", Op::Match),
        ("==", Op::Cmp(CompareOp::Eq)),
        ("!=", Op::Cmp(CompareOp::Ne)),
        (">=", Op::Cmp(CompareOp::Ge)),
        ("<=", Op::Cmp(CompareOp::Le)),
        (">", Op::Cmp(CompareOp::Gt)),
        ("<", Op::Cmp(CompareOp::Lt)),
    ] {
        if c.eat(text) {
            return Some(op);
        }
    }
    None
}

enum Op {
    Cmp(CompareOp),
    Match,
    NotMatch,
}

fn parse_term(c: &mut Cursor<'_>, ctx: &Context) -> Result<QTerm, SyntaxError> {
    if c.starts_with("!") && !c.starts_with("!=") && !c.starts_with("!~=") {
        c.bump();
        return Ok(QTerm::NotExists(parse_path(c, ctx)?));
    }
    let path = parse_path(c, ctx)?;
    if c.at_end() || matches!(c.peek(), Some(';' | '|' | ')')) {
        return Ok(QTerm::Exists(path));
    }
    let op_pos = c.pos();
    let Some(op) = parse_op(c) else {
        return Err(c.error("expected an operator (==, !=, >, >=, <, <=, ~=, !~=)"));
    };
    match op {
        Op::Cmp(op) => {
            let value = parse_values(c, ctx)?;
            if matches!(value, QValue::List(_)) && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(SyntaxError {
                    position: op_pos,
                    message: "a value list needs == or !=".into(),
                });
            }
            if matches!(value, QValue::Range(..)) && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(SyntaxError {
                    position: op_pos,
                    message: "a range needs == or !=".into(),
                });
            }
            Ok(QTerm::Compare { path, op, value })
        }
        Op::Match | Op::NotMatch => {
            let pattern_pos = c.pos();
            let pattern = parse_regex_text(c)?;
            let regex = regex::RegexBuilder::new(&pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| SyntaxError {
                    position: pattern_pos,
                    message: format!("invalid regular expression: {e}"),
                })?;
            Ok(QTerm::Pattern {
                path,
                regex,
                negated: matches!(op, Op::NotMatch),
            })
        }
    }
}

/// A regex runs to the next `;`, `|` or unbalanced `)` outside its own parentheses and brackets, or is
/// a quoted string.
fn parse_regex_text(c: &mut Cursor<'_>) -> Result<String, SyntaxError> {
    if c.peek() == Some('"') {
        return parse_quoted(c);
    }
    let mut depth = 0usize;
    let mut in_class = false;
    let mut escaped = false;
    let text = c.take_while(|ch| {
        if escaped {
            escaped = false;
            return true;
        }
        match ch {
            '\\' => escaped = true,
            '[' => in_class = true,
            ']' => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            ';' | '|' if depth == 0 && !in_class => return false,
            _ => {}
        }
        true
    });
    if text.is_empty() {
        return Err(c.error("expected a regular expression"));
    }
    Ok(text.to_owned())
}

fn parse_quoted(c: &mut Cursor<'_>) -> Result<String, SyntaxError> {
    let start = c.pos();
    c.bump();
    let mut out = String::new();
    loop {
        match c.bump() {
            None => {
                return Err(SyntaxError {
                    position: start,
                    message: "unterminated string".into(),
                });
            }
            Some('"') => return Ok(out),
            Some('\\') => match c.bump() {
                Some(ch) => out.push(ch),
                None => {
                    return Err(SyntaxError {
                        position: start,
                        message: "unterminated string".into(),
                    });
                }
            },
            Some(ch) => out.push(ch),
        }
    }
}

fn parse_values(c: &mut Cursor<'_>, ctx: &Context) -> Result<QValue, SyntaxError> {
    let first = parse_literal(c, ctx)?;
    if c.eat("..") {
        let second = parse_literal(c, ctx)?;
        return Ok(QValue::Range(first, second));
    }
    if c.peek() != Some(',') {
        return Ok(QValue::Single(first));
    }
    let mut items = vec![first];
    while c.eat(",") {
        items.push(parse_literal(c, ctx)?);
    }
    Ok(QValue::List(items))
}

fn parse_literal(c: &mut Cursor<'_>, ctx: &Context) -> Result<Literal, SyntaxError> {
    if c.peek() == Some('"') {
        let text = parse_quoted(c)?;
        return Ok(text_literal(text, ctx));
    }
    let start = c.pos();
    if matches!(c.peek(), Some('=' | '<' | '>' | '!' | '~' | '(')) {
        return Err(c.error("expected a value"));
    }
    let mut token = String::new();
    while let Some(ch) = c.peek() {
        if matches!(ch, ';' | '|' | ')' | ',') || c.starts_with("..") || ch.is_whitespace() {
            break;
        }
        token.push(ch);
        c.bump();
    }
    if token.is_empty() {
        return Err(SyntaxError {
            position: start,
            message: "expected a value".into(),
        });
    }
    Ok(match token.as_str() {
        "true" => Literal::Bool(true),
        "false" => Literal::Bool(false),
        _ => match token.parse::<f64>() {
            Ok(n) if n.is_finite() && looks_numeric(&token) => Literal::Number(n),
            _ => text_literal(token, ctx),
        },
    })
}

fn looks_numeric(token: &str) -> bool {
    token
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
}

fn text_literal(text: String, ctx: &Context) -> Literal {
    let datetime = parse_datetime(&text);
    let expanded = ctx.expand_term(&text).filter(|e| *e != text);
    Literal::Text {
        text,
        expanded,
        datetime,
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// Evaluate `expr` on `entity`.
pub fn matches(expr: &QExpr, entity: &Entity) -> bool {
    expr.eval(&mut |term: &QTerm| term_matches(term, entity))
}

fn term_matches(term: &QTerm, entity: &Entity) -> bool {
    match term {
        QTerm::Exists(path) => !targets(path, entity).is_empty(),
        QTerm::NotExists(path) => targets(path, entity).is_empty(),
        QTerm::Compare { path, op, value } => {
            let found = targets(path, entity);
            if found.is_empty() {
                return false;
            }
            let candidates: Vec<&Value> = found.iter().flat_map(|v| flatten(v)).collect();
            match op {
                CompareOp::Ne => !candidates.iter().any(|t| value_matches(t, value)),
                CompareOp::Eq => candidates.iter().any(|t| value_matches(t, value)),
                ordering => {
                    let QValue::Single(lit) = value else {
                        return false;
                    };
                    candidates.iter().any(|t| match compare(t, lit) {
                        Some(o) => match ordering {
                            CompareOp::Gt => o.is_gt(),
                            CompareOp::Ge => o.is_ge(),
                            CompareOp::Lt => o.is_lt(),
                            CompareOp::Le => o.is_le(),
                            CompareOp::Eq | CompareOp::Ne => false,
                        },
                        None => false,
                    })
                }
            }
        }
        QTerm::Pattern {
            path,
            regex,
            negated,
        } => {
            let found = targets(path, entity);
            if found.is_empty() {
                return false;
            }
            let hit = found
                .iter()
                .flat_map(|v| flatten(v))
                .any(|t| t.as_str().is_some_and(|s| regex.is_match(s)));
            hit != *negated
        }
    }
}

/// Array targets compare element by element; typed literals (`{"@value": x}`) compare on `x`.
fn flatten(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().map(unwrap_typed).collect(),
        other => vec![unwrap_typed(other)],
    }
}

fn unwrap_typed(v: &Value) -> &Value {
    v.get("@value").unwrap_or(v)
}

fn value_matches(target: &Value, value: &QValue) -> bool {
    match value {
        QValue::Single(lit) => compare(target, lit).is_some_and(|o| o.is_eq()),
        QValue::List(items) => items
            .iter()
            .any(|lit| compare(target, lit).is_some_and(|o| o.is_eq())),
        QValue::Range(lo, hi) => {
            compare(target, lo).is_some_and(|o| o.is_ge())
                && compare(target, hi).is_some_and(|o| o.is_le())
        }
    }
}

/// Compare a target value with a literal (`target.cmp(literal)`), `None` if incomparable.
pub fn compare(target: &Value, lit: &Literal) -> Option<std::cmp::Ordering> {
    match (target, lit) {
        (Value::Number(n), Literal::Number(l)) => n.as_f64()?.partial_cmp(l),
        (Value::Bool(b), Literal::Bool(l)) => Some(b.cmp(l)),
        (
            Value::String(s),
            Literal::Text {
                text,
                expanded,
                datetime,
            },
        ) => {
            if let (Some(lt), Some(st)) = (datetime, parse_datetime(s)) {
                return Some(st.cmp(lt));
            }
            if expanded.as_deref() == Some(s.as_str()) {
                return Some(std::cmp::Ordering::Equal);
            }
            Some(s.as_str().cmp(text.as_str()))
        }
        (Value::String(s), Literal::Number(l)) => s.parse::<f64>().ok()?.partial_cmp(l),
        _ => None,
    }
}

/// The values `path` designates in `entity` (one per matching attribute instance).
pub fn targets(path: &AttrPath, entity: &Entity) -> Vec<Value> {
    if path.sub_attributes.is_empty() && path.members.is_empty() {
        let t = match path.attribute.as_str() {
            "createdAt" => Some(entity.created_at),
            "modifiedAt" => Some(entity.modified_at),
            "deletedAt" => Some(entity.deleted_at),
            _ => None,
        };
        if let Some(t) = t {
            return t
                .iter()
                .map(|t| Value::String(format_datetime(t)))
                .collect();
        }
    }
    let Some(instances) = entity.attribute(&path.attribute) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for instance in instances {
        if let Some(v) = resolve_in_attribute(instance, &path.sub_attributes, &path.members) {
            out.push(v);
        }
    }
    out
}

fn resolve_in_attribute(attr: &Attribute, steps: &[PathStep], members: &[String]) -> Option<Value> {
    let Some((step, rest)) = steps.split_first() else {
        let mut v = attribute_value(attr);
        for m in members {
            v = member(&v, m)?;
        }
        return Some(v);
    };
    let reserved = match step.expanded.as_str() {
        "observedAt" => Some(
            attr.observed_at
                .as_ref()
                .map(|t| Value::String(format_datetime(t))),
        ),
        "createdAt" => Some(
            attr.created_at
                .as_ref()
                .map(|t| Value::String(format_datetime(t))),
        ),
        "modifiedAt" => Some(
            attr.modified_at
                .as_ref()
                .map(|t| Value::String(format_datetime(t))),
        ),
        "deletedAt" => Some(
            attr.deleted_at
                .as_ref()
                .map(|t| Value::String(format_datetime(t))),
        ),
        "unitCode" => Some(attr.unit_code().map(|u| Value::String(u.to_owned()))),
        "datasetId" => Some(attr.dataset_id.clone().map(Value::String)),
        _ => None,
    };
    if let Some(v) = reserved {
        return if rest.is_empty() && members.is_empty() {
            v
        } else {
            None
        };
    }
    if let Some(sub) = attr.sub_attributes.get(&step.expanded) {
        return resolve_in_attribute(sub, rest, members);
    }
    // Fallback: a dotted step into a JSON object value.
    let mut v = member(&attribute_value(attr), &step.compact)?;
    for s in rest {
        v = member(&v, &s.compact)?;
    }
    for m in members {
        v = member(&v, m)?;
    }
    Some(v)
}

fn member(v: &Value, name: &str) -> Option<Value> {
    match unwrap_typed(v) {
        Value::Object(m) => m.get(name).cloned(),
        Value::Array(items) => {
            let found: Vec<Value> = items.iter().filter_map(|i| i.get(name).cloned()).collect();
            if found.is_empty() {
                None
            } else {
                Some(Value::Array(found))
            }
        }
        _ => None,
    }
}

/// The comparable value of an attribute instance.
pub fn attribute_value(attr: &Attribute) -> Value {
    attribute_value_shared(attr).into_owned()
}

/// [`attribute_value`], borrowed from the attribute where it holds it as it is (a Property's,
/// GeoProperty's or JsonProperty's value): the broker's index reads every written attribute
/// this way, and copying a geometry to look at it was a twentieth of indexing an entity.
pub fn attribute_value_shared(attr: &Attribute) -> std::borrow::Cow<'_, Value> {
    use std::borrow::Cow;
    Cow::Owned(match &attr.value {
        AttributeValue::Property(v)
        | AttributeValue::GeoProperty(v)
        | AttributeValue::JsonProperty(v) => return Cow::Borrowed(v),
        AttributeValue::Relationship(o) => match o.as_slice() {
            [one] => Value::String(one.clone()),
            many => Value::Array(many.iter().cloned().map(Value::String).collect()),
        },
        AttributeValue::LanguageProperty(m) => {
            if m.len() == 1 {
                m.values().next().cloned().unwrap_or(Value::Null)
            } else {
                Value::Array(
                    m.values()
                        .flat_map(|v| flatten(v).into_iter().cloned())
                        .collect(),
                )
            }
        }
        AttributeValue::VocabProperty(v) => {
            if let [only] = v.as_slice() {
                Value::String(only.clone())
            } else {
                Value::Array(v.iter().cloned().map(Value::String).collect())
            }
        }
        AttributeValue::ListProperty(items) => Value::Array(items.clone()),
        AttributeValue::ListRelationship(ids) => {
            Value::Array(ids.iter().cloned().map(Value::String).collect())
        }
    })
}
