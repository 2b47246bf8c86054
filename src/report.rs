//! The run's report for people: `report.html` beside the record (`report.A-B.html` for a chunk,
//! `NAME.report.html` beside a video), one self-contained page with plots drawn as inline SVG:
//! the repairs per frame of each defect stage, the flicker curve (`deflicker`) and the camera
//! path with what was kept of it (`stabilise`). Everything on it comes from the record, so it
//! says nothing the record does not.

use serde_json::Value;

const COLOURS: [&str; 4] = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a"];
const PLOT_W: f64 = 900.0;
const PLOT_H: f64 = 180.0;
const PAD: f64 = 40.0;

/// The page for `record` (a run's `restoration.json`).
pub fn html(record: &Value) -> String {
    let mut body = String::new();
    let input = record["input"]["pattern"]
        .as_str()
        .or(record["input"]["video"].as_str())
        .unwrap_or("?");
    let output = record["output"]["directory"]
        .as_str()
        .or(record["output"]["video"].as_str())
        .unwrap_or("?");
    let frames = &record["output"]["frames"];
    body += &format!(
        "<h1>nitrate {} restoration</h1>\n<table>\
         <tr><th>input</th><td>{}</td></tr>\
         <tr><th>output</th><td>{}</td></tr>\
         <tr><th>frames</th><td>{} to {}</td></tr>\
         <tr><th>backend</th><td>{}</td></tr>\
         <tr><th>chain</th><td>{}</td></tr>\
         <tr><th>seconds</th><td>{:.1}</td></tr></table>\n",
        esc(record["version"].as_str().unwrap_or("")),
        esc(input),
        esc(output),
        frames[0],
        frames[1],
        esc(record["backend"].as_str().unwrap_or("")),
        esc(&record["stages"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|s| s["stage"].as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            })
            .unwrap_or_default()),
        record["seconds"].as_f64().unwrap_or(0.0),
    );
    for stage in record["stages"].as_array().into_iter().flatten() {
        let name = stage["stage"].as_str().unwrap_or("");
        let report = &stage["report"];
        if let Some(rep) = report.get("repaired") {
            body += &repairs_section(name, rep);
        }
        if name == "deflicker" {
            body += &flicker_section(report);
        }
        if name == "stabilise" {
            body += &path_section(report);
        }
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>nitrate report</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}\
         th{{text-align:left;padding-right:1em}}svg{{background:#fafafa;border:1px solid #ddd}}\
         .key span{{margin-right:1.5em}}</style></head><body>\n{body}</body></html>\n"
    )
}

/// Repairs per frame: pixels repaired, as bars; the totals above.
fn repairs_section(stage: &str, rep: &Value) -> String {
    let mut points: Vec<(f64, f64)> = rep["frames"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(n, v)| Some((n.parse::<f64>().ok()?, v["pixels"].as_f64()?)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = format!(
        "<h2>{stage}: repairs per frame</h2>\n<p>{} regions, {} pixels in {} frames; \
         {} vetoed; {} pixels the harm guard refused.</p>\n",
        rep["regions"], rep["pixels"], rep["frames_touched"], rep["vetoed"], rep["guard_refused"]
    );
    if let Some(unmatched) = rep["veto_unmatched"].as_array().filter(|u| !u.is_empty()) {
        out += &format!(
            "<p>Veto entries that matched no repair: {}</p>\n",
            esc(&unmatched
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", "))
        );
    }
    out + &plot(&[("pixels repaired", points)], "frame", true)
}

/// The flicker curve: each frame's brightness as measured and as corrected.
fn flicker_section(report: &Value) -> String {
    let series = |key: &str| -> Vec<(f64, f64)> {
        report[key]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, v)| Some((i as f64, v.as_f64()?)))
            .collect()
    };
    let (measured, corrected) = (series("measured"), series("corrected"));
    if measured.is_empty() {
        return String::new();
    }
    "<h2>deflicker: flicker curve</h2>\n".to_string()
        + &plot(
            &[("measured", measured), ("corrected", corrected)],
            "frame (in output order)",
            false,
        )
}

