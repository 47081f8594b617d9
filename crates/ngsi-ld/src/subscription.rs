//! NGSI-LD subscriptions (clause 5.2.12, 5.8): parsing and validation, rendering, `PATCH` merging,
//! matching of entity changes (`entities`, `watchedAttributes`, `notificationTrigger`, `q`, `geoQ`,
//! `scopeQ`) and building a notification's entity data (formats, `attributes`, `sysAttrs`,
//! `showChanges`, deleted attributes and entities as `urn:ngsi-ld:null`).
//!
//! Time is an input everywhere (`now`), so expiry and throttling decisions are deterministic; the
//! broker's notifier owns the clock, the sockets and the delivery counters.

use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::error::{NgsiError, Result};
use crate::geospatial::GeoQuery;
use crate::linked::{JoinMode, JoinSpec, Joined};
use crate::model::{Attribute, AttributeValue, Entity, Timestamp};
use crate::parse::{NGSI_LD_NULL, validate_entity_id};
use crate::query::{
    QExpr, ScopeExpr, ScopePattern, TypeExpr, compile_regex, parse_scope_q, parse_type_expr,
};
use crate::render::{Format, LangFilter, RenderOptions, parse_name_list, render, render_attribute};
use crate::time::{format_datetime, parse_datetime};

/// What kind of change a subscription is told about (`notificationTrigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// An entity was created.
    EntityCreated,
    /// An entity changed.
    EntityUpdated,
    /// An entity was deleted.
    EntityDeleted,
    /// An attribute was added.
    AttributeCreated,
    /// An attribute was changed (written, even with the same value).
    AttributeUpdated,
    /// An attribute was removed.
    AttributeDeleted,
}

impl Trigger {
    /// Every trigger.
    pub const ALL: [Trigger; 6] = [
        Trigger::EntityCreated,
        Trigger::EntityUpdated,
        Trigger::EntityDeleted,
        Trigger::AttributeCreated,
        Trigger::AttributeUpdated,
        Trigger::AttributeDeleted,
    ];

    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::EntityCreated => "entityCreated",
            Trigger::EntityUpdated => "entityUpdated",
            Trigger::EntityDeleted => "entityDeleted",
            Trigger::AttributeCreated => "attributeCreated",
            Trigger::AttributeUpdated => "attributeUpdated",
            Trigger::AttributeDeleted => "attributeDeleted",
        }
    }

    /// Parses a spec name.
    pub fn parse(name: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One entry of `entities` (subscriptions) or `information[].entities` (registrations).
#[derive(Debug, Clone)]
pub struct EntitySelector {
    /// `id`.
    pub id: Option<String>,
    /// `idPattern`, as given.
    pub id_pattern: Option<String>,
    pub(crate) id_regex: Option<regex::Regex>,
    /// `type`, as given.
    pub type_text: String,
    /// `type`, expanded.
    pub types: TypeExpr,
}

impl EntitySelector {
    /// True if `e` is selected.
    pub fn matches(&self, e: &Entity) -> bool {
        if let Some(id) = &self.id
            && *id != e.id
        {
            return false;
        }
        if let Some(r) = &self.id_regex
            && !r.is_match(&e.id)
        {
            return false;
        }
        self.types.eval(&mut |t: &String| e.has_type(t))
    }
}

/// `notification.endpoint`.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `uri`: `http(s)://...` or `mqtt(s)://host:port/topic`.
    pub uri: String,
    /// `accept`: `application/json` (default), `application/ld+json` or `application/geo+json`.
    pub accept: Option<String>,
    /// `receiverInfo`: headers (HTTP) or metadata (MQTT) sent with each notification.
    pub receiver_info: Vec<(String, String)>,
    /// `notifierInfo`: settings of the notifier (e.g. `MQTT-QoS`).
    pub notifier_info: Vec<(String, String)>,
}

/// `notification`.
#[derive(Debug, Clone)]
pub struct NotificationParams {
    /// `attributes` (expanded names); `None` means all.
    pub attributes: Option<Vec<String>>,
    /// `format`.
    pub format: Format,
    /// Whether `format` was given (it is rendered back only then).
    pub format_given: bool,
    /// `sysAttrs`.
    pub sys_attrs: bool,
    /// `showChanges`.
    pub show_changes: bool,
    /// `pick` (expanded).
    pub pick: Option<Vec<String>>,
    /// `omit` (expanded).
    pub omit: Option<Vec<String>>,
    /// `endpoint`.
    pub endpoint: Endpoint,
    /// `join` and `joinLevel` (1.8+): linked entities sent with the notified entity.
    pub join: Option<JoinSpec>,
}

