//! The one table the bench prints: each figure beside its target with PASS or MISS, plus the context
//! needed to read it (request counts, non-200s, log lines, the individual cold-start runs).

use std::time::Duration;

use crate::load::{CONNECTIONS, LoadResult};
use crate::scenarios::{Diagnostics, Stampede};

const MIN_RATIO: f64 = 0.5;
const MAX_P99: Duration = Duration::from_millis(5);
const MAX_COLD_START: Duration = Duration::from_millis(50);
const MAX_PEAK_BYTES: u64 = 30_000_000;

pub struct Report {
    /// Distinct caller tokens used round-robin in (a) and (b).
    pub callers: usize,
    pub broker_load: LoadResult,
    pub broker_log_lines: u64,
    pub bare_load: LoadResult,
    /// (f): one delegation bearer redeemed for `sql` on the Token route, its downstream token cached.
    pub delegation_load: LoadResult,
    pub cold_starts: Vec<Duration>,
    pub stampede: Stampede,
    /// VmHWM of the throughput broker after (a), KiB.
    pub broker_peak_rss_kib: u64,
    /// Present when asked for (`TOKEN_BROKER_BENCH_DIAGNOSE`).
    pub diagnostics: Option<Diagnostics>,
}

struct Row {
    id: &'static str,
    what: String,
    measured: String,
    target: &'static str,
    pass: Option<bool>,
}

impl Row {
    fn info(id: &'static str, what: impl Into<String>, measured: String) -> Self {
        Self {
            id,
            what: what.into(),
            measured,
            target: "",
            pass: None,
        }
    }

    fn cells(self) -> [String; 5] {
        let result = match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "",
        };
        [
            self.id.to_owned(),
            self.what,
            self.measured,
            self.target.to_owned(),
            result.to_owned(),
        ]
    }

    fn check(
        id: &'static str,
        what: &str,
        measured: String,
        target: &'static str,
        pass: bool,
    ) -> Self {
        Self {
            id,
            what: what.to_owned(),
            measured,
            target,
            pass: Some(pass),
        }
    }
}

impl Report {
    pub fn print(&self) {
        let header = ["", "measurement", "measured", "target", "result"].map(str::to_owned);
        let body: Vec<[String; 5]> = self.rows().into_iter().map(Row::cells).collect();
        let widths: [usize; 5] = std::array::from_fn(|column| {
            body.iter()
                .chain([&header])
                .map(|cells| cells[column].len())
                .max()
                .unwrap_or(0)
                .max(3)
        });
        println!();
        println!(
            "token-broker load bench: release build, loopback, {CONNECTIONS} keep-alive connections, {} CPUs shared with the load generator",
            std::thread::available_parallelism().map_or(0, usize::from)
        );
        print_line(&header, &widths);
        print_line(&widths.map(|width| "-".repeat(width)), &widths);
        for cells in &body {
            print_line(cells, &widths);
        }
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = self.throughput_rows();
        rows.push(self.cold_start_row());
        rows.extend(self.stampede_rows());
        rows.extend(self.memory_rows());
        if let Some(diagnostics) = &self.diagnostics {
            rows.extend(diagnostic_rows(diagnostics, &self.bare_load));
        }
        rows
    }

    fn throughput_rows(&self) -> Vec<Row> {
        let (broker, bare) = (&self.broker_load, &self.bare_load);
        let ratio = ratio(broker, bare);
        let delegation = &self.delegation_load;
        let delegation_ratio = self::ratio(delegation, bare);
        let p99 = broker.percentile(99.0);
        let (broker_cpu, bare_cpu) = (
            broker.cpu_micros_per_request(),
            bare.cpu_micros_per_request(),
        );
        vec![
            Row::info(
                "a",
                format!(
                    "broker: cached GetSPToken, {} distinct callers",
                    self.callers
                ),
                throughput(broker),
            ),
            Row::info(
                "a",
                "broker: requests / non-200 / log lines",
                format!(
                    "{} / {} / {}",
                    broker.requests, broker.non_200, self.broker_log_lines
                ),
            ),
            Row::info("b", "bare warp 0.4 handler, same load", throughput(bare)),
            Row::check(
                "a/b",
                "throughput ratio",
                format!("{ratio:.2}"),
                ">= 0.5",
                ratio >= MIN_RATIO,
            ),
            Row::info(
                "a/b",
                "server CPU per request (user + system, warm-up included)",
                format!(
                    "broker {broker_cpu:.1} us, bare {bare_cpu:.1} us ({:.2}x)",
                    broker_cpu / bare_cpu.max(f64::EPSILON)
                ),
            ),
            Row::check("a", "p99 latency", millis(p99), "< 5 ms", p99 < MAX_P99),
            Row::info(
                "f",
                format!(
                    "broker: delegation redemption on /api/token, cached ({} requests, {} non-200)",
                    delegation.requests, delegation.non_200
                ),
                throughput(delegation),
            ),
            Row::check(
                "f/b",
                "delegation throughput ratio",
                format!("{delegation_ratio:.2}"),
                ">= 0.5",
                delegation_ratio >= MIN_RATIO,
            ),
        ]
    }

