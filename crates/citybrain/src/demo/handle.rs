//! Demo component: persistent identifiers for the demo city's intersections and its road
//! network data set, minted through the platform's identifier service (the same code as
//! `POST /api/v1/tenants/{tenant}/identifiers`), so they resolve on the Handle node at once.

use anyhow::Context;
use handle_server::identifiers::MintRequest;
use store::{EntityFilter, TenantId, TenantScope};

use super::{DEMO_TENANT, DemoContext, DemoPart};

const DEMO_ACTOR: &str = "system:demo";
const JUNCTION_ID_PREFIX: &str = "urn:ngsi-ld:Junction:";

/// Starts this component; returns its part of the banner, if any.
pub(crate) async fn start(context: &DemoContext<'_>) -> anyhow::Result<Option<DemoPart>> {
    let Some(identifiers) = context.platform.identifiers.get() else {
        return Ok(None);
    };
    let scope = TenantScope::authorized(TenantId::new(DEMO_TENANT).context("demo tenant id")?);
    let junctions =
        store::NgsiStore::entities(&context.platform.store, &scope, &EntityFilter::default())
            .await
            .context("listing the demo junctions")?;
    let mut minted = Vec::new();
    for junction in junctions
        .iter()
        .filter(|e| e.id.starts_with(JUNCTION_ID_PREFIX))
    {
        let request = MintRequest {
            entity: Some(junction.id.clone()),
            dataset: None,
            url: None,
        };
        let (identifier, _) = identifiers
            .mint(&scope, DEMO_ACTOR.to_owned(), &request)
            .await
            .with_context(|| format!("minting a handle for {}", junction.id))?;
        minted.push(identifier);
    }
    let roads = MintRequest {
        entity: None,
        dataset: Some("jinan-3x4-road-network".to_owned()),
        url: Some(format!(
            "{}/ngsi-ld/v1/entities?type=RoadSegment",
            identifiers.config().public_url
        )),
    };
    let (dataset, _) = identifiers
        .mint(&scope, DEMO_ACTOR.to_owned(), &roads)
        .await
        .context("minting the road network's handle")?;
    let base = &context.base_url;
    let mut lines = vec![format!(
        "{} intersections and the road network have handles under {}",
        minted.len(),
        identifiers.config().prefix
    )];
    if let Some(first) = minted.first() {
        lines.push(format!("{} -> {}", first.handle, first.target));
        lines.push(format!(
            "resolve:  curl -s {base}/api/handles/{}",
            first.handle
        ));
        lines.push(format!("redirect: curl -si {base}/hdl/{}", first.handle));
    }
    lines.push(format!("{} -> road network data set", dataset.handle));
    lines.push(format!(
        "node identity (did:web): {base}/.well-known/did.json"
    ));
    Ok(Some(DemoPart {
        title: "Handle node (persistent identifiers)",
        lines,
    }))
}
