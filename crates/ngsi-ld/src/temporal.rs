//! Temporal representation helpers (spec 4.5.7-4.5.9, 6.18-6.19): temporal instances, `timerel`
//! filtering, `lastN`, the normalized temporal representation, the simplified `temporalValues`
//! representation and `aggregatedValues` with the standard aggregation methods over
//! `aggrPeriodDuration` buckets.
//!
//! A temporal entity is an [`Entity`] whose attribute lists hold the *history* (one [`Attribute`] per
//! instance, each with `instance_id` and its timestamps) rather than the current multi-attribute
//! instances, so parsing and rendering reuse the ordinary code.
//!
//! Choices where the spec leaves room (the temporal store must agree): `before` is `t < timeAt`,
//! `after` is `t >= timeAt`, `between` is `timeAt <= t < endTimeAt`; `lastN` keeps the N latest
//! instances, returned oldest first; `stddev` is the sample standard deviation (n - 1, as SQL
//! `stddev`), 0 for one value; booleans count as 0/1 in `sum`/`avg`/`stddev`/`sumsq`; `min`/`max` also
//! order strings (ISO date-times order correctly as strings); empty buckets are not reported.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::error::{NgsiError, Result};
use crate::model::{Attribute, AttributeKind, AttributeValue, Entity, Timestamp};
use crate::render::{Format, RenderOptions, render_instance};
use crate::time::{IsoDuration, format_datetime, parse_datetime_field};

/// Which timestamp of an instance `timerel` applies to (`timeproperty`, default `observedAt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeProperty {
    /// `observedAt` (the default).
    #[default]
    ObservedAt,
    /// `createdAt`.
    CreatedAt,
    /// `modifiedAt`.
    ModifiedAt,
    /// `deletedAt`.
    DeletedAt,
}

impl TimeProperty {
    /// Parse a `timeproperty` value.
    pub fn parse(s: &str) -> Result<TimeProperty> {
        Ok(match s {
            "observedAt" => TimeProperty::ObservedAt,
            "createdAt" => TimeProperty::CreatedAt,
            "modifiedAt" => TimeProperty::ModifiedAt,
            "deletedAt" => TimeProperty::DeletedAt,
            other => {
                return Err(NgsiError::bad_data(format!(
                    "unknown timeproperty `{other}`"
                )));
            }
        })
    }

    /// The member name.
    pub fn name(self) -> &'static str {
        match self {
            TimeProperty::ObservedAt => "observedAt",
            TimeProperty::CreatedAt => "createdAt",
            TimeProperty::ModifiedAt => "modifiedAt",
            TimeProperty::DeletedAt => "deletedAt",
        }
    }

    /// This timestamp of `attr`.
    pub fn of(self, attr: &Attribute) -> Option<Timestamp> {
        match self {
            TimeProperty::ObservedAt => attr.observed_at,
            TimeProperty::CreatedAt => attr.created_at,
            TimeProperty::ModifiedAt => attr.modified_at,
            TimeProperty::DeletedAt => attr.deleted_at,
        }
    }
}

/// A `timerel` restriction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRel {
    /// `t < timeAt`.
    Before(Timestamp),
    /// `t >= timeAt`.
    After(Timestamp),
    /// `timeAt <= t < endTimeAt`.
    Between(Timestamp, Timestamp),
}

impl TimeRel {
    /// Parse `timerel` with `timeAt` and `endTimeAt` (required for `between`, and then after `timeAt`).
    pub fn parse(
        timerel: &str,
        time_at: Option<&str>,
        end_time_at: Option<&str>,
    ) -> Result<TimeRel> {
        let time_at = time_at.ok_or_else(|| NgsiError::bad_data("timerel needs timeAt"))?;
        let t = parse_datetime_field("timeAt", time_at)?;
        match timerel {
            "before" => Ok(TimeRel::Before(t)),
            "after" => Ok(TimeRel::After(t)),
            "between" => {
                let end = end_time_at
                    .ok_or_else(|| NgsiError::bad_data("timerel between needs endTimeAt"))?;
                let end = parse_datetime_field("endTimeAt", end)?;
                if end <= t {
                    return Err(NgsiError::bad_data("endTimeAt must be after timeAt"));
                }
                Ok(TimeRel::Between(t, end))
            }
            other => Err(NgsiError::bad_data(format!("unknown timerel `{other}`"))),
        }
    }