    fn cold_start_row(&self) -> Row {
        let cold = median(&self.cold_starts);
        let runs: Vec<String> = self.cold_starts.iter().map(|d| millis(*d)).collect();
        Row::check(
            "c",
            &format!(
                "cold start to first 200, median of {}",
                self.cold_starts.len()
            ),
            format!("{} (runs: {})", millis(cold), runs.join(", ")),
            "< 50 ms",
            cold < MAX_COLD_START,
        )
    }

    fn stampede_rows(&self) -> [Row; 2] {
        let stampede = &self.stampede;
        [
            Row::check(
                "d",
                &format!(
                    "stampede: token-endpoint calls for {} requests",
                    stampede.requests
                ),
                stampede.upstream_calls.to_string(),
                "= 1",
                stampede.upstream_calls == 1,
            ),
            Row::check(
                "d",
                "stampede: 200 responses, all done after",
                format!(
                    "{}/{} in {}",
                    stampede.result.ok,
                    stampede.requests,
                    millis(stampede.result.elapsed)
                ),
                "all 200",
                stampede.result.ok == stampede.requests,
            ),
        ]
    }

    /// The target is for "the load" of (a); the stampede's 1,000 simultaneous connections are shown
    /// beside it for context (the server stack alone holds tens of KB per open connection).
    fn memory_rows(&self) -> Vec<Row> {
        let stampede = &self.stampede;
        vec![
            Row::check(
                "e",
                "broker peak RSS (VmHWM) under the load of a",
                megabytes(self.broker_peak_rss_kib),
                "< 30 MB",
                self.broker_peak_rss_kib * 1024 < MAX_PEAK_BYTES,
            ),
            Row::info(
                "e",
                "broker peak RSS after d's 1,000 connections (idle before d)",
                format!(
                    "{} ({})",
                    megabytes(stampede.peak_rss_kib),
                    megabytes(stampede.idle_rss_kib)
                ),
            ),
        ]
    }
}

fn diagnostic_rows(diagnostics: &Diagnostics, bare: &LoadResult) -> Vec<Row> {
    let mut rows: Vec<Row> = diagnostics
        .loads
        .iter()
        .map(|(label, result)| {
            Row::info(
                "diag",
                label.clone(),
                format!("{} (ratio {:.2})", throughput(result), ratio(result, bare)),
            )
        })
        .collect();
    rows.push(Row::info(
        "diag",
        "bare handler peak RSS after the same burst as d",
        megabytes(diagnostics.bare_burst_rss_kib),
    ));
    rows
}

/// One table line, each cell padded to its column's width.
fn print_line(cells: &[String; 5], widths: &[usize; 5]) {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(cell, width)| format!("{cell:<width$}"))
        .collect();
    println!("| {} |", padded.join(" | "));
}

/// Throughput of `result` relative to `bare`.
fn ratio(result: &LoadResult, bare: &LoadResult) -> f64 {
    result.requests_per_second() / bare.requests_per_second().max(f64::EPSILON)
}

fn throughput(result: &LoadResult) -> String {
    format!(
        "{:.0} req/s, p50 {}, p99 {}",
        result.requests_per_second(),
        millis(result.percentile(50.0)),
        millis(result.percentile(99.0))
    )
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1_000.0)
}

/// KiB (as /proc reports them) in decimal megabytes.
fn megabytes(kib: u64) -> String {
    format!("{:.1} MB", (kib * 1024) as f64 / 1e6)
}

fn median(durations: &[Duration]) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}
