//! `citybrain psi`: the data owner's side of a secure-computation job between two nodes.
//!
//! It drives the `secure_computation` HTTP API of the local node (see
//! `services/secure.rs` and docs/psi-security.md) and speaks no protocol of its own:
//!
//! - `psi approve` (on either node): proposes the job on the local node if a governance file
//!   is given, checks that the job's mode is the one asked for, and approves it with the
//!   items of the input file.
//! - `psi run` (on the initiating node): the same, then starts the run against the peer node,
//!   follows the job until it completes or aborts and prints the released result (or writes
//!   it with `--out`). A refusal or abort ends with a non-zero exit and the node's reason.
//!
//! Input files have one item per line (blank lines are skipped); for `sum` the receiver holds
//! the values and its lines are `item,value` (value in `0..=u32::MAX`, the last comma
//! separates). A bad line is reported with its number before anything is written to the node.

use super::UsageError;
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub(crate) struct PsiArgs {
    #[command(subcommand)]
    command: PsiCommand,
}

#[derive(Debug, Subcommand)]
enum PsiCommand {
    /// Approve a job on the local node with this input, run it against the peer node and
    /// print the result (on the receiver).
    Run(RunArgs),
    /// Approve a job on the local node with this input (the peer's data owner does this before
    /// the initiator runs the job).
    Approve(ApproveArgs),
}

/// What is computed; must match the mode of the job's governance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// The intersection, to the receiver.
    Intersection,
    /// The intersection, to both parties.
    IntersectionBoth,
    /// The intersection size only.
    Size,
    /// The sum of the receiver's values over the intersection (its lines are `item,value`).
    Sum,
}

impl Mode {
    /// The mode's name in the governance document.
    fn governance_name(self) -> &'static str {
        match self {
            Self::Intersection => "intersection",
            Self::IntersectionBoth => "intersection-both",
            Self::Size => "cardinality",
            Self::Sum => "intersection-sum",
        }
    }
}

/// The local node and the job.
#[derive(Debug, Args)]
struct Common {
    /// Base URL of the local node.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:1026")]
    server: String,
    /// File holding an API key (or access token) of a tenant administrator of the local node.
    /// Also `CITYBRAIN_TOKEN`.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The local node's tenant that holds the job.
    #[arg(long, value_name = "TENANT", default_value = "default")]
    tenant: String,
    /// The job id (the same on both nodes).
    #[arg(long, value_name = "ID")]
    job: String,
    /// Input file: one item per line (`item,value` on the receiver of a sum job).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "ngsi_type",
        conflicts_with = "ngsi_type"
    )]
    input: Option<PathBuf>,
    /// Instead of a file: the input is the values of `--ngsi-attr` of this tenant's entities
    /// of this NGSI-LD type, evaluated by the node at approval.
    #[arg(long, value_name = "TYPE", requires = "ngsi_attr")]
    ngsi_type: Option<String>,
    /// The attribute whose values are the items (with `--ngsi-type`).
    #[arg(long, value_name = "ATTR", requires = "ngsi_type")]
    ngsi_attr: Option<String>,
    /// An NGSI-LD `q` filter on those entities (with `--ngsi-type`).
    #[arg(long, value_name = "Q", requires = "ngsi_type")]
    ngsi_q: Option<String>,
    /// What is computed (checked against the job's governance).
    #[arg(long, value_enum)]
    mode: Mode,
    /// Governance document (JSON); if given, the job is first proposed on the local node.
    #[arg(long, value_name = "FILE", requires = "party")]
    governance: Option<PathBuf>,
    /// This node's party id in the governance (with `--governance`).
    #[arg(long, value_name = "ID")]
    party: Option<String>,
}