    /// True if `t` satisfies the relation.
    pub fn contains(&self, t: Timestamp) -> bool {
        match *self {
            TimeRel::Before(at) => t < at,
            TimeRel::After(at) => t >= at,
            TimeRel::Between(start, end) => start <= t && t < end,
        }
    }

    /// The (start, end) bounds, each optional.
    pub fn bounds(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        match *self {
            TimeRel::Before(at) => (None, Some(at)),
            TimeRel::After(at) => (Some(at), None),
            TimeRel::Between(s, e) => (Some(s), Some(e)),
        }
    }
}

/// The instance selection of a temporal query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TemporalQuery {
    /// Time restriction.
    pub timerel: Option<TimeRel>,
    /// Timestamp to restrict and order by.
    pub time_property: TimeProperty,
    /// Keep only the N latest instances.
    pub last_n: Option<usize>,
}

impl TemporalQuery {
    /// Parse a `lastN` value (a positive integer).
    pub fn parse_last_n(s: &str) -> Result<usize> {
        s.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| NgsiError::bad_data(format!("lastN `{s}` is not a positive integer")))
    }

    /// Filter `instances` by `timerel`, order them by time (oldest first; instances without the
    /// timestamp are dropped when a restriction or ordering needs it) and apply `lastN`.
    pub fn select<'a>(&self, instances: &'a [Attribute]) -> Vec<&'a Attribute> {
        let mut timed: Vec<(Timestamp, &Attribute)> = instances
            .iter()
            .filter_map(|a| self.time_property.of(a).map(|t| (t, a)))
            .filter(|(t, _)| self.timerel.is_none_or(|r| r.contains(*t)))
            .collect();
        timed.sort_by_key(|(t, _)| *t);
        if let Some(n) = self.last_n {
            let skip = timed.len().saturating_sub(n);
            timed.drain(..skip);
        }
        timed.into_iter().map(|(_, a)| a).collect()
    }
}

/// How to render a temporal entity.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TemporalFormat {
    /// Every instance as a normalized attribute (the default).
    #[default]
    Normalized,
    /// `options=temporalValues`: `{"type", "values": [[value, time], ...]}`.
    TemporalValues,
    /// `options=aggregatedValues` with the methods and bucket length.
    Aggregated {
        /// Methods to compute.
        methods: Vec<AggrMethod>,
        /// Bucket length; `None` (or zero) means one bucket over the whole range.
        period: Option<IsoDuration>,
    },
}

