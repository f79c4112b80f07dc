"""The report of a load-test run: what the clients saw (from every recorded request) beside what
the gateway counted (from its /metrics before and after), as Markdown, PNG charts and JSON."""
import json
import math
import os

import loadkit


def percentile(values, p):
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[index]


def summarize(recorder, before, after, pools, duration, chaos=None):
    rows = recorder.rows
    statuses = {}
    for row in rows:
        key = str(row[2]) if row[2] else "error"
        statuses[key] = statuses.get(key, 0) + 1
    latencies = [row[3] for row in rows if row[2]]
    reads = [row for row in rows if row[1].startswith("GET") or row[1].startswith("read")]
    routing = {pool: int(loadkit.metric_delta(before, after, "gateway_requests_total", pool=pool))
               for pool in list(pools) + ["cache", "-"]}
    cache = {result: int(loadkit.metric_delta(before, after, "gateway_cache_requests_total", result=result))
             for result in ("hit", "miss", "stale", "bypass")}
    looked_up = sum(cache.values())
    limited = {policy: int(loadkit.metric_delta(before, after, "gateway_rate_limit_requests_total", policy=policy, result="limited"))
               for policy in loadkit.label_values(after, "gateway_rate_limit_requests_total", "policy")}
    consistency = {outcome: int(loadkit.metric_delta(before, after, "gateway_consistency_reads_total", outcome=outcome))
                   for outcome in loadkit.label_values(after, "gateway_consistency_reads_total", "outcome")}
    summary = {
        "duration_s": round(duration, 2),
        "requests": len(rows),
        "rps": round(len(rows) / duration, 1) if duration else 0,
        "statuses": statuses,
        "failed": sum(1 for row in rows if row[7]),
        "failed_reads": sum(1 for row in reads if row[7]),
        "errors": sorted({row[8] for row in rows if row[8]})[:10],
        "latency_ms": {"p50": round(percentile(latencies, 50), 2), "p95": round(percentile(latencies, 95), 2),
                       "p99": round(percentile(latencies, 99), 2), "max": round(max(latencies or [0]), 2)},
        "client_cache": {label: sum(1 for row in rows if row[5] == label) for label in ("HIT", "MISS", "STALE", "BYPASS")},
        "client_429": statuses.get("429", 0),
        "served_by_node": _count(row[4] for row in rows if row[4]),
        "reads_by_region": _count(row[6] for row in reads),
        "consistency_violations": len(recorder.violations),
        "violations": [text for _, text in recorder.violations[:10]],
        "events": [{"at_s": round(at, 2), "what": what} for at, what in recorder.events],
        "gateway": {
            "requests_by_pool": routing,
            "pool_regions": pools,
            "requests": int(loadkit.metric_delta(before, after, "gateway_requests_total")),
            "cache": cache,
            "cache_hit_ratio": round(cache["hit"] / looked_up, 3) if looked_up else None,
            "rate_limited": limited,
            "consistency_reads": consistency,
        },
    }
    if chaos:
        summary["chaos"] = chaos_effects(recorder, chaos)
    return summary


