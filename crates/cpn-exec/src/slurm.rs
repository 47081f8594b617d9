//! Slurm through slurmrestd (OpenAPI v0.0.38, Slurm 22.05 as Debian ships it), authenticated with a
//! JWT (`X-SLURM-USER-NAME` / `X-SLURM-USER-TOKEN`).
//!
//! * submit: `POST /slurm/v0.0.38/job/submit` with a batch script that runs the job's argv
//!   (each argument single-quoted), its environment as a JSON *object* (v0.0.38; later API versions
//!   take an array of `K=V`), `time_limit` in minutes from the timeout, `memory_per_node` in MiB
//!   from the memory limit, and stdout+stderr to `<workdir>/cpn-%j.out`;
//! * status: `GET /slurm/v0.0.38/job/{id}` → `job_state` mapped by [`crate::state::from_slurm`];
//! * logs: the output file (the executor runs on the cluster's login/submit host, which shares the
//!   work directory with the node, as in the one-node CI cluster);
//! * cancel: `DELETE /slurm/v0.0.38/job/{id}`.
//!
//! `scripts/slurm-up.sh` starts a one-node cluster and prints the settings
//! ([`SlurmExecutor::from_env`] reads them).

use std::time::Duration;

use serde_json::{Value, json};

use crate::http::request;
use crate::state::from_slurm;
use crate::{ExecError, ExecId, ExecSpec, Executor, JobState, JobStatus};

/// Slurm REST executor.
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    /// `host:port` of slurmrestd.
    pub authority: String,
    /// User the token belongs to.
    pub user: String,
    /// JWT.
    pub token: String,
    /// Directory shared with the compute node, writable by `user`.
    pub workdir: String,
    /// Partition.
    pub partition: String,
    /// Per-request timeout.
    pub timeout: Duration,
}

const API: &str = "/slurm/v0.0.38";

fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

impl SlurmExecutor {
    /// Reads `CPN_SLURM_URL` (`http://host:port`), `CPN_SLURM_USER`, `CPN_SLURM_TOKEN` and
    /// `CPN_SLURM_WORKDIR`, as printed by `scripts/slurm-up.sh`.
    pub fn from_env() -> Result<Self, ExecError> {
        let var = |k: &str| {
            std::env::var(k).map_err(|_| ExecError::InvalidSpec(format!("{k} is not set")))
        };
        let url = var("CPN_SLURM_URL")?;
        let authority = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            authority,
            user: var("CPN_SLURM_USER")?,
            token: var("CPN_SLURM_TOKEN")?,
            workdir: var("CPN_SLURM_WORKDIR")?,
            partition: std::env::var("CPN_SLURM_PARTITION").unwrap_or_else(|_| "debug".into()),
            timeout: Duration::from_secs(10),
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ExecError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let headers = [
            ("X-SLURM-USER-NAME", self.user.as_str()),
            ("X-SLURM-USER-TOKEN", self.token.as_str()),
        ];
        let resp = request(
            &self.authority,
            method,
            &format!("{API}{path}"),
            &headers,
            body.as_deref(),
            self.timeout,
        )?;
        let value: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        Ok((resp.status, value))
    }