/// Render a temporal entity (attribute lists = history) after applying `query` to each attribute.
pub fn render_temporal(
    entity: &Entity,
    query: &TemporalQuery,
    format: &TemporalFormat,
    opts: &RenderOptions,
    ctx: &Context,
) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(entity.id.clone()));
    let types: Vec<Value> = entity
        .types
        .iter()
        .map(|t| Value::String(ctx.compact_iri(t)))
        .collect();
    out.insert(
        "type".into(),
        if types.len() == 1 {
            types.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(types)
        },
    );
    for (name, instances) in &entity.attributes {
        if opts.attrs.as_ref().is_some_and(|a| !a.contains(name)) {
            continue;
        }
        let selected = query.select(instances);
        if selected.is_empty() {
            continue;
        }
        let rendered = match format {
            TemporalFormat::Normalized => {
                let inst_opts = RenderOptions {
                    format: Format::Normalized,
                    ..opts.clone()
                };
                Value::Array(
                    selected
                        .iter()
                        .map(|a| render_instance(a, &inst_opts, ctx))
                        .collect(),
                )
            }
            TemporalFormat::TemporalValues => temporal_values(&selected, query.time_property, ctx),
            TemporalFormat::Aggregated { methods, period } => {
                let range = query.timerel.map(|r| r.bounds()).unwrap_or((None, None));
                aggregate(&selected, query.time_property, methods, *period, range)
            }
        };
        out.insert(ctx.compact_iri(name), rendered);
    }
    if opts.sys_attrs {
        if let Some(t) = &entity.created_at {
            out.insert("createdAt".into(), Value::String(format_datetime(t)));
        }
        if let Some(t) = &entity.modified_at {
            out.insert("modifiedAt".into(), Value::String(format_datetime(t)));
        }
    }
    if let Some(c) = &opts.context {
        out.insert("@context".into(), c.clone());
    }
    Value::Object(out)
}

/// The simplified temporal representation of one attribute's selected instances:
/// `{"type": kind, "<values member>": [[value, time], ...]}` (1.8 member names per kind).
pub fn temporal_values(
    instances: &[&Attribute],
    time_property: TimeProperty,
    ctx: &Context,
) -> Value {
    let kind = instances
        .first()
        .map(|a| a.kind())
        .unwrap_or(AttributeKind::Property);
    let pairs: Vec<Value> = instances
        .iter()
        .map(|a| {
            // JSON, vocabulary and language values keep their member name (as the 1.8 suite
            // expects): `[{"json": ...}, t]`, `[{"vocab": ...}, t]`, `[{"languageMap": ...}, t]`.
            let v = match &a.value {
                AttributeValue::Property(v) | AttributeValue::GeoProperty(v) => v.clone(),
                AttributeValue::JsonProperty(v) => json!({ "json": v }),
                AttributeValue::Relationship(o) => match o.as_slice() {
                    [one] => Value::String(one.clone()),
                    many => Value::Array(many.iter().cloned().map(Value::String).collect()),
                },
                AttributeValue::LanguageProperty(m) => json!({
                    "languageMap": Value::Object(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                }),
                AttributeValue::VocabProperty(v) => {
                    let items: Vec<Value> = v
                        .iter()
                        .map(|i| Value::String(ctx.compact_iri(i)))
                        .collect();
                    let one = if items.len() == 1 {
                        items.into_iter().next().unwrap_or(Value::Null)
                    } else {
                        Value::Array(items)
                    };
                    json!({ "vocab": one })
                }
                AttributeValue::ListProperty(items) => Value::Array(items.clone()),
                AttributeValue::ListRelationship(ids) => {
                    Value::Array(ids.iter().cloned().map(Value::String).collect())
                }
            };
            let t = time_property
                .of(a)
                .map(|t| Value::String(format_datetime(&t)))
                .unwrap_or(Value::Null);
            json!([v, t])
        })
        .collect();
    let mut out = Map::new();
    out.insert("type".into(), Value::String(kind.name().into()));
    out.insert(kind.temporal_values_member().into(), Value::Array(pairs));
    Value::Object(out)
}

/// The standard aggregation methods (`aggrMethods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggrMethod {
    /// Number of instances.
    TotalCount,
    /// Number of distinct values.
    DistinctCount,
    /// Sum of numeric values.
    Sum,
    /// Mean of numeric values.
    Avg,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Sample standard deviation.
    StdDev,
    /// Sum of squares.
    SumSq,
}

impl AggrMethod {
    /// Every method.
    pub const ALL: [AggrMethod; 8] = [
        AggrMethod::TotalCount,
        AggrMethod::DistinctCount,
        AggrMethod::Sum,
        AggrMethod::Avg,
        AggrMethod::Min,
        AggrMethod::Max,
        AggrMethod::StdDev,
        AggrMethod::SumSq,
    ];

