//! The NGSI-LD information model (spec clause 4.5): entities, attributes of each kind, sub-attributes,
//! multi-attribute instances keyed by `datasetId`, and system attributes.
//!
//! Design decisions:
//! - **Names are stored expanded.** Entity types, attribute and sub-attribute names are full IRIs, so
//!   two requests with different `@context`s that mean the same thing store the same thing; rendering
//!   compacts them against the caller's context. Reserved members (`value`, `object`, `observedAt`, ...)
//!   belong to the protected core context and are kept as typed fields, not as map entries.
//! - **Values are stored verbatim.** Structured Property values, JSON values and typed literals
//!   (`{"@type": "DateTime", "@value": ...}`) are kept as the client sent them; member names inside a
//!   value are not JSON-LD-expanded. This keeps writes cheap and round-trips exact.
//! - **Attribute order is insertion order** ([`IndexMap`]), so rendering is stable and matches input.
//! - **Multi-attributes**: every attribute name maps to a non-empty list of instances, at most one
//!   without `datasetId` (the default instance) and at most one per `datasetId`.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

/// A map keyed by expanded names, in insertion order. Its keys hash with foldhash, seeded at
/// random per process as hashbrown's default hasher is: SipHash, the standard library's, was a
/// few percent of every entity write (each attribute is looked up several times on its way in).
pub type NameMap<V> = IndexMap<String, V, foldhash::fast::RandomState>;
use serde_json::Value;

/// Instants in NGSI-LD are UTC date-times.
pub type Timestamp = DateTime<Utc>;

/// The IRI of the `location` GeoProperty.
pub const LOCATION: &str = "https://uri.etsi.org/ngsi-ld/location";
/// The IRI of the `observationSpace` GeoProperty.
pub const OBSERVATION_SPACE: &str = "https://uri.etsi.org/ngsi-ld/observationSpace";
/// The IRI of the `operationSpace` GeoProperty.
pub const OPERATION_SPACE: &str = "https://uri.etsi.org/ngsi-ld/operationSpace";

/// An NGSI-LD entity with expanded names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entity {
    /// The entity id, an absolute URI.
    pub id: String,
    /// Expanded entity type IRIs (at least one for a valid entity; 1.5+ allows several).
    pub types: Vec<String>,
    /// Hierarchical scopes (`/Madrid/Gardens`), if any.
    pub scope: Vec<String>,
    /// Attributes by expanded name; each list holds the instances (see the module docs).
    pub attributes: NameMap<Vec<Attribute>>,
    /// System attribute `createdAt` (set by the store).
    pub created_at: Option<Timestamp>,
    /// System attribute `modifiedAt` (set by the store).
    pub modified_at: Option<Timestamp>,
    /// System attribute `deletedAt` (temporal representation of deleted entities).
    pub deleted_at: Option<Timestamp>,
}

impl Entity {
    /// An entity with `id` and one expanded `type`, no attributes.
    pub fn new(id: impl Into<String>, entity_type: impl Into<String>) -> Self {
        Entity {
            id: id.into(),
            types: vec![entity_type.into()],
            ..Entity::default()
        }
    }

    /// The instances of the attribute with expanded name `name`.
    pub fn attribute(&self, name: &str) -> Option<&[Attribute]> {
        self.attributes.get(name).map(Vec::as_slice)
    }

    /// The default instance (no `datasetId`) of attribute `name`, else its first instance.
    pub fn first_attribute(&self, name: &str) -> Option<&Attribute> {
        let instances = self.attributes.get(name)?;
        instances
            .iter()
            .find(|a| a.dataset_id.is_none())
            .or_else(|| instances.first())
    }

    /// Add or replace the instance of `name` with the same `datasetId` as `attr`.
    /// Returns the replaced instance, if any.
    pub fn upsert_attribute(
        &mut self,
        name: impl Into<String>,
        attr: Attribute,
    ) -> Option<Attribute> {
        let instances = self.attributes.entry(name.into()).or_default();
        match instances
            .iter_mut()
            .find(|a| a.dataset_id == attr.dataset_id)
        {
            Some(slot) => Some(std::mem::replace(slot, attr)),
            None => {
                instances.push(attr);
                None
            }
        }
    }

    /// Remove the instance of `name` with `dataset_id` (or all instances if `all`).
    /// Returns true if something was removed.
    pub fn remove_attribute(&mut self, name: &str, dataset_id: Option<&str>, all: bool) -> bool {
        let Some(instances) = self.attributes.get_mut(name) else {
            return false;
        };
        let before = instances.len();
        if all {
            instances.clear();
        } else {
            instances.retain(|a| a.dataset_id.as_deref() != dataset_id);
        }
        let removed = instances.len() != before;
        if instances.is_empty() {
            self.attributes.shift_remove(name);
        }
        removed
    }