    fn engine_errors(value: &Value) -> Option<String> {
        let errors = value.get("errors")?.as_array()?;
        if errors.is_empty() {
            return None;
        }
        Some(
            errors
                .iter()
                .map(|e| {
                    e.get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned()
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// The job description sent to slurmrestd for `spec`.
    pub fn job_description(&self, spec: &ExecSpec) -> Result<Value, ExecError> {
        if spec.argv.is_empty() {
            return Err(ExecError::InvalidSpec("argv is empty".into()));
        }
        let command = spec
            .argv
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        let script = format!("#!/bin/bash\nexec {command}\n");
        let mut env = serde_json::Map::new();
        env.insert("PATH".into(), json!("/usr/local/bin:/usr/bin:/bin"));
        for (k, v) in &spec.env {
            env.insert(k.clone(), json!(v));
        }
        let name = if spec.name.is_empty() {
            "cpn-job"
        } else {
            spec.name.as_str()
        };
        let mut job = json!({
            "name": name,
            "partition": self.partition,
            "tasks": 1,
            "cpus_per_task": 1,
            "current_working_directory": spec.workdir.as_ref().map_or(self.workdir.clone(), |w| w.display().to_string()),
            "standard_output": format!("{}/cpn-%j.out", self.workdir),
            "standard_error": format!("{}/cpn-%j.out", self.workdir),
            "environment": Value::Object(env),
        });
        if let Some(t) = spec.timeout {
            job["time_limit"] = json!(t.as_secs().div_ceil(60).max(1));
        }
        if let Some(bytes) = spec.limits.memory_bytes {
            job["memory_per_node"] = json!(bytes.div_ceil(1024 * 1024).max(1));
        }
        Ok(json!({ "job": job, "script": script }))
    }
}

impl Executor for SlurmExecutor {
    fn submit(&self, spec: &ExecSpec) -> Result<ExecId, ExecError> {
        let body = self.job_description(spec)?;
        let (status, value) = self.call("POST", "/job/submit", Some(&body))?;
        if let Some(err) = Self::engine_errors(&value) {
            return Err(ExecError::Engine(err));
        }
        match value.get("job_id").and_then(Value::as_u64) {
            Some(id) if status == 200 => Ok(ExecId(id.to_string())),
            _ => Err(ExecError::Engine(format!(
                "submit answered HTTP {status}: {value}"
            ))),
        }
    }

    fn status(&self, id: &ExecId) -> Result<JobStatus, ExecError> {
        let (status, value) = self.call("GET", &format!("/job/{}", id.0), None)?;
        let Some(job) = value.get("jobs").and_then(|j| j.get(0)) else {
            return Err(if status == 200 {
                ExecError::Engine(format!("no job in answer: {value}"))
            } else {
                ExecError::UnknownJob(id.0.clone())
            });
        };
        let raw = job
            .get("job_state")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN");
        let state = from_slurm(raw);
        // v0.0.38 reports the wait status: exit code in the high byte, signal in the low byte.
        let wait_status = job.get("exit_code").and_then(Value::as_i64);
        let (exit_code, signal) = match wait_status {
            Some(w) if state.is_terminal() => {
                let sig = (w & 0x7f) as i32;
                if sig != 0 {
                    (None, Some(sig))
                } else {
                    (Some(((w >> 8) & 0xff) as i32), None)
                }
            }
            _ => (None, None),
        };
        let reason = job
            .get("state_reason")
            .and_then(Value::as_str)
            .unwrap_or("");
        Ok(JobStatus {
            state,
            exit_code,
            signal,
            detail: format!("{raw} ({reason})"),
        })
    }

    fn logs(&self, id: &ExecId) -> Result<String, ExecError> {
        if !id.0.chars().all(|c| c.is_ascii_digit()) {
            return Err(ExecError::UnknownJob(id.0.clone()));
        }
        let path = format!("{}/cpn-{}.out", self.workdir, id.0);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            // Not started yet: no output file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(ExecError::Io {
                context: format!("reading {path}"),
                source,
            }),
        }
    }

    fn cancel(&self, id: &ExecId) -> Result<(), ExecError> {
        if self.status(id)?.state.is_terminal() {
            return Ok(());
        }
        let (status, value) = self.call("DELETE", &format!("/job/{}", id.0), None)?;
        if status != 200 {
            return Err(ExecError::Engine(format!(
                "cancel answered HTTP {status}: {value}"
            )));
        }
        Ok(())
    }
}

impl SlurmExecutor {
    /// Polls until the job is terminal or `limit` passes; returns the last status.
    pub fn wait(&self, id: &ExecId, limit: Duration) -> Result<JobStatus, ExecError> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let st = self.status(id)?;
            if st.state.is_terminal() || std::time::Instant::now() >= deadline {
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the state reached means the job ran.
    pub fn finished(state: JobState) -> bool {
        matches!(state, JobState::Succeeded | JobState::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> SlurmExecutor {
        SlurmExecutor {
            authority: "127.0.0.1:1".into(),
            user: "u".into(),
            token: "t".into(),
            workdir: "/w".into(),
            partition: "debug".into(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn job_description_quotes_argv_and_maps_limits() {
        let mut spec = ExecSpec {
            name: "n".into(),
            argv: vec!["echo".into(), "it's".into(), "$HOME".into()],
            timeout: Some(Duration::from_secs(61)),
            ..ExecSpec::default()
        };
        spec.env.insert("DEMO".into(), "x".into());
        spec.limits.memory_bytes = Some(3 * 1024 * 1024 + 1);
        let d = exec().job_description(&spec).unwrap();
        assert_eq!(d["script"], "#!/bin/bash\nexec 'echo' 'it'\\''s' '$HOME'\n");
        assert_eq!(d["job"]["time_limit"], 2);
        assert_eq!(d["job"]["memory_per_node"], 4);
        assert_eq!(d["job"]["environment"]["DEMO"], "x");
        assert_eq!(d["job"]["standard_output"], "/w/cpn-%j.out");
        assert!(exec().job_description(&ExecSpec::default()).is_err());
    }

    #[test]
    fn unreachable_engine_is_an_io_error() {
        let err = exec()
            .submit(&ExecSpec {
                argv: vec!["true".into()],
                ..ExecSpec::default()
            })
            .unwrap_err();
        assert!(matches!(err, ExecError::Io { .. }), "{err}");
    }
}
