//! The documentation as a newcomer meets it: README.md is a short landing page whose two commands are
//! the ones CI and the demo run, and every relative link in README.md and docs/*.md resolves, anchors
//! included (GitHub's heading slugs), and docs/settings.md names every setting the broker reads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::helpers::function_app::APP_ROOT;

const README_LIMIT: usize = 20_000;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// README.md and every docs/*.md.
fn markdown_files() -> Vec<PathBuf> {
    let root = Path::new(APP_ROOT);
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The lines outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut in_code = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                return false;
            }
            !in_code
        })
        .collect()
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped, spaces to
/// `-`; repeated headings get `-1`, `-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let Some(heading) = heading.trim_start_matches('#').strip_prefix(' ') else {
            continue;
        };
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while !found.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
    }
    found
}

/// The targets of `[text](target)` links in prose, without a title part.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split_whitespace().next().unwrap_or_default();
            targets.push(target.to_owned());
            rest = &rest[end..];
        }
    }
    targets
}

#[test]
fn readme_is_a_landing_page_under_20000_characters() {
    let readme = read(&Path::new(APP_ROOT).join("README.md"));
    let size = readme.chars().count();

    assert!(size < README_LIMIT, "README.md has {size} characters");
}

#[test]
fn readme_commands_are_the_ones_the_demo_and_ci_run() {
    let root = Path::new(APP_ROOT);
    let readme = read(&root.join("README.md"));
    let ci = read(&root.join(".ci/run"));

    assert!(readme.contains("bash .ci/demo"), "README shows the demo");
    assert!(root.join(".ci/demo").is_file());
    assert!(
        readme.contains("cargo test --locked"),
        "README shows the test command"
    );
    assert!(
        ci.contains("\ncargo test --locked\n"),
        ".ci/run runs README's test command"
    );
}

#[test]
fn every_relative_link_in_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        let dir = file.parent().expect("a folder");
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
                continue;
            }
            let is_markdown = resolved.extension().is_some_and(|ext| ext == "md");
            if !anchor.is_empty() && is_markdown && !anchors(&read(&resolved)).contains(anchor) {
                broken.push(format!("{}: {target} (no such heading)", file.display()));
            }
        }
    }

    assert!(checked > 20, "only {checked} relative links found");
    assert_eq!(broken, Vec::<String>::new());
}

#[test]
fn every_setting_the_broker_reads_is_documented_in_settings_md() {
    let documented = std::fs::read_to_string(Path::new(APP_ROOT).join("docs/settings.md"))
        .expect("read docs/settings.md");

    let undocumented: Vec<String> = crate::deploy_template::settings_the_broker_reads()
        .into_iter()
        .filter(|name| !documented.contains(&format!("`{name}`")))
        .collect();

    assert_eq!(undocumented, Vec::<String>::new());
}
