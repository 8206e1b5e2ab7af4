//! One measured run: throughput, latency percentiles, errors and server memory; as JSON lines and as
//! a Markdown table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The result of one load run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// What was measured (one table row).
    pub label: String,
    /// Successful calls per second over the measured window.
    pub ok_per_sec: f64,
    /// Refused or failed calls per second over the measured window.
    pub err_per_sec: f64,
    /// Latency of successful calls, milliseconds: p50, p90, p99, max.
    pub p50_ms: f64,
    /// p90, ms.
    pub p90_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// max, ms.
    pub max_ms: f64,
    /// p99 of failed (e.g. shed) calls, ms; 0 when none failed.
    pub err_p99_ms: f64,
    /// Failed calls by status.
    pub errors: BTreeMap<String, u64>,
    /// Calls in flight (closed loop) or the offered rate (open loop, calls/s).
    pub load: String,
    /// Measured seconds.
    pub seconds: f64,
    /// Server RSS before the load, MiB (0 when unknown).
    pub idle_rss_mib: f64,
    /// Server peak RSS (VmHWM) after the load, MiB (0 when unknown).
    pub peak_rss_mib: f64,
    /// Free-form note (e.g. the reference this row is compared with).
    #[serde(default)]
    pub note: String,
}

impl Report {
    /// One human-readable line.
    pub fn line(&self) -> String {
        format!(
            "{:<44} {:>10.0} ok/s {:>8.0} err/s  p50 {:>7.2} p90 {:>7.2} p99 {:>7.2} max {:>8.2} ms  rss {:>5.1}/{:>5.1} MiB  {}",
            self.label,
            self.ok_per_sec,
            self.err_per_sec,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.idle_rss_mib,
            self.peak_rss_mib,
            self.load
        )
    }

    /// Appends this report as one JSON line to `path`.
    pub fn append_json(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{}", serde_json::to_string(self)?)?;
        Ok(())
    }
}

fn fmt_rss(v: f64) -> String {
    if v > 0.0 {
        format!("{v:.1}")
    } else {
        "–".into()
    }
}

/// Renders JSON-lines reports as a Markdown table.
pub fn markdown_table(lines: &str) -> anyhow::Result<String> {
    let mut out = String::from(
        "| run | load | calls/s | errors/s | p50 ms | p90 ms | p99 ms | max ms | server RSS idle → peak MiB | note |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let r: Report = serde_json::from_str(line)?;
        let errs = if r.errors.is_empty() {
            format!("{:.0}", r.err_per_sec)
        } else {
            let kinds: Vec<String> = r.errors.keys().cloned().collect();
            format!("{:.0} ({})", r.err_per_sec, kinds.join(", "))
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} → {} | {} |\n",
            r.label,
            r.load,
            r.ok_per_sec,
            errs,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            fmt_rss(r.idle_rss_mib),
            fmt_rss(r.peak_rss_mib),
            r.note
        ));
    }
    Ok(out)
}
