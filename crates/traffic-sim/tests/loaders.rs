//! Loader behaviour: the benchmark files load, bad files give errors naming file and element.

mod common;

use serde_json::{Value, json};
use traffic_sim::spec::{parse_config, parse_flows, parse_roadnet};
use traffic_sim::{LoadError, Scenario};

/// A one-intersection roadnet: west and east boundary nodes, a signalised node in the middle,
/// two eastbound roads.
fn tiny_roadnet() -> Value {
    json!({
        "intersections": [
            {"id": "w", "point": {"x": -200, "y": 0}, "width": 0, "roads": ["r_in"], "roadLinks": [],
             "trafficLight": {"roadLinkIndices": [], "lightphases": []}, "virtual": true},
            {"id": "c", "point": {"x": 0, "y": 0}, "width": 10, "roads": ["r_in", "r_out"],
             "roadLinks": [{"type": "go_straight", "startRoad": "r_in", "endRoad": "r_out", "direction": 0,
                            "laneLinks": [{"startLaneIndex": 0, "endLaneIndex": 0, "points": []}]}],
             "trafficLight": {"roadLinkIndices": [0], "lightphases": [{"time": 30, "availableRoadLinks": [0]}]},
             "virtual": false},
            {"id": "e", "point": {"x": 200, "y": 0}, "width": 0, "roads": ["r_out"], "roadLinks": [],
             "trafficLight": {"roadLinkIndices": [], "lightphases": []}, "virtual": true}
        ],
        "roads": [
            {"id": "r_in", "startIntersection": "w", "endIntersection": "c",
             "points": [{"x": -200, "y": 0}, {"x": 0, "y": 0}], "lanes": [{"width": 4, "maxSpeed": 11.1}]},
            {"id": "r_out", "startIntersection": "c", "endIntersection": "e",
             "points": [{"x": 0, "y": 0}, {"x": 200, "y": 0}], "lanes": [{"width": 4, "maxSpeed": 11.1}]}
        ]
    })
}

fn tiny_flows() -> Value {
    json!([{ "vehicle": {"length": 5.0, "width": 2.0, "maxPosAcc": 2.0, "maxNegAcc": 4.5, "usualPosAcc": 2.0,
                         "usualNegAcc": 4.5, "minGap": 2.5, "maxSpeed": 11.111, "headwayTime": 2},
             "route": ["r_in", "r_out"], "interval": 5.0, "startTime": 0, "endTime": 100 }])
}

fn build(roadnet: &Value, flows: &Value) -> Result<Scenario, LoadError> {
    let r = parse_roadnet("roadnet.json", &roadnet.to_string())?;
    let f = parse_flows("flow.json", &flows.to_string())?;
    Scenario::from_specs(
        common::settings(false, true),
        "roadnet.json",
        &r,
        "flow.json",
        f,
    )
}

