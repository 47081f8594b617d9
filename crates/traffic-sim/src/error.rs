//! Load errors: every variant names the file and the JSON element it is about.

/// Why a scenario file could not be loaded.
///
/// `file` is the name the caller passed in (the loaders never open files themselves) and `path` is
/// a JSON path such as `roads[3] (road_1_1_0).lanes[1].width`, so a user can find the element.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The text is not JSON at all (truncated file, stray comma, wrong encoding).
    #[error("{file}: malformed JSON at line {line}, column {column}: {message}")]
    Json {
        /// File name as given by the caller.
        file: String,
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// A required member is absent.
    #[error("{file}: {path}: missing required field `{field}`")]
    Missing {
        /// File name as given by the caller.
        file: String,
        /// Path of the object that lacks the field.
        path: String,
        /// The missing member's name.
        field: &'static str,
    },
    /// A member has the wrong JSON type.
    #[error("{file}: {path}: expected {expected}")]
    Type {
        /// File name as given by the caller.
        file: String,
        /// Path of the offending value.
        path: String,
        /// What was expected, e.g. "a finite number".
        expected: &'static str,
    },
    /// A reference to a road or intersection id that does not exist.
    #[error("{file}: {path}: unknown {kind} `{id}`")]
    UnknownReference {
        /// File name as given by the caller.
        file: String,
        /// Path of the reference.
        path: String,
        /// "road" or "intersection".
        kind: &'static str,
        /// The id that was not found.
        id: String,
    },
    /// The value is well-typed but violates a rule of the model (negative length, lane index out
    /// of range, a lane link whose road does not touch the intersection, ...).
    #[error("{file}: {path}: {message}")]
    Invalid {
        /// File name as given by the caller.
        file: String,
        /// Path of the offending element.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl LoadError {
    /// The file name the error is about.
    pub fn file(&self) -> &str {
        match self {
            LoadError::Json { file, .. }
            | LoadError::Missing { file, .. }
            | LoadError::Type { file, .. }
            | LoadError::UnknownReference { file, .. }
            | LoadError::Invalid { file, .. } => file,
        }
    }
}
