//! The HTTP API of citybrain: one axum [`Router`] for every module.
//!
//! `app(state)` builds the whole router without a socket, so tests drive it with
//! `tower::ServiceExt::oneshot`; `serve` binds it to a listener with graceful shutdown.
//!
//! Layout of the router:
//! - **public routes** (listed in [`routes::public`], plus each [`Module`]'s `public`
//!   router): health, readiness, the OpenAPI document, login/refresh/logout, and
//!   `/metrics` when `http.metrics_public` is set;
//! - **protected routes**: everything else, the platform's and each module's
//!   `protected` router. The authentication layer is applied to all of them as a whole,
//!   so a new route is authenticated unless it is added to a public list on purpose.
//!   Handlers then authorise through the identity service, which hands out tenant scopes
//!   only after checking the caller's grants.
//!
//! Modules (the NGSI-LD broker, the Handle REST API, ...) live in their own crates and
//! hand their routes to [`app`] already bound to their own state, so this crate does not
//! depend on them.
//!
//! Cross-cutting layers (outermost first): request id → trace span → metrics → panic
//! catcher → timeout → internal-error logging → body limit → routes.

mod auth;
mod error;
mod metrics;
pub mod routes;
mod ui;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use identity::IdentityService;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::Caller;
pub use error::{ApiError, ErrorKind, ProblemDetails};

/// Settings of the HTTP layer itself.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body.
    pub body_limit_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Serve `/metrics` without authentication.
    pub metrics_public: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            metrics_public: false,
        }
    }
}

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    identity: Arc<IdentityService>,
    http: HttpSettings,
    started: Instant,
}

impl AppState {
    /// Builds the state.
    pub fn new(identity: Arc<IdentityService>, http: HttpSettings) -> Self {
        Self {
            inner: Arc::new(StateInner {
                identity,
                http,
                started: Instant::now(),
            }),
        }
    }
    /// The unified user system.
    pub fn identity(&self) -> &IdentityService {
        &self.inner.identity
    }
    /// HTTP settings.
    pub fn http(&self) -> &HttpSettings {
        &self.inner.http
    }
    /// Time since the state was built.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The routes of one module of the platform, bound to the module's own state
/// (`OpenApiRouter::<ModuleState>::with_state(module_state)` yields this type).
pub struct Module {
    /// Routes anyone may call. A module that authenticates callers its own way (e.g. the
    /// Handle REST API's HS_ADMIN Basic auth) lists them here and checks credentials itself.
    pub public: utoipa_axum::router::OpenApiRouter<AppState>,
    /// Routes behind the platform's authentication layer; handlers get the caller with
    /// the [`Caller`] extractor.
    pub protected: utoipa_axum::router::OpenApiRouter<AppState>,
}

/// The whole HTTP application: the platform's own routes plus every module's.
pub fn app(state: AppState, modules: Vec<Module>) -> Router {
    let mut public = routes::public(&state);
    let mut protected = routes::protected(&state);
    for module in modules {
        public = public.merge(module.public);
        protected = protected.merge(module.protected);
    }
    let authenticate = axum::middleware::from_fn_with_state(state.clone(), auth::authenticate);
    let (router, openapi) = public
        .merge(protected.route_layer(authenticate))
        .split_for_parts();
    let openapi_json = Arc::new(openapi.to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));
    let http = state.http().clone();
    router
        .route(
            routes::OPENAPI_PATH,
            axum::routing::get(move || {
                let json = Arc::clone(&openapi_json);
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], (*json).clone()) }
            }),
        )
        .merge(ui::routes())
        .fallback(routes::not_found)
        .with_state(state)
        // Layers wrap from the inside out: the last one added runs first.
        .layer(DefaultBodyLimit::max(http.body_limit_bytes))
        .layer(axum::middleware::from_fn(metrics::log_internal_errors))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    // Only method and path: headers and query strings may carry credentials.
                    tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
                .layer(axum::middleware::from_fn(metrics::record))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::internal("a request handler panicked").into_response_with_status()
                }))
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, http.request_timeout)),
        )
}

impl ApiError {
    fn into_response_with_status(self) -> axum::response::Response {
        axum::response::IntoResponse::into_response(self)
    }
}

/// Serves `app` (from [`app`]) on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The Prometheus text of all metrics recorded in this process.
pub fn render_metrics() -> String {
    metrics::render()
}
