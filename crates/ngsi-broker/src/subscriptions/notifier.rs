//! The notifier: consumes committed change events, matches them against the live
//! subscriptions of the event's tenant (pure rules in `ngsi_ld::subscription`), and hands
//! notifications to one delivery worker per endpoint.
//!
//! Isolation: each endpoint (HTTP URL, or MQTT broker and credentials) has its own bounded
//! queue and task, so a slow or dead receiver only ever delays its own notifications. A
//! full queue drops the notification and counts a failure instead of blocking the matcher.
//! HTTP deliveries go through `egress` (address policy, time limit) with a bounded number
//! of retries and exponential backoff.

use super::{Live, SubscriptionService, mqtt};
use crate::changes::ChangeEvent;
use crate::error::{BrokerError, BrokerResult};
use ngsi_ld::subscription::{notification, throttled};
use ngsi_ld::{Entity, Timestamp};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use store::{EntityFilter, TenantScope};
use tokio::sync::mpsc;

/// How notifications are delivered.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// Endpoints may be private or loopback addresses (trusted networks, the test suite).
    pub allow_private: bool,
    /// Time limit of one delivery attempt.
    pub timeout: Duration,
    /// Attempts after the first one failed.
    pub retries: u32,
    /// Backoff before the first retry (doubles each time).
    pub backoff: Duration,
    /// Notifications queued per endpoint before new ones are dropped (and counted failed).
    pub queue: usize,
    /// How often changed delivery counters are written to the store.
    pub flush_every: Duration,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(200),
            queue: 1024,
            flush_every: Duration::from_secs(1),
        }
    }
}

/// One notification to deliver.
pub(crate) struct Job {
    pub(crate) live: Arc<Live>,
    pub(crate) body: Value,
    pub(crate) tenant_header: Option<String>,
}

/// Endpoint workers.
pub(crate) struct Delivery {
    pub(crate) settings: NotifierSettings,
    pub(crate) policy: egress::EgressPolicy,
    fetcher: egress::Fetcher,
    workers: Mutex<HashMap<String, mpsc::Sender<Job>>>,
}

impl Delivery {
    pub(crate) fn new(settings: NotifierSettings) -> BrokerResult<Self> {
        let policy = egress::EgressPolicy {
            allow_private: settings.allow_private,
            allow_http: true,
            max_bytes: 64 * 1024,
            timeout: settings.timeout,
            max_redirects: 0,
        };
        let fetcher = egress::Fetcher::new(policy.clone()).map_err(|e| {
            BrokerError::Store(store::StoreError::backend(format!(
                "building the notification client: {e}"
            )))
        })?;
        Ok(Self {
            settings,
            policy,
            fetcher,
            workers: Mutex::new(HashMap::new()),
        })
    }

    /// Queues `job` on its endpoint's worker, starting one if needed. Never waits.
    fn enqueue(&self, job: Job) {
        let uri = job.live.sub.notification.endpoint.uri.clone();
        let key = mqtt::connection_key(&uri).unwrap_or_else(|| uri.clone());
        let Ok(mut workers) = self.workers.lock() else {
            return;
        };
        let mut job = Some(job);
        if let Some(tx) = workers.get(&key) {
            match tx.try_send(job.take().unwrap_or_else(|| unreachable!())) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(j)) => {
                    tracing::warn!(endpoint = %uri, "notification queue full; dropping a notification");
                    j.live.record_outcome(crate::ops::now(), false);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(j)) => job = Some(j),
            }
        }
        let (tx, rx) = mpsc::channel(self.settings.queue.max(1));
        if let Some(j) = job {
            let _ = tx.try_send(j);
        }
        workers.insert(key, tx);
        let settings = self.settings.clone();
        if uri.starts_with("mqtt") {
            tokio::spawn(mqtt::worker(rx, settings, self.policy.clone()));
        } else {
            tokio::spawn(http_worker(rx, settings, self.fetcher.clone()));
        }
    }
}

/// How long an endpoint worker waits for work before it stops (a new one starts on demand).
const IDLE: Duration = Duration::from_secs(120);

