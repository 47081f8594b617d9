//! The temporal representation (spec 4.5.7, 5.6.11-5.6.16, 5.7.3-5.7.4) over the
//! [`NgsiTemporalStore`](store::NgsiTemporalStore): recording every entity write as attribute instances, and reading a
//! history back as a temporal [`Entity`] (attribute lists = instances) for `ngsi_ld::temporal`
//! to render.
//!
//! Recording: [`history`] is the one hook in the write path (`Broker::modify`). Inside the
//! read-modify-write callback it compares each entity before and after the change: an attribute
//! instance that is new or differs becomes a new temporal instance (with a fresh `instanceId`,
//! `createdAt`/`modifiedAt` = the write's time, `observedAt` as given); an instance that
//! disappeared becomes a deletion instance (`deletedAt`, value `urn:ngsi-ld:null`); a deleted
//! entity gets `deletedAt`. The history is written in the same transaction as the entities
//! (`NgsiStore::modify_entities_blind`), so a write and its history commit together.

use crate::codec;
use crate::error::{BrokerError, BrokerResult};
use crate::ops::EntityChangeE;
use crate::ops::now;
use ngsi_ld::{Attribute, AttributeValue, Entity, Timestamp};
use std::sync::Arc;
use store::{TemporalEntityRecord, TemporalInstanceRecord, TemporalWrite};

/// Microseconds of a timestamp (the temporal store's unit).
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

