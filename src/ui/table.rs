//! Tables for people, laid out by the terminal's width: columns shrink and wrap at word
//! boundaries inside their cell instead of the terminal breaking lines mid-word. Plain columns
//! without borders, like `gh` and `heroku` print them, so they read in a log as well.

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};

/// Columns of a table: header text, whether the column holds figures (right-aligned), and
/// whether it moves under its row when the table is wider than the terminal.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub numeric: bool,
    pub stacks: bool,
}

impl Column {
    /// A text column.
    pub const fn text(header: &'static str) -> Self {
        Self {
            header,
            numeric: false,
            stacks: false,
        }
    }

    /// A figures column, right-aligned.
    pub const fn figures(header: &'static str) -> Self {
        Self {
            header,
            numeric: true,
            stacks: false,
        }
    }

    /// This column goes under its row on a narrow terminal (figures with their header as a
    /// label, text as it is), wrapped at words.
    #[must_use]
    pub const fn stacking(self) -> Self {
        Self {
            stacks: true,
            ..self
        }
    }
}

/// The rendered table, each line without trailing spaces. `width` is the terminal's width;
/// `None` (output is not a terminal) never wraps, so scripts see one row per line. Only the
/// last column (the free text: changes, notes) wraps; ids, names and figures keep their width,
/// since half a run id is no use to copy.
pub fn render(columns: &[Column], rows: &[Vec<String>], width: Option<u16>) -> String {
    let table = plain(columns, rows);
    match width {
        Some(w)
            if table
                .lines()
                .any(|l| console::measure_text_width(l) > usize::from(w))
                && columns.iter().any(|c| c.stacks) =>
        {
            stacked(columns, rows, usize::from(w))
        }
        _ => table,
    }
}

/// The table as wide as its content.
fn plain(columns: &[Column], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(columns.iter().map(|c| c.header));
    table.set_content_arrangement(ContentArrangement::Disabled);
    for row in rows {
        table.add_row(row);
    }
    for (i, column) in columns.iter().enumerate() {
        if let Some(c) = table.column_mut(i) {
            c.set_padding((0, 2));
            if column.numeric {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    table
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The wizard's add-on table.
pub fn addon_table(rows: &[crate::plan::choices::AddonRow], width: Option<u16>) -> String {
    const COLUMNS: [Column; 6] = [
        Column::text("add-on"),
        Column::text("name"),
        Column::text("plan"),
        Column::figures("memory used / plan").stacking(),
        Column::figures("clients / limit").stacking(),
        Column::text("note").stacking(),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(crate::plan::choices::AddonRow::cells)
        .collect();
    render(&COLUMNS, &cells, width)
}

/// The plan list's items, each fitted to the terminal less dialoguer's two-column cursor.
pub fn plan_items(offered: &[crate::plan::choices::PlanChoice], width: Option<u16>) -> Vec<String> {
    offered
        .iter()
        .map(|c| {
            let line = c.render();
            match width {
                Some(w) => fit(&line, usize::from(w).saturating_sub(3)),
                None => line,
            }
        })
        .collect()
}

/// A narrow terminal: the columns that stay as a table, and each row's stacking columns below
/// it, indented and wrapped at words.
fn stacked(columns: &[Column], rows: &[Vec<String>], width: usize) -> String {
    let kept: Vec<usize> = (0..columns.len()).filter(|&i| !columns[i].stacks).collect();
    let moved: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].stacks).collect();
    let heads: Vec<Column> = kept.iter().map(|&i| columns[i]).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            kept.iter()
                .map(|&i| r.get(i).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    let table = plain(&heads, &cells);
    let mut lines = table.lines();
    let mut out = vec![lines.next().unwrap_or_default().to_owned()];
    for (line, row) in lines.zip(rows) {
        out.push(line.to_owned());
        for &i in &moved {
            let Some(value) = row.get(i).filter(|v| !v.is_empty()) else {
                continue;
            };
            let text = if columns[i].numeric {
                format!("{}: {value}", columns[i].header)
            } else {
                value.clone()
            };
            out.extend(
                wrap(&text, width.saturating_sub(4))
                    .into_iter()
                    .map(|l| format!("    {l}")),
            );
        }
    }
    out.join("\n")
}

/// `text` broken into lines of at most `width` columns at spaces (a longer word is cut).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let needed = console::measure_text_width(&line)
            + usize::from(!line.is_empty())
            + console::measure_text_width(word);
        if !line.is_empty() && needed > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while console::measure_text_width(&line) > width {
            let head = console::truncate_str(&line, width, "").into_owned();
            line.replace_range(..head.len(), "");
            lines.push(head);
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The width of the terminal on stdout, or `None` when stdout is not one.
pub fn stdout_width() -> Option<u16> {
    let term = console::Term::stdout();
    term.is_term().then(|| term.size().1)
}

/// The width of the terminal on stderr, or `None` when stderr is not one.
pub fn stderr_width() -> Option<u16> {
    let term = console::Term::stderr();
    term.is_term().then(|| term.size().1)
}

/// `text` cut at a word boundary so it takes at most `width` columns, with `…` when cut.
/// A line that fits is returned as it is.
pub fn fit(text: &str, width: usize) -> String {
    if console::measure_text_width(text) <= width {
        return text.to_owned();
    }
    let budget = width.saturating_sub(1);
    let mut out = String::new();
    for word in text.split_inclusive(' ') {
        if console::measure_text_width(&out) + console::measure_text_width(word.trim_end()) > budget
        {
            break;
        }
        out.push_str(word);
    }
    if out.is_empty() {
        // One word longer than the line: cut inside it rather than overflow.
        out = console::truncate_str(text, budget, "").into_owned();
    }
    let mut out = out.trim_end().trim_end_matches([';', ',', ':']).to_owned();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::{Column, fit, render};

    fn runs() -> (Vec<Column>, Vec<Vec<String>>) {
        let columns = vec![
            Column::text("id"),
            Column::text("app"),
            Column::text("outcome"),
            Column::figures("downtime"),
            Column::text("changes").stacking(),
        ];
        let rows = vec![
            vec![
                "20261201-031500-ab12".into(),
                "enketo-demo".into(),
                "succeeded".into(),
                "1m 2s".into(),
                "enketo_redis_main premium-0 -> premium-1 enketo_redis_cache premium-0 -> premium-1"
                    .into(),
            ],
            vec![
                "20261130-221000-cd34".into(),
                "enketo-prod".into(),
                "kept-new-plan".into(),
                "-".into(),
                "enketo_redis_main premium-1 -> premium-2".into(),
            ],
        ];
        (columns, rows)
    }

    #[test]
    fn tables_fit_the_terminal_at_60_and_120_columns() {
        let (columns, rows) = runs();
        for width in [60_u16, 120] {
            let out = render(&columns, &rows, Some(width));
            for line in out.lines() {
                assert!(
                    console::measure_text_width(line) <= usize::from(width),
                    "{width}: {line:?}"
                );
            }
            insta::assert_snapshot!(format!("runs_table_{width}"), out);
        }
        // Not a terminal: one row per line, whatever its length.
        let piped = render(&columns, &rows, None);
        assert_eq!(piped.lines().count(), 3, "{piped}");
    }

    #[test]
    fn fitting_cuts_at_a_word_and_says_so() {
        let reason = "connections after restore: 2 web x 26 = 52 > mini limit 20";
        assert_eq!(fit(reason, 80), reason);
        let cut = fit(reason, 30);
        assert_eq!(cut, "connections after restore: 2…");
        assert!(console::measure_text_width(&cut) <= 30);
        assert_eq!(fit("abcdefghij", 5), "abcd…");
    }
}
