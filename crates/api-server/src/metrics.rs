//! Prometheus metrics for HTTP requests, and logging of internal errors.

use crate::error::InternalErrorDetail;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

/// One recorder per process (the `metrics` facade is global).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // If another recorder was installed first, our handle simply stays empty.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub(crate) fn render() -> String {
    handle().render()
}

/// Counts requests and their latency per method, route template and status.
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let _ = handle();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status().as_u16();
    count(&method, route, status, started.elapsed().as_secs_f64());
    response
}

/// Counts one request that took `seconds`.
fn count(method: &Method, route: &str, status: u16, seconds: f64) {
    RequestMetrics::global().with_handles(method, route, status, |counter, histogram| {
        counter.increment(1);
        histogram.record(seconds);
    });
}

/// The request metrics' handles by route, then method and status. The `metrics` macros build
/// and hash a key of three owned labels on every call (about 6,700 instructions per request,
/// profiled on single entity creates); a request whose route, method and status were seen
/// before finds its handles here.
#[derive(Default)]
struct RequestMetrics {
    by_route: RwLock<HashMap<String, Vec<LabelSet>>>,
    label_sets: AtomicUsize,
}

/// The handles of one route's requests with one method and status.
type LabelSet = (Method, u16, Counter, Histogram);

/// Label sets kept in [`RequestMetrics`]; others (only unusual methods make more) go through
/// the macros every time, so odd requests cannot grow the cache without bound.
const CACHED_LABEL_SETS: usize = 4096;

impl RequestMetrics {
    fn global() -> &'static Self {
        static METRICS: OnceLock<RequestMetrics> = OnceLock::new();
        METRICS.get_or_init(Self::default)
    }

    /// Runs `f` with the handles of this label set: the cached ones, or new ones (then cached
    /// for the next request, unless the cache is full).
    fn with_handles(
        &self,
        method: &Method,
        route: &str,
        status: u16,
        f: impl FnOnce(&Counter, &Histogram),
    ) {
        if let Ok(by_route) = self.by_route.read()
            && let Some((.., counter, histogram)) = by_route
                .get(route)
                .and_then(|sets| sets.iter().find(|(m, s, ..)| m == method && *s == status))
        {
            return f(counter, histogram);
        }
        let (counter, histogram) = Self::register(method, route, status);
        f(&counter, &histogram);
        if self.label_sets.load(Ordering::Relaxed) < CACHED_LABEL_SETS
            && let Ok(mut by_route) = self.by_route.write()
        {
            let sets = by_route.entry(route.to_owned()).or_default();
            if !sets.iter().any(|(m, s, ..)| m == method && *s == status) {
                sets.push((method.clone(), status, counter, histogram));
                self.label_sets.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn register(method: &Method, route: &str, status: u16) -> (Counter, Histogram) {
        let (method, route) = (method.to_string(), route.to_owned());
        (
            metrics::counter!("citybrain_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()),
            metrics::histogram!("citybrain_http_request_duration_seconds", "method" => method, "route" => route),
        )
    }
}

/// Logs the real message of internal errors (the client saw a generic one).
pub(crate) async fn log_internal_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(InternalErrorDetail(message)) = response.extensions().get::<InternalErrorDetail>() {
        tracing::error!(status = response.status().as_u16(), error = %message, "internal error");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first request of a label set registers its handles, later ones use the cached
    /// ones: every request is counted once, in its own series.
    #[test]
    fn cached_handles_count_every_request_once() {
        let _ = handle();
        for _ in 0..3 {
            count(&Method::GET, "/unit/cached", 200, 0.001);
        }
        count(&Method::GET, "/unit/cached", 404, 0.001);
        count(&Method::POST, "/unit/cached", 200, 0.001);
        let text = render();
        for (line, n) in [
            (r#"method="GET",route="/unit/cached",status="200""#, 3),
            (r#"method="GET",route="/unit/cached",status="404""#, 1),
            (r#"method="POST",route="/unit/cached",status="200""#, 1),
        ] {
            let wanted = format!("citybrain_http_requests_total{{{line}}} {n}");
            assert!(
                text.lines().any(|l| l == wanted),
                "no `{wanted}` in\n{text}"
            );
        }
    }
}