/// Receives the next job, or `None` once idle for [`IDLE`] (after closing the queue and
/// returning what was still in it, so no accepted job is lost).
pub(crate) async fn next_job(rx: &mut mpsc::Receiver<Job>) -> Option<Job> {
    match tokio::time::timeout(IDLE, rx.recv()).await {
        Ok(job) => job,
        Err(_) => {
            rx.close();
            rx.try_recv().ok()
        }
    }
}

/// The `@context` of a notification as a `Link` header, if it is one URL.
fn link_url(context: &Value) -> Option<&str> {
    match context {
        Value::String(s) => Some(s),
        Value::Array(a) if a.len() == 1 => a[0].as_str(),
        _ => None,
    }
}

/// The body and headers of a notification for its endpoint's `accept`.
pub(crate) fn payload(job: &Job) -> (Vec<u8>, Vec<(String, String)>) {
    let endpoint = &job.live.sub.notification.endpoint;
    let ld = endpoint.accept.as_deref() == Some("application/ld+json");
    let mut headers = Vec::new();
    let mut body = job.body.clone();
    if ld {
        if let Value::Object(m) = &mut body {
            if let Some(Value::Array(data)) = m.get_mut("data") {
                for item in data {
                    if let Value::Object(e) = item {
                        e.insert("@context".into(), job.live.notify_context.clone());
                    }
                }
            }
            m.insert("@context".into(), job.live.notify_context.clone());
        }
        headers.push(("Content-Type".to_owned(), "application/ld+json".to_owned()));
    } else {
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        if let Some(url) = link_url(&job.live.notify_context) {
            headers.push((
                "Link".to_owned(),
                format!(
                    "<{url}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""
                ),
            ));
        }
    }
    if let Some(t) = &job.tenant_header {
        headers.push(("NGSILD-Tenant".to_owned(), t.clone()));
    }
    for (k, v) in &endpoint.receiver_info {
        headers.push((k.clone(), v.clone()));
    }
    (body.to_string().into_bytes(), headers)
}

async fn http_worker(
    mut rx: mpsc::Receiver<Job>,
    settings: NotifierSettings,
    fetcher: egress::Fetcher,
) {
    while let Some(job) = next_job(&mut rx).await {
        let (body, headers) = payload(&job);
        let uri = job.live.sub.notification.endpoint.uri.clone();
        let mut backoff = settings.backoff;
        let mut ok = false;
        for attempt in 0..=settings.retries {
            match fetcher.post(&uri, &headers, body.clone()).await {
                Ok(_) => {
                    ok = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!(endpoint = %uri, attempt, error = %e, "notification failed");
                    if matches!(
                        e,
                        egress::EgressError::Forbidden { .. }
                            | egress::EgressError::InvalidUrl { .. }
                    ) {
                        break;
                    }
                    if attempt < settings.retries {
                        tokio::time::sleep(backoff).await;
                        backoff = backoff.saturating_mul(2);
                    }
                }
            }
        }
        job.live.record_outcome(crate::ops::now(), ok);
    }
}

/// Starts the matcher (consuming change events) and the counter flusher.
pub(crate) fn spawn(
    service: Arc<SubscriptionService>,
    mut rx: mpsc::UnboundedReceiver<Vec<ChangeEvent>>,
) {
    let weak = Arc::downgrade(&service);
    let every = service.delivery.settings.flush_every;
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            for event in batch {
                service.dispatch(&event).await;
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(service) = weak.upgrade() else { break };
            service.flush().await;
        }
    });
}

impl SubscriptionService {
    fn tenant_header(&self, live: &Live) -> Option<String> {
        (live.tenant != self.default_tenant).then(|| live.tenant.as_str().to_owned())
    }

    /// Matches one change against the tenant's subscriptions and queues notifications.
    pub(crate) async fn dispatch(&self, event: &ChangeEvent) {
        let now = crate::ops::now();
        for live in self.tenant_live(&event.tenant) {
            let sub = &live.sub;
            if !sub.wants_changes(now) {
                continue;
            }
            let Some(trigger) = sub.on_change(event.before.as_ref(), event.after.as_ref()) else {
                continue;
            };
            if !self.take_slot(&live, now) {
                continue;
            }
            let data = sub.notification_entity(
                event.before.as_ref(),
                event.after.as_ref(),
                Some(trigger),
                &live.notify_ctx,
                event.at,
            );
            let data = match event.after.as_ref() {
                Some(after) if sub.notification.join.is_some() => {
                    self.with_linked(&live, data, after).await
                }
                _ => vec![data],
            };
            self.send(&live, data, now);
        }
    }

