//! Column layout the way procps lays out `ps` rows.
//!
//! A value wider than its column pushes the rest of the row right, and the
//! following right-aligned columns give back the excess from their
//! padding, so one long STAT does not shift the whole line.

/// How a column aligns its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A column: its header, width and alignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub header: &'static str,
    pub width: usize,
    pub align: Align,
}

impl Column {
    pub const fn new(header: &'static str, width: usize, align: Align) -> Column {
        Column {
            header,
            width,
            align,
        }
    }
}

/// Writes one row: `cells[i]` in `columns[i]`, single spaces between, the
/// last cell unpadded.
pub fn line(columns: &[Column], cells: &[&str], out: &mut String) {
    line_styled(columns, cells, &[], out);
}

/// Like [`line`], with an ANSI style per cell (`styles[i]`, when present
/// and non-empty) that does not count toward widths.
pub fn line_styled(columns: &[Column], cells: &[&str], styles: &[&str], out: &mut String) {
    let mut ideal = 0usize; // where the current column should start
    let mut actual = 0usize; // where it does start
    let n = columns.len().min(cells.len());
    for (i, (col, cell)) in columns.iter().zip(cells).enumerate() {
        let len = cell.chars().count();
        let last = i + 1 == n;
        let pad = match col.align {
            Align::Right if !last => (ideal + col.width).saturating_sub(actual + len),
            _ => ideal.saturating_sub(actual),
        };
        out.extend(std::iter::repeat_n(' ', pad));
        match styles.get(i).filter(|s| !s.is_empty()) {
            Some(style) => {
                out.push_str(style);
                out.push_str(cell);
                out.push_str("\x1b[0m");
            }
            None => out.push_str(cell),
        }
        if last {
            break;
        }
        actual += pad + len;
        ideal += col.width;
        out.push(' ');
        actual += 1;
        ideal += 1;
    }
    out.push('\n');
}

/// The header row.
pub fn header(columns: &[Column], out: &mut String) {
    let cells: Vec<&str> = columns.iter().map(|c| c.header).collect();
    line(columns, &cells, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: &[Column] = &[
        Column::new("PID", 5, Align::Right),
        Column::new("STAT", 4, Align::Left),
        Column::new("UID", 5, Align::Right),
        Column::new("COMMAND", 0, Align::Left),
    ];

    fn row(cells: &[&str]) -> String {
        let mut s = String::new();
        line(COLS, cells, &mut s);
        s
    }

    #[test]
    fn fits() {
        assert_eq!(row(&["1", "Ssl", "0", "init"]), "    1 Ssl      0 init\n");
        let mut h = String::new();
        header(COLS, &mut h);
        assert_eq!(h, "  PID STAT   UID COMMAND\n");
    }

    #[test]
    fn overflow_is_absorbed_by_the_next_right_column() {
        assert_eq!(row(&["1", "SNsl+", "0", "x"]), "    1 SNsl+    0 x\n");
        assert_eq!(row(&["1234567", "S", "0", "x"]), "1234567 S      0 x\n");
    }
}