/// A parsed subscription with expanded names.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// `id`.
    pub id: String,
    /// `subscriptionName`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `entities`.
    pub entities: Vec<EntitySelector>,
    /// `watchedAttributes` (expanded).
    pub watched_attributes: Option<Vec<String>>,
    /// `notificationTrigger` (default: attributeCreated, attributeUpdated).
    pub triggers: Vec<Trigger>,
    /// Whether `notificationTrigger` was given.
    pub triggers_given: bool,
    /// `timeInterval` in seconds (periodic subscriptions).
    pub time_interval: Option<f64>,
    /// `q` as given.
    pub q_text: Option<String>,
    /// `q`, parsed.
    pub q: Option<QExpr>,
    /// `geoQ` as given.
    pub geo_q_json: Option<Value>,
    /// `geoQ`, parsed.
    pub geo_q: Option<GeoQuery>,
    /// `scopeQ` as given.
    pub scope_q_text: Option<String>,
    /// `scopeQ`, parsed.
    pub scope_q: Option<ScopeExpr>,
    /// `lang`.
    pub lang: Option<String>,
    /// `isActive`.
    pub is_active: bool,
    /// Whether `isActive` was given (it is rendered back only then, or when false).
    pub is_active_given: bool,
    /// `expiresAt`.
    pub expires_at: Option<Timestamp>,
    /// `throttling` in seconds.
    pub throttling: Option<f64>,
    /// `jsonldContext`: the context notifications are compacted with, if not the subscription's.
    pub jsonld_context: Option<String>,
    /// `notification`.
    pub notification: NotificationParams,
    /// `datasetId`: only these instances are notified (`None` in the list: the default instance).
    pub dataset_ids: Option<Vec<Option<String>>>,
}

/// A subscription's state as shown in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Notifications are sent.
    Active,
    /// `isActive` is false.
    Paused,
    /// `expiresAt` has passed.
    Expired,
}

impl SubscriptionState {
    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            SubscriptionState::Active => "active",
            SubscriptionState::Paused => "paused",
            SubscriptionState::Expired => "expired",
        }
    }
}

/// Members of a subscription this module understands; others are refused.
const KNOWN: &[&str] = &[
    "id",
    "type",
    "@context",
    "subscriptionName",
    "description",
    "entities",
    "watchedAttributes",
    "notificationTrigger",
    "timeInterval",
    "q",
    "geoQ",
    "scopeQ",
    "lang",
    "isActive",
    "expiresAt",
    "throttling",
    "jsonldContext",
    "notification",
    "status",
    "createdAt",
    "modifiedAt",
    // Accepted and ignored: distributed-operation and temporal members.
    "csf",
    "temporalQ",
    "datasetId",
];

/// A `BadRequestData` error (also used by `registration`, which parses the same shapes).
pub(crate) fn bad(detail: impl Into<String>) -> NgsiError {
    NgsiError::bad_data(detail)
}

pub(crate) fn string(v: &Value, what: &str) -> Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad(format!("{what} must be a string")))
}

fn positive(v: &Value, what: &str) -> Result<f64> {
    match v.as_f64() {
        Some(n) if n > 0.0 && n.is_finite() => Ok(n),
        _ => Err(bad(format!("{what} must be a positive number"))),
    }
}

pub(crate) fn name_array(v: &Value, what: &str, ctx: &Context) -> Result<Vec<String>> {
    let items = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad(format!("{what} must be a non-empty array of names")))?;
    let mut out = Vec::new();
    for item in items {
        let name = item
            .as_str()
            .ok_or_else(|| bad(format!("{what} must hold strings")))?;
        let mut expanded = parse_name_list(name, ctx)?;
        if expanded.len() != 1 {
            return Err(bad(format!("{what}: invalid name `{name}`")));
        }
        out.append(&mut expanded);
    }
    Ok(out)
}

fn key_values(v: &Value, what: &str) -> Result<Vec<(String, String)>> {
    let items = v
        .as_array()
        .ok_or_else(|| bad(format!("{what} must be an array of key-value pairs")))?;
    items
        .iter()
        .map(|item| {
            let key = item.get("key").and_then(Value::as_str);
            let value = item.get("value").and_then(Value::as_str);
            match (key, value) {
                (Some(k), Some(v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                _ => Err(bad(format!("{what} entries need string `key` and `value`"))),
            }
        })
        .collect()
}

fn is_uri(s: &str) -> bool {
    crate::iri::is_absolute_iri(s)
}

/// One entry of an entity selector list (`entities` of a subscription, `information[].entities`
/// of a registration); `list` names the list in errors.
pub(crate) fn parse_selector(v: &Value, ctx: &Context, list: &str) -> Result<EntitySelector> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad(format!("each entry of {list} must be an object")))?;
    let id = obj
        .get("id")
        .map(|i| {
            let id = string(i, "entities[].id")?;
            validate_entity_id(&id)?;
            Ok::<_, NgsiError>(id)
        })
        .transpose()?;
    let id_pattern = obj
        .get("idPattern")
        .map(|p| string(p, "entities[].idPattern"))
        .transpose()?;
    let id_regex = id_pattern.as_deref().map(compile_regex).transpose()?;
    let type_text = obj
        .get("type")
        .ok_or_else(|| bad(format!("each entry of {list} needs a type")))
        .and_then(|t| string(t, "entities[].type"))?;
    if type_text.trim().is_empty() {
        return Err(bad("entities[].type must not be empty"));
    }
    let types = parse_type_expr(&type_text, ctx)?;
    Ok(EntitySelector {
        id,
        id_pattern,
        id_regex,
        type_text,
        types,
    })
}

