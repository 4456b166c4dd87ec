//! What a benchmark run measured, and the report as Markdown and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::load::p50_p99;

use super::meter::Usage;
use super::stack::{Process, cpu_seconds, memory_mib};

/// Per-function figures of a phase.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FunctionReport {
    /// Function name.
    pub name: String,
    /// Invocations.
    pub invocations: usize,
    /// Mean, p50 and p99 invocation time (handing the event over → its answer), ms.
    pub duration_ms: (f64, f64, f64),
    /// CPU seconds used over the phase.
    pub cpu_s: f64,
    /// Peak RSS of the process, MiB.
    pub peak_rss_mib: f64,
    /// DynamoDB and SQS calls made over the phase.
    pub usage: BTreeMap<String, Usage>,
    /// The DynamoDB calls by action and item kind (`PutItem doc#conv`, …).
    pub by_item: BTreeMap<String, Usage>,
    /// Log bytes written over the phase (stdout and stderr; the EMF metric lines included).
    pub log_bytes: u64,
}

impl FunctionReport {
    pub(crate) fn of(process: &Process, durations_ms: &[f64], start: Mark) -> Self {
        let mean = if durations_ms.is_empty() {
            f64::NAN
        } else {
            durations_ms.iter().sum::<f64>() / durations_ms.len() as f64
        };
        let (p50, p99) = p50_p99(durations_ms.to_vec());
        Self {
            name: process.name.to_owned(),
            invocations: durations_ms.len(),
            duration_ms: (mean, p50, p99),
            cpu_s: cpu_seconds(process.pid) - start.cpu_s,
            peak_rss_mib: memory_mib(process.pid).0,
            usage: process.usage(),
            by_item: process.by_item(),
            log_bytes: process.log_bytes().saturating_sub(start.log_bytes),
        }
    }
}

/// Where a process's counters stood when a phase began.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mark {
    cpu_s: f64,
    log_bytes: u64,
}

impl Mark {
    pub(crate) fn of(process: &Process) -> Self {
        process.reset_usage();
        Self {
            cpu_s: cpu_seconds(process.pid),
            log_bytes: process.log_bytes(),
        }
    }
}

/// Cold starts of one function.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ColdStart {
    /// Function name.
    pub name: String,
    /// Spawn → first poll, ms, per run.
    pub samples_ms: Vec<f64>,
    /// The highest peak RSS at first poll, MiB.
    pub peak_rss_mib: f64,
    /// Of each sample, the time spent waiting for the servers' answers to the warm-up calls (the
    /// proxy's clock), ms.
    pub waiting_ms: Vec<f64>,
}

/// A phase that ran items through functions.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Phase {
    /// What went through.
    pub name: String,
    /// Webhooks posted (pipeline) or records in the one event (big batch).
    pub items: usize,
    /// Deliveries (POSTs) the receiver accepted over the phase, and their bytes.
    pub deliveries: u64,
    /// See `deliveries`.
    pub delivery_bytes: u64,
    /// Size of the one big event per function (big batch only), bytes. Lambda refuses events
    /// over 6 MB, so an event source mapping cuts SQS batches at that size.
    pub event_bytes: BTreeMap<String, usize>,
    /// Items the receiver accepted of those expected.
    pub delivered: usize,
    /// Per function.
    pub functions: Vec<FunctionReport>,
}

