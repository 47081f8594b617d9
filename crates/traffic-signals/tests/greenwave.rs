//! A green wave on a simulated arterial: the optimised offsets give fewer stops per arterial
//! vehicle than the same cycle with uncoordinated (seeded random) or simultaneous offsets.

use traffic_signals::greenwave::{
    CoordinatedFixedTime, CorridorSpec, Split, corridor_scenario, evaluate_corridor, optimise,
    plan_with, random_offsets,
};

const SPLIT: Split = Split {
    arterial_green: 45.0,
    arterial_left: 0.0,
    cross_green: 25.0,
    cross_left: 0.0,
    yellow: 2.0,
};

#[test]
fn a_green_wave_stops_arterial_traffic_less_than_uncoordinated_offsets() {
    let spec = CorridorSpec {
        duration: 1800,
        ..CorridorSpec::default()
    };
    let corridor = corridor_scenario(&spec).unwrap();
    let wave = optimise(&corridor.corridor, &SPLIT, 40..=120, 1).unwrap();
    eprintln!("plan {wave:?}");
    let mut coordinated = CoordinatedFixedTime::new("green wave", &corridor.corridor, &wave);
    let ours = evaluate_corridor(&corridor, &mut coordinated);
    assert!(ours.arterial_vehicles > 500, "{ours:?}");

    let n = corridor.corridor.signals.len();
    let mut worse = 0;
    for seed in 1..=3 {
        let random = plan_with(
            &corridor.corridor,
            wave.split,
            random_offsets(n, wave.cycle, seed),
        );
        let mut c = CoordinatedFixedTime::new("uncoordinated", &corridor.corridor, &random);
        let r = evaluate_corridor(&corridor, &mut c);
        eprintln!("wave {ours:?}\nrandom {r:?}");
        if r.arterial_stops > ours.arterial_stops {
            worse += 1;
        }
    }
    assert_eq!(
        worse, 3,
        "the green wave must beat every uncoordinated plan"
    );
    let zero = plan_with(&corridor.corridor, wave.split, vec![0.0; n]);
    let mut c = CoordinatedFixedTime::new("simultaneous", &corridor.corridor, &zero);
    let z = evaluate_corridor(&corridor, &mut c);
    eprintln!("zero {z:?}");
    assert!(z.arterial_stops > ours.arterial_stops, "{z:?} vs {ours:?}");
}