#[derive(Debug, Args)]
struct ApproveArgs {
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Base URL of the peer node.
    #[arg(long, value_name = "URL")]
    peer: String,
    /// The peer's tenant that holds its copy of the job.
    #[arg(long, value_name = "TENANT", default_value = "default")]
    peer_tenant: String,
    /// File holding the API key the peer's administrator issued for this job.
    #[arg(long, value_name = "FILE")]
    peer_key_file: PathBuf,
    /// Write the result to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Give up following the job after this many seconds (the job itself runs on).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    timeout: u64,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// An input file's items (and values, for sum), validated line by line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Input {
    pub(crate) items: Vec<String>,
    pub(crate) values: Option<Vec<u32>>,
}

/// Parses an input file; the error names the (1-based) line of the first bad entry.
pub(crate) fn parse_input(bytes: &[u8], with_values: bool) -> Result<Input, String> {
    let mut items = Vec::new();
    let mut values = with_values.then(Vec::new);
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(format!("line {line_no}: not valid UTF-8"));
        };
        if line.trim().is_empty() {
            continue;
        }
        match values.as_mut() {
            None => items.push(line.to_owned()),
            Some(values) => {
                let Some((item, value)) = line.rsplit_once(',') else {
                    return Err(format!(
                        "line {line_no}: expected `item,value` (the receiver of a sum job \
                         holds the values), got {line:?}"
                    ));
                };
                if item.is_empty() {
                    return Err(format!("line {line_no}: empty item"));
                }
                let value: u32 = value.trim().parse().map_err(|_| {
                    format!(
                        "line {line_no}: value {:?} is not an integer in 0..=4294967295",
                        value.trim()
                    )
                })?;
                items.push(item.to_owned());
                values.push(value);
            }
        }
    }
    Ok(Input { items, values })
}

/// A client of one node's API.
struct Node {
    http: reqwest::Client,
    base: String,
    tenant: String,
    token: String,
}

impl Node {
    fn jobs(&self) -> String {
        format!("{}/api/v1/tenants/{}/secure/jobs", self.base, self.tenant)
    }

    /// Sends a request; answers the status and the JSON body.
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut request = self
            .http
            .request(method, url)
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the local node at {}", self.base))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .context("reading the node's answer")?;
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        Ok((status, value))
    }

    async fn job(&self, id: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let (status, job) = self
            .call(reqwest::Method::GET, &format!("{}/{id}", self.jobs()), None)
            .await?;
        match status {
            200 => Ok(Some(job)),
            404 => Ok(None),
            _ => bail!(
                "the node refused to show job {id:?} ({status}): {}",
                detail(&job)
            ),
        }
    }
}