/// What a run measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BenchReport {
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` the processes had.
    pub memory_mb: u32,
    /// Per function.
    pub cold_starts: Vec<ColdStart>,
    /// Webhooks through the pipeline of processes: inbound messages, then statuses.
    pub pipeline: Vec<Phase>,
    /// One event of many records to track, then to deliver.
    pub big_batch: Option<Phase>,
}

pub(crate) fn stats_ms(samples: &[f64]) -> (f64, f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(i).copied().unwrap_or(f64::NAN)
    };
    (
        sorted.first().copied().unwrap_or(f64::NAN),
        at(0.5),
        at(0.9),
        sorted.last().copied().unwrap_or(f64::NAN),
    )
}

impl BenchReport {
    /// The report as Markdown tables.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.cold_starts.is_empty() {
            out.push_str("### Cold start: spawn → first poll of the runtime API\n\n");
            out.push_str("| function | runs | min ms | p50 ms | p90 ms | max ms | p50 without the servers' answers | peak RSS at first poll |\n|---|---|---|---|---|---|---|---|\n");
            for c in &self.cold_starts {
                let (min, p50, p90, max) = stats_ms(&c.samples_ms);
                let own: Vec<f64> = c
                    .samples_ms
                    .iter()
                    .zip(&c.waiting_ms)
                    .map(|(total, waiting)| total - waiting)
                    .collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {min:.1} | {p50:.1} | {p90:.1} | {max:.1} | {:.1} | {:.1} MiB |",
                    c.name,
                    c.samples_ms.len(),
                    stats_ms(&own).1,
                    c.peak_rss_mib
                );
            }
            out.push('\n');
        }
        for p in &self.pipeline {
            let _ = writeln!(
                out,
                "### Pipeline, {}: {} webhooks, {} of their items delivered in {} POSTs ({} bytes)\n",
                p.name, p.items, p.delivered, p.deliveries, p.delivery_bytes
            );
            function_table(&mut out, &p.functions, p.items, "webhook");
        }
        if let Some(p) = &self.big_batch {
            let _ = writeln!(
                out,
                "### One SQS event of {} records ({} of the messages delivered; event bytes {:?})\n",
                p.items, p.delivered, p.event_bytes
            );
            function_table(&mut out, &p.functions, p.items, "record");
        }
        out
    }
}

fn function_table(out: &mut String, functions: &[FunctionReport], per: usize, unit: &str) {
    let n = per.max(1) as f64;
    let _ = writeln!(
        out,
        "| function | invocations | mean ms | p50 ms | p99 ms | CPU ms per {unit} | log bytes per {unit} | peak RSS MiB |\n|---|---|---|---|---|---|---|---|"
    );
    for f in functions {
        let (mean, p50, p99) = f.duration_ms;
        let _ = writeln!(
            out,
            "| {} | {} | {mean:.1} | {p50:.1} | {p99:.1} | {:.3} | {:.0} | {:.1} |",
            f.name,
            f.invocations,
            f.cpu_s * 1000.0 / n,
            f.log_bytes as f64 / n,
            f.peak_rss_mib
        );
    }
    usage_table(
        out,
        &format!(
            "DynamoDB and SQS calls per {unit} (billed units per {unit}: write/read capacity units, SQS requests)"
        ),
        functions,
        n,
        unit,
        |f| &f.usage,
    );
    usage_table(
        out,
        "The DynamoDB calls by item kind (the `pk` prefix)",
        functions,
        n,
        unit,
        |f| &f.by_item,
    );
    out.push('\n');
}

impl BenchReport {
    /// Writes `report.md` and `report.json` into `dir` (after every phase, so a long run that
    /// is stopped keeps what it measured).
    pub fn save(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        Ok(())
    }
}

/// One row per function and call of `pick`'s usage, per `unit` (`n` of them).
fn usage_table(
    out: &mut String,
    title: &str,
    functions: &[FunctionReport],
    n: f64,
    unit: &str,
    pick: fn(&FunctionReport) -> &BTreeMap<String, Usage>,
) {
    let _ = writeln!(
        out,
        "\n{title}:\n\n| function | call | calls per {unit} | units per {unit} | server ms per call |\n|---|---|---|---|---|"
    );
    for f in functions {
        for (call, usage) in pick(f) {
            let _ = writeln!(
                out,
                "| {} | {call} | {:.3} | {:.3} | {:.1} |",
                f.name,
                usage.calls as f64 / n,
                usage.units / n,
                usage.upstream_ms / usage.calls.max(1) as f64
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_tables_put_figures_per_item() {
        let usage = Usage {
            calls: 20,
            units: 40.0,
            request_bytes: 0,
            request_units: 40.0,
            upstream_ms: 50.0,
        };
        let report = BenchReport {
            memory_mb: 256,
            cold_starts: vec![ColdStart {
                name: "track".into(),
                samples_ms: vec![30.0, 10.0, 20.0],
                peak_rss_mib: 10.5,
                waiting_ms: vec![5.0, 5.0, 5.0],
            }],
            pipeline: vec![Phase {
                name: "inbound text messages".into(),
                items: 10,
                delivered: 10,
                deliveries: 8,
                delivery_bytes: 16_000,
                event_bytes: BTreeMap::new(),
                functions: vec![FunctionReport {
                    name: "track".into(),
                    invocations: 1,
                    duration_ms: (100.0, 100.0, 100.0),
                    cpu_s: 0.05,
                    peak_rss_mib: 11.0,
                    usage: BTreeMap::from([("DynamoDB PutItem".to_owned(), usage)]),
                    by_item: BTreeMap::from([("PutItem dedup".to_owned(), usage)]),
                    log_bytes: 3_000,
                }],
            }],
            big_batch: None,
        };
        let md = report.markdown();
        assert!(
            md.contains("| track | 3 | 10.0 | 20.0 | 30.0 | 30.0 | 15.0 | 10.5 MiB |"),
            "{md}"
        );
        assert!(
            md.contains("| track | 1 | 100.0 | 100.0 | 100.0 | 5.000 | 300 | 11.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| track | DynamoDB PutItem | 2.000 | 4.000 | 2.5 |"),
            "{md}"
        );
        assert!(
            md.contains("| track | PutItem dedup | 2.000 | 4.000 | 2.5 |"),
            "{md}"
        );
    }
}