/// The camera path, horizontal and vertical, as measured and as kept.
fn path_section(report: &Value) -> String {
    let series = |key: &str, k: usize| -> Vec<(f64, f64)> {
        report["path"][key]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, v)| Some((i as f64, v[k].as_f64()?)))
            .collect()
    };
    if series("raw", 0).is_empty() {
        return String::new();
    }
    format!(
        "<h2>stabilise: motion track</h2>\n<p>Largest correction {:.2} px, RMS {:.2} px; \
         {} cuts, {} pairs lost.</p>\n",
        report["max_correction_px"].as_f64().unwrap_or(0.0),
        report["rms_correction_px"].as_f64().unwrap_or(0.0),
        report["cuts"],
        report["lost"]
    ) + &plot(
        &[
            ("x measured", series("raw", 0)),
            ("x kept", series("smoothed", 0)),
            ("y measured", series("raw", 1)),
            ("y kept", series("smoothed", 1)),
        ],
        "frame (in output order); px",
        false,
    )
}

/// One SVG plot of `series` (name, (x, y) points): lines, or bars when `bars`.
fn plot(series: &[(&str, Vec<(f64, f64)>)], x_label: &str, bars: bool) -> String {
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return "<p>(nothing measured)</p>\n".into();
    }
    if bars {
        y0 = 0.0;
    }
    if y1 - y0 < 1e-9 {
        y1 = y0 + 1.0;
    }
    let xs = |x: f64| PAD + (x - x0) / (x1 - x0).max(1.0) * (PLOT_W - 2.0 * PAD);
    let ys = |y: f64| PLOT_H - PAD / 2.0 - (y - y0) / (y1 - y0) * (PLOT_H - PAD);
    let mut svg = format!(
        "<svg width=\"{PLOT_W}\" height=\"{PLOT_H}\" xmlns=\"http://www.w3.org/2000/svg\" \
         font-size=\"11\">\n"
    );
    svg += &format!(
        "<text x=\"2\" y=\"12\">{}</text><text x=\"2\" y=\"{}\">{}</text>\
         <text x=\"{PAD}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} ({})</text>\n",
        fmt(y1),
        PLOT_H - PAD / 2.0,
        fmt(y0),
        PLOT_H - 4.0,
        fmt(x0),
        PLOT_W - PAD,
        PLOT_H - 4.0,
        fmt(x1),
        esc(x_label)
    );
    let bar_w = ((PLOT_W - 2.0 * PAD) / (x1 - x0 + 1.0)).clamp(1.0, 12.0);
    for (k, (_, points)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        if bars {
            for &(x, y) in points.iter().filter(|p| p.1 > 0.0) {
                svg += &format!(
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                    xs(x) - bar_w / 2.0,
                    ys(y),
                    ys(y0) - ys(y)
                );
            }
        } else {
            let d: Vec<String> = points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", xs(x), ys(y)))
                .collect();
            svg += &format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                d.join(" ")
            );
        }
    }
    svg += "</svg>\n<div class=\"key\">";
    for (k, (name, _)) in series.iter().enumerate() {
        svg += &format!(
            "<span style=\"color:{}\">■ {}</span>",
            COLOURS[k % COLOURS.len()],
            esc(name)
        );
    }
    svg + "</div>\n"
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_plots_what_the_record_holds() {
        let record = serde_json::json!({
            "version": "1.0",
            "input": {"pattern": "scans/scan_%06d.dpx"},
            "output": {"directory": "out<1>", "frames": [1, 3]},
            "backend": "cpu",
            "seconds": 2.0,
            "stages": [
                {"stage": "deflicker", "report": {"measured": [0.5, 0.6, 0.4], "corrected": [0.5, 0.5, 0.5]}},
                {"stage": "stabilise", "report": {"path": {"raw": [[0.0, 0.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0]],
                    "smoothed": [[0.0, 0.0, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0]]}, "cuts": 0, "lost": 0}},
                {"stage": "dust", "report": {"repaired": {"regions": 2, "pixels": 30, "frames_touched": 1,
                    "vetoed": 1, "guard_refused": 0, "veto_unmatched": ["dust:9:1"],
                    "frames": {"1": {"pixels": 0}, "2": {"pixels": 30}, "3": {"pixels": 0}}}}},
            ],
        });
        let page = html(&record);
        assert!(page.contains("deflicker → stabilise → dust"), "{page}");
        assert!(page.contains("out&lt;1&gt;"), "names are escaped");
        assert_eq!(page.matches("<svg").count(), 3);
        // One bar: the frame with repairs.
        assert_eq!(page.matches("<rect").count(), 1);
        assert_eq!(page.matches("<polyline").count(), 2 + 4);
        assert!(page.contains("dust:9:1"));
    }
}
