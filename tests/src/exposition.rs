//! A strict parser of the Prometheus text exposition format (0.0.4) and of OpenMetrics text 1.0, as
//! scraped from `/metrics`: every line must be a well-formed `# HELP`, `# TYPE` (or, in OpenMetrics,
//! `# UNIT`/`# EOF`) or a sample of the family declared before it, with valid metric and label names,
//! escaped label values, no duplicate label or series, histograms with cumulative buckets ending in
//! `le="+Inf"` equal to `_count`, and a final newline (OpenMetrics: `# EOF` last). Anything else is an
//! error naming the line.

use std::collections::BTreeMap;

/// Which text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4 (`text/plain; version=0.0.4`).
    Prometheus,
    /// OpenMetrics text 1.0 (`application/openmetrics-text`).
    OpenMetrics,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its metric name (with `_total`, `_bucket`, … suffixes).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A metric family.
#[derive(Debug, Clone, Default)]
pub struct Family {
    /// `counter`, `gauge`, `histogram`, …
    pub kind: String,
    /// Its help text.
    pub help: String,
    /// Its samples, in order.
    pub samples: Vec<Sample>,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Families by name (as in `# TYPE`).
    pub families: BTreeMap<String, Family>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// `{a="x",b="y"}` (the braces included) → labels, and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected '{'")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("duplicate label {name:?}"));
        }
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
        if !rest.starts_with('}')
            && !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

/// The family a sample name belongs to, given the declared family and its type.
fn belongs(sample: &str, family: &str, kind: &str, format: Format) -> bool {
    let suffix = sample.strip_prefix(family);
    match (kind, format) {
        ("counter", Format::OpenMetrics) => matches!(suffix, Some("_total" | "_created")),
        ("histogram", _) => matches!(suffix, Some("_bucket" | "_sum" | "_count" | "_created")),
        _ => suffix == Some(""),
    }
}

impl Exposition {
    /// Parses `text` strictly.
    pub fn parse(text: &str, format: Format) -> Result<Self, String> {
        let mut out = Exposition::default();
        let mut current: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        if !text.ends_with('\n') {
            return Err("no final newline".into());
        }
        let lines: Vec<&str> = text[..text.len() - 1].split('\n').collect();
        for (n, line) in lines.iter().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
            if let Some(comment) = line.strip_prefix("# ") {
                let mut parts = comment.splitn(3, ' ');
                let keyword = parts.next().unwrap_or_default();
                if keyword == "EOF" && format == Format::OpenMetrics {
                    if n + 1 != lines.len() {
                        return Err(at("# EOF before the end".into()));
                    }
                    continue;
                }
                let name = parts.next().ok_or_else(|| at("no metric name".into()))?;
                let rest = parts.next().unwrap_or_default();
                if !is_metric_name(name) {
                    return Err(at(format!("bad metric name {name:?}")));
                }
                match keyword {
                    "HELP" => {
                        let family = out.families.entry(name.to_owned()).or_default();
                        if !family.help.is_empty() {
                            return Err(at("second HELP".into()));
                        }
                        family.help = rest.to_owned();
                    }
                    "TYPE" => {
                        let valid: &[&str] = match format {
                            Format::Prometheus => {
                                &["counter", "gauge", "histogram", "summary", "untyped"]
                            }
                            Format::OpenMetrics => &[
                                "counter",
                                "gauge",
                                "histogram",
                                "gaugehistogram",
                                "stateset",
                                "info",
                                "summary",
                                "unknown",
                            ],
                        };
                        if !valid.contains(&rest) {
                            return Err(at(format!("bad type {rest:?}")));
                        }
                        let family = out.families.entry(name.to_owned()).or_default();
                        if !family.kind.is_empty() || !family.samples.is_empty() {
                            return Err(at("TYPE after samples or twice".into()));
                        }
                        family.kind = rest.to_owned();
                        current = Some(name.to_owned());
                    }
                    "UNIT" if format == Format::OpenMetrics => {
                        if !name.ends_with(&format!("_{rest}")) {
                            return Err(at("unit is not the name's suffix".into()));
                        }
                    }
                    _ => return Err(at(format!("unexpected comment {keyword:?}"))),
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                return Err(at("empty line or malformed comment".into()));
            }
            let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..name_end];
            if !is_metric_name(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            let (labels, rest) = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end..]).map_err(at)?
            } else {
                (BTreeMap::new(), &line[name_end..])
            };
            let rest = rest
                .strip_prefix(' ')
                .ok_or_else(|| at("no space before the value".into()))?;
            let mut fields = rest.split(' ');
            let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
            if let Some(ts) = fields.next() {
                ts.parse::<f64>()
                    .map_err(|_| at(format!("bad timestamp {ts:?}")))?;
            }
            if fields.next().is_some() {
                return Err(at("trailing fields".into()));
            }
            let family_name = current
                .as_ref()
                .ok_or_else(|| at("sample before any TYPE".into()))?;
            let family = out.families.get_mut(family_name).expect("declared");
            if !belongs(name, family_name, &family.kind, format) {
                return Err(at(format!("sample of another family than {family_name}")));
            }
            if !seen.insert((name.to_owned(), format!("{labels:?}"))) {
                return Err(at("duplicate series".into()));
            }
            family.samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        if format == Format::OpenMetrics && lines.last() != Some(&"# EOF") {
            return Err("no # EOF at the end".into());
        }
        for (name, family) in &out.families {
            if family.kind.is_empty() {
                return Err(format!("{name}: HELP without TYPE"));
            }
            if family.kind == "histogram" {
                check_histogram(name, family)?;
            }
        }
        Ok(out)
    }

    /// Every sample named `name` whose labels include all of `filter`.
    pub fn samples<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .filter(move |s| {
                s.name == name
                    && filter
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
    }

    /// The sum of [`Exposition::samples`] (0 when there is none).
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples(name, filter).map(|s| s.value).sum()
    }

    /// The one sample named `name` with exactly `labels`, if any.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples(name, &[])
            .find(|s| s.labels == want)
            .map(|s| s.value)
    }
}

/// Buckets cumulative and ending in `+Inf` = `_count`, per label set.
fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    /// Per label set (without `le`): the (bound, count) buckets and `_count`.
    type Buckets = (Vec<(f64, f64)>, Option<f64>);
    let mut series: BTreeMap<String, Buckets> = BTreeMap::new();
    for s in &family.samples {
        let mut labels = s.labels.clone();
        let le = labels.remove("le");
        let entry = series.entry(format!("{labels:?}")).or_default();
        if s.name.ends_with("_bucket") {
            let le = le.ok_or(format!("{name}: bucket without le"))?;
            entry.0.push((parse_value(&le)?, s.value));
        } else if s.name.ends_with("_count") {
            entry.1 = Some(s.value);
        }
    }
    for (labels, (buckets, count)) in series {
        let sorted = buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let last = buckets.last().copied();
        if !sorted || last.map(|b| b.0) != Some(f64::INFINITY) || last.map(|b| b.1) != count {
            return Err(format!(
                "{name}{labels}: buckets {buckets:?}, count {count:?}"
            ));
        }
    }
    Ok(())
}
