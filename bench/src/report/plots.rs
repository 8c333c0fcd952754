//! SVG plots of a report (plotters' SVG backend: text is written as SVG
//! text elements, so no font is needed to draw).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::ReportData;

const SIZE: (u32, u32) = (720, 420);
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type Series = (String, Vec<(f64, f64)>);

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

fn max_y(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15
}

/// Lines with points; `log_x` for SA counts.
fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log_x: bool,
) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x));
    let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let ymax = max_y(series);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .draw()
                .map_err(err)?;
            for (i, (name, pts)) in series.iter().enumerate() {
                let c = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                    .map_err(err)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .position(if log_x && ymax <= 1.2 {
                    // A CDF on a log axis: its lower right is empty.
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperLeft
                })
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }};
    }
    if log_x {
        draw!(builder
            .build_cartesian_2d((lo.max(1.0)..hi * 1.5).log_scale(), 0.0..ymax)
            .map_err(err)?);
    } else {
        let pad = (hi - lo).max(1.0) * 0.05;
        draw!(builder
            .build_cartesian_2d(lo - pad..hi + pad, 0.0..ymax)
            .map_err(err)?);
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One horizontal bar per (label, value), labels on the left.
fn bars(path: &Path, title: &str, x_desc: &str, bars: &[(String, f64)]) -> Result<()> {
    let n = bars.len().max(1);
    let height = (90 + 34 * n as u32).max(200);
    let root = SVGBackend::new(path, (SIZE.0, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xmax = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(200)
        .build_cartesian_2d(0.0..xmax, (0..n).into_segmented())
        .map_err(err)?;
    let names: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(x_desc)
        .y_labels(n)
        .y_label_style(("sans-serif", 12))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).map_or(String::new(), |s| s.to_string()),
            _ => String::new(),
        })
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (name, v))| {
            // One colour per first word (the path, or the worker count).
            let first = |s: &str| s.split(' ').next().unwrap_or("").to_string();
            let mut groups: Vec<String> = bars.iter().map(|b| first(&b.0)).collect();
            groups.dedup();
            let g = groups.iter().position(|w| *w == first(name)).unwrap_or(i);
            let c = COLORS[g % COLORS.len()];
            let mut r = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                c.filled(),
            );
            r.set_margin(4, 4, 0, 0);
            r
        }))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

pub fn draw_all(d: &ReportData, dir: &Path) -> Result<()> {
    // Crypto: Gbps and Mpps by inner packet size (fixed sizes).
    let mut gbps: Vec<Series> = Vec::new();
    let mut mpps: Vec<Series> = Vec::new();
    let mut lat: Vec<Series> = Vec::new();
    for r in &d.crypto {
        let Ok(size) = r.size.parse::<f64>() else {
            continue;
        };
        let name = format!("{} {}", r.suite, r.direction);
        match gbps.iter().position(|s| s.0 == name) {
            Some(i) => {
                gbps[i].1.push((size, r.gbps));
                mpps[i].1.push((size, r.mpps));
            }
            None => {
                gbps.push((name.clone(), vec![(size, r.gbps)]));
                mpps.push((name, vec![(size, r.mpps)]));
            }
        }
        if r.size == "1400" {
            lat.push((
                format!("{} {} (1400 B)", r.suite, r.direction),
                vec![
                    (0.0, 0.0),
                    (r.batch_p50_us, 0.5),
                    (r.batch_p99_us, 0.99),
                    (r.batch_p999_us, 0.999),
                ],
            ));
        }
    }
    if !gbps.is_empty() {
        lines(
            &dir.join("crypto-gbps.svg"),
            "ESP on one core: Gbps of inner packets",
            "inner packet bytes",
            "Gbps",
            &gbps,
            false,
        )?;
        lines(
            &dir.join("crypto-mpps.svg"),
            "ESP on one core: Mpps",
            "inner packet bytes",
            "Mpps",
            &mpps,
            false,
        )?;
        lines(
            &dir.join("crypto-latency.svg"),
            "Per-batch latency (batch of 32), fraction of batches at or below",
            "µs per batch",
            "fraction",
            &lat,
            false,
        )?;
    }
    // SA scaling: ns per packet by SA count.
    let mut sas: Vec<Series> = Vec::new();
    for r in d.scale.iter().filter(|r| r.test == "sas") {
        let name = format!("{} (aes128gcm16, {} B)", r.direction, r.size);
        match sas.iter().position(|s| s.0 == name) {
            Some(i) => sas[i].1.push((r.sas as f64, r.ns_per_packet)),
            None => sas.push((name, vec![(r.sas as f64, r.ns_per_packet)])),
        }
    }
    if !sas.is_empty() {
        lines(
            &dir.join("scale-sas.svg"),
            "Pipeline CPU ns per packet by SA count (one core)",
            "SAs installed, traffic over all",
            "ns per packet",
            &sas,
            true,
        )?;
    }
    let workers: Vec<(String, f64)> = d
        .scale
        .iter()
        .filter(|r| r.test != "sas")
        .map(|r| {
            let what = if r.test == "shared_sa" {
                "1 shared SA, decap"
            } else {
                "own SAs, encap"
            };
            (format!("{} worker(s), {what}", r.workers), r.mpps)
        })
        .collect();
    if !workers.is_empty() {
        bars(
            &dir.join("scale-workers.svg"),
            &format!(
                "Workers: Mpps (wall clock), {}-byte packets",
                d.scale
                    .iter()
                    .find(|r| r.test != "sas")
                    .map_or(64, |r| r.size)
            ),
            "Mpps",
            &workers,
        )?;
    }
    if let Some(l) = &d.lab {
        let lab: Vec<(String, f64)> = l
            .results
            .iter()
            .filter(|r| r.rate.is_none() && (r.frame.is_none() || r.frame == Some(1400)))
            .filter(|r| !l.is_gen() || r.frame.is_some())
            .map(|r| {
                let traffic = match (l.is_gen(), r.frame.is_some()) {
                    (true, _) => "1400 B",
                    (false, true) => "UDP1400",
                    (false, false) => "TCP",
                };
                (format!("{} {traffic}", r.path_label()), r.mbps)
            })
            .collect();
        bars(
            &dir.join("lab.svg"),
            "Two-gateway lab, lan_a -> lan_b: Mbit/s",
            "Mbit/s",
            &lab,
        )?;
        if l.is_gen() {
            let (pps, gbps, lat) = lab_series(l);
            lines(
                &dir.join("lab-pps.svg"),
                "Lab, gen at the maximum rate: received kpps by packet size",
                "IP packet bytes",
                "kpps received",
                &pps,
                false,
            )?;
            lines(
                &dir.join("lab-gbps.svg"),
                "Lab, gen at the maximum rate: received Gbit/s by packet size",
                "IP packet bytes",
                "Gbit/s (Ethernet header + IP)",
                &gbps,
                false,
            )?;
            if !lat.is_empty() {
                lines(
                    &dir.join("lab-latency.svg"),
                    "Lab at a fixed rate: one-way latency, fraction of packets at or below",
                    "µs (log)",
                    "fraction",
                    &lat,
                    true,
                )?;
            }
        }
    }
    Ok(())
}

