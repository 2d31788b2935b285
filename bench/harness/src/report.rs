//! Rows of the result table, how a point is measured (median of N runs,
//! load average before and after), and the three outputs: the terminal
//! table, the JSON file and the SVG chart of ratios to ethergate.
//!
//! Invariant: every number in a row comes from a run in this process; a
//! failed point keeps its error text and has no value.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, time::Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::sys;

/// The system every ratio is taken against.
pub const REFERENCE: &str = "ethergate";

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub group: String,
    pub workload: String,
    pub system: String,
    pub unit: String,
    pub better: Better,
    /// Median of `samples`.
    pub value: Option<f64>,
    pub samples: Vec<f64>,
    /// Secondary numbers of the median run (retransmits, p50, …).
    pub extra: BTreeMap<String, f64>,
    pub method: String,
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
    pub seconds: f64,
    pub error: Option<String>,
    /// ethergate's advantage: reference/value for lower-is-better rows,
    /// value_ref/value for higher-is-better; > 1 means ethergate wins.
    pub ratio: Option<f64>,
}

/// One measured run: the headline value and its companions.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub value: f64,
    pub extra: BTreeMap<String, f64>,
}

impl Sample {
    pub fn new(value: f64) -> Self {
        Self {
            value,
            extra: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: f64) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }
}

/// What a point is: where it belongs and how it is measured.
pub struct Point<'a> {
    pub group: &'a str,
    pub workload: &'a str,
    pub system: &'a str,
    pub unit: &'a str,
    pub better: Better,
    pub method: &'a str,
}

/// The group a module's rows belong to; it makes their [`Point`]s.
#[derive(Clone, Copy, Debug)]
pub struct Group(pub &'static str);

impl Group {
    pub fn point<'a>(
        self,
        workload: &'a str,
        system: &'a str,
        unit: &'a str,
        better: Better,
        method: &'a str,
    ) -> Point<'a> {
        Point {
            group: self.0,
            workload,
            system,
            unit,
            better,
            method,
        }
    }
}

impl Point<'_> {
    pub fn row(&self) -> Row {
        Row {
            group: self.group.to_owned(),
            workload: self.workload.to_owned(),
            system: self.system.to_owned(),
            unit: self.unit.to_owned(),
            better: self.better,
            value: None,
            samples: Vec::new(),
            extra: BTreeMap::new(),
            method: self.method.to_owned(),
            load_before: sys::loadavg(),
            load_after: [f64::NAN; 3],
            seconds: 0.0,
            error: None,
            ratio: None,
        }
    }
}

/// The rows so far, printed as they come in.
pub struct Report {
    pub rows: Vec<Row>,
    started: Instant,
}

impl Report {
    pub fn new() -> Self {
        Self {
            rows: Vec::new(),
            started: Instant::now(),
        }
    }

    pub fn progress(&self, text: &str) {
        let s = self.started.elapsed().as_secs();
        println!("[{:02}:{:02}] {text}", s / 60, s % 60);
    }

    /// Measures `point` `reps` times with `run`; the row gets the median.
    /// A failing run records its error; the other runs still count.
    pub fn measure(
        &mut self,
        point: Point<'_>,
        reps: usize,
        mut run: impl FnMut() -> Result<Sample>,
    ) -> Option<f64> {
        let mut row = point.row();
        let started = Instant::now();
        let mut samples: Vec<Sample> = Vec::new();
        for _ in 0..reps.max(1) {
            if sys::interrupted() {
                row.error = Some("interrupted".into());
                break;
            }
            match run() {
                Ok(sample) if sample.value.is_finite() => samples.push(sample),
                Ok(sample) => row.error = Some(format!("not a number: {}", sample.value)),
                Err(e) => row.error = Some(format!("{e:#}")),
            }
        }
        samples.sort_by(|a, b| a.value.total_cmp(&b.value));
        if let Some(median) = samples.get(samples.len() / 2) {
            row.value = Some(median.value);
            row.extra = median.extra.clone();
        }
        row.samples = samples.iter().map(|s| s.value).collect();
        self.push(row, started)
    }

    /// Adds a row whose value was derived from other measurements (e.g.
    /// p99 from the same run as p50).
    pub fn derived(&mut self, point: Point<'_>, value: Result<f64>) -> Option<f64> {
        let mut row = point.row();
        match value {
            Ok(v) => {
                row.value = Some(v);
                row.samples = vec![v];
            }
            Err(e) => row.error = Some(format!("{e:#}")),
        }
        self.push(row, Instant::now())
    }

    fn push(&mut self, mut row: Row, started: Instant) -> Option<f64> {
        row.load_after = sys::loadavg();
        row.seconds = started.elapsed().as_secs_f64();
        let shown = match (&row.value, &row.error) {
            (Some(v), None) => format!("{} {}", fmt_value(*v), row.unit),
            (Some(v), Some(e)) => format!(
                "{} {} (some runs failed: {})",
                fmt_value(*v),
                row.unit,
                short(e)
            ),
            (None, e) => format!("FAILED: {}", short(e.as_deref().unwrap_or("?"))),
        };
        self.progress(&format!(
            "{} / {} / {}: {shown}  (load {:.2} -> {:.2})",
            row.group, row.workload, row.system, row.load_before[0], row.load_after[0]
        ));
        let value = row.value;
        self.rows.push(row);
        value
    }

