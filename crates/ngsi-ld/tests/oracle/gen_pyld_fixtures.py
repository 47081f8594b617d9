#!/usr/bin/env python3
"""Generate the JSON-LD oracle fixtures for `tests/jsonld_oracle.rs` with pyld (PyPI `pyld==3.3.0`).

Run from the crate directory:
    python3 -m venv /tmp/pyld-venv && /tmp/pyld-venv/bin/pip install pyld==3.3.0
    /tmp/pyld-venv/bin/python tests/oracle/gen_pyld_fixtures.py

Works offline: every @context URL resolves through LOCAL below (the crate's pinned contexts and the
Smart Data Models fixtures). For each input document it records, with the same effective context our
crate uses (the document's @context, plus the v1.9 core appended unless a core context is already
referenced), pyld's term expansion (`_expand_iri`, vocab=True) and term compaction (`_compact_iri`,
vocab=True) of every name in the document and of probe strings, and pyld's full `expand` output.
"""
import glob
import json
import os
import sys

from pyld import jsonld

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(os.path.dirname(HERE))
CTX = os.path.join(CRATE, "contexts")
SDM = os.path.join(CRATE, "tests", "fixtures", "sdm")
OUT = os.path.join(CRATE, "tests", "fixtures", "pyld")

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{}.jsonld"
LOCAL = {
    CORE.format("1.6"): os.path.join(CTX, "ngsi-ld-core-context-v1.6.jsonld"),
    CORE.format("1.8"): os.path.join(CTX, "ngsi-ld-core-context-v1.8.jsonld"),
    CORE.format("1.9"): os.path.join(CTX, "ngsi-ld-core-context-v1.9.jsonld"),
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld": os.path.join(CTX, "ngsi-ld-core-context-v1.9.jsonld"),
    "https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/ngsi-ld-test-suite.jsonld": os.path.join(CTX, "ngsi-ld-test-suite.jsonld"),
    "https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/ngsi-ld-test-suite-compound.jsonld": os.path.join(CTX, "ngsi-ld-test-suite-compound.jsonld"),
}
for repo in ["dataModel.Transportation", "dataModel.Device", "dataModel.Alert"]:
    path = os.path.join(SDM, "_contexts", repo + ".context.jsonld")
    for url in [
        f"https://raw.githubusercontent.com/smart-data-models/{repo}/master/context.jsonld",
        f"https://smart-data-models.github.io/{repo}/context.jsonld",
    ]:
        LOCAL[url] = path
# The v1.9 core context's scoped `ngsildproof` context references this; JSON-LD validates scoped
# contexts eagerly, so an empty stand-in is served (it defines nothing used here).
STUBS = {"https://w3id.org/security/data-integrity/v2": {"@context": {}}}


def load(url, options=None):
    if url in STUBS:
        doc = STUBS[url]
    elif url in LOCAL:
        with open(LOCAL[url], encoding="utf-8") as f:
            doc = json.load(f)
    else:
        raise jsonld.JsonLdError("offline: " + url, "jsonld.LoadDocumentError", code="loading document failed")
    return {"contextUrl": None, "documentUrl": url, "document": doc}


def names_core(ctx, depth=0):
    """True if the context (or a remote context it references) names a core context."""
    items = ctx if isinstance(ctx, list) else [ctx]
    for item in items:
        if isinstance(item, str):
            if item.startswith("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context"):
                return True
            if depth < 4 and item in LOCAL and names_core(load(item)["document"]["@context"], depth + 1):
                return True
    return False


def effective_context(user):
    if user is None:
        return [CORE.format("1.9")]
    items = user if isinstance(user, list) else [user]
    return items if names_core(items) else items + [CORE.format("1.9")]


