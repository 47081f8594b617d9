//! A loaded scenario: the compiled network, the flows with their resolved routes, and the engine
//! settings. Immutable once built, so one `Arc<Scenario>` can back many parallel episodes.

use crate::error::LoadError;
use crate::network::{LaneId, Network, RoadId};
use crate::spec::{ConfigSpec, FlowSpec, RoadnetSpec, parse_config, parse_flows, parse_roadnet};
use crate::vehicle::Params;

/// Engine settings (from `config.json`, or set directly).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    /// Seconds per step.
    pub interval: f64,
    /// Seed of the engine's Mersenne Twister.
    pub seed: u32,
    /// Lane changing on or off.
    pub lane_change: bool,
    /// `true`: phases only change when a controller sets them (CityFlow's `rlTrafficLight`);
    /// `false`: every intersection runs the roadnet's own plan.
    pub rl_traffic_light: bool,
}

impl EngineSettings {
    /// From a parsed `config.json`.
    pub fn from_config(config: &ConfigSpec) -> Self {
        EngineSettings {
            interval: config.interval,
            // std::mt19937::seed reduces the value modulo 2^32.
            seed: config.seed as u32,
            lane_change: config.lane_change,
            rl_traffic_light: config.rl_traffic_light,
        }
    }
}

/// A flow with its route resolved.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The flow as read.
    pub spec: FlowSpec,
    pub(crate) params: Params,
    /// Full route (anchors joined by shortest paths), or empty when the route is invalid (the
    /// flow then emits one vehicle that is dropped, as CityFlow does).
    pub route: Vec<RoadId>,
    /// Lanes of the first road from which the second road can be reached (the initial lane is
    /// drawn uniformly from these).
    pub first_lanes: Vec<LaneId>,
    /// The first road of the route as written (CityFlow serves new vehicles road by road).
    pub first_road: RoadId,
}

/// Everything a simulation needs, immutable.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The network.
    pub network: Network,
    /// The flows, in file order.
    pub flows: Vec<Flow>,
    /// Engine settings.
    pub settings: EngineSettings,
}

impl Scenario {
    /// Loads from the three files' texts. The names are used in error messages only; this
    /// function does no I/O.
    pub fn load(
        config: &ConfigSpec,
        roadnet_file: &str,
        roadnet_text: &str,
        flow_file: &str,
        flow_text: &str,
    ) -> Result<Scenario, LoadError> {
        let roadnet = parse_roadnet(roadnet_file, roadnet_text)?;
        let flows = parse_flows(flow_file, flow_text)?;
        Scenario::from_specs(
            EngineSettings::from_config(config),
            roadnet_file,
            &roadnet,
            flow_file,
            flows,
        )
    }

