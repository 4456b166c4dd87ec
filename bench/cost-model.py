#!/usr/bin/env python3
"""Dollars per million webhooks delivered, from what `bench/lambda/run.sh` measured.

    python3 bench/cost-model.py [target/lambda-bench/report.json] [--memory 256] [--io-factor 1.0]
                                [--baseline an-earlier-report.json]

Reads the pipeline phases of the report (inbound text messages; delivery statuses): per webhook,
the invocations of every function, their mean duration and CPU time, the DynamoDB and SQS calls
they made with the capacity units those bill, the log bytes they wrote and the bytes delivered.
Prices are the public us-east-1 list prices below (arm64 Lambda, SQS standard, DynamoDB on-demand,
API Gateway HTTP API), without free tiers. Change them here when they change.

How a measured invocation becomes a billed Lambda duration on AWS:

- the benchmark ran on an unthrottled x86_64 core against local servers (SQS on moto, DynamoDB
  on dynalite or moto), so its wall time is CPU time plus waiting for them. The metering proxy
  timed every answer; the waiting is scaled by what the same calls take in-region instead
  (AWS_LATENCY_MS below: typical p50s from a Lambda function in the table's region), i.e. by
  (calls x AWS latency) / (the local servers' time), per function. `--io-factor` replaces that
  ratio with a fixed one;
- Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB, so at 256 MB
  the CPU part takes 1769/256 = 6.9 times as long. Graviton and this Xeon core are taken as
  equally fast per clock of work.

So: billed ms = (wall - cpu) * io_factor + cpu * 1769 / memory, rounded up to whole ms.
Not counted: DynamoDB storage (raw requests for 7 days, messages and conversations with their
TTLs), the event source mappings' empty long polls (a fixed few cents a month per queue), INIT
time of cold starts (20-40 ms each, amortized over the instance's life), alarms and dashboards.
"""

import argparse
import json
import math
import sys

PRICES = {  # us-east-1 list prices, checked 2026-11
    "lambda_gb_s": 0.0000133334,  # arm64, first 7.5 billion GB-s a month
    "lambda_request": 0.20 / 1e6,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KiB chunk, after the first million
    "dynamodb_wru": 0.625 / 1e6,  # on-demand (since the November 2024 price cut)
    "dynamodb_rru": 0.125 / 1e6,  # one strongly consistent read of up to 4 KiB
    "apigw_http_request": 1.00 / 1e6,  # HTTP API, first 300 million a month
    "logs_gb": 0.50,  # CloudWatch Logs ingestion (standard class)
    "egress_gb": 0.09,  # data transfer out to the internet, first 10 TB a month
}
AWS_LATENCY_MS = {"DynamoDB": 5.0, "SQS": 10.0}  # per call, in-region, typical p50
VCPU_MB = 1769  # Lambda memory at which a function gets one full vCPU
LAMBDA_LOG_LINES_BYTES = 300  # START, END and REPORT lines Lambda adds per invocation
ESM_REQUESTS_PER_INVOCATION = 2  # the event source mapping's ReceiveMessage + DeleteMessageBatch
SQS_FED = {"track", "buffer", "fanout", "deliver"}