    /// The GeoJSON geometry of GeoProperty `name` (default instance), if it has one.
    pub fn geometry(&self, name: &str) -> Option<&Value> {
        match &self.first_attribute(name)?.value {
            AttributeValue::GeoProperty(g) => Some(g),
            _ => None,
        }
    }

    /// True if the entity has type `expanded_type`.
    pub fn has_type(&self, expanded_type: &str) -> bool {
        self.types.iter().any(|t| t == expanded_type)
    }

    /// Number of attribute instances (all attributes, all datasets).
    pub fn instance_count(&self) -> usize {
        self.attributes.values().map(Vec::len).sum()
    }
}

/// The attribute kinds of NGSI-LD (the `type` member in normalized form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttributeKind {
    /// `Property`.
    Property,
    /// `Relationship`.
    Relationship,
    /// `GeoProperty`.
    GeoProperty,
    /// `LanguageProperty` (1.4+).
    LanguageProperty,
    /// `VocabProperty` (1.6+).
    VocabProperty,
    /// `JsonProperty` (1.7+).
    JsonProperty,
    /// `ListProperty` (1.8+).
    ListProperty,
    /// `ListRelationship` (1.8+).
    ListRelationship,
}

impl AttributeKind {
    /// Every kind.
    pub const ALL: [AttributeKind; 8] = [
        AttributeKind::Property,
        AttributeKind::Relationship,
        AttributeKind::GeoProperty,
        AttributeKind::LanguageProperty,
        AttributeKind::VocabProperty,
        AttributeKind::JsonProperty,
        AttributeKind::ListProperty,
        AttributeKind::ListRelationship,
    ];

    /// The compact name (`"Property"`, ...), as written in the `type` member.
    pub fn name(self) -> &'static str {
        match self {
            AttributeKind::Property => "Property",
            AttributeKind::Relationship => "Relationship",
            AttributeKind::GeoProperty => "GeoProperty",
            AttributeKind::LanguageProperty => "LanguageProperty",
            AttributeKind::VocabProperty => "VocabProperty",
            AttributeKind::JsonProperty => "JsonProperty",
            AttributeKind::ListProperty => "ListProperty",
            AttributeKind::ListRelationship => "ListRelationship",
        }
    }

    /// The kind named `name` (compact name or full `https://uri.etsi.org/ngsi-ld/...` IRI).
    pub fn from_name(name: &str) -> Option<AttributeKind> {
        let short = name
            .strip_prefix(crate::context::NGSI_LD_NS)
            .unwrap_or(name);
        AttributeKind::ALL.into_iter().find(|k| k.name() == short)
    }

    /// The member that carries the value in normalized form (`value`, `object`, `languageMap`, ...).
    pub fn value_member(self) -> &'static str {
        match self {
            AttributeKind::Property | AttributeKind::GeoProperty => "value",
            AttributeKind::Relationship => "object",
            AttributeKind::LanguageProperty => "languageMap",
            AttributeKind::VocabProperty => "vocab",
            AttributeKind::JsonProperty => "json",
            AttributeKind::ListProperty => "valueList",
            AttributeKind::ListRelationship => "objectList",
        }
    }

    /// The member that carries the values in the simplified temporal representation.
    pub fn temporal_values_member(self) -> &'static str {
        match self {
            AttributeKind::Property | AttributeKind::GeoProperty => "values",
            AttributeKind::Relationship => "objects",
            AttributeKind::LanguageProperty => "languageMaps",
            AttributeKind::VocabProperty => "vocabs",
            AttributeKind::JsonProperty => "jsons",
            AttributeKind::ListProperty => "valueLists",
            AttributeKind::ListRelationship => "objectsLists",
        }
    }
}

/// The value of an attribute instance, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// Any JSON value except `null` (numbers, strings, booleans, arrays, objects, typed literals).
    Property(Value),
    /// The target entity id(s) (URIs); usually one, an array in the input gives several.
    Relationship(Vec<String>),
    /// A GeoJSON geometry object (validated on parse).
    GeoProperty(Value),
    /// Language tag -> string (or array of strings). The tag `@none` holds the untagged value.
    LanguageProperty(IndexMap<String, Value>),
    /// Expanded vocabulary IRIs (one or more).
    VocabProperty(Vec<String>),
    /// An opaque JSON value (never expanded or interpreted).
    JsonProperty(Value),
    /// An ordered list of values.
    ListProperty(Vec<Value>),
    /// An ordered list of entity ids.
    ListRelationship(Vec<String>),
}

