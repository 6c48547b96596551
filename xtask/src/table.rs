//! Plain-text tables in Markdown's pipe form, shared by the tasks that report
//! figures (`bench`, `cluster`): they read well in a terminal and paste
//! unchanged into an issue or a pull request.

/// Renders `header` and `rows` as a pipe table, every line ending in `\n`. The
/// first `left` columns are left-aligned (labels), the rest right-aligned
/// (figures). Widths count bytes, so cells should be ASCII.
pub fn markdown<S: AsRef<str>>(header: &[S], rows: &[Vec<String>], left: usize) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i).map(String::len))
                .chain([header[i].as_ref().len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<String> = cells
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < left {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(&mut header.iter().map(AsRef::as_ref));
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i < left {
                format!(":{}-", "-".repeat(*w))
            } else {
                format!("-{}:", "-".repeat(*w))
            }
        })
        .collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_left_figures_right() {
        let rows = vec![
            vec!["tokio".to_string(), "1.5".to_string()],
            vec!["sync".to_string(), "12.25".to_string()],
        ];
        assert_eq!(
            markdown(&["driver", "MB/s"], &rows, 1),
            "\
| driver |  MB/s |
|:-------|------:|
| tokio  |   1.5 |
| sync   | 12.25 |
"
        );
    }
}