def per_item(phase, memory_mb, io_factor):
    """Dollars per webhook of `phase`, by component, and the Lambda figures per function."""
    n = phase["items"]
    cost = {k: 0.0 for k in ("api_gateway", "lambda_requests", "lambda_duration", "sqs",
                             "dynamodb_writes", "dynamodb_reads", "logs", "egress")}
    rows = []
    cost["api_gateway"] = PRICES["apigw_http_request"]
    cost["egress"] = phase["delivery_bytes"] / n / 1e9 * PRICES["egress_gb"]
    for f in phase["functions"]:
        inv = f["invocations"]
        if inv == 0:
            continue
        wall_ms = f["duration_ms"][0]
        cpu_ms = f["cpu_s"] * 1000 / inv
        usage = f["usage"]
        if io_factor is None:
            local_ms = sum(u["upstream_ms"] for u in usage.values())
            aws_ms = sum(u["calls"] * AWS_LATENCY_MS.get(k.split(" ")[0], 10.0)
                         for k, u in usage.items() if not k.endswith("(GSI)"))
            factor = aws_ms / local_ms if local_ms > 0 else 1.0
        else:
            factor = io_factor
        billed_ms = math.ceil(max(wall_ms - cpu_ms, 0) * factor + cpu_ms * VCPU_MB / memory_mb)
        gb_s = inv / n * billed_ms / 1000 * memory_mb / 1024
        cost["lambda_requests"] += inv / n * PRICES["lambda_request"]
        cost["lambda_duration"] += gb_s * PRICES["lambda_gb_s"]
        sqs = sum(u["units"] for k, u in usage.items() if k.startswith("SQS "))
        if f["name"] in SQS_FED:
            sqs += inv * ESM_REQUESTS_PER_INVOCATION
        cost["sqs"] += sqs / n * PRICES["sqs_request"]
        wru = sum(u["units"] for k, u in usage.items()
                  if k in ("DynamoDB PutItem", "DynamoDB PutItem (GSI)", "DynamoDB DeleteItem"))
        # The estimate reports before 2026-11-30 made (request sizes; the index rewritten with
        # every write of an indexed item): reports of then have only that, as "units".
        wru_earlier = sum(u.get("request_units", u["units"]) for k, u in usage.items()
                          if k in ("DynamoDB PutItem", "DynamoDB PutItem (GSI)",
                                   "DynamoDB DeleteItem"))
        rru = sum(u["units"] for k, u in usage.items() if k in ("DynamoDB GetItem", "DynamoDB Query"))
        cost["dynamodb_writes"] += wru / n * PRICES["dynamodb_wru"]
        cost["dynamodb_reads"] += rru / n * PRICES["dynamodb_rru"]
        log_bytes = f["log_bytes"] + inv * LAMBDA_LOG_LINES_BYTES
        cost["logs"] += log_bytes / n / 1e9 * PRICES["logs_gb"]
        rows.append((f["name"], inv / n, wall_ms, cpu_ms, factor, billed_ms, sqs / n, wru / n,
                     rru / n, log_bytes / n, wru_earlier / n))
    return cost, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", nargs="?", default="target/lambda-bench/report.json")
    parser.add_argument("--memory", type=int, default=None,
                        help="Lambda MemorySize in MB (default: what the benchmark ran with)")
    parser.add_argument("--io-factor", type=float, default=None,
                        help="DynamoDB/SQS waiting on AWS relative to the local servers (default: "
                             "from their measured times and AWS_LATENCY_MS)")
    parser.add_argument("--baseline", default=None,
                        help="an earlier report.json: its totals and write units are printed "
                             "beside these, phase by phase")
    args = parser.parse_args()
    try:
        report = json.load(open(args.report))
    except FileNotFoundError:
        sys.exit(f"{args.report} not found: run bash bench/lambda/run.sh first")
    memory = args.memory or report["memory_mb"]
    if not report["pipeline"]:
        sys.exit("the report has no pipeline phase (run without --webhooks 0)")
    baseline = None
    if args.baseline is not None:
        try:
            baseline = json.load(open(args.baseline))
        except FileNotFoundError:
            sys.exit(f"{args.baseline} not found")
    factor = "from the measured server times" if args.io_factor is None else args.io_factor
    print(f"memory {memory} MB, io factor {factor}; prices: us-east-1 list, no free tier\n")
    for phase in report["pipeline"]:
        cost, rows = per_item(phase, memory, args.io_factor)
        print(f"## {phase['name']}: {phase['items']} webhooks, "
              f"{phase['deliveries'] / phase['items']:.2f} POSTs and "
              f"{phase['delivery_bytes'] / phase['items']:.0f} bytes delivered per webhook\n")
        print("| function | invocations per webhook | wall ms | CPU ms | io factor "
              "| billed ms on Lambda | SQS requests | WRU | RRU | log bytes |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, inv, wall, cpu, factor, billed, sqs, wru, rru, logs, _ in rows:
            print(f"| {name} | {inv:.3f} | {wall:.1f} | {cpu:.2f} | {factor:.2f} | {billed} "
                  f"| {sqs:.2f} | {wru:.2f} | {rru:.2f} | {logs:.0f} |")
        print("\n(per webhook, except wall ms, CPU ms and billed ms: per invocation)")
        print("\n| component | $ per million webhooks |\n|---|---|")
        for k, v in cost.items():
            print(f"| {k.replace('_', ' ')} | {v * 1e6:.2f} |")
        print(f"| **total** | **{sum(cost.values()) * 1e6:.2f}** |")
        print(f"| total through a Function URL (no API Gateway) | "
              f"{(sum(cost.values()) - cost['api_gateway']) * 1e6:.2f} |")
        if baseline is not None:
            before = next((p for p in baseline["pipeline"] if p["name"] == phase["name"]), None)
            if before is not None:
                old_cost, old_rows = per_item(before, memory, args.io_factor)
                print(f"\nBeside the baseline ({args.baseline}):\n")
                print("| | baseline | now |\n|---|---|---|")
                for name in [r[0] for r in rows]:
                    was = next((r[7] for r in old_rows if r[0] == name), 0.0)
                    now = next(r[7] for r in rows if r[0] == name)
                    print(f"| {name} WRU per webhook | {was:.2f} | {now:.2f} |")
                print(f"| WRU per webhook, all functions | {sum(r[7] for r in old_rows):.2f} "
                      f"| {sum(r[7] for r in rows):.2f} |")
                print(f"| WRU per webhook by the earlier estimate (request sizes, the index "
                      f"rewritten with every write) | {sum(r[10] for r in old_rows):.2f} "
                      f"| {sum(r[10] for r in rows):.2f} |")
                print(f"| RRU per webhook, all functions | {sum(r[8] for r in old_rows):.2f} "
                      f"| {sum(r[8] for r in rows):.2f} |")
                print(f"| SQS requests per webhook | {sum(r[6] for r in old_rows):.2f} "
                      f"| {sum(r[6] for r in rows):.2f} |")
                print(f"| $ per million webhooks | {sum(old_cost.values()) * 1e6:.2f} "
                      f"| {sum(cost.values()) * 1e6:.2f} |")
        sweep = []
        for mb in (128, 256, 512, 1024):
            c, _ = per_item(phase, mb, args.io_factor)
            sweep.append(f"{mb} MB: {sum(c.values()) * 1e6:.2f}")
        print(f"\nTotal by MemorySize: {'; '.join(sweep)}\n")


if __name__ == "__main__":
    main()
