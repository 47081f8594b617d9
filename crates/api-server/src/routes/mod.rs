//! Route tables. Public routes are listed here on purpose; every other route is
//! protected by the authentication layer.

mod admin;
mod session;
mod system;

use crate::{ApiError, AppState, ErrorKind};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(title = "citybrain API", description = "One open system for a city's data, traffic and compute."),
    components(schemas(crate::ProblemDetails)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from /auth/login, or an API key (cbk_...)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Routes anyone may call.
pub(crate) fn public(state: &AppState) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(session::login))
        .routes(routes!(session::refresh))
        .routes(routes!(session::logout));
    if state.http().metrics_public {
        router.routes(routes!(system::metrics_public))
    } else {
        router
    }
}

/// Routes behind the authentication layer.
pub(crate) fn protected(state: &AppState) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new()
        .routes(routes!(session::me))
        .routes(routes!(admin::list_tenants, admin::create_tenant))
        .routes(routes!(admin::list_members))
        .routes(routes!(admin::create_user))
        .routes(routes!(admin::set_member, admin::remove_member))
        .routes(routes!(admin::list_roles))
        .routes(routes!(admin::put_role, admin::delete_role))
        .routes(routes!(admin::list_api_keys, admin::create_api_key))
        .routes(routes!(admin::revoke_api_key))
        .routes(routes!(admin::tenant_audit))
        .routes(routes!(admin::platform_audit))
        .routes(routes!(admin::verify_audit))
        .routes(routes!(admin::change_password))
        .routes(routes!(admin::set_disabled));
    if state.http().metrics_public {
        router
    } else {
        router.routes(routes!(system::metrics_protected))
    }
}

/// Answer for unknown paths.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such route")
}
