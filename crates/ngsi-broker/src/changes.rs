//! Change events from the write path: after a write commits, the broker publishes each
//! entity's state before and after it on a channel that the subscription notifier consumes.
//!
//! The write path never waits for the notifier: events go on an unbounded channel, and
//! nothing is captured at all while no subscription exists ([`ChangeSink::is_watching`]), so
//! brokers without subscriptions pay one atomic load per write.

use crate::Broker;
use crate::ops::EntityChangeE;
use ngsi_ld::{Entity, Timestamp};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use store::TenantId;
use tokio::sync::mpsc;

/// One committed change of one entity.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    /// The tenant it happened in.
    pub tenant: TenantId,
    /// The entity before the write (`None`: it was created).
    pub before: Option<Entity>,
    /// The entity after the write (`None`: it was deleted).
    pub after: Option<Entity>,
    /// When the write was acknowledged.
    pub at: Timestamp,
}

/// The sending side, installed on the [`Broker`] by the notifier.
#[derive(Clone, Debug)]
pub struct ChangeSink {
    tx: mpsc::UnboundedSender<Vec<ChangeEvent>>,
    watching: Arc<AtomicUsize>,
}

impl ChangeSink {
    /// A sink and the receiver of its batches (one batch per committed write).
    pub fn channel() -> (ChangeSink, mpsc::UnboundedReceiver<Vec<ChangeEvent>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            ChangeSink {
                tx,
                watching: Arc::new(AtomicUsize::new(0)),
            },
            rx,
        )
    }

    /// True while someone wants changes (at least one subscription exists).
    pub fn is_watching(&self) -> bool {
        self.watching.load(Ordering::Acquire) > 0
    }

    /// Sets how many subscriptions watch changes.
    pub fn set_watchers(&self, n: usize) {
        self.watching.store(n, Ordering::Release);
    }

    fn send(&self, events: Vec<ChangeEvent>) {
        if !events.is_empty() {
            // A closed receiver means the notifier stopped; writes go on regardless.
            let _ = self.tx.send(events);
        }
    }
}

/// An entity before and after a write.
pub(crate) type Pair = (Option<Entity>, Option<Entity>);

/// The (before, after) pairs of a write's changes; `Keep`s and deletions of absent
/// entities are no change.
pub(crate) fn pairs(before: &[Option<Arc<Entity>>], changes: &[EntityChangeE]) -> Vec<Pair> {
    before
        .iter()
        .zip(changes)
        .filter_map(|(b, c)| {
            let b = b.as_deref().cloned();
            match c {
                EntityChangeE::Keep => None,
                EntityChangeE::Delete => b.map(|b| (Some(b), None)),
                EntityChangeE::Put(e) => Some((b, Some((**e).clone()))),
            }
        })
        .collect()
}

impl Broker {
    /// Installs the sink change events go to (once; later calls are ignored).
    pub fn set_change_sink(&self, sink: ChangeSink) {
        let _ = self.changes.set(sink);
    }

    /// The sink, if one is installed and watching.
    pub(crate) fn watching_sink(&self) -> Option<ChangeSink> {
        self.changes.get().filter(|s| s.is_watching()).cloned()
    }

    /// Publishes committed changes.
    pub(crate) fn publish(&self, sink: &ChangeSink, tenant: &TenantId, pairs: Vec<Pair>) {
        let at = crate::ops::now();
        sink.send(
            pairs
                .into_iter()
                .map(|(before, after)| ChangeEvent {
                    tenant: tenant.clone(),
                    before,
                    after,
                    at,
                })
                .collect(),
        );
    }
}