def collect_names(value, out, top=True):
    """Attribute and sub-attribute names (keys) of an NGSI-LD document, and type names."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("@context",):
                continue
            out.add(k)
            if top and k == "type":
                for t in (v if isinstance(v, list) else [v]):
                    if isinstance(t, str):
                        out.add(t)
            if isinstance(v, (dict, list)) and k not in ("value", "json", "languageMap", "coordinates"):
                collect_names(v, out, top=False)
    elif isinstance(value, list):
        for v in value:
            collect_names(v, out, top=False)


PROBES = [
    "unknownTerm", "ngsi-ld:foo", "geojson:Point", "https://example.org/x", "urn:ngsi-ld:x", "schema:name",
    "Property", "Relationship", "GeoProperty", "location", "observedAt", "datasetId", "name", "description",
    "Vehicle", "speed", "brandName", "refRoad", "dateObserved", "@type", "@id",
]
IRI_PROBES = [
    "https://uri.etsi.org/ngsi-ld/default-context/anything",
    "https://uri.etsi.org/ngsi-ld/location",
    "https://uri.etsi.org/ngsi-ld/hasValue",
    "https://uri.etsi.org/ngsi-ld/somethingNew",
    "https://purl.org/geojson/vocab#Point",
    "https://smartdatamodels.org/name",
    "https://smartdatamodels.org/dataModel.Transportation/speed",
    "https://schema.org/name",
    "https://example.org/unmapped",
    "https://ngsi-ld-test-suite/context#speed",
]


def oracle(name, doc):
    proc = jsonld.JsonLdProcessor()
    options = {"documentLoader": load, "base": ""}
    ctx = effective_context(doc.get("@context"))
    active = proc.process_context(proc._get_initial_context(options), ctx, options)
    names = set(PROBES)
    collect_names({k: v for k, v in doc.items() if k != "@context"}, names)
    terms = {n: proc._expand_iri(active, n, vocab=True) for n in sorted(names)}
    iris = sorted({v for v in terms.values() if isinstance(v, str) and not v.startswith("@")} | set(IRI_PROBES))
    compact = {i: proc._compact_iri(active, i, vocab=True) for i in iris}
    body = {k: v for k, v in doc.items() if k != "@context"}
    body["@context"] = ctx
    expanded = jsonld.expand(body, options)
    return {"name": name, "context": ctx, "document": doc, "terms": terms, "compact": compact, "expanded": expanded}


def main():
    os.makedirs(OUT, exist_ok=True)
    inputs = []
    for path in sorted(glob.glob(os.path.join(SDM, "*", "example*.jsonld"))):
        model = os.path.basename(os.path.dirname(path))
        kind = "normalized" if path.endswith("example-normalized.jsonld") else "keyvalues"
        with open(path, encoding="utf-8") as f:
            inputs.append((f"sdm-{model}-{kind}", json.load(f)))
    suite = LOCAL["https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/ngsi-ld-test-suite-compound.jsonld"]
    compound_url = [u for u, p in LOCAL.items() if p == suite][0]
    inputs.append(("suite-vehicle", {
        "id": "urn:ngsi-ld:Vehicle:test", "type": "Vehicle",
        "brandName": {"type": "Property", "value": "Mercedes"},
        "speed": {"type": "Property", "value": 80, "source": {"type": "Property", "value": "radar"}},
        "isParked": {"type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:1", "observedAt": "2020-01-01T00:00:00Z"},
        "@context": compound_url,
    }))
    for version in ["1.6", "1.8", "1.9"]:
        inputs.append((f"core-v{version}", {
            "id": "urn:ngsi-ld:Thing:1", "type": "Thing",
            "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL", "observedAt": "2024-01-01T00:00:00Z"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1.0, 2.0]}},
            "@context": CORE.format(version),
        }))
    inputs.append(("no-context", {
        "id": "urn:ngsi-ld:Thing:2", "type": "Thing",
        "name": {"type": "LanguageProperty", "languageMap": {"en": "thing"}},
        "category": {"type": "VocabProperty", "vocab": "sensor"},
        "config": {"type": "JsonProperty", "json": {"a": 1}},
        "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1", "datasetId": "urn:ds:1"},
    }))
    inputs.append(("inline-prefixes", {
        "id": "urn:ngsi-ld:Thing:3", "type": "ex:Device",
        "ex:reading": {"type": "Property", "value": 3},
        "short": {"type": "Property", "value": 4},
        "@context": [{"ex": "https://example.org/ns#", "short": "ex:longName", "schema": "https://schema.org/",
                      "typed": {"@id": "ex:typed", "@type": "@id"}}],
    }))
    written = 0
    for name, doc in inputs:
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(oracle(name, doc), f, indent=1, sort_keys=True, ensure_ascii=False)
            f.write("\n")
        written += 1
    print(f"wrote {written} fixtures to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
