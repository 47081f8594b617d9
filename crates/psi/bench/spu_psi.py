#!/usr/bin/env python3
"""Run SecretFlow spu's PSI (ECDH-25519 or RR22) between two local processes, for comparison
with citybrain's psi_loopback benchmark in the same run.

This driver only RUNS an spu that the operator installed outside the repository, e.g.
  python3 -m venv /tmp/ext/spu-venv && /tmp/ext/spu-venv/bin/pip install spu==0.9.5
  /tmp/ext/spu-venv/bin/python crates/psi/bench/spu_psi.py --log2 20 --protocol ECDH

Inputs mirror psi_loopback: party 0 (receiver) holds user%012d for 0..n, party 1 holds
n/2..3n/2 (intersection n/2). Each process reports psi_execute wall time, CPU seconds
(user+sys from getrusage, whole process) and peak RSS.
"""

import argparse
import os
import resource
import subprocess
import sys
import time


def write_csv(path, first, n):
    with open(path, "w") as f:
        f.write("id\n")
        for i in range(first, first + n):
            f.write("user%012d\n" % i)


def run_party(args):
    import spu.libspu.link as link
    import spu.psi as psi

    desc = link.Desc()
    desc.id = "bench"
    desc.recv_timeout_ms = 3600 * 1000
    desc.add_party("alice", "127.0.0.1:%d" % args.port)
    desc.add_party("bob", "127.0.0.1:%d" % (args.port + 1))
    lctx = link.create_brpc(desc, args.rank)

    protocol = {"ECDH": psi.PsiProtocol.PROTOCOL_ECDH, "RR22": psi.PsiProtocol.PROTOCOL_RR22,
                "KKRT": psi.PsiProtocol.PROTOCOL_KKRT}[args.protocol]
    conf = psi.PsiExecuteConfig(
        protocol_conf=psi.PsiProtocolConfig(
            protocol=protocol,
            receiver_rank=0,
            broadcast_result=False,
            ecdh_params=psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_25519),
        ),
        input_params=psi.InputParams(
            path=os.path.join(args.workdir, "in%d.csv" % args.rank),
            selected_keys=["id"],
            keys_unique=True,
        ),
        output_params=psi.OutputParams(
            path=os.path.join(args.workdir, "out%d.csv" % args.rank),
            disable_alignment=True,
        ),
    )
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.time()
    report = psi.psi_execute(conf, lctx)
    wall = time.time() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU of psi_execute only (Python and jax start-up excluded).
    usage_cpu = (usage.ru_utime + usage.ru_stime) - (before.ru_utime + before.ru_stime)
    lctx.stop_link()
    print("REPORT %d %.3f %.2f %.1f %d" % (args.rank, wall, usage_cpu,
                                            usage.ru_maxrss / 1024.0, report.intersection_count),
          flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--log2", type=int, default=16)
    p.add_argument("--protocol", default="ECDH")
    p.add_argument("--workdir", default="/tmp/spu-psi-bench")
    p.add_argument("--port", type=int, default=47310)
    p.add_argument("--rank", type=int, default=-1)
    args = p.parse_args()
    if args.rank >= 0:
        run_party(args)
        return
    n = 1 << args.log2
    os.makedirs(args.workdir, exist_ok=True)
    write_csv(os.path.join(args.workdir, "in0.csv"), 0, n)
    write_csv(os.path.join(args.workdir, "in1.csv"), n // 2, n)
    base = [sys.executable, os.path.abspath(__file__), "--log2", str(args.log2), "--protocol",
            args.protocol, "--workdir", args.workdir, "--port", str(args.port)]
    start = time.time()
    procs = [subprocess.Popen(base + ["--rank", str(r)], stdout=subprocess.PIPE, text=True)
             for r in (0, 1)]
    outs = [proc.communicate()[0] for proc in procs]
    wall = time.time() - start
    reports = []
    for out in outs:
        line = [l for l in out.splitlines() if l.startswith("REPORT ")]
        if not line:
            sys.exit("a party did not report:\n" + out)
        reports.append(line[0].split()[1:])
    psi_wall = max(float(r[1]) for r in reports)
    cpu = sum(float(r[2]) for r in reports)
    print("spu-%s n=2^%d psi_execute_wall=%.2fs process_wall=%.2fs cpu_total_psi_execute=%.2fs "
          "(receiver %s + sender %s) peak_rss_mib receiver=%s sender=%s intersection=%s"
          % (args.protocol, args.log2, psi_wall, wall, cpu, reports[0][2], reports[1][2],
             reports[0][3], reports[1][3], reports[0][4]))


if __name__ == "__main__":
    main()