def _count(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def chaos_effects(recorder, chaos):
    """What the clients saw around each injected failure: failures, the worst latency in the
    five seconds after it, and how long until requests stopped reaching the broken part."""
    effects = []
    times = [at for at, _ in recorder.events] + [float("inf")]
    for position, (at, what) in enumerate(recorder.events):
        until = times[position + 1]
        window = [row for row in recorder.rows if at <= row[0] < at + 5]
        effect = {"at_s": round(at, 2), "what": what, "failed_next_5s": sum(1 for row in window if row[7]),
                  "max_latency_next_5s_ms": round(max([row[3] for row in window] or [0]), 1)}
        if what.startswith("kill api-") or what.startswith("pause replay"):
            region = what.split()[-1].replace("api-", "")
            node = "pg-" + region
            # The last request that node really served (not a cached answer naming it) after the
            # failure began and before the next event.
            later = [row[0] for row in recorder.rows
                     if at <= row[0] < until and row[4] == node and row[5] not in ("HIT", "STALE")]
            effect["traffic_moved_after_s"] = round((max(later) - at) if later else 0.0, 2)
        effects.append(effect)
    return effects


def write(summary, recorder, directory, title):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    charts = _charts(summary, recorder, directory)
    lines = ["# %s" % title, "",
             "%d requests in %.1f s (%.0f req/s); %d failed (%d reads); latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms."
             % (summary["requests"], summary["duration_s"], summary["rps"], summary["failed"], summary["failed_reads"],
                summary["latency_ms"]["p50"], summary["latency_ms"]["p95"], summary["latency_ms"]["p99"]), "",
             "## Status codes", "", "| status | requests |", "|---|---|"]
    lines += ["| %s | %d |" % (status, count) for status, count in sorted(summary["statuses"].items())]
    gateway = summary["gateway"]
    lines += ["", "## Routing (the gateway's counters)", "", "| pool | region | requests |", "|---|---|---|"]
    lines += ["| %s | %s | %d |" % (pool, gateway["pool_regions"].get(pool, "-"), count)
              for pool, count in gateway["requests_by_pool"].items()]
    lines += ["", "Served by database node (X-DB-Node): " + ", ".join("%s %d" % kv for kv in summary["served_by_node"].items()),
              "", "Reads by client region: " + ", ".join("%s %d" % kv for kv in summary["reads_by_region"].items()),
              "", "## Cache", "",
              "Gateway: hit %(hit)d, miss %(miss)d, stale %(stale)d, bypass %(bypass)d" % gateway["cache"]
              + (", hit ratio %.1f%%" % (100 * gateway["cache_hit_ratio"]) if gateway["cache_hit_ratio"] is not None else ""),
              "", "## Rate limits", "", "429 answers seen by clients: %d; limited by the gateway: %s"
              % (summary["client_429"], ", ".join("%s %d" % kv for kv in gateway["rate_limited"].items()) or "none"),
              "", "## Read-your-writes", "",
              "Violations found by the scripts: %d" % summary["consistency_violations"]]
    lines += ["- " + text for text in summary["violations"]]
    if gateway["consistency_reads"]:
        lines += ["", "Gateway: " + ", ".join("%s %d" % kv for kv in gateway["consistency_reads"].items())]
    if summary.get("chaos"):
        lines += ["", "## Chaos", "", "| at (s) | what | failed in the next 5 s | worst latency (ms) | traffic moved after (s) |",
                  "|---|---|---|---|---|"]
        for effect in summary["chaos"]:
            lines.append("| %.1f | %s | %d | %.1f | %s |" % (effect["at_s"], effect["what"], effect["failed_next_5s"],
                                                         effect["max_latency_next_5s_ms"],
                                                         effect.get("traffic_moved_after_s", "-")))
    if summary["errors"]:
        lines += ["", "## Errors", ""] + ["- " + error for error in summary["errors"]]
    lines += ["", "## Charts", ""] + ["![%s](%s)" % (name, name) for name in charts]
    with open(os.path.join(directory, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return os.path.join(directory, "report.md")


def _charts(summary, recorder, directory):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rows = recorder.rows
    seconds = int(summary["duration_s"]) + 1
    per_second = [[] for _ in range(seconds + 1)]
    for row in rows:
        per_second[min(seconds, int(row[0]))].append(row)
    xs = list(range(len(per_second)))
    names = []

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(xs, [len(bucket) for bucket in per_second], label="req/s")
    top.plot(xs, [sum(1 for r in bucket if r[7]) for bucket in per_second], label="failed/s", color="red")
    top.set_ylabel("requests per second")
    top.legend()
    for p, style in ((50, "-"), (95, "--"), (99, ":")):
        bottom.plot(xs, [percentile([r[3] for r in bucket], p) for bucket in per_second], style, label="p%d" % p)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds")
    bottom.legend()
    for at, what in recorder.events:
        for axis in (top, bottom):
            axis.axvline(at, color="grey", linestyle="--")
        top.annotate(what, (at, top.get_ylim()[1] * 0.9), fontsize=7, rotation=90)
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "throughput_latency.png"))
    plt.close(fig)
    names.append("throughput_latency.png")

    codes = sorted({str(r[2]) if r[2] else "error" for r in rows})
    fig, axis = plt.subplots(figsize=(9, 3.5))
    bottoms = [0] * len(xs)
    for code in codes:
        values = [sum(1 for r in bucket if (str(r[2]) if r[2] else "error") == code) for bucket in per_second]
        axis.bar(xs, values, bottom=bottoms, label=code, width=1.0)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    axis.set_ylabel("responses per second")
    axis.set_xlabel("seconds")
    axis.legend(title="status")
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "status_codes.png"))
    plt.close(fig)
    names.append("status_codes.png")

    gateway = summary["gateway"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    pools = [p for p, n in gateway["requests_by_pool"].items() if n]
    left.bar(["%s\n(%s)" % (p, gateway["pool_regions"].get(p, "-")) for p in pools],
             [gateway["requests_by_pool"][p] for p in pools])
    left.set_title("requests by pool (gateway)")
    right.bar(list(gateway["cache"]), list(gateway["cache"].values()), color="tab:green")
    ratio = gateway["cache_hit_ratio"]
    right.set_title("cache" + (" (hit ratio %.0f%%)" % (100 * ratio) if ratio is not None else ""))
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "routing_cache.png"))
    plt.close(fig)
    names.append("routing_cache.png")
    return names