    /// Fills in every row's ratio to the reference system's row of the
    /// same group, workload and unit.
    pub fn compute_ratios(&mut self) {
        let refs: Vec<(String, String, String, f64)> = self
            .rows
            .iter()
            .filter(|r| r.system == REFERENCE)
            .filter_map(|r| {
                Some((
                    r.group.clone(),
                    r.workload.clone(),
                    r.unit.clone(),
                    r.value?,
                ))
            })
            .collect();
        for row in &mut self.rows {
            let reference = refs
                .iter()
                .find(|(g, w, u, _)| *g == row.group && *w == row.workload && *u == row.unit)
                .map(|(_, _, _, v)| *v);
            row.ratio = match (reference, row.value) {
                (Some(r), Some(v)) if v != 0.0 && r != 0.0 => Some(match row.better {
                    Better::Higher => r / v,
                    Better::Lower => v / r,
                }),
                _ => None,
            };
        }
    }

    /// The one table: absolute numbers, ethergate's advantage, load, method.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<6} {:<44} {:<28} {:>16} {:>9} {:>11}  method / error",
            "group", "workload", "system", "value", "eg adv.", "load 1m"
        );
        let _ = writeln!(out, "{}", "-".repeat(150));
        for r in &self.rows {
            let value = match r.value {
                Some(v) => format!("{} {}", fmt_value(v), r.unit),
                None => "—".to_owned(),
            };
            let ratio = match (r.system.as_str(), r.ratio) {
                (REFERENCE, _) => "1×".to_owned(),
                (_, Some(x)) => format!("{x:.2}×"),
                _ => "—".to_owned(),
            };
            let note = match &r.error {
                Some(e) => format!("ERROR: {}", short(e)),
                None => r.method.clone(),
            };
            let _ = writeln!(
                out,
                "{:<6} {:<44} {:<28} {:>16} {:>9} {:>5.2}→{:<5.2}  {note}",
                r.group,
                clip(&r.workload, 44),
                clip(&r.system, 28),
                value,
                ratio,
                r.load_before[0],
                r.load_after[0],
            );
        }
        let _ = writeln!(
            out,
            "eg adv. = how many times better ethergate is on that row (value ratio, inverted for lower-is-better units)"
        );
        out
    }
}

pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn short(e: &str) -> String {
    let line = e.lines().next().unwrap_or_default();
    clip(line, 160)
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The JSON document: run metadata plus every row.
#[derive(Serialize)]
pub struct Document<'a> {
    pub started_utc: &'a str,
    pub mode: &'a str,
    pub reps: usize,
    pub host: BTreeMap<String, String>,
    pub rows: &'a [Row],
}

pub fn write_json(path: &Path, doc: &Document<'_>) -> Result<()> {
    let text = serde_json::to_string_pretty(doc)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// Horizontal bars of ethergate's advantage per comparison row, on a log
/// scale with the 1× line marked.
pub fn write_svg(path: &Path, rows: &[Row], title: &str) -> Result<()> {
    use plotters::prelude::*;
    let bars: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.system != REFERENCE)
        .filter_map(|r| {
            Some((
                format!("{}: {} vs {}", r.group, r.workload, r.system),
                r.ratio?,
            ))
        })
        .filter(|(_, x)| x.is_finite() && *x > 0.0)
        .collect();
    let row_h = 22i32;
    let label_w = 560i32;
    let plot_w = 480i32;
    let top = 50i32;
    let height = (top + row_h * bars.len().max(1) as i32 + 50) as u32;
    let width = (label_w + plot_w + 90) as u32;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let font = ("sans-serif", 13).into_font();
    root.draw(&Text::new(
        title.to_owned(),
        (10, 12),
        ("sans-serif", 16).into_font(),
    ))?;
    // log2 scale from 1/16× to 16×.
    let (lo, hi) = (-4.0f64, 4.0f64);
    let x_of = |ratio: f64| {
        let l = ratio.log2().clamp(lo, hi);
        label_w + ((l - lo) / (hi - lo) * f64::from(plot_w)) as i32
    };
    let bottom = top + row_h * bars.len() as i32;
    for tick in [-4, -3, -2, -1, 0, 1, 2, 3, 4] {
        let x = x_of(2f64.powi(tick));
        let colour = if tick == 0 {
            BLACK
        } else {
            RGBColor(220, 220, 220)
        };
        root.draw(&PathElement::new(vec![(x, top - 5), (x, bottom)], colour))?;
        let label = if tick >= 0 {
            format!("{}×", 1 << tick)
        } else {
            format!("1/{}×", 1 << -tick)
        };
        root.draw(&Text::new(label, (x - 12, bottom + 6), font.clone()))?;
    }
    for (i, (label, ratio)) in bars.iter().enumerate() {
        let y = top + row_h * i as i32;
        root.draw(&Text::new(clip(label, 80), (10, y + 4), font.clone()))?;
        let (x0, x1) = (x_of(1.0), x_of(*ratio));
        let colour = if *ratio >= 1.0 {
            RGBColor(46, 125, 50)
        } else {
            RGBColor(198, 40, 40)
        };
        root.draw(&Rectangle::new(
            [
                (x0.min(x1), y + 3),
                (x0.max(x1).max(x0.min(x1) + 1), y + row_h - 4),
            ],
            colour.filled(),
        ))?;
        root.draw(&Text::new(
            format!("{ratio:.2}×"),
            (label_w + plot_w + 8, y + 4),
            font.clone(),
        ))?;
    }
    root.draw(&Text::new(
        "ethergate's advantage per row (log scale; right of 1× = ethergate better)".to_owned(),
        (10, bottom + 26),
        font,
    ))?;
    root.present()?;
    Ok(())
}