fn parse_endpoint(v: &Value) -> Result<Endpoint> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad("notification.endpoint must be an object"))?;
    let uri = obj
        .get("uri")
        .ok_or_else(|| bad("notification.endpoint.uri is required"))
        .and_then(|u| string(u, "notification.endpoint.uri"))?;
    if !is_uri(&uri) || uri.contains(char::is_whitespace) {
        return Err(bad(format!(
            "notification.endpoint.uri `{uri}` is not a URI"
        )));
    }
    let scheme = uri.split(':').next().unwrap_or("").to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "mqtt" | "mqtts") {
        return Err(bad(format!(
            "notification.endpoint.uri `{uri}`: only http, https, mqtt and mqtts endpoints are supported"
        )));
    }
    let accept = obj
        .get("accept")
        .map(|a| string(a, "notification.endpoint.accept"))
        .transpose()?;
    if let Some(a) = &accept
        && !matches!(
            a.as_str(),
            "application/json" | "application/ld+json" | "application/geo+json"
        )
    {
        return Err(bad(format!(
            "notification.endpoint.accept `{a}` is not supported"
        )));
    }
    let receiver_info = obj
        .get("receiverInfo")
        .map(|r| key_values(r, "receiverInfo"))
        .transpose()?
        .unwrap_or_default();
    let notifier_info = obj
        .get("notifierInfo")
        .map(|r| key_values(r, "notifierInfo"))
        .transpose()?
        .unwrap_or_default();
    Ok(Endpoint {
        uri,
        accept,
        receiver_info,
        notifier_info,
    })
}

fn parse_notification(v: &Value, ctx: &Context) -> Result<NotificationParams> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad("notification must be an object"))?;
    let attributes = obj
        .get("attributes")
        .map(|a| name_array(a, "notification.attributes", ctx))
        .transpose()?;
    let format_text = obj
        .get("format")
        .map(|f| string(f, "notification.format"))
        .transpose()?;
    let format = format_text
        .as_deref()
        .map(Format::parse)
        .transpose()?
        .unwrap_or_default();
    let flag = |k: &str| -> Result<bool> {
        match obj.get(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(format!("notification.{k} must be true or false"))),
        }
    };
    let sys_attrs = flag("sysAttrs")?;
    let show_changes = flag("showChanges")?;
    let list = |k: &str| -> Result<Option<Vec<String>>> {
        obj.get(k)
            .map(|p| match p {
                Value::String(s) => parse_name_list(s, ctx),
                other => name_array(other, &format!("notification.{k}"), ctx),
            })
            .transpose()
    };
    let pick = list("pick")?;
    let omit = list("omit")?;
    if (pick.is_some() || omit.is_some()) && attributes.is_some() {
        return Err(bad(
            "notification.attributes cannot be combined with pick or omit",
        ));
    }
    if let (Some(p), Some(o)) = (&pick, &omit)
        && p.iter().any(|n| o.contains(n))
    {
        return Err(bad("a member cannot be both picked and omitted"));
    }
    let endpoint = parse_endpoint(
        obj.get("endpoint")
            .ok_or_else(|| bad("notification.endpoint is required"))?,
    )?;
    let join = obj
        .get("join")
        .map(|j| string(j, "notification.join"))
        .transpose()?;
    let join_level = match obj.get("joinLevel") {
        None => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(bad("notification.joinLevel must be a number")),
    };
    let join = JoinSpec::from_params(join.as_deref(), join_level.as_deref(), None)?;
    Ok(NotificationParams {
        attributes,
        format,
        format_given: format_text.is_some(),
        sys_attrs,
        show_changes,
        pick,
        omit,
        endpoint,
        join,
    })
}

