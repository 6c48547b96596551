//! A chaos run as one picture, `timeline.svg`: acknowledged and failed sends
//! per second above, acknowledgement latency below, with every fault window
//! shaded across both and the heal marked, so a reader sees at a glance what
//! each fault did to the cluster and how fast it came back.
//!
//! Hand-written SVG (no plotting crate): a fixed 1000x420 canvas, one-second
//! buckets keyed by when each send completed, latency on a log scale from
//! 0.1 ms so a 30 s timeout and a 2 ms ack both stay readable.

use std::collections::BTreeMap;

use super::availability::fault_span;
use super::history::{History, SendOutcome};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 420.0;
/// The plot area's left and right edges (room for the y labels on the left).
const LEFT: f64 = 64.0;
const RIGHT: f64 = 984.0;
const RATE_TOP: f64 = 30.0;
const RATE_BOTTOM: f64 = 200.0;
const LATENCY_TOP: f64 = 224.0;
const LATENCY_BOTTOM: f64 = 376.0;
const BUCKET_US: u64 = 1_000_000;
/// The bottom of the latency scale: anything faster is drawn here.
const LATENCY_FLOOR_MS: f64 = 0.1;

const ACK_COLOUR: &str = "#1f77b4";
const FAILED_COLOUR: &str = "#d62728";
const MEDIAN_COLOUR: &str = "#2ca02c";
const MAX_COLOUR: &str = "#9467bd";
/// Fault colours, one per nemesis name in sorted order (cycling if needed).
const FAULT_COLOURS: [&str; 6] = [
    "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
];

/// Renders `h` as a self-contained SVG document (never panics, even on an
/// empty history).
pub fn svg(h: &History) -> String {
    let b = Buckets::new(h);
    let x = |us: u64| {
        let t = us.min(b.span_us()) as f64 / b.span_us() as f64;
        LEFT + t * (RIGHT - LEFT)
    };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n"
    );
    let colours = fault_colours(h);
    faults(&mut out, h, &colours, &x);
    time_axis(&mut out, &b, &x);
    rate_panel(&mut out, &b, &x);
    latency_panel(&mut out, &b, &x);
    if let Some(healed) = h.healed_us {
        let hx = x(healed);
        out.push_str(&format!(
            "<line x1=\"{hx:.1}\" y1=\"{RATE_TOP}\" x2=\"{hx:.1}\" y2=\"{LATENCY_BOTTOM}\" \
             stroke=\"black\" stroke-dasharray=\"4 3\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">healed</text>\n",
            hx + 3.0,
            LATENCY_TOP - 8.0,
        ));
    }
    legend(&mut out, &colours);
    out.push_str("</svg>\n");
    out
}

/// The run cut into one-second buckets by completion time.
struct Buckets {
    acks: Vec<u64>,
    failed: Vec<u64>,
    /// Per bucket, `[median, max]` latency in ms of the acks completed in it.
    latency_ms: Vec<Option<[f64; 2]>>,
}

impl Buckets {
    fn new(h: &History) -> Self {
        let last = h
            .sends
            .iter()
            .filter_map(|s| s.completed_us)
            .chain([h.ended_us])
            .max()
            .unwrap_or(0);
        let n = last.div_ceil(BUCKET_US).max(1) as usize;
        let mut acks = vec![0; n];
        let mut failed = vec![0; n];
        let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); n];
        for s in &h.sends {
            let Some(done) = s.completed_us else { continue };
            let i = ((done / BUCKET_US) as usize).min(n - 1);
            match s.outcome {
                Some(SendOutcome::Acked { .. }) => {
                    acks[i] += 1;
                    latencies[i].push(done.saturating_sub(s.invoked_us));
                }
                Some(SendOutcome::Failed { .. }) => failed[i] += 1,
                None => {}
            }
        }
        let latency_ms = latencies
            .into_iter()
            .map(|mut l| {
                if l.is_empty() {
                    return None;
                }
                let mid = (l.len() - 1) / 2;
                let median = *l.select_nth_unstable(mid).1;
                let max = l.iter().copied().max().unwrap_or(median);
                Some([median as f64 / 1e3, max as f64 / 1e3])
            })
            .collect();
        Buckets {
            acks,
            failed,
            latency_ms,
        }
    }

    fn len(&self) -> usize {
        self.acks.len()
    }

    /// The time the x axis covers: every bucket, at least one second.
    fn span_us(&self) -> u64 {
        self.len() as u64 * BUCKET_US
    }
}

/// One colour per nemesis name, in name order.
fn fault_colours(h: &History) -> BTreeMap<&str, &'static str> {
    let mut colours: BTreeMap<&str, &'static str> =
        h.faults.iter().map(|w| (w.nemesis.as_str(), "")).collect();
    for (i, colour) in colours.values_mut().enumerate() {
        *colour = FAULT_COLOURS[i % FAULT_COLOURS.len()];
    }
    colours
}

