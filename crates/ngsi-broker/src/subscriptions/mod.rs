//! NGSI-LD subscriptions: the durable records (through [`NgsiSubscriptionStore`]), the live
//! set the notifier matches changes against, and the notifier itself (see [`notifier`]).
//!
//! The store is the source of truth; every subscription is also kept parsed in memory
//! ([`Live`]), per tenant, with its compiled `@context` and its delivery counters. Counters
//! change on every notification, so they live in memory and are flushed to the store about
//! once a second.
//!
//! The HTTP routes are in `http/subscription_routes.rs` (a child of the `http` module so they
//! share its request helpers).

mod mqtt;
pub mod notifier;

use crate::Broker;
use crate::changes::ChangeSink;
use crate::error::{BrokerError, BrokerResult, bad_data, not_found};
use ngsi_ld::subscription::Subscription;
use ngsi_ld::{Context, CoreContext, ErrorKind, NgsiError, Timestamp};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use store::{
    NgsiStore, NgsiSubscriptionStore, SubscriptionRecord, SubscriptionStatusRecord, TenantId,
    TenantScope, UnixMillis,
};

pub use notifier::NotifierSettings;

/// Delivery counters and throttling state of one live subscription.
#[derive(Debug, Default)]
pub(crate) struct LiveStatus {
    pub(crate) record: SubscriptionStatusRecord,
    pub(crate) dirty: bool,
    /// When the last notification was queued (throttling counts from here).
    pub(crate) last_queued: Option<Timestamp>,
}

/// A subscription as the notifier uses it.
pub struct Live {
    pub(crate) tenant: TenantId,
    pub(crate) sub: Subscription,
    /// The subscriber's `@context` as given (stored, and used to read the stored form back).
    pub(crate) user_context: Option<Value>,
    /// The context notifications are compacted with.
    pub(crate) notify_ctx: Arc<Context>,
    /// What notifications name as their `@context` (body or `Link`).
    pub(crate) notify_context: Value,
    pub(crate) created_at: UnixMillis,
    pub(crate) modified_at: UnixMillis,
    pub(crate) status: Mutex<LiveStatus>,
    pub(crate) periodic: Mutex<Option<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("tenant", &self.tenant)
            .field("id", &self.sub.id)
            .finish_non_exhaustive()
    }
}

impl Live {
    /// The current counters.
    pub fn status(&self) -> SubscriptionStatusRecord {
        self.status.lock().map(|s| s.record).unwrap_or_default()
    }
    /// The parsed subscription.
    pub fn subscription(&self) -> &Subscription {
        &self.sub
    }
    pub(crate) fn record_outcome(&self, at: Timestamp, ok: bool) {
        let ms = UnixMillis(at.timestamp_millis());
        if let Ok(mut s) = self.status.lock() {
            s.record.times_sent += 1;
            s.record.last_notification = Some(ms);
            if ok {
                s.record.last_success = Some(ms);
            } else {
                s.record.times_failed += 1;
                s.record.last_failure = Some(ms);
            }
            s.dirty = true;
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(mut p) = self.periodic.lock()
            && let Some(h) = p.take()
        {
            h.abort();
        }
    }
}

type LiveMap = HashMap<TenantId, BTreeMap<String, Arc<Live>>>;

/// The subscription service of a broker.
pub struct SubscriptionService {
    store: Arc<dyn NgsiSubscriptionStore>,
    entities: Arc<dyn NgsiStore>,
    broker: std::sync::Weak<Broker>,
    live: RwLock<LiveMap>,
    sink: ChangeSink,
    delivery: notifier::Delivery,
    default_tenant: TenantId,
}

impl std::fmt::Debug for SubscriptionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionService")
            .finish_non_exhaustive()
    }
}

fn millis(t: Timestamp) -> UnixMillis {
    UnixMillis(t.timestamp_millis())
}

/// The stored form: the subscriber's context and the subscription compacted with it.
fn encode(
    live_ctx: &Context,
    user_context: Option<&Value>,
    sub: &Subscription,
    now: Timestamp,
) -> String {
    json!({
        "@context": user_context.cloned().unwrap_or(Value::Null),
        "subscription": Value::Object(sub.render(live_ctx, now)),
    })
    .to_string()
}

impl SubscriptionService {
    async fn resolve(&self, user: Option<&Value>) -> BrokerResult<Arc<Context>> {
        let broker = self.broker.upgrade().ok_or_else(|| {
            BrokerError::Store(store::StoreError::backend("the broker has stopped"))
        })?;
        broker.contexts().resolve(user).await
    }

    fn count(&self) -> usize {
        self.live
            .read()
            .map(|m| m.values().map(BTreeMap::len).sum())
            .unwrap_or(0)
    }

    fn refresh_watchers(&self) {
        self.sink.set_watchers(self.count());
    }