impl Subscription {
    /// Parses and validates a subscription body (the `@context` already compiled into `ctx`).
    /// A missing `id` is taken from `default_id`. Errors are `BadRequestData` naming the member.
    pub fn parse(v: &Value, ctx: &Context, default_id: &str) -> Result<Subscription> {
        let obj = v
            .as_object()
            .ok_or_else(|| bad("a subscription must be a JSON object"))?;
        if obj.is_empty() {
            return Err(bad("the subscription is empty"));
        }
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(format!("unknown subscription member `{k}`")));
        }
        let id = match obj.get("id") {
            Some(i) => {
                let id = string(i, "id")?;
                if !is_uri(&id) {
                    return Err(bad(format!("subscription id `{id}` is not a URI")));
                }
                id
            }
            None => default_id.to_owned(),
        };
        match obj.get("type").and_then(Value::as_str) {
            Some("Subscription") => {}
            Some(other) => return Err(bad(format!("type must be Subscription, not `{other}`"))),
            None => return Err(bad("type Subscription is required")),
        }
        let opt_string = |k: &str| obj.get(k).map(|s| string(s, k)).transpose();
        let name = opt_string("subscriptionName")?;
        let description = opt_string("description")?;
        let entities = match obj.get("entities") {
            None => Vec::new(),
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|s| parse_selector(s, ctx, "entities"))
                .collect::<Result<_>>()?,
            Some(_) => return Err(bad("entities must be a non-empty array")),
        };
        let watched_attributes = obj
            .get("watchedAttributes")
            .map(|w| name_array(w, "watchedAttributes", ctx))
            .transpose()?;
        let (triggers, triggers_given) = match obj.get("notificationTrigger") {
            None => (
                vec![Trigger::AttributeCreated, Trigger::AttributeUpdated],
                false,
            ),
            Some(Value::Array(a)) if !a.is_empty() => (
                a.iter()
                    .map(|t| {
                        t.as_str()
                            .and_then(Trigger::parse)
                            .ok_or_else(|| bad(format!("notificationTrigger: unknown trigger {t}")))
                    })
                    .collect::<Result<_>>()?,
                true,
            ),
            Some(_) => return Err(bad("notificationTrigger must be a non-empty array")),
        };
        let time_interval = obj
            .get("timeInterval")
            .map(|t| positive(t, "timeInterval"))
            .transpose()?;
        let throttling = obj
            .get("throttling")
            .map(|t| positive(t, "throttling"))
            .transpose()?;
        if time_interval.is_some() && throttling.is_some() {
            return Err(bad("timeInterval and throttling cannot be used together"));
        }
        if time_interval.is_some() && watched_attributes.is_some() {
            return Err(bad(
                "timeInterval and watchedAttributes cannot be used together",
            ));
        }
        if entities.is_empty() && watched_attributes.is_none() {
            return Err(bad("a subscription needs entities or watchedAttributes"));
        }
        let q_text = opt_string("q")?;
        let q = q_text
            .as_deref()
            .map(|q| crate::query::parse_q(&percent_decode(q), ctx).map_err(|e| e.into_ngsi("q")))
            .transpose()?;
        let scope_q_text = opt_string("scopeQ")?;
        let scope_q = scope_q_text.as_deref().map(parse_scope_q).transpose()?;
        let geo_q_json = obj.get("geoQ").cloned();
        let geo_q = geo_q_json
            .as_ref()
            .map(|g| {
                if !g.is_object() {
                    return Err(bad("geoQ must be an object"));
                }
                GeoQuery::from_json(g, |n| ctx.expand_term(n))
            })
            .transpose()?;
        let lang = opt_string("lang")?;
        if let Some(l) = &lang {
            LangFilter::parse(l)?;
        }
        let is_active_given = obj.contains_key("isActive");
        let is_active = match obj.get("isActive") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("isActive must be true or false")),
        };
        let expires_at = opt_string("expiresAt")?
            .map(|t| {
                parse_datetime(&t).ok_or_else(|| bad(format!("expiresAt `{t}` is not a date-time")))
            })
            .transpose()?;
        let jsonld_context = opt_string("jsonldContext")?;
        if let Some(c) = &jsonld_context
            && !is_uri(c)
        {
            return Err(bad(format!("jsonldContext `{c}` is not a URI")));
        }
        let dataset_ids = match obj.get("datasetId") {
            None => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|d| match d.as_str() {
                        Some("@none") => Ok(None),
                        Some(d) if is_uri(d) => Ok(Some(d.to_owned())),
                        _ => Err(bad("datasetId must hold URIs or @none")),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(Value::String(d)) if is_uri(d) => Some(vec![Some(d.clone())]),
            Some(_) => return Err(bad("datasetId must be an array of URIs")),
        };
        let notification = parse_notification(
            obj.get("notification")
                .ok_or_else(|| bad("notification is required"))?,
            ctx,
        )?;
        Ok(Subscription {
            id,
            name,
            description,
            entities,
            watched_attributes,
            triggers,
            triggers_given,
            time_interval,
            q_text,
            q,
            geo_q_json,
            geo_q,
            scope_q_text,
            scope_q,
            lang,
            is_active,
            is_active_given,
            expires_at,
            throttling,
            jsonld_context,
            notification,
            dataset_ids,
        })
    }

    /// The state at `now`.
    pub fn state(&self, now: Timestamp) -> SubscriptionState {
        if self.expires_at.is_some_and(|e| e <= now) {
            SubscriptionState::Expired
        } else if !self.is_active {
            SubscriptionState::Paused
        } else {
            SubscriptionState::Active
        }
    }

    /// Renders the subscription with names compacted against `ctx` (without status counters,
    /// which the caller adds). `status` is written from [`Subscription::state`].
    pub fn render(&self, ctx: &Context, now: Timestamp) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("type".into(), json!("Subscription"));
        if let Some(n) = &self.name {
            out.insert("subscriptionName".into(), json!(n));
        }
        if let Some(d) = &self.description {
            out.insert("description".into(), json!(d));
        }
        if !self.entities.is_empty() {
            let entities: Vec<Value> = self
                .entities
                .iter()
                .map(|s| {
                    let mut m = Map::new();
                    if let Some(id) = &s.id {
                        m.insert("id".into(), json!(id));
                    }
                    if let Some(p) = &s.id_pattern {
                        m.insert("idPattern".into(), json!(p));
                    }
                    let t = match &s.types {
                        crate::query::BoolExpr::Atom(iri) => ctx.compact_iri(iri),
                        _ => s.type_text.clone(),
                    };
                    m.insert("type".into(), json!(t));
                    Value::Object(m)
                })
                .collect();
            out.insert("entities".into(), Value::Array(entities));
        }
        let compact_all = |names: &[String]| -> Value {
            names.iter().map(|n| json!(ctx.compact_iri(n))).collect()
        };
        if let Some(w) = &self.watched_attributes {
            out.insert("watchedAttributes".into(), compact_all(w));
        }
        out.insert(
            "notificationTrigger".into(),
            self.triggers.iter().map(|t| json!(t.name())).collect(),
        );
        if let Some(t) = self.time_interval {
            out.insert("timeInterval".into(), number(t));
        }
        if let Some(q) = &self.q_text {
            out.insert("q".into(), json!(q));
        }
        if let Some(g) = &self.geo_q_json {
            out.insert("geoQ".into(), g.clone());
        }
        if let Some(s) = &self.scope_q_text {
            out.insert("scopeQ".into(), json!(s));
        }
        if let Some(l) = &self.lang {
            out.insert("lang".into(), json!(l));
        }
        if self.is_active_given || !self.is_active {
            out.insert("isActive".into(), json!(self.is_active));
        }
        if let Some(e) = &self.expires_at {
            out.insert("expiresAt".into(), json!(format_datetime(e)));
        }
        if let Some(t) = self.throttling {
            out.insert("throttling".into(), number(t));
        }
        if let Some(c) = &self.jsonld_context {
            out.insert("jsonldContext".into(), json!(c));
        }
        if let Some(d) = &self.dataset_ids {
            out.insert(
                "datasetId".into(),
                d.iter()
                    .map(|d| json!(d.as_deref().unwrap_or("@none")))
                    .collect(),
            );
        }
        let n = &self.notification;
        let mut nm = Map::new();
        if let Some(a) = &n.attributes {
            nm.insert("attributes".into(), compact_all(a));
        }
        if n.format_given {
            let f = match n.format {
                Format::Normalized => "normalized",
                Format::Concise => "concise",
                Format::KeyValues => "keyValues",
            };
            nm.insert("format".into(), json!(f));
        }
        if n.sys_attrs {
            nm.insert("sysAttrs".into(), json!(true));
        }
        if n.show_changes {
            nm.insert("showChanges".into(), json!(true));
        }
        if let Some(p) = &n.pick {
            nm.insert("pick".into(), compact_all(p));
        }
        if let Some(o) = &n.omit {
            nm.insert("omit".into(), compact_all(o));
        }
        if let Some(j) = &n.join {
            let mode = match j.mode {
                JoinMode::Flat => "flat",
                JoinMode::Inline => "inline",
            };
            nm.insert("join".into(), json!(mode));
            nm.insert("joinLevel".into(), json!(j.level));
        }
        let mut em = Map::new();
        em.insert("uri".into(), json!(n.endpoint.uri));
        if let Some(a) = &n.endpoint.accept {
            em.insert("accept".into(), json!(a));
        }
        let kv = |items: &[(String, String)]| -> Value {
            items
                .iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect()
        };
        if !n.endpoint.receiver_info.is_empty() {
            em.insert("receiverInfo".into(), kv(&n.endpoint.receiver_info));
        }
        if !n.endpoint.notifier_info.is_empty() {
            em.insert("notifierInfo".into(), kv(&n.endpoint.notifier_info));
        }
        nm.insert("endpoint".into(), Value::Object(em));
        out.insert("notification".into(), Value::Object(nm));
        out.insert("status".into(), json!(self.state(now).name()));
        out
    }

    /// Applies a `PATCH` fragment (already a JSON object; `null` removes an optional member):
    /// the current subscription is rendered with `ctx`, the fragment's members replace its
    /// members, and the result is validated as a whole. `notification` is merged one level deep.
    pub fn patch(&self, fragment: &Value, ctx: &Context, now: Timestamp) -> Result<Subscription> {
        let frag = fragment
            .as_object()
            .ok_or_else(|| bad("the fragment must be a JSON object"))?;
        if frag.is_empty() {
            return Err(bad("the fragment is empty"));
        }
        if let Some(k) = frag.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(format!("unknown subscription member `{k}`")));
        }
        if let Some(id) = frag.get("id")
            && id.as_str() != Some(self.id.as_str())
        {
            return Err(bad("the fragment's id differs from the subscription's"));
        }
        let mut current = self.render(ctx, now);
        current.remove("status");
        for (k, v) in frag {
            if matches!(
                k.as_str(),
                "@context" | "status" | "createdAt" | "modifiedAt"
            ) {
                continue;
            }
            if v.is_null() {
                if matches!(k.as_str(), "notification" | "type" | "id") {
                    return Err(bad(format!("the mandatory member `{k}` cannot be removed")));
                }
                current.remove(k);
                continue;
            }
            current.insert(k.clone(), v.clone());
        }
        if frag.contains_key("timeInterval") && !frag.contains_key("throttling") {
            // A new interval replaces throttling rather than failing on the old one.
            if frag.get("timeInterval").is_some_and(|v| !v.is_null()) {
                current.remove("throttling");
            }
        }
        Subscription::parse(&Value::Object(current), ctx, &self.id)
    }

    /// True if the subscription wants change notifications at `now` (active, unexpired and not
    /// periodic).
    pub fn wants_changes(&self, now: Timestamp) -> bool {
        self.time_interval.is_none() && self.state(now) == SubscriptionState::Active
    }

    /// True if `e` passes `entities`, `q`, `scopeQ` and `geoQ`.
    pub fn selects(&self, e: &Entity) -> bool {
        if !self.entities.is_empty() && !self.entities.iter().any(|s| s.matches(e)) {
            return false;
        }
        if let Some(q) = &self.q
            && !crate::query::q::matches(q, e)
        {
            return false;
        }
        if let Some(s) = &self.scope_q
            && !s.eval(&mut |p: &ScopePattern| e.scope.iter().any(|sc| p.matches(sc)))
        {
            return false;
        }
        if let Some(g) = &self.geo_q {
            let hit = e.attribute(&g.geoproperty).is_some_and(|instances| {
                instances.iter().any(
                    |a| matches!(&a.value, AttributeValue::GeoProperty(v) if g.matches_geojson(v)),
                )
            });
            if !hit {
                return false;
            }
        }
        true
    }

    /// Decides whether the change `before` -> `after` of one entity is notified, and with
    /// which trigger. Does not look at state, expiry or throttling (see
    /// [`Subscription::wants_changes`]).
    pub fn on_change(&self, before: Option<&Entity>, after: Option<&Entity>) -> Option<Trigger> {
        let changes = classify(before, after);
        let subject = after.or(before)?;
        if !self.selects(subject) {
            return None;
        }
        let watched = |names: &[String]| match &self.watched_attributes {
            None => true,
            Some(w) => names.iter().any(|n| w.contains(n)),
        };
        for (trigger, names) in &changes {
            if !self.triggers.contains(trigger) {
                continue;
            }
            let relevant = match trigger {
                Trigger::EntityCreated | Trigger::EntityDeleted => true,
                _ => watched(names),
            };
            if relevant {
                return Some(*trigger);
            }
        }
        None
    }

    /// How notified entities are rendered (format, `attributes`, `pick`/`omit`, `lang`, ...).
    fn render_options(&self) -> RenderOptions {
        let n = &self.notification;
        RenderOptions {
            format: n.format,
            sys_attrs: n.sys_attrs,
            lang: self.lang.as_deref().and_then(|l| LangFilter::parse(l).ok()),
            attrs: n.attributes.clone(),
            pick: n.pick.clone(),
            omit: n.omit.clone(),
            dataset_ids: self.dataset_ids.clone(),
            context: None,
        }
    }

    /// The notification's `data` for the entity `after` rendered as `data` (by
    /// [`Subscription::notification_entity`]), with the entities it links to when
    /// `notification.join` asks for them (clause 4.5.23): `flat` appends them after the entity,
    /// `inline` nests them in the relationships. `lookup` returns the linked entities the caller
    /// has fetched; ids it lacks are listed in `missing` (fetch them and call again).
    pub fn notification_data<'a>(
        &self,
        data: Value,
        after: &'a Entity,
        lookup: &dyn Fn(&str) -> Option<&'a Entity>,
        ctx: &Context,
    ) -> Joined {
        let Some(spec) = &self.notification.join else {
            return Joined {
                values: vec![data],
                missing: Vec::new(),
            };
        };
        let mut joined = crate::linked::join(&[after], &self.render_options(), spec, lookup, ctx);
        if let Some(first) = joined.values.first_mut() {
            let root = std::mem::take(first);
            *first = match spec.mode {
                JoinMode::Flat => data,
                JoinMode::Inline => inline_into(data, root),
            };
        }
        joined
    }

    /// The entity as it appears in the notification's `data` for the change `before` ->
    /// `after`, compacted against `ctx`. Deleted attributes (and every attribute of a deleted
    /// entity) appear with the value `urn:ngsi-ld:null`; with `showChanges`, changed attributes
    /// carry their previous value.
    pub fn notification_entity(
        &self,
        before: Option<&Entity>,
        after: Option<&Entity>,
        trigger: Option<Trigger>,
        ctx: &Context,
        now: Timestamp,
    ) -> Value {
        let n = &self.notification;
        let opts = self.render_options();
        let watched = |name: &str| {
            trigger != Some(Trigger::AttributeDeleted)
                || self
                    .watched_attributes
                    .as_ref()
                    .is_none_or(|w| w.iter().any(|x| x == name))
        };
        let wanted = |name: &str| {
            n.attributes
                .as_ref()
                .is_none_or(|a| a.iter().any(|x| x == name))
                && n.pick.as_ref().is_none_or(|p| p.iter().any(|x| x == name))
                && !n.omit.as_ref().is_some_and(|o| o.iter().any(|x| x == name))
        };
        let (mut out, deleted_entity) = match (after, before) {
            (Some(a), _) => (render(a, &opts, ctx), false),
            (None, Some(b)) => {
                let mut shell = Entity {
                    id: b.id.clone(),
                    types: b.types.clone(),
                    scope: b.scope.clone(),
                    created_at: b.created_at,
                    modified_at: b.modified_at,
                    ..Entity::default()
                };
                shell.attributes.clear();
                let mut m = match render(&shell, &opts, ctx) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                m.insert("deletedAt".into(), json!(format_datetime(&now)));
                (Value::Object(m), true)
            }
            (None, None) => return Value::Null,
        };
        let Value::Object(map) = &mut out else {
            return out;
        };
        let normalized = RenderOptions {
            format: Format::Normalized,
            ..opts.clone()
        };
        let entity_deleted_plain =
            deleted_entity && trigger == Some(Trigger::EntityDeleted) && !n.show_changes;
        if let Some(b) = before.filter(|_| !entity_deleted_plain) {
            for (name, instances) in &b.attributes {
                if !wanted(name) || (deleted_entity && !n.show_changes && !watched(name)) {
                    continue;
                }
                let still = after.and_then(|a| a.attributes.get(name));
                let key = ctx.compact_iri(name);
                match still {
                    None => {
                        let Some(first) = instances.first() else {
                            continue;
                        };
                        let member = first.kind().value_member();
                        let v = match n.format {
                            Format::KeyValues => json!(NGSI_LD_NULL),
                            _ => {
                                let mut m = Map::new();
                                m.insert("type".into(), json!(first.kind().name()));
                                let null = if member == "languageMap" && !deleted_entity {
                                    json!({"@none": NGSI_LD_NULL})
                                } else {
                                    json!(NGSI_LD_NULL)
                                };
                                m.insert(member.into(), null);
                                if n.show_changes
                                    && let Some(prev) = previous(instances, &normalized, ctx)
                                {
                                    m.insert(previous_member(member), prev);
                                }
                                if n.sys_attrs {
                                    insert_ts(&mut m, "createdAt", first.created_at);
                                    insert_ts(&mut m, "modifiedAt", first.modified_at);
                                    m.insert("deletedAt".into(), json!(format_datetime(&now)));
                                }
                                Value::Object(m)
                            }
                        };
                        map.insert(key.clone(), v);
                    }
                    Some(now_instances) if n.show_changes && !deleted_entity => {
                        let old = previous(instances, &normalized, ctx);
                        let new = previous(now_instances, &normalized, ctx);
                        if old != new
                            && let Some(old) = old
                            && let Some(Value::Object(m)) = map.get_mut(&key)
                            && let Some(first) = now_instances.first()
                        {
                            m.insert(previous_member(first.kind().value_member()), old);
                        }
                    }
                    Some(_) => {}
                }
                // Instances (datasetIds) that went away are shown as deleted.
                if let Some(now_instances) = still {
                    for lost in instances
                        .iter()
                        .filter(|o| !now_instances.iter().any(|i| i.dataset_id == o.dataset_id))
                    {
                        let remaining = now_instances.first().and_then(|i| i.dataset_id.clone());
                        add_null_instance(map, &key, lost, remaining, n.format);
                    }
                }
            }
        }
        out
    }
}