fn faults(out: &mut String, h: &History, colours: &BTreeMap<&str, &str>, x: &dyn Fn(u64) -> f64) {
    for (i, w) in h.faults.iter().enumerate() {
        let (start, end) = fault_span(h, w);
        let (x0, x1) = (x(start), x(end));
        let colour = colours.get(w.nemesis.as_str()).copied().unwrap_or("gray");
        out.push_str(&format!(
            "<rect x=\"{x0:.1}\" y=\"{RATE_TOP}\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\" \
             fill-opacity=\"0.18\"><title>{}</title></rect>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"{colour}\">{}</text>\n",
            (x1 - x0).max(1.0),
            LATENCY_BOTTOM - RATE_TOP,
            escape(&w.label),
            x0 + 2.0,
            // Staggered so neighbouring windows' names do not overprint.
            RATE_TOP + 10.0 + 10.0 * (i % 3) as f64,
            escape(&w.nemesis),
        ));
    }
}

fn time_axis(out: &mut String, b: &Buckets, x: &dyn Fn(u64) -> f64) {
    let seconds = b.len() as f64;
    let step = nice_step(seconds, 10.0);
    let mut k = 0.0;
    while k * step <= seconds + 1e-9 {
        let t = k * step;
        let tx = x((t * 1e6).round() as u64);
        out.push_str(&format!(
            "<line x1=\"{tx:.1}\" y1=\"{RATE_TOP}\" x2=\"{tx:.1}\" y2=\"{LATENCY_BOTTOM}\" \
             stroke=\"#eee\"/>\n\
             <text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            LATENCY_BOTTOM + 14.0,
            tick_label(t, step),
        ));
        k += 1.0;
    }
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (s)</text>\n",
        (LEFT + RIGHT) / 2.0,
        HEIGHT - 8.0,
    ));
}

fn rate_panel(out: &mut String, b: &Buckets, x: &dyn Fn(u64) -> f64) {
    let max = b
        .acks
        .iter()
        .chain(&b.failed)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = nice_step(max, 4.0).max(1.0);
    let top = (max / step).ceil() * step;
    let y = |count: f64| RATE_BOTTOM - count / top * (RATE_BOTTOM - RATE_TOP);
    let mut k = 0.0;
    while k * step <= top + 1e-9 {
        y_tick(out, y(k * step), &tick_label(k * step, step));
        k += 1.0;
    }
    axes(out, RATE_TOP, RATE_BOTTOM, "sends/s");
    for (counts, colour) in [(&b.failed, FAILED_COLOUR), (&b.acks, ACK_COLOUR)] {
        let mut d = format!("M{:.1} {:.1}", x(0), y(0.0));
        for (i, &c) in counts.iter().enumerate() {
            d.push_str(&format!(
                " V{:.1} H{:.1}",
                y(c as f64),
                x((i as u64 + 1) * BUCKET_US)
            ));
        }
        out.push_str(&format!(
            "<path d=\"{d}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>\n"
        ));
    }
}

fn latency_panel(out: &mut String, b: &Buckets, x: &dyn Fn(u64) -> f64) {
    let slowest = b
        .latency_ms
        .iter()
        .flatten()
        .map(|&[_, max]| max)
        .fold(10.0, f64::max);
    let (lo, hi) = (LATENCY_FLOOR_MS.log10(), slowest.log10().ceil());
    let y = |ms: f64| {
        let l = ms.max(LATENCY_FLOOR_MS).log10();
        LATENCY_BOTTOM - (l - lo) / (hi - lo) * (LATENCY_BOTTOM - LATENCY_TOP)
    };
    let mut decade = lo.round() as i32;
    while f64::from(decade) <= hi {
        let ms = 10f64.powi(decade);
        y_tick(out, y(ms), &format!("{ms}"));
        decade += 1;
    }
    axes(out, LATENCY_TOP, LATENCY_BOTTOM, "ack latency (ms)");
    // Indexes into each bucket's `[median, max]`.
    for (pick, colour) in [(0, MEDIAN_COLOUR), (1, MAX_COLOUR)] {
        let mut d = String::new();
        for (i, l) in b.latency_ms.iter().enumerate() {
            if let Some(ms) = l.map(|l| l[pick]) {
                d.push_str(&format!(
                    "M{:.1} {:.1} H{:.1} ",
                    x(i as u64 * BUCKET_US),
                    y(ms),
                    x((i as u64 + 1) * BUCKET_US)
                ));
            }
        }
        if !d.is_empty() {
            out.push_str(&format!(
                "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>\n",
                d.trim_end()
            ));
        }
    }
}

/// A panel's frame and its rotated title.
fn axes(out: &mut String, top: f64, bottom: f64, title: &str) {
    out.push_str(&format!(
        "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\n\
         <text transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        RIGHT - LEFT,
        bottom - top,
        (top + bottom) / 2.0,
        escape(title),
    ));
}

/// A y grid line and its label.
fn y_tick(out: &mut String, y: f64, label: &str) {
    out.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
        LEFT - 4.0,
        y + 4.0,
        escape(label),
    ));
}

