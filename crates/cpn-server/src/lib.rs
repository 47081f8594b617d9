//! The computing-power network's coordinator and its `/cpn/v1` HTTP API: the I/O shell that
//! joins `cpn-core`'s decisions (validation, cost-aware placement, CATS adverts) to
//! `cpn-exec`'s engines (local processes, Slurm) through per-site agents with heartbeats, and
//! keeps everything in a [`store::ComputeStore`].
//!
//! * [`coordinator::Coordinator`]: site catalogue, job queue, placement loop, agents, failure
//!   handling (a site whose agent goes silent has its jobs retried elsewhere), quotas.
//! * [`remote`]: the wire protocol of remote site agents and the agent loop itself.
//! * [`api::module`]: the authenticated, tenant-scoped routes, mounted by the platform like
//!   every other module.

pub mod api;
pub mod coordinator;
pub mod remote;

pub use coordinator::{
    Coordinator, CoordinatorConfig, CpnError, JobRequest, JobView, SiteRegistration, SiteView,
};