/// The notification entity `data` with the linked entities of `joined` (the same entity rendered
/// with `join=inline`): members the join added to an attribute (`entity`) are added, attributes
/// it replaced (simplified format) are replaced; what only the notification has (deleted
/// attributes, `previousValue`) stays.
fn inline_into(mut data: Value, joined: Value) -> Value {
    let (Some(mine_all), Value::Object(joined)) = (data.as_object_mut(), joined) else {
        return data;
    };
    for (key, value) in joined {
        match (mine_all.get_mut(&key), value) {
            (Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (k, v) in theirs {
                    mine.entry(k).or_insert(v);
                }
            }
            (Some(mine), theirs) => *mine = theirs,
            (None, _) => {}
        }
    }
    data
}

/// Adds a deleted instance (`urn:ngsi-ld:null`) to the rendered attribute `key`.
fn add_null_instance(
    map: &mut Map<String, Value>,
    key: &str,
    lost: &Attribute,
    remaining: Option<String>,
    format: Format,
) {
    let entry = map.remove(key);
    if format == Format::KeyValues {
        let mut dataset = match entry {
            Some(Value::Object(mut o)) if o.contains_key("dataset") => match o.remove("dataset") {
                Some(Value::Object(d)) => d,
                _ => Map::new(),
            },
            None => Map::new(),
            Some(other) => {
                let mut d = Map::new();
                d.insert(remaining.unwrap_or_else(|| "@none".into()), other);
                d
            }
        };
        dataset.insert(
            lost.dataset_id.clone().unwrap_or_else(|| "@none".into()),
            json!(NGSI_LD_NULL),
        );
        map.insert(key.into(), json!({ "dataset": dataset }));
        return;
    }
    let mut m = Map::new();
    m.insert("type".into(), json!(lost.kind().name()));
    m.insert(lost.kind().value_member().into(), json!(NGSI_LD_NULL));
    if let Some(d) = &lost.dataset_id {
        m.insert("datasetId".into(), json!(d));
    }
    let mut items = match entry {
        Some(Value::Array(a)) => a,
        Some(v) => vec![v],
        None => Vec::new(),
    };
    items.push(Value::Object(m));
    map.insert(key.into(), Value::Array(items));
}

