//! How commands print: aligned tables for people, JSON for scripts, and a
//! self-updating progress line on stderr when stderr is a terminal.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// Columns sized to their widest cell.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i == last {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  "));
                }
            }
            text.trim_end().to_owned() + "\n"
        };
        let mut out = line(self.headers.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `1.5 MB`-style sizes (powers of 1024, as PostgreSQL's `pg_size_pretty`).
pub fn human_bytes(bytes: Option<i64>) -> String {
    let Some(bytes) = bytes else {
        return "-".into();
    };
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// One line on stderr rewritten in place; silent when stderr is not a
/// terminal (logs and pipes get the final summary only).
pub struct ProgressLine {
    label: &'static str,
    enabled: bool,
    shown: bool,
}

impl ProgressLine {
    pub fn new(label: &'static str) -> Self {
        Self {
            label,
            enabled: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    pub fn show(&mut self, text: &str) {
        if self.enabled {
            let mut stderr = std::io::stderr();
            let _ = write!(stderr, "\r\x1b[2K{}: {text}", self.label);
            let _ = stderr.flush();
            self.shown = true;
        }
    }

    pub fn finish(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_align_on_the_widest_cell() {
        let mut table = Table::new(&["ID", "NAME"]);
        table.row(vec!["1".into(), "Clinique du Parc".into()]);
        table.row(vec!["1234".into(), "X".into()]);
        assert_eq!(
            table.render(),
            "ID    NAME\n1     Clinique du Parc\n1234  X\n"
        );
    }

    #[test]
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(human_bytes(Some(512)), "512 B");
        assert_eq!(human_bytes(Some(7_700_000)), "7.3 MB");
        assert_eq!(human_bytes(None), "-");
    }
}
