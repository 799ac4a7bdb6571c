//! A batch of rows as one JSON parameter: `[[cell, …], …]`.
//!
//! A statement over a list of rows bound one placeholder per value hits
//! the databases' limits on parameters (MySQL: 65 535) long before it hits
//! their limit on a statement's size; one JSON text carries any number of
//! rows, and the database reads it back as a table (`JSON_TABLE` on
//! MySQL/MariaDB, `json_each` on SQLite).

#![cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]

use std::fmt::Write;

/// One value of a row.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cell<'a> {
    /// Text, as a JSON string.
    Text(&'a str),
    /// Bytes, as a JSON string of lowercase hex digits (read back with
    /// `UNHEX`: exact bytes whatever the column's character set).
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Hex(&'a [u8]),
    /// A number.
    Int(i64),
}

/// `rows` as one JSON array of arrays.
pub(crate) fn json_rows<'a, R>(rows: impl IntoIterator<Item = R>) -> String
where
    R: IntoIterator<Item = Cell<'a>>,
{
    let mut out = String::from("[");
    for (i, row) in rows.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        for (j, cell) in row.into_iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_cell(&mut out, cell);
        }
        out.push(']');
    }
    out.push(']');
    out
}

fn push_cell(out: &mut String, cell: Cell<'_>) {
    match cell {
        Cell::Text(text) => push_string(out, text),
        Cell::Hex(bytes) => {
            out.push('"');
            for b in bytes {
                // Writing to a String cannot fail.
                let _ = write!(out, "{b:02x}");
            }
            out.push('"');
        }
        Cell::Int(n) => {
            let _ = write!(out, "{n}");
        }
    }
}

/// `text` as a JSON string: quotes, backslashes and control characters
/// escaped, everything else as it is (JSON text is UTF-8).
fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_an_array_of_arrays() {
        let rows = [
            vec![Cell::Text("a"), Cell::Int(-3)],
            vec![Cell::Hex(b"\x00\xffk"), Cell::Int(12)],
        ];
        assert_eq!(json_rows(rows), r#"[["a",-3],["00ff6b",12]]"#);
        assert_eq!(json_rows(Vec::<Vec<Cell>>::new()), "[]");
    }

    #[test]
    fn strings_are_escaped_as_json_says() {
        let rows = [[Cell::Text("q\"b\\s/\n\t\u{1}é✓")]];
        assert_eq!(
            json_rows(rows),
            "[[\"q\\\"b\\\\s/\\u000a\\u0009\\u0001é✓\"]]"
        );
    }
}
