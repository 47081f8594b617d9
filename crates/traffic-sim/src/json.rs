//! A thin reader over `serde_json::Value` that remembers where it is, so every error names the
//! file and the element (`roads[3] (road_1_1_0).lanes[1].width`).

use serde_json::{Map, Value};

use crate::error::LoadError;

/// Parses `text` as JSON, mapping syntax errors to [`LoadError::Json`].
pub(crate) fn parse(file: &str, text: &str) -> Result<Value, LoadError> {
    serde_json::from_str(text).map_err(|e| LoadError::Json {
        file: file.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// A JSON value together with its file and path.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    pub(crate) file: &'a str,
    pub(crate) value: &'a Value,
    path: &'a PathSeg<'a>,
}

/// A linked list of path segments living on the stack: cheap to extend, rendered only on error.
pub(crate) enum PathSeg<'a> {
    Root(&'a str),
    Field(&'a PathSeg<'a>, &'a str),
    Index(&'a PathSeg<'a>, usize, Option<&'a str>),
}

impl PathSeg<'_> {
    fn render(&self) -> String {
        match self {
            PathSeg::Root(name) => (*name).to_owned(),
            PathSeg::Field(parent, name) => {
                let p = parent.render();
                if p.is_empty() {
                    (*name).to_owned()
                } else {
                    format!("{p}.{name}")
                }
            }
            PathSeg::Index(parent, i, label) => match label {
                Some(id) => format!("{}[{i}] ({id})", parent.render()),
                None => format!("{}[{i}]", parent.render()),
            },
        }
    }
}

impl<'a> Node<'a> {
    pub(crate) fn root(file: &'a str, value: &'a Value, root: &'a PathSeg<'a>) -> Self {
        Node {
            file,
            value,
            path: root,
        }
    }

    pub(crate) fn path(&self) -> String {
        let p = self.path.render();
        if p.is_empty() {
            "(document root)".to_owned()
        } else {
            p
        }
    }

    pub(crate) fn type_error(&self, expected: &'static str) -> LoadError {
        LoadError::Type {
            file: self.file.to_owned(),
            path: self.path(),
            expected,
        }
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> LoadError {
        LoadError::Invalid {
            file: self.file.to_owned(),
            path: self.path(),
            message: message.into(),
        }
    }

    pub(crate) fn object(&self) -> Result<&'a Map<String, Value>, LoadError> {
        self.value
            .as_object()
            .ok_or_else(|| self.type_error("an object"))
    }

    /// Calls `f` with the member `name`, or fails with [`LoadError::Missing`].
    pub(crate) fn with_field<T>(
        &self,
        name: &'static str,
        f: impl FnOnce(Node<'_>) -> Result<T, LoadError>,
    ) -> Result<T, LoadError> {
        let map = self.object()?;
        match map.get(name) {
            Some(value) => {
                let seg = PathSeg::Field(self.path, name);
                f(Node {
                    file: self.file,
                    value,
                    path: &seg,
                })
            }
            None => Err(LoadError::Missing {
                file: self.file.to_owned(),
                path: self.path(),
                field: name,
            }),
        }
    }

    /// Like [`Node::with_field`] but an absent (or `null`) member gives `Ok(None)`.
    pub(crate) fn with_opt_field<T>(
        &self,
        name: &'static str,
        f: impl FnOnce(Node<'_>) -> Result<T, LoadError>,
    ) -> Result<Option<T>, LoadError> {
        let map = self.object()?;
        match map.get(name) {
            Some(Value::Null) | None => Ok(None),
            Some(value) => {
                let seg = PathSeg::Field(self.path, name);
                f(Node {
                    file: self.file,
                    value,
                    path: &seg,
                })
                .map(Some)
            }
        }
    }

    /// Calls `f` for every element of an array, with `label(element)` shown in the path.
    pub(crate) fn each<T>(
        &self,
        label: impl Fn(&Value) -> Option<&str>,
        mut f: impl FnMut(usize, Node<'_>) -> Result<T, LoadError>,
    ) -> Result<Vec<T>, LoadError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.type_error("an array"))?;
        let mut out = Vec::with_capacity(items.len());
        for (i, value) in items.iter().enumerate() {
            let seg = PathSeg::Index(self.path, i, label(value));
            out.push(f(
                i,
                Node {
                    file: self.file,
                    value,
                    path: &seg,
                },
            )?);
        }
        Ok(out)
    }

    pub(crate) fn f64(&self) -> Result<f64, LoadError> {
        match self.value.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(self.type_error("a finite number")),
        }
    }

    pub(crate) fn i64(&self) -> Result<i64, LoadError> {
        if let Some(x) = self.value.as_i64() {
            return Ok(x);
        }
        // CityFlow's JSON reader accepts 3.0 where an int is expected only through its double
        // path; we accept integral floats too, since generators often write them.
        match self.value.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(x as i64),
            _ => Err(self.type_error("an integer")),
        }
    }

    pub(crate) fn bool(&self) -> Result<bool, LoadError> {
        self.value
            .as_bool()
            .ok_or_else(|| self.type_error("a boolean"))
    }

    pub(crate) fn str(&self) -> Result<&'a str, LoadError> {
        self.value
            .as_str()
            .ok_or_else(|| self.type_error("a string"))
    }
}

/// Label function for arrays of objects with an `id` member.
pub(crate) fn id_label(value: &Value) -> Option<&str> {
    value.get("id").and_then(Value::as_str)
}

/// Label function for arrays without ids.
pub(crate) fn no_label(_: &Value) -> Option<&str> {
    None
}