/// The gen lab's series, one per path and suite: kpps and Gbit/s by fixed
/// packet size at the maximum rate, and the latency CDF at the fixed rate.
fn lab_series(l: &super::LabData) -> (Vec<Series>, Vec<Series>, Vec<Series>) {
    let mut pps: Vec<Series> = Vec::new();
    let mut gbps: Vec<Series> = Vec::new();
    let mut lat: Vec<Series> = Vec::new();
    for r in &l.results {
        let name = r.path_label();
        match (r.rate, r.frame) {
            (None, Some(f)) => {
                let f = f64::from(f);
                match pps.iter().position(|s| s.0 == name) {
                    Some(i) => {
                        pps[i].1.push((f, r.pps / 1e3));
                        gbps[i].1.push((f, r.mbps / 1e3));
                    }
                    None => {
                        pps.push((name.clone(), vec![(f, r.pps / 1e3)]));
                        gbps.push((name, vec![(f, r.mbps / 1e3)]));
                    }
                }
            }
            // The CPU run's rows are in the CPU table, not the latency plot.
            (Some(rate), _) if Some(rate) == l.cpu_rate => {}
            (Some(rate), _) => {
                if let Some(c) = r.latency_us {
                    lat.push((
                        format!("{name} ({} B, {rate} pps)", r.size_label()),
                        c.cdf()
                            .into_iter()
                            .map(|(us, f)| (us.max(1.0), f))
                            .collect(),
                    ));
                }
            }
            (None, None) => {}
        }
    }
    (pps, gbps, lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_lab_series_split_maximum_rate_sizes_from_fixed_rate_latency() {
        let d = super::super::tests::sample_gen();
        let l = d.lab.as_ref().unwrap();
        let (pps, gbps, lat) = lab_series(l);
        let names: Vec<&str> = pps.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["forwarder", "espada GCM", "strongswan GCM"]);
        // IMIX (no frame) is in the tables, not on a size axis.
        let xs: Vec<f64> = pps[0].1.iter().map(|p| p.0).collect();
        assert_eq!(xs, [64.0, 1400.0]);
        assert_eq!(pps[0].1[0].1, 500.0);
        assert!((pps[0].1[1].1 - 1120e3 / 8.0 / 1414.0).abs() < 1e-9);
        assert!((gbps[0].1[1].1 - 1.12).abs() < 1e-9, "{:?}", gbps[0]);
        assert_eq!(lat.len(), 3);
        assert_eq!(lat[1].0, "espada GCM (1400 B, 2000 pps)");
        let fracs: Vec<f64> = lat[1].1.iter().map(|p| p.1).collect();
        assert_eq!(fracs, [0.0, 0.5, 0.9, 0.99, 0.999, 1.0]);
        assert_eq!(lat[1].1[1].0, 150.0);
        // The CDF is drawn on a log axis: no point below 1 µs.
        assert!(lat.iter().all(|s| s.1.iter().all(|p| p.0 >= 1.0)));
    }
}