impl AttributeValue {
    /// The kind of this value.
    pub fn kind(&self) -> AttributeKind {
        match self {
            AttributeValue::Property(_) => AttributeKind::Property,
            AttributeValue::Relationship(_) => AttributeKind::Relationship,
            AttributeValue::GeoProperty(_) => AttributeKind::GeoProperty,
            AttributeValue::LanguageProperty(_) => AttributeKind::LanguageProperty,
            AttributeValue::VocabProperty(_) => AttributeKind::VocabProperty,
            AttributeValue::JsonProperty(_) => AttributeKind::JsonProperty,
            AttributeValue::ListProperty(_) => AttributeKind::ListProperty,
            AttributeValue::ListRelationship(_) => AttributeKind::ListRelationship,
        }
    }
}

/// One attribute instance (or a sub-attribute).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// The value and, through it, the kind.
    pub value: AttributeValue,
    /// `datasetId` (a URI) distinguishing multi-attribute instances; `None` is the default instance.
    pub dataset_id: Option<String>,
    /// `observedAt`.
    pub observed_at: Option<Timestamp>,
    /// `unitCode`, `objectType`, `lang` and `instanceId`, which few attributes have: boxed, so
    /// that the others (the broker keeps every attribute in memory) do not carry 96 bytes of
    /// empty fields. `None` exactly when all four are empty (the setters keep it so, which
    /// lets equality compare it as a plain field).
    extra: Option<Box<AttributeExtra>>,
    /// System attribute `createdAt`.
    pub created_at: Option<Timestamp>,
    /// System attribute `modifiedAt`.
    pub modified_at: Option<Timestamp>,
    /// System attribute `deletedAt` (temporal representation).
    pub deleted_at: Option<Timestamp>,
    /// Sub-attributes by expanded name (properties of properties, relationships of properties, ...).
    pub sub_attributes: SubAttributes,
}

/// The rarely set members of an [`Attribute`].
#[derive(Debug, Clone, PartialEq, Default)]
struct AttributeExtra {
    /// `unitCode` (UN/CEFACT code).
    unit_code: Option<String>,
    /// Expanded entity type(s) of a Relationship's target (`objectType`, 1.8+).
    object_type: Vec<String>,
    /// `lang` of a Property produced from a LanguageProperty by `lang` filtering (output only).
    lang: Option<String>,
    /// Temporal instance id (a URI) in the temporal representation.
    instance_id: Option<String>,
}

impl AttributeExtra {
    fn is_empty(&self) -> bool {
        self.unit_code.is_none()
            && self.object_type.is_empty()
            && self.lang.is_none()
            && self.instance_id.is_none()
    }
}

/// The sub-attributes of an attribute instance by expanded name: an [`IndexMap`] to read and
/// write (through `Deref`), stored behind a pointer that stays null while there are none. Most
/// attributes have none, and the broker keeps every entity in memory: an empty map in place
/// took 72 of an attribute's 320 bytes. A map emptied by removals may stay allocated; it still
/// compares equal to none.
#[derive(Clone, Default)]
pub struct SubAttributes(Option<Box<NameMap<Attribute>>>);

/// What an attribute without sub-attributes reads.
static NO_SUB_ATTRIBUTES: std::sync::LazyLock<NameMap<Attribute>> =
    std::sync::LazyLock::new(NameMap::default);

impl SubAttributes {
    /// Each sub-attribute, mutably, without allocating a map when there is none (`DerefMut`
    /// would).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Attribute> {
        self.0.iter_mut().flat_map(|m| m.values_mut())
    }

    /// Each (name, sub-attribute), mutably, without allocating a map when there is none.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Attribute)> {
        self.0.iter_mut().flat_map(|m| m.iter_mut())
    }
}

impl std::ops::Deref for SubAttributes {
    type Target = NameMap<Attribute>;

    fn deref(&self) -> &Self::Target {
        self.0.as_deref().unwrap_or(&NO_SUB_ATTRIBUTES)
    }
}

impl std::ops::DerefMut for SubAttributes {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.get_or_insert_with(Box::default)
    }
}

impl PartialEq for SubAttributes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for SubAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl From<NameMap<Attribute>> for SubAttributes {
    fn from(map: NameMap<Attribute>) -> Self {
        SubAttributes((!map.is_empty()).then(|| Box::new(map)))
    }
}

