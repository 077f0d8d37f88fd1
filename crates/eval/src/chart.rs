//! The one chart of the project: lines on [0, 1] against a step or epoch
//! axis, as a standalone SVG (training curves of R3 and the router).

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend.
    pub name: String,
    /// An SVG colour.
    pub color: &'static str,
    /// `(x, y)` points; `y` is clamped to [0, 1].
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// What the x axis counts (`step`, `epoch`).
    pub x_label: &'static str,
    /// The lines, drawn in order; an empty one is left out.
    pub series: Vec<Series>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const PAD: f64 = 48.0;

impl LineChart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let max_x = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(1.0_f64, f64::max);
        let x = |v: f64| PAD + (WIDTH - 2.0 * PAD) * v / max_x;
        let y = |v: f64| HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * v.clamp(0.0, 1.0);
        let bottom = HEIGHT - PAD;
        let right = WIDTH - PAD;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        let _ = writeln!(
            svg,
            "<line x1=\"{PAD}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{bottom}\" stroke=\"black\"/>"
        );
        for t in [0.0, 0.5, 1.0] {
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t:.1}</text>",
                PAD - 6.0,
                y(t) + 4.0
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{} (to {max_x})</text>",
            WIDTH / 2.0,
            HEIGHT - 12.0,
            self.x_label
        );
        let drawn = self.series.iter().filter(|s| !s.points.is_empty());
        for (k, s) in drawn.enumerate() {
            let points: Vec<String> = s
                .points
                .iter()
                .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
                .collect();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                s.color,
                points.join(" ")
            );
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>",
                PAD + 8.0 + 150.0 * k as f64,
                PAD - 16.0,
                s.color,
                escape(&s.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// Text safe inside an SVG element.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_empty_series_is_drawn_with_its_legend() {
        let chart = LineChart {
            x_label: "epoch",
            series: vec![
                Series {
                    name: "reward".into(),
                    color: "#1f77b4",
                    points: vec![(0.0, 0.2), (1.0, 0.4), (2.0, 1.7)],
                },
                Series {
                    name: "empty".into(),
                    color: "#000",
                    points: vec![],
                },
                Series {
                    name: "a<b".into(),
                    color: "#c00",
                    points: vec![(2.0, 0.5)],
                },
            ],
        };
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">reward<") && svg.contains(">a&lt;b<"));
        assert!(!svg.contains(">empty<"));
        // y is clamped to the axis: 1.7 is drawn at 1.0 (the top, y = PAD).
        assert!(svg.contains(&format!("{:.1},{:.1}", WIDTH - PAD, PAD)));
    }
}