/// The `detail` of a problem document, or the whole answer.
fn detail(value: &serde_json::Value) -> String {
    value["detail"]
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn read_secret(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} file {}", path.display()))?;
    let secret = text.trim().to_owned();
    if secret.is_empty() {
        return Err(usage(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(secret)
}

/// Progress on stderr: one line per step, with the time since the start.
struct Progress(Instant);

impl Progress {
    fn step(&self, message: impl std::fmt::Display) {
        eprintln!("[{:>6.1}s] {message}", self.0.elapsed().as_secs_f64());
    }
}

/// Reads and validates the input, proposes (with `--governance`) and approves the job on the
/// local node. Returns the client and the approved job.
async fn approve(common: &Common, progress: &Progress) -> anyhow::Result<Node> {
    let token = match &common.token_file {
        Some(path) => read_secret(path, "token")?,
        None => std::env::var("CITYBRAIN_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| usage("give --token-file FILE (or set CITYBRAIN_TOKEN)"))?,
    };
    let base = common.server.trim_end_matches('/').to_owned();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(usage("--server must be an http(s) URL"));
    }
    // https nodes: the TLS client needs a process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let node = Node {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?,
        base,
        tenant: common.tenant.clone(),
        token,
    };
    let id = &common.job;
    let governance: Option<serde_json::Value> = match &common.governance {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the governance file {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| usage(format!("{}: not JSON: {e}", path.display())))?,
            )
        }
        None => None,
    };
    // In sum mode the receiver holds the values: its input lines are `item,value`.
    let holds_values = common.mode == Mode::Sum && {
        let (receiver, local) = match &governance {
            Some(g) => (g["receiver"].clone(), common.party.clone().into()),
            None => {
                let job = node.job(id).await?.unwrap_or_default();
                (
                    job["governance"]["receiver"].clone(),
                    job["local_party"].clone(),
                )
            }
        };
        receiver.is_string() && receiver == local
    };
    // The approval's input: the file's items, or the NGSI-LD query the node evaluates.
    // Checked before anything is written to the node.
    let input = match (&common.input, &common.ngsi_type) {
        (Some(path), _) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the input file {}", path.display()))?;
            let input = parse_input(&bytes, holds_values)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
            progress.step(format_args!(
                "read {} items from {}",
                input.items.len(),
                path.display()
            ));
            match input.values {
                Some(values) => serde_json::json!({ "items": input.items, "values": values }),
                None => serde_json::json!({ "items": input.items }),
            }
        }
        (None, Some(_)) if holds_values => {
            return Err(usage(
                "the receiver of a sum job holds the values: give --input FILE with \
                 `item,value` lines",
            ));
        }
        (None, Some(entity_type)) => serde_json::json!({ "query": {
            "type": entity_type, "attribute": common.ngsi_attr, "q": common.ngsi_q,
        } }),
        (None, None) => return Err(usage("give --input FILE or --ngsi-type/--ngsi-attr")),
    };
    if let Some(governance) = governance {
        let body = serde_json::json!({
            "id": id, "local_party": common.party, "governance": governance,
        });
        let (status, job) = node
            .call(reqwest::Method::POST, &node.jobs(), Some(&body))
            .await?;
        if status != 201 {
            bail!(
                "the node refused to record job {id:?} ({status}): {}",
                detail(&job)
            );
        }
        progress.step(format_args!(
            "proposed job {id} (governance digest {})",
            job["governance_digest"].as_str().unwrap_or("?")
        ));
    }
    let job = node.job(id).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "there is no job {id:?} in tenant {:?} on {}; propose it with --governance FILE \
             --party ID",
            node.tenant,
            node.base
        )
    })?;
    let job_mode = job["governance"]["mode"].as_str().unwrap_or_default();
    if job_mode != common.mode.governance_name() {
        bail!(
            "job {id:?} computes {job_mode:?}, not {:?} (--mode)",
            common.mode.governance_name()
        );
    }
    let status = job["status"].as_str().unwrap_or_default();
    if status != "proposed" {
        bail!(
            "job {id:?} is {status}; only a proposed job can be approved with an input{}",
            job["error"]
                .as_str()
                .map(|e| format!(" (error: {e})"))
                .unwrap_or_default()
        );
    }
    let digest = job["governance_digest"].as_str().unwrap_or_default();
    progress.step(format_args!(
        "approving job {id}: {} for {:?}, receiver {}, digest {digest}",
        job_mode,
        job["governance"]["purpose"].as_str().unwrap_or_default(),
        job["governance"]["receiver"].as_str().unwrap_or_default(),
    ));
    let mut body = input;
    body["governance_digest"] = digest.into();
    let (status, answer) = node
        .call(
            reqwest::Method::POST,
            &format!("{}/{id}/approve", node.jobs()),
            Some(&body),
        )
        .await?;
    if status != 200 {
        bail!(
            "the node refused the approval of job {id:?} ({status}): {}",
            detail(&answer)
        );
    }
    progress.step(format_args!("approved job {id}"));
    Ok(node)
}

/// The result as printed: intersection items one per line, or the size (and sum).
fn render(result: &serde_json::Value) -> String {
    if let Some(items) = result["intersection"].as_array() {
        let mut out = String::new();
        for item in items {
            out.push_str(item.as_str().unwrap_or_default());
            out.push('\n');
        }
        out
    } else if let Some(sum) = result.get("sum") {
        format!("size {}\nsum {sum}\n", result["size"])
    } else {
        format!("{}\n", result["size"])
    }
}