impl FromIterator<(String, Attribute)> for SubAttributes {
    fn from_iter<I: IntoIterator<Item = (String, Attribute)>>(iter: I) -> Self {
        NameMap::from_iter(iter).into()
    }
}

impl<'a> IntoIterator for &'a SubAttributes {
    type Item = (&'a String, &'a Attribute);
    type IntoIter = indexmap::map::Iter<'a, String, Attribute>;

    fn into_iter(self) -> Self::IntoIter {
        (**self).iter()
    }
}

impl IntoIterator for SubAttributes {
    type Item = (String, Attribute);
    type IntoIter = indexmap::map::IntoIter<String, Attribute>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.map(|m| *m).unwrap_or_default().into_iter()
    }
}

impl Attribute {
    /// An instance with `value` and nothing else.
    pub fn new(value: AttributeValue) -> Self {
        Attribute {
            value,
            dataset_id: None,
            observed_at: None,
            extra: None,
            created_at: None,
            modified_at: None,
            deleted_at: None,
            sub_attributes: SubAttributes::default(),
        }
    }

    /// A Property with `value`.
    pub fn property(value: Value) -> Self {
        Attribute::new(AttributeValue::Property(value))
    }

    /// A Relationship to `object`.
    pub fn relationship(object: impl Into<String>) -> Self {
        Attribute::new(AttributeValue::Relationship(vec![object.into()]))
    }

    /// A GeoProperty with GeoJSON `geometry`.
    pub fn geo(geometry: Value) -> Self {
        Attribute::new(AttributeValue::GeoProperty(geometry))
    }

    /// The kind of this instance.
    pub fn kind(&self) -> AttributeKind {
        self.value.kind()
    }

    /// Builder: set `datasetId`.
    pub fn with_dataset_id(mut self, dataset_id: impl Into<String>) -> Self {
        self.dataset_id = Some(dataset_id.into());
        self
    }

    /// Builder: set `observedAt`.
    pub fn with_observed_at(mut self, at: Timestamp) -> Self {
        self.observed_at = Some(at);
        self
    }

    /// Builder: set `unitCode`.
    pub fn with_unit_code(mut self, unit: impl Into<String>) -> Self {
        self.set_unit_code(Some(unit.into()));
        self
    }

    /// Changes the rarely set members through `change`, keeping `extra` `None` when all are
    /// empty. `clearing`: the change only empties a member (nothing to do without a box; a
    /// decoder clears every absent member, and would otherwise allocate a box each time).
    fn change_extra(&mut self, clearing: bool, change: impl FnOnce(&mut AttributeExtra)) {
        if clearing && self.extra.is_none() {
            return;
        }
        let extra = self.extra.get_or_insert_with(Box::default);
        change(extra);
        if extra.is_empty() {
            self.extra = None;
        }
    }

    /// `unitCode` (UN/CEFACT code).
    pub fn unit_code(&self) -> Option<&str> {
        self.extra.as_ref()?.unit_code.as_deref()
    }

    /// Sets or clears `unitCode`.
    pub fn set_unit_code(&mut self, unit: Option<String>) {
        self.change_extra(unit.is_none(), |e| e.unit_code = unit);
    }

    /// Expanded entity type(s) of a Relationship's target (`objectType`, 1.8+).
    pub fn object_type(&self) -> &[String] {
        self.extra
            .as_ref()
            .map_or(&[], |e| e.object_type.as_slice())
    }

    /// Sets (or with an empty list clears) `objectType`.
    pub fn set_object_type(&mut self, types: Vec<String>) {
        self.change_extra(types.is_empty(), |e| e.object_type = types);
    }

    /// `lang` of a Property produced from a LanguageProperty by `lang` filtering (output only).
    pub fn lang(&self) -> Option<&str> {
        self.extra.as_ref()?.lang.as_deref()
    }

    /// Sets or clears `lang`.
    pub fn set_lang(&mut self, lang: Option<String>) {
        self.change_extra(lang.is_none(), |e| e.lang = lang);
    }

    /// Temporal instance id (a URI) in the temporal representation.
    pub fn instance_id(&self) -> Option<&str> {
        self.extra.as_ref()?.instance_id.as_deref()
    }

    /// Sets or clears the temporal instance id.
    pub fn set_instance_id(&mut self, id: Option<String>) {
        self.change_extra(id.is_none(), |e| e.instance_id = id);
    }

    /// Builder: add a sub-attribute with expanded name `name`.
    pub fn with_sub_attribute(mut self, name: impl Into<String>, attr: Attribute) -> Self {
        self.sub_attributes.insert(name.into(), attr);
        self
    }

