//! Typed errors. Every variant names the element and field at fault so that an operator or an
//! API client can fix the input without reading code.

use thiserror::Error;

/// A world (site set) configuration was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum WorldError {
    /// The JSON could not be parsed into the expected shape.
    #[error("world json: {0}")]
    Json(String),
    /// A number is missing its range (negative capacity, PUE below 1, NaN, ...).
    #[error("{element}: field `{field}` = {value} is outside [{lo}, {hi}]")]
    OutOfRange {
        /// Element (e.g. `site zhongwei`).
        element: String,
        /// Field name.
        field: &'static str,
        /// Offending value.
        value: f64,
        /// Lowest accepted.
        lo: f64,
        /// Highest accepted.
        hi: f64,
    },
    /// Two elements share an identifier.
    #[error("duplicate {what} `{id}`")]
    Duplicate {
        /// Kind of element.
        what: &'static str,
        /// The repeated identifier.
        id: String,
    },
    /// An identifier is empty or contains a reserved character.
    #[error("{element}: bad name `{name}`")]
    BadName {
        /// Element.
        element: String,
        /// The name.
        name: String,
    },
    /// A site or link names a region that is not declared.
    #[error("{element}: unknown region `{region}`")]
    UnknownRegion {
        /// Element.
        element: String,
        /// Region id.
        region: String,
    },
    /// A site names a GPU model the catalogue does not list.
    #[error("{element}: unknown gpu model `{model}`")]
    UnknownGpuModel {
        /// Element.
        element: String,
        /// Model name.
        model: String,
    },
    /// A site offers a GPU model without pricing it.
    #[error("{element}: gpu model `{model}` has capacity but no price.gpu_hour entry")]
    MissingPrice {
        /// Element.
        element: String,
        /// Model name.
        model: String,
    },
    /// A limit of the index-based representation was exceeded.
    #[error("too many {what} (at most {max})")]
    TooMany {
        /// What.
        what: &'static str,
        /// Limit.
        max: usize,
    },
    /// The world has no site.
    #[error("world has no sites")]
    NoSites,
}

/// A job was rejected at submission.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum JobError {
    /// The JSON could not be parsed into the expected shape.
    #[error("job json: {0}")]
    Json(String),
    /// The job asks for a resource (or GPU model) nobody in the alliance knows.
    #[error("job {job}: unknown resource `{resource}`")]
    UnknownResource {
        /// Job id.
        job: String,
        /// Resource name.
        resource: String,
    },
    /// A size, duration or count is negative or not a finite number.
    #[error("job {job}: field `{field}` = {value} must be a finite number >= 0")]
    NegativeOrNotFinite {
        /// Job id.
        job: String,
        /// Field.
        field: String,
        /// Value.
        value: f64,
    },
    /// A field is outside its accepted range.
    #[error("job {job}: field `{field}` = {value} is outside [{lo}, {hi}]")]
    OutOfRange {
        /// Job id.
        job: String,
        /// Field.
        field: &'static str,
        /// Value.
        value: f64,
        /// Lowest accepted.
        lo: f64,
        /// Highest accepted.
        hi: f64,
    },
    /// The job's duration is zero.
    #[error("job {job}: duration_s must be > 0")]
    ZeroDuration {
        /// Job id.
        job: String,
    },
    /// The job requests nothing at all.
    #[error("job {job}: requests no resources")]
    EmptyRequest {
        /// Job id.
        job: String,
    },
    /// The deadline cannot be met even at the best site with no queueing.
    #[error(
        "job {job}: impossible deadline {deadline_s} s: the earliest possible finish is {earliest_finish_s} s"
    )]
    ImpossibleDeadline {
        /// Job id.
        job: String,
        /// Requested deadline.
        deadline_s: i64,
        /// Earliest finish over the allowed sites.
        earliest_finish_s: i64,
    },
    /// None of the allowed zones is offered by any site.
    #[error("job {job}: no site offers any of the allowed zones {zones:?}")]
    NoSiteInZones {
        /// Job id.
        job: String,
        /// The zones asked for.
        zones: Vec<String>,
    },
    /// The input data lives in a region the world does not know.
    #[error("job {job}: unknown data region `{region}`")]
    UnknownRegion {
        /// Job id.
        job: String,
        /// Region.
        region: String,
    },
    /// No allowed site is large enough to ever run the job.
    #[error("job {job}: no allowed site has enough capacity for the request")]
    TooLarge {
        /// Job id.
        job: String,
    },
    /// The identifier is empty.
    #[error("job id must not be empty")]
    EmptyId,
}

/// A site advertisement (CATS metrics) was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum AdvertError {
    /// The JSON could not be parsed into the expected shape.
    #[error("advert json: {0}")]
    Json(String),
    /// A metric value is invalid.
    #[error("advert {site}: metric `{metric}`: {reason}")]
    BadMetric {
        /// Site id.
        site: String,
        /// Metric name.
        metric: String,
        /// Why.
        reason: String,
    },
    /// The advert is structurally wrong (unsupported version, missing site id).
    #[error("advert: {0}")]
    Invalid(String),
}

/// A trace could not be parsed.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The header lacks a required column.
    #[error("trace header lacks column `{0}`")]
    MissingColumn(&'static str),
    /// A row's field could not be parsed.
    #[error("trace line {line}: column `{column}`: cannot parse `{value}`")]
    BadField {
        /// 1-based line number.
        line: usize,
        /// Column name.
        column: &'static str,
        /// Raw text.
        value: String,
    },
    /// A row has too few fields.
    #[error("trace line {line}: expected {expected} fields, found {found}")]
    ShortRow {
        /// 1-based line number.
        line: usize,
        /// Expected number.
        expected: usize,
        /// Found.
        found: usize,
    },
    /// The input is empty.
    #[error("trace is empty")]
    Empty,
}

/// A placement could not be made.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum PlaceError {
    /// No allowed site can fit the job inside the engine's time horizon.
    #[error("job {job}: no allowed site has capacity within the planning horizon")]
    NoCapacity {
        /// Job id.
        job: String,
    },
    /// The job was already placed.
    #[error("job {job}: already placed")]
    AlreadyPlaced {
        /// Job id.
        job: String,
    },
}
