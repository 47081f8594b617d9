#!/usr/bin/env python3
"""Run an installed CityFlow engine on one episode and print its figures as JSON.

This script only drives a `cityflow` Python module that is already importable; it
does not build or ship CityFlow. It implements the P15 protocol of issue 4 so the
figures can be compared with traffic-sim's own (`cargo run --example bench_sim`):

* 3600 steps of 1 s, laneChange as given, seed 0;
* `fixed15`: phases 1,2,3,4 in turn; `maxpressure`: the phase (1..4) with the
  largest waiting count on its incoming lanes minus its outgoing lanes (right turns
  ignored), first maximum wins; `default`: the roadnet's own plan
  (rlTrafficLight false);
* phase 1 from t=0; at every t = 15k (k >= 1) the controller picks a phase, and a
  change shows phase 0 for 5 s before the new phase.

CPU time covers `next_step` only (controller and observation calls are excluded).
"""
import argparse
import json
import os
import sys
import tempfile
import time


def phase_lanes(roadnet):
    """Per signalised intersection: for phases 1..4, (incoming lanes, outgoing lanes)."""
    result = {}
    for inter in roadnet["intersections"]:
        if inter["virtual"] or not inter["roadLinks"]:
            continue
        phases = inter["trafficLight"]["lightphases"]
        per_phase = []
        for phase in phases[1:5]:
            incoming, outgoing = [], []
            for index in phase["availableRoadLinks"]:
                link = inter["roadLinks"][index]
                if link["type"] == "turn_right":
                    continue
                for lane_link in link["laneLinks"]:
                    start = "%s_%d" % (link["startRoad"], lane_link["startLaneIndex"])
                    end = "%s_%d" % (link["endRoad"], lane_link["endLaneIndex"])
                    if start not in incoming:
                        incoming.append(start)
                    if end not in outgoing:
                        outgoing.append(end)
            per_phase.append((incoming, outgoing))
        result[inter["id"]] = per_phase
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--roadnet", required=True)
    parser.add_argument("--flow", required=True)
    parser.add_argument("--mode", choices=["fixed15", "maxpressure", "default"], default="fixed15")
    parser.add_argument("--lanechange", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pin-cpu", type=int, default=None,
        help="run the process (and CityFlow's worker thread, which inherits it) on this CPU only",
    )
    args = parser.parse_args()
    if args.pin_cpu is not None:
        # CityFlow's engine wakes its worker thread ~15 times per step; on different CPUs every
        # wake-up costs CPU time (see docs/bench-sim.md), on one CPU it does not.
        os.sched_setaffinity(0, {args.pin_cpu})

    import cityflow

    data_dir = os.path.abspath(args.dir) + "/"
    with open(os.path.join(data_dir, args.roadnet)) as f:
        roadnet = json.load(f)
    lanes = phase_lanes(roadnet)
    config = {
        "interval": 1.0,
        "seed": args.seed,
        "dir": data_dir,
        "roadnetFile": args.roadnet,
        "flowFile": args.flow,
        "rlTrafficLight": args.mode != "default",
        "laneChange": bool(args.lanechange),
        "saveReplay": False,
        "roadnetLogFile": "roadnet.log.json",
        "replayLogFile": "replay.log.txt",
    }
    with tempfile.TemporaryDirectory() as tmp:
        config_path = os.path.join(tmp, "config.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        engine = cityflow.Engine(config_path, thread_num=args.threads)

    current = {iid: 1 for iid in lanes}
    pending = {}
    if args.mode != "default":
        for iid in lanes:
            engine.set_tl_phase(iid, 1)

    vehicle_steps = 0
    sim_cpu = 0.0
    sim_wall = 0.0
    for t in range(args.steps):
        if args.mode != "default":
            if t > 0 and t % 15 == 0:
                waiting = engine.get_lane_waiting_vehicle_count() if args.mode == "maxpressure" else None
                for iid, per_phase in lanes.items():
                    if args.mode == "fixed15":
                        choice = current[iid] % 4 + 1
                    else:
                        best, choice = None, current[iid]
                        for k, (incoming, outgoing) in enumerate(per_phase):
                            pressure = sum(waiting[l] for l in incoming) - sum(waiting[l] for l in outgoing)
                            if best is None or pressure > best:
                                best, choice = pressure, k + 1
                    if choice != current[iid]:
                        engine.set_tl_phase(iid, 0)
                        pending[iid] = (choice, t + 5)
                        current[iid] = choice
            for iid in [i for i, (p, due) in pending.items() if due == t]:
                engine.set_tl_phase(iid, pending.pop(iid)[0])
        c0, w0 = time.process_time(), time.perf_counter()
        engine.next_step()
        sim_cpu += time.process_time() - c0
        sim_wall += time.perf_counter() - w0
        vehicle_steps += engine.get_vehicle_count()

    running = engine.get_vehicle_count()
    with_waiting = len(engine.get_vehicles(include_waiting=True))
    print(json.dumps({
        "flow": args.flow,
        "mode": args.mode,
        "lane_change": bool(args.lanechange),
        "threads": args.threads,
        "pinned_cpu": args.pin_cpu,
        "steps": args.steps,
        "average_travel_time": engine.get_average_travel_time(),
        "vehicle_steps": vehicle_steps,
        "running_at_end": running,
        "running_or_waiting_at_end": with_waiting,
        "sim_cpu_seconds": sim_cpu,
        "sim_wall_seconds": sim_wall,
    }))
    sys.stdout.flush()
    # CityFlow's Engine destructor can deadlock on its worker barrier at interpreter exit;
    # everything is printed, so leave without running destructors.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