fn legend(out: &mut String, colours: &BTreeMap<&str, &str>) {
    // (label, colour, drawn as a line rather than a shaded window)
    let lines = [
        ("acked", ACK_COLOUR),
        ("failed", FAILED_COLOUR),
        ("median latency", MEDIAN_COLOUR),
        ("max latency", MAX_COLOUR),
    ];
    let items = lines
        .iter()
        .map(|&(label, colour)| (label, colour, true))
        .chain(
            colours
                .iter()
                .map(|(&nemesis, &colour)| (nemesis, colour, false)),
        );
    let mut at = LEFT;
    for (label, colour, line) in items {
        if line {
            out.push_str(&format!(
                "<line x1=\"{at:.1}\" y1=\"14\" x2=\"{:.1}\" y2=\"14\" stroke=\"{colour}\" \
                 stroke-width=\"2\"/>\n",
                at + 12.0
            ));
        } else {
            out.push_str(&format!(
                "<rect x=\"{at:.1}\" y=\"9\" width=\"12\" height=\"10\" fill=\"{colour}\" \
                 fill-opacity=\"0.4\"/>\n"
            ));
        }
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"18\">{}</text>\n",
            at + 16.0,
            escape(label)
        ));
        at += 30.0 + 6.2 * label.len() as f64;
    }
}

/// A tick spacing of 1, 2 or 5 times a power of ten giving about `ticks`
/// ticks over `range` (which must be positive).
fn nice_step(range: f64, ticks: f64) -> f64 {
    let raw = range / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let nice = match raw / magnitude {
        f if f <= 1.0 => 1.0,
        f if f <= 2.0 => 2.0,
        f if f <= 5.0 => 5.0,
        _ => 10.0,
    };
    nice * magnitude
}

/// `value` with as many decimals as `step` needs.
fn tick_label(value: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// `text` safe inside an XML element or attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::{FaultWindow, SendOp};

    /// Checks that every tag is closed in order, and that `&` only starts an
    /// entity: well-formed enough for a browser to draw it.
    fn assert_well_formed(svg: &str) {
        let mut open: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let end = rest[i..].find('>').expect("unclosed tag") + i;
            let tag = &rest[i + 1..end];
            let name = tag
                .trim_start_matches('/')
                .split([' ', '\n', '/'])
                .next()
                .unwrap_or("");
            if tag.starts_with('/') {
                assert_eq!(open.pop(), Some(name), "</{name}> closes the wrong tag");
            } else if !tag.ends_with('/') {
                open.push(name);
            }
            assert!(!tag.contains('<'), "a `<` inside a tag: {tag}");
            rest = &rest[end + 1..];
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
        for (i, _) in svg.match_indices('&') {
            let entity = &svg[i..svg[i..].find(';').map_or(svg.len(), |e| i + e + 1)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
                "a bare `&`: {entity}"
            );
        }
    }

    fn ack(invoked_us: u64, completed_us: u64) -> SendOp {
        SendOp {
            producer: 0,
            value: invoked_us,
            partition: 0,
            invoked_us,
            completed_us: Some(completed_us),
            outcome: Some(SendOutcome::Acked { offset: 0 }),
        }
    }

    #[test]
    fn a_run_shows_its_faults_and_the_heal() {
        let mut sends: Vec<SendOp> = (0..50)
            .map(|i| ack(i * 100_000, i * 100_000 + 2_000))
            .collect();
        sends.push(SendOp {
            outcome: Some(SendOutcome::Failed {
                error: "Local: Message timed out".to_string(),
            }),
            ..ack(2_000_000, 3_500_000)
        });
        let h = History {
            partitions: 1,
            sends,
            faults: vec![
                FaultWindow {
                    nemesis: "kill".to_string(),
                    label: "SIGKILL node 2 <the leader> & \"friends\"".to_string(),
                    start_us: 1_000_000,
                    end_us: Some(2_500_000),
                },
                FaultWindow {
                    nemesis: "pause".to_string(),
                    label: "SIGSTOP node 1".to_string(),
                    start_us: 3_000_000,
                    end_us: None,
                },
            ],
            healed_us: Some(4_000_000),
            ended_us: 6_000_000,
            ..History::default()
        };
        let svg = svg(&h);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>\n"), "{svg}");
        assert_well_formed(&svg);
        assert!(svg.contains(">kill</text>"), "{svg}");
        assert!(svg.contains(">pause</text>"), "{svg}");
        assert!(svg.contains(">healed</text>"), "{svg}");
        assert!(
            svg.contains("SIGKILL node 2 &lt;the leader&gt; &amp; &quot;friends&quot;"),
            "{svg}"
        );
        assert!(svg.contains(FAILED_COLOUR));
        assert!(svg.contains(MEDIAN_COLOUR));
    }

    #[test]
    fn an_empty_history_still_draws() {
        let svg = svg(&History::default());
        assert!(
            svg.starts_with("<svg") && svg.ends_with("</svg>\n"),
            "{svg}"
        );
        assert_well_formed(&svg);
        assert!(svg.contains("time (s)"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("a<b & 'c'>\"d\""),
            "a&lt;b &amp; &apos;c&apos;&gt;&quot;d&quot;"
        );
    }
}
