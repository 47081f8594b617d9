//! `ngsi-ld`: the pure core of the citybrain NGSI-LD context broker (ETSI GS CIM 009 up to V1.9).
//!
//! This crate holds everything about NGSI-LD that does not touch the network, the disk or the clock:
//!
//! - [`model`]: entities and attributes of every kind, with expanded names;
//! - [`context`]: JSON-LD `@context` processing into a compiled term map, the pinned core contexts
//!   (v1.6, v1.8, v1.9) and the offline preload map; remote contexts come through a caller's
//!   [`ContextLoader`];
//! - [`parse`] and [`render`]: payloads in and out (normalized, concise, keyValues, GeoJSON);
//! - [`raw`]: JSON read as written (member lists, borrowed strings), for batch bodies;
//! - [`query`]: the query language (`q`, `scopeQ`, `type`, `id`/`idPattern`) with a public AST a SQL
//!   backend can translate, and an evaluator over entities;
//! - [`geospatial`]: GeoJSON validation, geo-queries and bounding boxes for index pre-filtering;
//! - [`temporal`]: temporal instances, `timerel`, `lastN`, temporalValues and aggregatedValues;
//! - [`error`]: the spec's error kinds with HTTP statuses and ProblemDetails type URIs as data.
//!
//! **Architecture invariant:** no I/O, no async runtime, no wall clock, no global randomness. The
//! HTTP server, stores and subscription engine live in other crates and call this one.
//!
//! Typical use by the HTTP layer:
//!
//! ```
//! use ngsi_ld::{Context, CoreContext, NoLoader, Query, QueryParams, RenderOptions, parse_entity, render};
//! use serde_json::json;
//!
//! let ctx = Context::for_request(None, CoreContext::V1_9, &NoLoader)?;
//! let entity = parse_entity(&json!({"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 50}), &ctx)?;
//! let query = Query::parse(&QueryParams { q: Some("speed>40"), types: Some("Car"), ..Default::default() }, &ctx)?;
//! assert!(query.matches(&entity));
//! let out = render(&entity, &RenderOptions::default(), &ctx);
//! assert_eq!(out["speed"], json!({"type": "Property", "value": 50}));
//! # Ok::<(), ngsi_ld::NgsiError>(())
//! ```

pub mod context;
pub mod error;
pub mod geospatial;
pub mod iri;
pub mod linked;
pub mod model;
pub mod parse;
pub mod query;
pub mod raw;

pub mod registration;
pub mod render;
pub mod subscription;
pub mod temporal;

pub mod time;

pub use context::{Context, ContextLoader, CoreContext, NoLoader, preload::PreloadMap};
pub use error::{ERROR_TABLE, ErrorKind, NgsiError, Result};
pub use geospatial::{BBox, GeoQuery, GeoRel};
pub use model::{
    Attribute, AttributeKind, AttributeValue, Entity, NameMap, SubAttributes, Timestamp,
};
pub use parse::{
    NameMemo, ParseOptions, ParsedEntity, parse_entity, parse_entity_memo, parse_entity_raw,
    parse_entity_with,
};
pub use query::{Query, QueryParams};

pub use render::{Format, LangFilter, RenderOptions, render, render_geojson};