    /// Set `createdAt` (if unset) and `modifiedAt` on this instance and all sub-attributes, as a store
    /// does on write.
    pub fn stamp(&mut self, now: Timestamp) {
        if self.created_at.is_none() {
            self.created_at = Some(now);
        }
        self.modified_at = Some(now);
        for sub in self.sub_attributes.values_mut() {
            sub.stamp(now);
        }
    }
}

impl Entity {
    /// Set `createdAt` (if unset) and `modifiedAt` on the entity and every attribute instance.
    pub fn stamp(&mut self, now: Timestamp) {
        if self.created_at.is_none() {
            self.created_at = Some(now);
        }
        self.modified_at = Some(now);
        for attr in self.attributes.values_mut().flatten() {
            attr.stamp(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_attribute_instances_are_keyed_by_dataset_id() {
        let mut e = Entity::new("urn:a", "T");
        assert!(
            e.upsert_attribute("p", Attribute::property(json!(1)))
                .is_none()
        );
        assert!(
            e.upsert_attribute("p", Attribute::property(json!(2)).with_dataset_id("urn:d1"))
                .is_none()
        );
        let replaced = e.upsert_attribute("p", Attribute::property(json!(3)));
        assert_eq!(
            replaced.map(|a| a.value),
            Some(AttributeValue::Property(json!(1)))
        );
        assert_eq!(e.attribute("p").map(<[_]>::len), Some(2));
        assert!(e.remove_attribute("p", Some("urn:d1"), false));
        assert_eq!(
            e.first_attribute("p").map(|a| &a.value),
            Some(&AttributeValue::Property(json!(3)))
        );
        assert!(e.remove_attribute("p", None, false));
        assert!(e.attributes.is_empty());
        assert!(!e.remove_attribute("p", None, true));
    }

    /// An attribute without sub-attributes holds no map, also after being stamped, and a map
    /// emptied by removals equals none.
    #[test]
    fn sub_attributes_take_no_map_until_one_is_added() {
        // The broker keeps every attribute of every entity in memory.
        assert!(
            std::mem::size_of::<Attribute>() <= 168,
            "{}",
            std::mem::size_of::<Attribute>()
        );
        let mut a = Attribute::property(json!(1));
        a.stamp(chrono::DateTime::UNIX_EPOCH);
        assert!(a.sub_attributes.0.is_none());
        assert!(a.sub_attributes.is_empty());
        let plain = a.clone();
        a.sub_attributes
            .insert("urn:s".into(), Attribute::property(json!(2)));
        assert!(a.sub_attributes.0.is_some());
        assert_ne!(a, plain);
        a.stamp(chrono::DateTime::UNIX_EPOCH);
        assert!(a.sub_attributes["urn:s"].modified_at.is_some());
        a.sub_attributes.shift_remove("urn:s");
        assert_eq!(a, plain);
        let collected: SubAttributes = [("urn:t".to_owned(), Attribute::property(json!(3)))]
            .into_iter()
            .collect();
        assert_eq!(collected.len(), 1);
        assert_eq!(
            collected.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["urn:t"]
        );
        assert!(SubAttributes::from(NameMap::default()).0.is_none());
    }

    /// The rarely set members live in one box, which goes once all of them are cleared, so an
    /// attribute that had one set and cleared again equals one that never had it.
    #[test]
    fn rare_members_box_comes_and_goes() {
        let plain = Attribute::relationship("urn:ngsi-ld:T:1");
        let mut a = plain.clone();
        a.set_unit_code(Some("KMH".into()));
        assert_eq!(a.unit_code(), Some("KMH"));
        assert_ne!(a, plain);
        a.set_object_type(vec!["urn:T".into()]);
        a.set_unit_code(None);
        assert_eq!(a.object_type(), ["urn:T"]);
        assert_ne!(a, plain);
        a.set_instance_id(Some("urn:i".into()));
        a.set_lang(Some("en".into()));
        a.set_object_type(Vec::new());
        assert_eq!((a.instance_id(), a.lang()), (Some("urn:i"), Some("en")));
        a.set_instance_id(None);
        a.set_lang(None);
        assert!(a.extra.is_none());
        assert_eq!(a, plain);
    }

    #[test]
    fn kinds_round_trip_through_names() {
        for k in AttributeKind::ALL {
            assert_eq!(AttributeKind::from_name(k.name()), Some(k));
            assert_eq!(
                AttributeKind::from_name(&format!("https://uri.etsi.org/ngsi-ld/{}", k.name())),
                Some(k)
            );
        }
        assert_eq!(AttributeKind::from_name("Foo"), None);
    }
}