    /// The notification data of `after` with its linked entities (`notification.join`), fetched
    /// from the subscription's tenant level by level; a failed lookup leaves the link unresolved.
    async fn with_linked(&self, live: &Live, data: Value, after: &Entity) -> Vec<Value> {
        let scope = TenantScope::authorized(live.tenant.clone());
        let broker = self.broker.upgrade();
        let mut fetched: HashMap<String, Arc<Entity>> = HashMap::new();
        let mut absent: HashSet<String> = HashSet::new();
        loop {
            let joined = {
                let lookup = |id: &str| fetched.get(id).map(|e| &**e);
                live.sub
                    .notification_data(data.clone(), after, &lookup, &live.notify_ctx)
            };
            let new: Vec<String> = joined
                .missing
                .into_iter()
                .filter(|id| !absent.contains(id))
                .collect();
            let Some(broker) = broker.as_ref().filter(|_| !new.is_empty()) else {
                return joined.values;
            };
            for id in new {
                match broker.get_shared(&scope, &id).await {
                    Ok(Some(e)) => {
                        fetched.insert(id, e);
                    }
                    Ok(None) => {
                        absent.insert(id);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "notification: looking up a linked entity failed");
                        absent.insert(id);
                    }
                }
            }
        }
    }

    /// Throttling: true (and the slot taken) if a notification may go out now.
    fn take_slot(&self, live: &Live, now: Timestamp) -> bool {
        let Ok(mut s) = live.status.lock() else {
            return false;
        };
        if throttled(live.sub.throttling, s.last_queued, now) {
            return false;
        }
        s.last_queued = Some(now);
        true
    }

    fn send(&self, live: &Arc<Live>, data: Vec<Value>, now: Timestamp) {
        let id = format!("urn:ngsi-ld:Notification:{}", uuid::Uuid::new_v4());
        let body = notification(&id, &live.sub.id, now, data);
        self.delivery.enqueue(Job {
            live: Arc::clone(live),
            body,
            tenant_header: self.tenant_header(live),
        });
    }

    /// One periodic notification: every matching entity of the tenant.
    async fn periodic(&self, live: &Arc<Live>) {
        let now = crate::ops::now();
        if live.sub.state(now) != ngsi_ld::subscription::SubscriptionState::Active {
            return;
        }
        let types: Option<Vec<String>> = live
            .sub
            .entities
            .iter()
            .map(|s| match &s.types {
                ngsi_ld::query::BoolExpr::Atom(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let filter = EntityFilter {
            ids: None,
            types: types.filter(|t| !t.is_empty()),
        };
        let scope = TenantScope::authorized(live.tenant.clone());
        let records = match self.entities.entities(&scope, &filter).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "periodic notification: listing entities failed");
                return;
            }
        };
        let mut data: Vec<Value> = Vec::new();
        for e in records
            .iter()
            .filter_map(|r| crate::ops::from_record(r).ok())
            .filter(|e: &Entity| live.sub.selects(e))
        {
            let one = live
                .sub
                .notification_entity(None, Some(&e), None, &live.notify_ctx, now);
            if live.sub.notification.join.is_some() {
                data.extend(self.with_linked(live, one, &e).await);
            } else {
                data.push(one);
            }
        }
        // `join=flat`: an entity linked from several notified ones (or notified itself) once.
        let mut seen = HashSet::new();
        data.retain(|v| {
            v.get("id")
                .and_then(Value::as_str)
                .is_none_or(|id| seen.insert(id.to_owned()))
        });
        if !data.is_empty() {
            if let Ok(mut s) = live.status.lock() {
                s.last_queued = Some(now);
            }
            self.send(live, data, now);
        }
    }
}

/// Runs a `timeInterval` subscription's notifications until aborted or dropped.
pub(crate) fn spawn_periodic(
    service: Weak<SubscriptionService>,
    live: Weak<Live>,
    period: Duration,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (Some(service), Some(live)) = (service.upgrade(), live.upgrade()) else {
                break;
            };
            service.periodic(&live).await;
        }
    })
    .abort_handle()
}