/// The timestamp of `us` microseconds.
pub(crate) fn from_micros(us: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// The temporal entity record of `e` at `at`.
pub(crate) fn entity_record(e: &Entity, at: Timestamp, deleted: bool) -> TemporalEntityRecord {
    TemporalEntityRecord {
        id: e.id.clone(),
        types: e.types.clone(),
        scope: e.scope.clone(),
        created_at: micros(e.created_at.unwrap_or(at)),
        modified_at: micros(at),
        deleted_at: deleted.then(|| micros(at)),
    }
}

/// The stored form of one instance of `name` recorded at `at`.
pub(crate) fn instance_record(
    entity_id: &str,
    name: &str,
    attr: &Attribute,
    at: Timestamp,
) -> TemporalInstanceRecord {
    // Encoded straight from `attr` with the instance's own times and without its
    // `instanceId` (kept in its own column): no copy of the attribute per instance.
    let doc = codec::EncodedAttribute::instance(attr, at).to_text();
    instance_record_with(entity_id, name, attr, at, doc)
}

/// [`instance_record`] with its document `doc` already encoded. A new instance's id is
/// minted by the store (instance ids in input are ignored by the parser).
fn instance_record_with(
    entity_id: &str,
    name: &str,
    attr: &Attribute,
    at: Timestamp,
    doc: String,
) -> TemporalInstanceRecord {
    TemporalInstanceRecord {
        entity_id: entity_id.to_owned(),
        attribute: name.to_owned(),
        instance_id: attr.instance_id().map(str::to_owned),
        dataset_id: attr.dataset_id.clone(),
        observed_at: attr.observed_at.map(micros),
        created_at: micros(at),
        modified_at: micros(at),
        deleted_at: attr.deleted_at.map(micros),
        doc,
    }
}

/// A deletion instance for `old` (an instance that disappeared at `at`).
fn deletion(entity_id: &str, name: &str, old: &Attribute, at: Timestamp) -> TemporalInstanceRecord {
    let null = serde_json::Value::String(ngsi_ld::parse::NGSI_LD_NULL.to_owned());
    let value = match old.kind() {
        ngsi_ld::AttributeKind::Relationship => {
            AttributeValue::Relationship(vec![ngsi_ld::parse::NGSI_LD_NULL.to_owned()])
        }
        ngsi_ld::AttributeKind::LanguageProperty => {
            let mut m = indexmap::IndexMap::new();
            m.insert("@none".to_owned(), null);
            AttributeValue::LanguageProperty(m)
        }
        ngsi_ld::AttributeKind::JsonProperty => AttributeValue::JsonProperty(null),
        ngsi_ld::AttributeKind::VocabProperty => {
            AttributeValue::VocabProperty(vec![ngsi_ld::parse::NGSI_LD_NULL.to_owned()])
        }
        _ => AttributeValue::Property(null),
    };
    let mut a = Attribute::new(value);
    a.dataset_id = old.dataset_id.clone();
    a.deleted_at = Some(at);
    instance_record(entity_id, name, &a, at)
}

/// Appends the history of one entity change to `w`; `encoded` is the new entity's text, if
/// the change puts one (its instances are copied from it where they are the same bytes).
fn diff(
    w: &mut TemporalWrite,
    id: &str,
    old: Option<&Entity>,
    change: &EntityChangeE,
    encoded: Option<&codec::EncodedEntity>,
    at: Timestamp,
) {
    match (old, change) {
        (_, EntityChangeE::Keep) | (None, EntityChangeE::Delete) => {}
        (Some(old), EntityChangeE::Delete) => {
            w.entities.push(entity_record(old, at, true));
        }
        (old, EntityChangeE::Put(new)) => {
            let when = new.modified_at.unwrap_or(at);
            w.entities.push(entity_record(new, when, false));
            // Instances are numbered as the entity's encoding lists them.
            let mut n = 0;
            for (name, instances) in &new.attributes {
                let before = old.and_then(|o| o.attributes.get(name));
                for inst in instances {
                    let prev =
                        before.and_then(|l| l.iter().find(|a| a.dataset_id == inst.dataset_id));
                    if prev != Some(inst) {
                        let t = inst.modified_at.unwrap_or(when);
                        let doc = match encoded {
                            Some(encoded) => encoded.instance_text(n, inst, t),
                            None => codec::EncodedAttribute::instance(inst, t).to_text(),
                        };
                        w.instances
                            .push(instance_record_with(id, name, inst, t, doc));
                    }
                    n += 1;
                }
            }
            if let Some(old) = old {
                // The scope's evolution is kept as the pseudo-attribute `scope` (a deletion
                // instance with an empty value when the scope is removed).
                if old.scope != new.scope {
                    let mut a = Attribute::property(serde_json::json!(new.scope));
                    if new.scope.is_empty() {
                        a.deleted_at = Some(when);
                    }
                    w.instances.push(instance_record(id, "scope", &a, when));
                }
                for (name, instances) in &old.attributes {
                    let after = new.attributes.get(name);
                    for inst in instances {
                        if !after.is_some_and(|l| l.iter().any(|a| a.dataset_id == inst.dataset_id))
                        {
                            w.instances.push(deletion(id, name, inst, when));
                        }
                    }
                }
            }
        }
    }
}

/// The history of one `Broker::modify` call: `changes` of `ids` against the entities as they
/// were (`old`), committed with the entity write itself.
pub(crate) fn history(
    ids: &[String],
    old: &[Option<Arc<Entity>>],
    changes: &[EntityChangeE],
    encoded: &[Option<codec::EncodedEntity>],
) -> TemporalWrite {
    let at = now();
    // Sized up front: a batch's records are large (a thousand entities' instances are about
    // half a megabyte), and growing them by doubling took fresh, zeroed pages from the kernel
    // at every step (found by profiling batch upserts).
    let instances = changes
        .iter()
        .map(|c| match c {
            EntityChangeE::Put(e) => e.attributes.values().map(Vec::len).sum(),
            _ => 0,
        })
        .sum();
    let mut all = TemporalWrite {
        entities: Vec::with_capacity(changes.len()),
        instances: Vec::with_capacity(instances),
    };
    for (((id, before), change), encoded) in ids.iter().zip(old).zip(changes).zip(encoded) {
        diff(
            &mut all,
            id,
            before.as_deref(),
            change,
            encoded.as_ref(),
            at,
        );
    }
    all
}

/// A history read back as a temporal entity: attribute lists hold the instances (oldest first),
/// each with its `instanceId` and times.
pub(crate) fn temporal_entity(
    rec: &TemporalEntityRecord,
    instances: Vec<TemporalInstanceRecord>,
) -> BrokerResult<Entity> {
    let mut e = Entity {
        id: rec.id.clone(),
        types: rec.types.clone(),
        scope: rec.scope.clone(),
        created_at: Some(from_micros(rec.created_at)),
        modified_at: Some(from_micros(rec.modified_at)),
        deleted_at: rec.deleted_at.map(from_micros),
        ..Entity::default()
    };
    for i in instances {
        let name = i.instance_id.as_deref().unwrap_or("without an id");
        let value: serde_json::Value = serde_json::from_str(&i.doc).map_err(|err| {
            BrokerError::Store(store::StoreError::backend(format!(
                "stored instance {name} does not decode: {err}"
            )))
        })?;
        let mut a = codec::decode_attribute(&value).ok_or_else(|| {
            BrokerError::Store(store::StoreError::backend(format!(
                "stored instance {name} does not decode"
            )))
        })?;
        a.set_instance_id(i.instance_id);
        a.created_at = Some(from_micros(i.created_at));
        a.modified_at = Some(from_micros(i.modified_at));
        a.deleted_at = i.deleted_at.map(from_micros);
        e.attributes.entry(i.attribute).or_default().push(a);
    }
    Ok(e)
}
