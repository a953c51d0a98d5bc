"""Head-end protocol figures (issue 7), on loopback against mosquitto, with
the compiled firmware in the unix-port MicroPython (tools/topup_rig.py):

- topup_latency_ms_p50/p95/p99: the head-end's publish of a top-up to its
  receipt of the meter's "credited" ack, over BENCH_TOPUPS top-ups sent one
  after another (first attempts only), link healthy;
- topups_doubled, acked_topups_lost, events_missing: the rig's audit after a
  run with link faults and re-sends (FAULT_TOPUPS top-ups, FAULTS faults);
- telemetry_bytes_per_day: a metering meter, production state period.
"""
import topup_rig

BENCH_TOPUPS = 500
FAULT_TOPUPS = 300
FAULTS = 30
TARGETS = {"topup_latency_ms_p99": ("<=", 100), "topups_doubled": ("==", 0),
           "acked_topups_lost": ("==", 0), "events_missing": ("==", 0)}


def run():
    out = {}
    clean = topup_rig.run(BENCH_TOPUPS, 0, seed=11, resend_every=0)
    out["topup_latency_ms_p50"] = clean["latency_ms_p50"]
    out["topup_latency_ms_p95"] = clean["latency_ms_p95"]
    out["topup_latency_ms_p99"] = clean["latency_ms_p99"]
    out["topup_bench_count"] = clean["credited"]
    faulty = topup_rig.run(FAULT_TOPUPS, FAULTS, seed=12, resend_every=4)
    out["topups_doubled"] = clean["topups_doubled"] + faulty["topups_doubled"]
    out["acked_topups_lost"] = clean["acked_topups_lost"] + faulty["acked_topups_lost"]
    out["events_missing"] = clean["events_missing"] + faulty["events_missing"]
    out["topup_fault_run_faults"] = faulty["faults"]
    out["topup_fault_run_credited"] = faulty["credited"]
    out.update(topup_rig.telemetry_bytes_per_day())
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=1))