    /// The member name (`totalCount`, ...).
    pub fn name(self) -> &'static str {
        match self {
            AggrMethod::TotalCount => "totalCount",
            AggrMethod::DistinctCount => "distinctCount",
            AggrMethod::Sum => "sum",
            AggrMethod::Avg => "avg",
            AggrMethod::Min => "min",
            AggrMethod::Max => "max",
            AggrMethod::StdDev => "stddev",
            AggrMethod::SumSq => "sumsq",
        }
    }

    /// Parse a comma-separated `aggrMethods` value.
    pub fn parse_list(s: &str) -> Result<Vec<AggrMethod>> {
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim) {
            let m = AggrMethod::ALL
                .into_iter()
                .find(|m| m.name() == name)
                .ok_or_else(|| NgsiError::bad_data(format!("unknown aggrMethod `{name}`")))?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
        Ok(out)
    }
}

fn numeric(v: &Value) -> Option<f64> {
    match v.get("@value").unwrap_or(v) {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn plain_value(a: &Attribute) -> Value {
    crate::query::q::attribute_value(a)
}

/// Compute `methods` over `instances` (already selected and ordered by `time_property`) in buckets of
/// `period` starting at the range start (or the first instance), returning
/// `{"type": kind, "<method>": [[value, startAt, endAt], ...], ...}`.
pub fn aggregate(
    instances: &[&Attribute],
    time_property: TimeProperty,
    methods: &[AggrMethod],
    period: Option<IsoDuration>,
    range: (Option<Timestamp>, Option<Timestamp>),
) -> Value {
    let kind = instances
        .first()
        .map(|a| a.kind())
        .unwrap_or(AttributeKind::Property);
    let timed: Vec<(Timestamp, &Attribute)> = instances
        .iter()
        .filter_map(|a| time_property.of(a).map(|t| (t, *a)))
        .collect();
    let mut out = Map::new();
    out.insert("type".into(), Value::String(kind.name().into()));
    let mut per_method: Vec<Vec<Value>> = vec![Vec::new(); methods.len()];
    if let (Some(first), Some(last)) = (
        timed.first().map(|(t, _)| *t),
        timed.last().map(|(t, _)| *t),
    ) {
        let start = range.0.unwrap_or(first);
        let end = range.1.unwrap_or(last);
        let buckets: Vec<(Timestamp, Timestamp)> = match period.filter(|p| !p.is_zero()) {
            None => vec![(start, end)],
            Some(p) => {
                let mut b = Vec::new();
                let mut s = start;
                while s <= last && b.len() < 100_000 {
                    let Some(e) = p.add_to(s).filter(|e| *e > s) else {
                        break;
                    };
                    b.push((s, e));
                    s = e;
                }
                b
            }
        };
        let single = buckets.len() == 1;
        for (b_start, b_end) in buckets {
            let values: Vec<Value> = timed
                .iter()
                .filter(|(t, _)| *t >= b_start && (*t < b_end || (single && *t <= b_end)))
                .map(|(_, a)| plain_value(a))
                .collect();
            if values.is_empty() {
                continue;
            }
            let (s, e) = (
                Value::String(format_datetime(&b_start)),
                Value::String(format_datetime(&b_end)),
            );
            for (i, m) in methods.iter().enumerate() {
                if let (Some(v), Some(slot)) = (compute(*m, &values), per_method.get_mut(i)) {
                    slot.push(json!([v, s, e]));
                }
            }
        }
    }
    for (m, rows) in methods.iter().zip(per_method) {
        out.insert(m.name().into(), Value::Array(rows));
    }
    Value::Object(out)
}

fn compute(method: AggrMethod, values: &[Value]) -> Option<Value> {
    let nums: Vec<f64> = values.iter().filter_map(numeric).collect();
    let n = nums.len() as f64;
    Some(match method {
        AggrMethod::TotalCount => json!(values.len()),
        AggrMethod::DistinctCount => {
            let distinct: HashSet<String> = values.iter().map(Value::to_string).collect();
            json!(distinct.len())
        }
        AggrMethod::Sum => json!(nums.iter().sum::<f64>()),
        AggrMethod::SumSq => json!(nums.iter().map(|x| x * x).sum::<f64>()),
        AggrMethod::Avg => {
            if nums.is_empty() {
                return None;
            }
            json!(nums.iter().sum::<f64>() / n)
        }
        AggrMethod::StdDev => {
            if nums.is_empty() {
                return None;
            }
            if nums.len() == 1 {
                return Some(json!(0.0));
            }
            let mean = nums.iter().sum::<f64>() / n;
            let var = nums.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            json!(var.sqrt())
        }
        AggrMethod::Min | AggrMethod::Max => {
            let want_max = method == AggrMethod::Max;
            if !nums.is_empty() {
                let pick = nums
                    .iter()
                    .copied()
                    .fold(None, |acc: Option<f64>, x| match acc {
                        None => Some(x),
                        Some(a) => Some(if want_max { a.max(x) } else { a.min(x) }),
                    });
                json!(pick)
            } else {
                let strings: Vec<&str> = values
                    .iter()
                    .filter_map(|v| v.get("@value").unwrap_or(v).as_str())
                    .collect();
                let pick = if want_max {
                    strings.iter().max()
                } else {
                    strings.iter().min()
                };
                json!(pick?)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::CoreContext;
    use crate::time::parse_datetime;

    fn t(s: &str) -> Timestamp {
        parse_datetime(s).expect("valid test time")
    }

    fn history() -> Vec<Attribute> {
        [
            ("2024-01-01T00:00:00Z", 1.0),
            ("2024-01-01T12:00:00Z", 3.0),
            ("2024-01-02T00:00:00Z", 5.0),
            ("2024-01-03T06:00:00Z", 5.0),
        ]
        .iter()
        .enumerate()
        .map(|(i, (time, v))| {
            let mut a = Attribute::property(json!(v)).with_observed_at(t(time));
            a.set_instance_id(Some(format!("urn:ngsi-ld:instance:{i}")));
            a
        })
        .collect()
    }

    #[test]
    fn timerel_and_last_n() {
        let h = history();
        let q = TemporalQuery {
            timerel: Some(
                TimeRel::parse("after", Some("2024-01-01T12:00:00Z"), None).expect("valid"),
            ),
            ..Default::default()
        };
        assert_eq!(q.select(&h).len(), 3);
        let q = TemporalQuery {
            timerel: Some(
                TimeRel::parse("before", Some("2024-01-01T12:00:00Z"), None).expect("valid"),
            ),
            ..Default::default()
        };
        assert_eq!(q.select(&h).len(), 1);
        let q = TemporalQuery {
            timerel: Some(
                TimeRel::parse(
                    "between",
                    Some("2024-01-01T00:00:00Z"),
                    Some("2024-01-02T00:00:00Z"),
                )
                .expect("valid"),
            ),
            ..Default::default()
        };
        assert_eq!(q.select(&h).len(), 2);
        let q = TemporalQuery {
            last_n: Some(2),
            ..Default::default()
        };
        let sel = q.select(&h);
        assert_eq!(
            sel.iter()
                .map(|a| a.instance_id().unwrap_or_default().to_owned())
                .collect::<Vec<_>>(),
            ["urn:ngsi-ld:instance:2", "urn:ngsi-ld:instance:3"]
        );
        assert!(
            TimeRel::parse(
                "between",
                Some("2024-01-02T00:00:00Z"),
                Some("2024-01-01T00:00:00Z")
            )
            .is_err()
        );
        assert!(TimeRel::parse("during", Some("2024-01-02T00:00:00Z"), None).is_err());
        assert!(TimeRel::parse("after", None, None).is_err());
        assert!(TemporalQuery::parse_last_n("0").is_err());
    }

    #[test]
    fn temporal_values_pairs() {
        let h = history();
        let sel: Vec<&Attribute> = h.iter().collect();
        let v = temporal_values(
            &sel,
            TimeProperty::ObservedAt,
            &Context::core(CoreContext::V1_9),
        );
        assert_eq!(v["type"], "Property");
        assert_eq!(v["values"][0], json!([1.0, "2024-01-01T00:00:00Z"]));
        assert_eq!(v["values"].as_array().map(Vec::len), Some(4));
        // JSON and vocabulary values keep their member.
        let j = Attribute::new(AttributeValue::JsonProperty(json!({"a": 1})))
            .with_observed_at(t("2024-01-01T00:00:00Z"));
        let v = temporal_values(
            &[&j],
            TimeProperty::ObservedAt,
            &Context::core(CoreContext::V1_9),
        );
        assert_eq!(v["type"], "JsonProperty");
        assert_eq!(
            v["jsons"][0],
            json!([{"json": {"a": 1}}, "2024-01-01T00:00:00Z"])
        );
    }

    #[test]
    fn aggregation_by_day() {
        let h = history();
        let sel: Vec<&Attribute> = h.iter().collect();
        let methods =
            AggrMethod::parse_list("totalCount,distinctCount,sum,avg,min,max,stddev,sumsq")
                .expect("valid");
        let day = IsoDuration::parse("aggrPeriodDuration", "P1D").expect("valid");
        let v = aggregate(
            &sel,
            TimeProperty::ObservedAt,
            &methods,
            Some(day),
            (None, None),
        );
        // Day 1 holds 1 and 3; day 2 holds 5; day 3 holds 5.
        assert_eq!(
            v["totalCount"],
            json!([
                [2, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],
                [1, "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"],
                [1, "2024-01-03T00:00:00Z", "2024-01-04T00:00:00Z"]
            ])
        );
        assert_eq!(v["sum"][0][0], 4.0);
        assert_eq!(v["avg"][0][0], 2.0);
        assert_eq!(v["min"][0][0], 1.0);
        assert_eq!(v["max"][0][0], 3.0);
        assert_eq!(v["sumsq"][0][0], 10.0);
        assert_eq!(v["stddev"][0][0], std::f64::consts::SQRT_2);
        assert_eq!(v["stddev"][1][0], 0.0);
        let whole = aggregate(
            &sel,
            TimeProperty::ObservedAt,
            &[AggrMethod::DistinctCount, AggrMethod::TotalCount],
            None,
            (None, None),
        );
        assert_eq!(whole["distinctCount"][0][0], 3);
        assert_eq!(whole["totalCount"][0][0], 4);
        assert!(AggrMethod::parse_list("median").is_err());
    }

    #[test]
    fn temporal_entity_rendering() {
        let ctx = Context::core(CoreContext::V1_9);
        let mut e = Entity::new("urn:x", "https://uri.etsi.org/ngsi-ld/default-context/T");
        e.attributes.insert(
            "https://uri.etsi.org/ngsi-ld/default-context/speed".into(),
            history(),
        );
        let v = render_temporal(
            &e,
            &TemporalQuery {
                last_n: Some(1),
                ..Default::default()
            },
            &TemporalFormat::Normalized,
            &RenderOptions::default(),
            &ctx,
        );
        assert_eq!(
            v["speed"],
            json!([{"type": "Property", "value": 5.0, "observedAt": "2024-01-03T06:00:00Z", "instanceId": "urn:ngsi-ld:instance:3"}])
        );
        let v = render_temporal(
            &e,
            &TemporalQuery::default(),
            &TemporalFormat::TemporalValues,
            &RenderOptions::default(),
            &ctx,
        );
        assert_eq!(v["speed"]["values"].as_array().map(Vec::len), Some(4));
    }
}