/// `q` in a subscription body may be percent-encoded as in a URL (`name=="Eiffel%20Tower"`).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

fn insert_ts(m: &mut Map<String, Value>, key: &str, t: Option<Timestamp>) {
    if let Some(t) = t {
        m.insert(key.into(), json!(format_datetime(&t)));
    }
}

fn previous_member(member: &str) -> String {
    let mut chars = member.chars();
    match chars.next() {
        Some(c) => format!("previous{}{}", c.to_ascii_uppercase(), chars.as_str()),
        None => "previousValue".into(),
    }
}

/// The value member of the first instance, normalized.
fn previous(instances: &[Attribute], opts: &RenderOptions, ctx: &Context) -> Option<Value> {
    let first = instances.first()?;
    let rendered = render_attribute(std::slice::from_ref(first), opts, ctx)?;
    rendered.get(first.kind().value_member()).cloned()
}

/// The triggers a change fires, each with the attributes (expanded names) involved.
pub fn classify(before: Option<&Entity>, after: Option<&Entity>) -> Vec<(Trigger, Vec<String>)> {
    match (before, after) {
        (None, None) => Vec::new(),
        (None, Some(a)) => {
            let names: Vec<String> = a.attributes.keys().cloned().collect();
            vec![
                (Trigger::EntityCreated, names.clone()),
                (Trigger::AttributeCreated, names),
            ]
        }
        (Some(b), None) => {
            let names: Vec<String> = b.attributes.keys().cloned().collect();
            vec![
                (Trigger::EntityDeleted, names.clone()),
                (Trigger::AttributeDeleted, names),
            ]
        }
        (Some(b), Some(a)) => {
            let mut created = Vec::new();
            let mut updated = Vec::new();
            let mut deleted = Vec::new();
            for (name, instances) in &a.attributes {
                match b.attributes.get(name) {
                    None => created.push(name.clone()),
                    Some(old) if old != instances => {
                        let lost = old
                            .iter()
                            .any(|o| !instances.iter().any(|i| i.dataset_id == o.dataset_id));
                        if lost {
                            deleted.push(name.clone());
                        }
                        updated.push(name.clone());
                    }
                    Some(_) => {}
                }
            }
            for name in b.attributes.keys() {
                if !a.attributes.contains_key(name) {
                    deleted.push(name.clone());
                }
            }
            let mut out = Vec::new();
            let mut all: Vec<String> = Vec::new();
            all.extend(created.iter().cloned());
            all.extend(updated.iter().cloned());
            all.extend(deleted.iter().cloned());
            if !created.is_empty() {
                out.push((Trigger::AttributeCreated, created));
            }
            if !updated.is_empty() {
                out.push((Trigger::AttributeUpdated, updated));
            }
            if !deleted.is_empty() {
                out.push((Trigger::AttributeDeleted, deleted));
            }
            if !all.is_empty() || a.types != b.types || a.scope != b.scope {
                out.push((Trigger::EntityUpdated, all));
            }
            out
        }
    }
}

/// Whether a notification at `now` is held back by `throttling` after one at `last`.
pub fn throttled(throttling: Option<f64>, last: Option<Timestamp>, now: Timestamp) -> bool {
    match (throttling, last) {
        (Some(t), Some(last)) => {
            let elapsed = (now - last).num_milliseconds() as f64 / 1000.0;
            elapsed < t
        }
        _ => false,
    }
}

/// The notification document: `{id, type: "Notification", subscriptionId, notifiedAt, data}`.
pub fn notification(id: &str, subscription_id: &str, now: Timestamp, data: Vec<Value>) -> Value {
    json!({
        "id": id,
        "type": "Notification",
        "subscriptionId": subscription_id,
        "notifiedAt": format_datetime(&now),
        "data": data,
    })
}

#[cfg(test)]
mod tests;
