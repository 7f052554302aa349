//! Tables for people, laid out by the terminal's width: columns shrink and wrap at word
//! boundaries inside their cell instead of the terminal breaking lines mid-word. Plain columns
//! without borders, like `gh` and `heroku` print them, so they read in a log as well.

use crate::plan::choices::Availability;
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
/// since half a run id is no use to copy. Every cell goes through [`crate::printable::text`]:
/// the cells are names from the API and the journal (apps, add-ons, plans).
pub fn render(columns: &[Column], rows: &[Vec<String>], width: Option<u16>) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| crate::printable::text(c)).collect())
        .collect();
    let rows = &rows[..];
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
/// A row too wide is cut at a word when its mark and the start of its reason survive; else it
/// keeps its mark (`(current plan)`, `(cannot be chosen)`, `(warn)`, or `(now)`, `(no)` when
/// even that is too wide) and drops the reason, then the figures;
/// [`plan_notes`] prints the reasons above the list. Cutting the row instead would hide
/// exactly the words that say why a plan cannot be chosen, and an item that wraps breaks the
/// list's redraw.
pub fn plan_items(offered: &[crate::plan::choices::PlanChoice], width: Option<u16>) -> Vec<String> {
    offered.iter().map(|c| plan_item(c, width).0).collect()
}

/// One item of [`plan_items`], and whether it is the whole row.
fn plan_item(c: &crate::plan::choices::PlanChoice, width: Option<u16>) -> (String, bool) {
    let full = crate::printable::text(&c.render());
    let Some(room) = width.map(|w| usize::from(w).saturating_sub(3)) else {
        return (full, true);
    };
    if console::measure_text_width(&full) <= room {
        return (full, true);
    }
    let (long, short, kept) = match &c.availability {
        Availability::Current => ("(current plan)", "(now)", "(current plan)"),
        Availability::Allowed { .. } => ("(warn)", "(warn)", "warn: "),
        Availability::Blocked { .. } => ("(cannot be chosen)", "(no)", "cannot be chosen: "),
    };
    // Cut at a word, as long as the mark and a word of the reason survive.
    let cut = fit(&full, room);
    if cut.contains(kept) {
        return (cut, false);
    }
    let mut bare = c.clone();
    bare.availability = Availability::Allowed {
        warnings: Vec::new(),
    };
    let name = &c.plan.name;
    let item = [
        format!("{}  {long}", bare.render()),
        format!("{name} {long}"),
        format!("{name} {short}"),
    ]
    .into_iter()
    .find(|i| console::measure_text_width(i) <= room)
    .unwrap_or_else(|| fit(&format!("{name} {short}"), room));
    (item, false)
}

/// The reasons [`plan_items`] left out on a narrow terminal, one plan each, wrapped at words,
/// to print above the list. `None` when every row fits (or the output is not a terminal).
pub fn plan_notes(
    offered: &[crate::plan::choices::PlanChoice],
    width: Option<u16>,
) -> Option<String> {
    let room = usize::from(width?).saturating_sub(3).max(8);
    let mut lines = Vec::new();
    for c in offered.iter().filter(|c| !plan_item(c, width).1) {
        let note = match &c.availability {
            Availability::Current => "the current plan".to_owned(),
            Availability::Allowed { warnings } => format!("warn: {}", warnings.join("; ")),
            Availability::Blocked { reasons } => {
                format!("cannot be chosen: {}", reasons.join("; "))
            }
        };
        let note = crate::printable::text(&format!("{}: {note}", c.plan.name));
        let mut wrapped = wrap(&note, room - 2).into_iter();
        lines.extend(wrapped.next());
        lines.extend(wrapped.map(|l| format!("  {l}")));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
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

/// `text` cut at a word boundary so it takes at most `width` columns, with `…` when cut
/// (`...` when the locale is not UTF-8: [`crate::ui::terminal::utf8`]). A line that fits is
/// returned as it is.
pub fn fit(text: &str, width: usize) -> String {
    fit_with(text, width, crate::ui::terminal::ellipsis())
}

/// [`fit`] with the ellipsis given.
fn fit_with(text: &str, width: usize, ellipsis: &str) -> String {
    if console::measure_text_width(text) <= width {
        return text.to_owned();
    }
    let budget = width.saturating_sub(console::measure_text_width(ellipsis));
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
    out.push_str(ellipsis);
    out
}

#[cfg(test)]
mod tests {
    use super::{Column, fit_with, render};

    fn fit(text: &str, width: usize) -> String {
        fit_with(text, width, "…")
    }

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
        assert_eq!(fit_with("abcdefghij", 5, "..."), "ab...");
        assert_eq!(fit_with(reason, 30, "..."), "connections after restore...");
    }
}