    /// Loads from `config.json`'s text plus a resolver that returns the text of a file named in
    /// it (`dir` + `roadnetFile`, `dir` + `flowFile`); the resolver is where the caller's I/O
    /// happens.
    pub fn load_with<E>(
        config_file: &str,
        config_text: &str,
        mut read: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<Scenario, ScenarioError<E>> {
        let config = parse_config(config_file, config_text).map_err(ScenarioError::Load)?;
        let roadnet_name = format!("{}{}", config.dir, config.roadnet_file);
        let flow_name = format!("{}{}", config.dir, config.flow_file);
        let roadnet_text =
            read(&roadnet_name).map_err(|e| ScenarioError::Read(roadnet_name.clone(), e))?;
        let flow_text = read(&flow_name).map_err(|e| ScenarioError::Read(flow_name.clone(), e))?;
        Scenario::load(
            &config,
            &roadnet_name,
            &roadnet_text,
            &flow_name,
            &flow_text,
        )
        .map_err(ScenarioError::Load)
    }

    /// Builds from already parsed specs.
    pub fn from_specs(
        settings: EngineSettings,
        roadnet_file: &str,
        roadnet: &RoadnetSpec,
        flow_file: &str,
        flows: Vec<FlowSpec>,
    ) -> Result<Scenario, LoadError> {
        let network = Network::build(roadnet_file, roadnet)?;
        let mut out = Vec::with_capacity(flows.len());
        for (i, spec) in flows.into_iter().enumerate() {
            out.push(build_flow(&network, &settings, flow_file, i, spec)?);
        }
        Ok(Scenario {
            network,
            flows: out,
            settings,
        })
    }

    /// The same scenario with signal control relaxed away: every intersection unsignalised
    /// (all movements green at every step, no yellow) and no conflict points inside
    /// intersections, so vehicles interact only through car following, lane changes and the
    /// lanes' own capacity. Its ATT is a reference floor for signal control: no phase plan of
    /// the real network removes a constraint that this one still has. (A microsimulation is not
    /// strictly monotone, so it is a relaxation measured, not a proven bound.)
    pub fn without_signals(&self) -> Scenario {
        let mut relaxed = self.clone();
        for x in &mut relaxed.network.intersections {
            x.phases.clear();
            x.crosses = 0..0;
        }
        for link in &mut relaxed.network.lane_links {
            link.crosses = 0..0;
        }
        relaxed.network.crosses.clear();
        relaxed.network.cross_refs.clear();
        relaxed
    }

    /// [`Scenario::without_signals`] for every intersection except those named in `keep`,
    /// which keep their phases and conflict points. With one bottleneck intersection kept, the
    /// ATT its controllers reach here is a reference floor for the real network, where every
    /// other intersection adds its own constraints (a relaxation measured, like the no-signal
    /// bound, not a proof). Unknown names are ignored (the caller lists what it kept).
    pub fn without_signals_except(&self, keep: &[&str]) -> Scenario {
        let mut relaxed = self.clone();
        let net = &mut relaxed.network;
        for x in &mut net.intersections {
            if keep.contains(&x.id.as_str()) {
                continue;
            }
            x.phases.clear();
            x.crosses = 0..0;
            for link in x.lane_links.clone() {
                net.lane_links[link as usize].crosses = 0..0;
            }
        }
        relaxed
    }
}

/// Resolves one flow (`i`: its index in the flow file, for error messages).
pub(crate) fn build_flow(
    network: &Network,
    settings: &EngineSettings,
    flow_file: &str,
    i: usize,
    spec: FlowSpec,
) -> Result<Flow, LoadError> {
    let mut anchors = Vec::with_capacity(spec.route.len());
    for (k, id) in spec.route.iter().enumerate() {
        let road = network
            .road_by_id(id)
            .ok_or_else(|| LoadError::UnknownReference {
                file: flow_file.to_owned(),
                path: format!("flows[{i}].route[{k}]"),
                kind: "road",
                id: id.clone(),
            })?;
        anchors.push(road);
    }
    let route = resolve_route(network, &anchors);
    let first_lanes = match route.as_slice() {
        [first, second, ..] => network.roads[*first as usize]
            .lanes
            .clone()
            .filter(|&l| network.lane_links_to_road(l, *second).next().is_some())
            .collect(),
        _ => Vec::new(),
    };
    // CityFlow asserts a non-empty candidate set; a route whose first hop has no lane
    // link is unusable, and we treat it like an unreachable route.
    let route = if first_lanes.is_empty() {
        Vec::new()
    } else {
        route
    };
    let params = Params::new(&spec.vehicle, settings.interval);
    let first_road = anchors.first().copied().unwrap_or(0);
    Ok(Flow {
        spec,
        params,
        route,
        first_lanes,
        first_road,
    })
}

/// CityFlow's `Router::updateShortestPath`: join the anchors with shortest paths; a route of one
/// road, or with an unreachable anchor, is invalid (empty).
fn resolve_route(network: &Network, anchors: &[RoadId]) -> Vec<RoadId> {
    let Some(&first) = anchors.first() else {
        return Vec::new();
    };
    let mut route = vec![first];
    for w in anchors.windows(2) {
        if w[0] == w[1] {
            continue;
        }
        match network.shortest_path(w[0], w[1]) {
            Some(path) => route.extend(path),
            None => return Vec::new(),
        }
    }
    if route.len() <= 1 { Vec::new() } else { route }
}

/// Error of [`Scenario::load_with`]: either the caller's reader failed or a file is bad.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError<E> {
    /// The reader could not produce a file's text.
    #[error("cannot read {0}: {1}")]
    Read(String, E),
    /// A file was read but is invalid.
    #[error(transparent)]
    Load(LoadError),
}