async fn run_job(args: &RunArgs, progress: &Progress) -> anyhow::Result<()> {
    let peer_key = read_secret(&args.peer_key_file, "peer key")?;
    let node = approve(&args.common, progress).await?;
    let id = &args.common.job;
    let body = serde_json::json!({
        "peer_url": args.peer, "peer_tenant": args.peer_tenant, "peer_api_key": peer_key,
    });
    let (status, answer) = node
        .call(
            reqwest::Method::POST,
            &format!("{}/{id}/run", node.jobs()),
            Some(&body),
        )
        .await?;
    if status != 202 {
        bail!(
            "the node refused to run job {id:?} ({status}): {}",
            detail(&answer)
        );
    }
    progress.step(format_args!("running job {id} against {}", args.peer));
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut last = String::new();
    let mut shown = Instant::now();
    let job = loop {
        let job = node
            .job(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("job {id:?} disappeared from the node"))?;
        let status = job["status"].as_str().unwrap_or_default().to_owned();
        if status != last {
            progress.step(format_args!("job {id}: {status}"));
            last.clone_from(&status);
            shown = Instant::now();
        } else if shown.elapsed() >= Duration::from_secs(10) {
            progress.step(format_args!("job {id}: still {status}"));
            shown = Instant::now();
        }
        if status == "completed" || status == "aborted" {
            break job;
        }
        if Instant::now() > deadline {
            bail!(
                "job {id:?} is still {status} after {} s; follow it with GET {}/{id}",
                args.timeout,
                node.jobs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if job["status"] == "aborted" {
        bail!(
            "job {id:?} aborted, nothing was released: {}",
            job["error"].as_str().unwrap_or("no reason recorded")
        );
    }
    let result = &job["result"];
    if result.is_null() {
        progress.step(format_args!(
            "job {id} completed; this node is not a receiver, nothing is released here"
        ));
        return Ok(());
    }
    let text = render(result);
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("writing the result to {}", path.display()))?;
            progress.step(format_args!(
                "result (size {}) written to {}",
                result["size"],
                path.display()
            ));
        }
        None => {
            progress.step(format_args!("result: size {}", result["size"]));
            crate::output::write_stdout(format_args!("{text}"));
        }
    }
    Ok(())
}

pub(crate) fn run(args: PsiArgs) -> anyhow::Result<ExitCode> {
    let progress = Progress(Instant::now());
    let runtime = super::runtime()?;
    match args.command {
        PsiCommand::Approve(args) => {
            runtime.block_on(approve(&args.common, &progress))?;
        }
        PsiCommand::Run(args) => runtime.block_on(run_job(&args, &progress))?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_lines_are_items_and_bad_lines_are_named() {
        let input = parse_input(b"a\r\n\nb,c\n\xffx", false);
        assert_eq!(input, Err("line 4: not valid UTF-8".to_owned()));
        let input = parse_input(b"a\r\n\nb,c\n", false).unwrap();
        assert_eq!(input.items, ["a", "b,c"]);
        assert_eq!(input.values, None);
    }

    #[test]
    fn sum_lines_carry_a_value() {
        let input = parse_input(b"x,1\ny,z,20\n", true).unwrap();
        assert_eq!(input.items, ["x", "y,z"]);
        assert_eq!(input.values, Some(vec![1, 20]));
        assert_eq!(
            parse_input(b"x,1\ny\n", true),
            Err(
                "line 2: expected `item,value` (the receiver of a sum job holds the values), \
                 got \"y\""
                    .to_owned()
            )
        );
        assert!(
            parse_input(b"x,1\n\ny,-3\n", true)
                .unwrap_err()
                .starts_with("line 3: value \"-3\"")
        );
    }
}