    /// The live subscriptions of a tenant.
    pub(crate) fn tenant_live(&self, tenant: &TenantId) -> Vec<Arc<Live>> {
        self.live
            .read()
            .ok()
            .and_then(|m| m.get(tenant).map(|t| t.values().cloned().collect()))
            .unwrap_or_default()
    }

    /// One live subscription.
    pub fn get(&self, scope: &TenantScope, id: &str) -> Option<Arc<Live>> {
        self.live
            .read()
            .ok()
            .and_then(|m| m.get(scope.tenant()).and_then(|t| t.get(id).cloned()))
    }

    async fn build(
        &self,
        tenant: TenantId,
        sub: Subscription,
        user_context: Option<Value>,
        created_at: UnixMillis,
        modified_at: UnixMillis,
        status: SubscriptionStatusRecord,
    ) -> BrokerResult<Arc<Live>> {
        let (notify_ctx, notify_context) = match &sub.jsonld_context {
            Some(url) => {
                let v = Value::String(url.clone());
                (self.resolve(Some(&v)).await?, v)
            }
            None => (
                self.resolve(user_context.as_ref()).await?,
                user_context
                    .clone()
                    .unwrap_or_else(|| Value::String(CoreContext::V1_9.url().to_owned())),
            ),
        };
        Ok(Arc::new(Live {
            tenant,
            sub,
            user_context,
            notify_ctx,
            notify_context,
            created_at,
            modified_at,
            status: Mutex::new(LiveStatus {
                record: status,
                dirty: false,
                last_queued: None,
            }),
            periodic: Mutex::new(None),
        }))
    }

    fn install(self: &Arc<Self>, live: Arc<Live>) {
        if let Some(interval) = live.sub.time_interval {
            let handle = notifier::spawn_periodic(
                Arc::downgrade(self),
                Arc::downgrade(&live),
                Duration::from_secs_f64(interval.max(0.1)),
            );
            if let Ok(mut p) = live.periodic.lock() {
                *p = Some(handle);
            }
        }
        if let Ok(mut m) = self.live.write() {
            m.entry(live.tenant.clone())
                .or_default()
                .insert(live.sub.id.clone(), live);
        }
        self.refresh_watchers();
    }

    fn remove(&self, tenant: &TenantId, id: &str) -> Option<Arc<Live>> {
        let removed = self
            .live
            .write()
            .ok()
            .and_then(|mut m| m.get_mut(tenant).and_then(|t| t.remove(id)));
        if let Some(l) = &removed
            && let Ok(mut p) = l.periodic.lock()
            && let Some(h) = p.take()
        {
            h.abort();
        }
        self.refresh_watchers();
        removed
    }

    /// Loads every stored subscription (at start).
    async fn load(self: &Arc<Self>) -> BrokerResult<usize> {
        let all = self.store.all_subscriptions().await?;
        let mut loaded = 0;
        for (tenant, record) in all {
            match self.decode(tenant.clone(), &record).await {
                Ok(live) => {
                    self.install(live);
                    loaded += 1;
                }
                Err(e) => tracing::error!(
                    tenant = %tenant, id = %record.id, error = %e,
                    "stored subscription cannot be read back; it is not active"
                ),
            }
        }
        Ok(loaded)
    }

    async fn decode(
        &self,
        tenant: TenantId,
        record: &SubscriptionRecord,
    ) -> BrokerResult<Arc<Live>> {
        let doc: Value = serde_json::from_str(&record.doc)
            .map_err(|e| BrokerError::Store(store::StoreError::backend(e.to_string())))?;
        let user_context = doc.get("@context").filter(|c| !c.is_null()).cloned();
        let ctx = self.resolve(user_context.as_ref()).await?;
        let body = doc.get("subscription").cloned().unwrap_or(Value::Null);
        let sub = Subscription::parse(&body, &ctx, &record.id)?;
        self.build(
            tenant,
            sub,
            user_context,
            record.created_at,
            record.modified_at,
            record.status,
        )
        .await
    }

    /// Creates a subscription.
    pub async fn create(
        self: &Arc<Self>,
        scope: &TenantScope,
        sub: Subscription,
        ctx: &Context,
        user_context: Option<Value>,
        now: Timestamp,
    ) -> BrokerResult<()> {
        check_expiry(&sub, now)?;
        let live = self
            .build(
                scope.tenant().clone(),
                sub,
                user_context,
                millis(now),
                millis(now),
                SubscriptionStatusRecord::default(),
            )
            .await?;
        let record = SubscriptionRecord {
            id: live.sub.id.clone(),
            doc: encode(ctx, live.user_context.as_ref(), &live.sub, now),
            status: SubscriptionStatusRecord::default(),
            created_at: millis(now),
            modified_at: millis(now),
        };
        self.store.create_subscription(scope, record).await?;
        self.install(live);
        Ok(())
    }

