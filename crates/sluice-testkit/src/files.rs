//! The repository's own files: golden files, fixtures and the example Rollouts, wherever the
//! test that reads them lives in the workspace.

use std::path::{Path, PathBuf};

/// The repository root (the workspace): `tests/golden`, `tests/fixtures`, `rollouts/`, `deploy/`
/// and `docs/` live there, shared by every crate's tests.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// Compares `actual` with the checked-in file `tests/golden/<name>`. With `UPDATE_GOLDEN=1`
/// the file is (re)written instead, so a reviewer sees the change as a diff.
pub fn assert_golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create golden dir");
        }
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read golden file {}: {e}\nrun `UPDATE_GOLDEN=1 cargo test` to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs from the output:\n{}\nrun `UPDATE_GOLDEN=1 cargo test` to accept the \
             new output, then review the diff",
            path.display(),
            first_difference(&expected, actual)
        );
    }
}

fn first_difference(expected: &str, actual: &str) -> String {
    let (mut e, mut a) = (expected.lines(), actual.lines());
    let mut n = 1;
    loop {
        match (e.next(), a.next()) {
            (None, None) => return "(only line endings differ)".into(),
            (x, y) if x == y => n += 1,
            (x, y) => {
                return format!(
                    "first difference at line {n}:\n  expected: {}\n  actual:   {}",
                    x.unwrap_or("<end of file>"),
                    y.unwrap_or("<end of file>")
                );
            }
        }
    }
}

/// Every Rollout example under `rollouts/`.
pub fn example_files() -> Vec<PathBuf> {
    sluice_core::validate::yaml_files(&root().join("rollouts")).expect("read rollouts/")
}

pub fn load(path: &Path) -> Vec<sluice_core::spec::Rollout> {
    sluice_core::validate::load_file(path).unwrap_or_else(|problems| {
        panic!(
            "{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}
