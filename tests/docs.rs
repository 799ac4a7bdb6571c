//! The README's backend table, the facade's doc table and the registry list
//! the same schemes: the registry is the one list, the docs follow it.

use distlock::registry::{self, Scheme};

fn read(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Markdown table whose header line starts with `header`, one line per
/// row (header and separator included), with `strip` removed from each line.
fn table(text: &str, header: &str, strip: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.strip_prefix(strip).unwrap_or(l).trim_end())
        .collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(header))
        .unwrap_or_else(|| panic!("no table starting with `{header}`"));
    lines[start..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.to_string())
        .collect()
}

/// The cells of a table row.
fn cells(row: &str) -> Vec<&str> {
    row.trim_matches('|').split(" | ").map(str::trim).collect()
}

/// Every `scheme://` a cell mentions.
fn schemes_in(cell: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in cell.match_indices("://") {
        let start = cell[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |i| i + 1);
        out.push(cell[start..at].to_ascii_lowercase());
    }
    out
}

fn spellings(s: &Scheme) -> Vec<&'static str> {
    std::iter::once(s.scheme)
        .chain(s.aliases.iter().copied())
        .collect()
}

#[test]
fn the_facade_doc_table_is_the_registry_table() {
    let lib = read("src/lib.rs");
    let ours = table(&lib, "| backend | feature | URL |", "//! ").join("\n") + "\n";
    assert_eq!(
        ours,
        registry::docs_table(),
        "src/lib.rs's backend table differs from registry::docs_table(); paste this:\n{}",
        registry::docs_table()
    );
}

#[test]
fn the_readme_lists_every_scheme_of_the_registry_in_its_order() {
    let readme = read("README.md");
    let rows = table(&readme, "| backend | feature | URL |", "");
    assert!(rows.len() > 2, "the README's backend table is empty");
    let header = cells(&rows[0]);
    let (name_col, feature_col, url_col) = (0, 1, 2);
    assert_eq!(
        &header[..3],
        &["backend", "feature", "URL"],
        "{:?}",
        rows[0]
    );
    let body = &rows[2..];
    assert_eq!(
        body.len(),
        registry::SCHEMES.len(),
        "one README row per registry entry:\n{}",
        body.join("\n")
    );
    for (row, scheme) in body.iter().zip(registry::SCHEMES) {
        let row_cells = cells(row);
        assert_eq!(row_cells[name_col], scheme.name, "{row}");
        assert!(
            row_cells[feature_col].starts_with(&format!("`{}`", scheme.feature)),
            "the {} row names feature `{}`: {row}",
            scheme.name,
            scheme.feature
        );
        let url = row_cells[url_col];
        assert!(
            url.starts_with(&format!("`{}`", scheme.url_form)),
            "the {} row shows the registry's URL form `{}`: {row}",
            scheme.name,
            scheme.url_form
        );
        let mut mentioned = schemes_in(url);
        mentioned.sort();
        mentioned.dedup();
        let mut want: Vec<String> = spellings(scheme).iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            mentioned, want,
            "the {} row names every spelling of its scheme and no other: {row}",
            scheme.name
        );
    }
}

#[test]
fn readme_facade_and_registry_name_the_same_schemes() {
    let mut registry_schemes: Vec<String> = registry::all_spellings().map(str::to_string).collect();
    registry_schemes.sort();
    let readme = read("README.md");
    let lib = read("src/lib.rs");
    for (what, rows) in [
        (
            "README.md",
            table(&readme, "| backend | feature | URL |", ""),
        ),
        (
            "src/lib.rs",
            table(&lib, "| backend | feature | URL |", "//! "),
        ),
    ] {
        let mut listed: Vec<String> = rows[2..]
            .iter()
            .flat_map(|r| schemes_in(cells(r)[2]))
            .collect();
        listed.sort();
        listed.dedup();
        assert_eq!(listed, registry_schemes, "{what}");
    }
}