fn expect_err(roadnet: &Value, flows: &Value) -> LoadError {
    match build(roadnet, flows) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn benchmark_files_load() {
    for (dir, roadnet, flow, intersections, vehicles) in [
        (
            "jinan_3x4",
            "roadnet_3_4.json",
            "anon_3_4_jinan_real.json",
            26,
            6295,
        ),
        (
            "hangzhou_4x4",
            "roadnet_4_4.json",
            "anon_4_4_hangzhou_real_5816.json",
            32,
            6984,
        ),
    ] {
        let sc = common::scenario(dir, roadnet, flow, true);
        assert_eq!(sc.network.intersections.len(), intersections);
        assert_eq!(sc.flows.len(), vehicles);
        // Every benchmark road has 3 lanes; roads between two signalised intersections are
        // trimmed by 15 m at both ends.
        assert!(sc.network.roads.iter().all(|r| r.lanes.len() == 3));
        assert!(
            sc.flows
                .iter()
                .all(|f| !f.route.is_empty() && !f.first_lanes.is_empty())
        );
    }
}

#[test]
fn tiny_scenario_loads_and_builds_a_curve() {
    let sc = build(&tiny_roadnet(), &tiny_flows()).expect("valid");
    let net = &sc.network;
    // r_in is trimmed by the 10 m intersection at its end, r_out at its start.
    assert_eq!(net.lanes[0].length, 190.0);
    assert_eq!(net.lanes[1].length, 190.0);
    // The generated straight link spans the 20 m between the trimmed lane ends.
    assert_eq!(net.lane_links.len(), 1);
    assert!(
        (net.lane_links[0].length - 20.0).abs() < 1e-9,
        "{}",
        net.lane_links[0].length
    );
}

#[test]
fn malformed_json_names_file_and_position() {
    let e = parse_roadnet("city/roadnet.json", "{\"roads\": [ }").unwrap_err();
    assert!(
        matches!(e, LoadError::Json { ref file, line: 1, .. } if file == "city/roadnet.json"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("city/roadnet.json: malformed JSON at line 1"),
        "{e}"
    );
    let e = parse_flows("flow.json", "").unwrap_err();
    assert!(matches!(e, LoadError::Json { .. }));
    let e = parse_config("config.json", "[1, 2").unwrap_err();
    assert_eq!(e.file(), "config.json");
}

#[test]
fn missing_road_in_a_road_link_is_named() {
    let mut r = tiny_roadnet();
    r["intersections"][1]["roadLinks"][0]["endRoad"] = json!("r_nowhere");
    let e = expect_err(&r, &tiny_flows());
    assert_eq!(
        e,
        LoadError::UnknownReference {
            file: "roadnet.json".into(),
            path: "intersections[1] (c).roadLinks[0].endRoad".into(),
            kind: "road",
            id: "r_nowhere".into(),
        }
    );
}

#[test]
fn missing_intersection_of_a_road_is_named() {
    let mut r = tiny_roadnet();
    r["roads"][1]["endIntersection"] = json!("z");
    let e = expect_err(&r, &tiny_flows());
    assert!(
        e.to_string()
            .contains("roads[1] (r_out).endIntersection: unknown intersection `z`"),
        "{e}"
    );
}

#[test]
fn dangling_lane_link_is_rejected() {
    let mut r = tiny_roadnet();
    r["intersections"][1]["roadLinks"][0]["laneLinks"][0]["endLaneIndex"] = json!(2);
    let e = expect_err(&r, &tiny_flows());
    let text = e.to_string();
    assert!(
        text.starts_with(
            "roadnet.json: intersections[1] (c).roadLinks[0].laneLinks[0].endLaneIndex"
        ),
        "{text}"
    );
    assert!(text.contains("dangling lane link"), "{text}");

    // A road link whose start road does not end at the intersection.
    let mut r = tiny_roadnet();
    r["intersections"][1]["roadLinks"][0]["startRoad"] = json!("r_out");
    let e = expect_err(&r, &tiny_flows());
    assert!(
        e.to_string().contains("does not end at this intersection"),
        "{e}"
    );
}

#[test]
fn negative_lengths_and_widths_are_rejected() {
    let mut r = tiny_roadnet();
    r["roads"][0]["lanes"][0]["width"] = json!(-4);
    let e = expect_err(&r, &tiny_flows());
    assert!(
        e.to_string()
            .contains("roads[0] (r_in).lanes[0].width: negative lane width -4"),
        "{e}"
    );

    let mut f = tiny_flows();
    f[0]["vehicle"]["length"] = json!(-5);
    let e = expect_err(&tiny_roadnet(), &f);
    assert!(
        e.to_string()
            .starts_with("flow.json: flows[0].vehicle.length: vehicle length must be positive"),
        "{e}"
    );

    // A road shorter than the intersection that trims it would get a negative lane length.
    let mut r = tiny_roadnet();
    r["intersections"][1]["width"] = json!(250);
    let e = expect_err(&r, &tiny_flows());
    assert!(e.to_string().contains("negative length"), "{e}");

    let mut r = tiny_roadnet();
    r["intersections"][1]["width"] = json!(-1);
    assert!(
        expect_err(&r, &tiny_flows())
            .to_string()
            .contains("negative intersection width")
    );
}

#[test]
fn unknown_road_in_a_route_is_named() {
    let mut f = tiny_flows();
    f[0]["route"] = json!(["r_in", "r_missing"]);
    let e = expect_err(&tiny_roadnet(), &f);
    assert_eq!(
        e.to_string(),
        "flow.json: flows[0].route[1]: unknown road `r_missing`"
    );
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    let mut r = tiny_roadnet();
    r["roads"][0].as_object_mut().map(|o| o.remove("lanes"));
    let e = expect_err(&r, &tiny_flows());
    assert_eq!(
        e.to_string(),
        "roadnet.json: roads[0] (r_in): missing required field `lanes`"
    );

    let mut f = tiny_flows();
    f[0]["interval"] = json!("soon");
    let e = expect_err(&tiny_roadnet(), &f);
    assert_eq!(
        e.to_string(),
        "flow.json: flows[0].interval: expected a finite number"
    );

    let e = parse_config(
        "config.json",
        r#"{"interval": 1.0, "seed": 0, "roadnetFile": "r", "flowFile": "f"}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "config.json: (document root): missing required field `rlTrafficLight`"
    );
}

#[test]
fn config_is_read_like_cityflow() {
    let c = parse_config(
        "config.json",
        r#"{"interval": 1.0, "seed": 7, "dir": "data/", "roadnetFile": "roadnet.json",
            "flowFile": "flow.json", "rlTrafficLight": true, "saveReplay": false}"#,
    )
    .unwrap();
    assert_eq!(c.seed, 7);
    assert!(c.rl_traffic_light);
    assert!(!c.lane_change, "laneChange defaults to false");
    assert_eq!(c.dir, "data/");
    // load_with resolves dir + file names through the caller's reader.
    let roadnet = tiny_roadnet().to_string();
    let flows = tiny_flows().to_string();
    let text = c.to_json();
    let sc = Scenario::load_with("config.json", &text, |name| match name {
        "data/roadnet.json" => Ok(roadnet.clone()),
        "data/flow.json" => Ok(flows.clone()),
        other => Err(format!("no file {other}")),
    })
    .expect("loads");
    assert_eq!(sc.settings.seed, 7);
    assert_eq!(sc.flows.len(), 1);
}

#[test]
fn writers_round_trip() {
    let r = parse_roadnet("r", &tiny_roadnet().to_string()).unwrap();
    assert_eq!(parse_roadnet("r", &r.to_json()).unwrap(), r);
    let f = parse_flows("f", &tiny_flows().to_string()).unwrap();
    assert_eq!(
        parse_flows("f", &traffic_sim::spec::flows_to_json(&f)).unwrap(),
        f
    );
}

/// Replaces or deletes one random element of a JSON tree.
fn mutate(value: &mut Value, rng: &mut traffic_sim::rng::Mt19937) {
    let replacements = [
        json!(null),
        json!(-1),
        json!(0),
        json!(1e308),
        json!(-0.5),
        json!("x"),
        json!([]),
        json!({}),
        json!(4_000_000_000u64),
        json!(true),
    ];
    let descend = !rng.next_u32().is_multiple_of(3);
    let replacement = replacements[rng.next_u32() as usize % replacements.len()].clone();
    let is_leaf = match &*value {
        Value::Object(map) => map.is_empty() || !descend,
        Value::Array(items) => items.is_empty() || !descend,
        _ => true,
    };
    if is_leaf {
        *value = replacement;
        return;
    }
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[rng.next_u32() as usize % keys.len()].clone();
            if rng.next_u32().is_multiple_of(8) {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                mutate(child, rng);
            }
        }
        Value::Array(items) => {
            let i = rng.next_u32() as usize % items.len();
            mutate(&mut items[i], rng);
        }
        _ => {}
    }
}

#[test]
fn mutated_scenarios_load_or_fail_cleanly_and_never_panic() {
    let mut rng = traffic_sim::rng::Mt19937::new(2024);
    let mut loaded = 0;
    let mut rejected = 0;
    for _ in 0..600 {
        let mut r = tiny_roadnet();
        let mut f = tiny_flows();
        for _ in 0..1 + rng.next_u32() % 3 {
            if rng.next_u32().is_multiple_of(2) {
                mutate(&mut r, &mut rng);
            } else {
                mutate(&mut f, &mut rng);
            }
        }
        match build(&r, &f) {
            Ok(sc) => {
                loaded += 1;
                let mut sim = traffic_sim::Simulation::new(std::sync::Arc::new(sc));
                for _ in 0..40 {
                    sim.step();
                }
                let _ = sim.metrics();
            }
            Err(e) => {
                rejected += 1;
                // Every error names its file.
                assert!(e.file() == "roadnet.json" || e.file() == "flow.json", "{e}");
            }
        }
    }
    assert!(
        loaded > 20 && rejected > 100,
        "loaded {loaded}, rejected {rejected}"
    );
}