    /// Applies a `PATCH` fragment.
    pub async fn update(
        self: &Arc<Self>,
        scope: &TenantScope,
        id: &str,
        fragment: &Value,
        ctx: &Context,
        patch_context: Option<Value>,
        now: Timestamp,
    ) -> BrokerResult<()> {
        let old = self
            .get(scope, id)
            .ok_or_else(|| not_found(format!("subscription {id} not found")))?;
        let sub = old.sub.patch(fragment, ctx, now)?;
        if fragment.get("expiresAt").is_some_and(|v| !v.is_null()) {
            check_expiry(&sub, now)?;
        }
        let user_context = patch_context.or_else(|| old.user_context.clone());
        let live = self
            .build(
                scope.tenant().clone(),
                sub,
                user_context,
                old.created_at,
                millis(now),
                old.status(),
            )
            .await?;
        let store_ctx = self.resolve(live.user_context.as_ref()).await?;
        let record = SubscriptionRecord {
            id: id.to_owned(),
            doc: encode(&store_ctx, live.user_context.as_ref(), &live.sub, now),
            status: old.status(),
            created_at: old.created_at,
            modified_at: millis(now),
        };
        self.store.replace_subscription(scope, record).await?;
        if let (Ok(mut new), Ok(old)) = (live.status.lock(), old.status.lock()) {
            new.record = old.record;
            new.last_queued = old.last_queued;
            new.dirty = old.dirty;
        }
        self.remove(scope.tenant(), id);
        self.install(live);
        Ok(())
    }

    /// Deletes a subscription.
    pub async fn delete(&self, scope: &TenantScope, id: &str) -> BrokerResult<()> {
        if !self.store.delete_subscription(scope, id).await? {
            return Err(not_found(format!("subscription {id} not found")));
        }
        self.remove(scope.tenant(), id);
        Ok(())
    }

    /// A page of the tenant's subscriptions (oldest first) and the total.
    pub async fn page(
        &self,
        scope: &TenantScope,
        offset: usize,
        limit: usize,
    ) -> BrokerResult<(Vec<Arc<Live>>, u64)> {
        let page = self
            .store
            .subscriptions(scope, offset as u64, limit as u64)
            .await?;
        let items = page
            .items
            .iter()
            .filter_map(|r| self.get(scope, &r.id))
            .collect();
        Ok((items, page.total))
    }

    /// Writes changed counters to the store.
    async fn flush(&self) {
        let all: Vec<Arc<Live>> = self
            .live
            .read()
            .map(|m| m.values().flat_map(|t| t.values().cloned()).collect())
            .unwrap_or_default();
        for live in all {
            let record = match live.status.lock() {
                Ok(mut s) if s.dirty => {
                    s.dirty = false;
                    s.record
                }
                _ => continue,
            };
            let scope = TenantScope::authorized(live.tenant.clone());
            if let Err(e) = self
                .store
                .set_subscription_status(&scope, &live.sub.id, record)
                .await
            {
                tracing::warn!(error = %e, "writing subscription counters failed");
                if let Ok(mut s) = live.status.lock() {
                    s.dirty = true;
                }
            }
        }
    }
}

fn check_expiry(sub: &Subscription, now: Timestamp) -> BrokerResult<()> {
    if sub.expires_at.is_some_and(|e| e <= now) {
        return Err(bad_data("expiresAt must be in the future"));
    }
    Ok(())
}

impl Broker {
    /// Turns on subscriptions: loads the stored ones, installs the change sink and starts
    /// the notifier. Call once, inside a tokio runtime.
    pub async fn enable_subscriptions(
        self: &Arc<Self>,
        store: Arc<dyn NgsiSubscriptionStore>,
        settings: NotifierSettings,
    ) -> BrokerResult<usize> {
        let (sink, rx) = ChangeSink::channel();
        let delivery = notifier::Delivery::new(settings)?;
        let service = Arc::new(SubscriptionService {
            store,
            entities: Arc::clone(&self.store),
            broker: Arc::downgrade(self),
            live: RwLock::new(HashMap::new()),
            sink: sink.clone(),
            delivery,
            default_tenant: self.settings.default_tenant.clone(),
        });
        let loaded = service.load().await?;
        notifier::spawn(Arc::clone(&service), rx);
        self.set_change_sink(sink);
        if self.subscriptions.set(service).is_err() {
            return Err(BrokerError::Store(store::StoreError::backend(
                "subscriptions are already enabled",
            )));
        }
        Ok(loaded)
    }

    /// The subscription service, or `OperationNotSupported` if subscriptions are off.
    pub(crate) fn subscription_service(&self) -> BrokerResult<&Arc<SubscriptionService>> {
        self.subscriptions.get().ok_or_else(|| {
            NgsiError::new(
                ErrorKind::OperationNotSupported,
                "subscriptions are not enabled on this broker",
            )
            .into()
        })
    }
}
