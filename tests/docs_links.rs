//! The documentation stands on its own: every relative link in `README.md` and
//! `docs/**/*.md` names a file of this repository (and, for `page.md#anchor`,
//! a heading of that page), and the README stays short enough to read.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Upper bound of the README, in bytes: details belong in `docs/`.
const README_MAX_BYTES: u64 = 15 * 1024;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `README.md` and every Markdown file under `docs/`, sorted.
fn markdown_files() -> Vec<PathBuf> {
    let mut out = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The lines of `text` outside fenced code blocks, with inline code spans
/// blanked, so example text in code is not taken for links.
fn prose_lines(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        let kept: String = line
            .chars()
            .map(|c| {
                if c == '`' {
                    in_code = !in_code;
                    ' '
                } else if in_code {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        out.push(kept);
    }
    out
}

/// Targets of inline links and images: the `target` of `[text](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(end) => {
                // `[text](target "title")`: the target is the first word.
                let target = after[..end].split_whitespace().next().unwrap_or("");
                out.push(target.to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// turned into hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Anchors of every heading of a Markdown file.
fn anchors(path: &Path) -> HashSet<String> {
    let text = fs::read_to_string(path).unwrap();
    let mut fenced = false;
    let mut out = HashSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// Every problem with the relative links of one file of the repository at
/// `repo`, as readable lines.
fn broken_links(file: &Path, repo: &Path) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap();
    let dir = file.parent().unwrap();
    let mut problems = Vec::new();
    for (n, line) in prose_lines(&text).iter().enumerate() {
        for target in link_targets(line) {
            let external = ["http://", "https://", "mailto:"]
                .iter()
                .any(|p| target.starts_with(p));
            if external || target.is_empty() {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.to_path_buf()
            } else {
                dir.join(path)
            };
            let shown = format!("{}:{}: {target}", file.display(), n + 1);
            if !resolved.exists() {
                problems.push(format!("{shown}: no such file"));
                continue;
            }
            let in_repo = resolved
                .canonicalize()
                .is_ok_and(|p| p.starts_with(repo.canonicalize().unwrap()));
            if !in_repo {
                problems.push(format!("{shown}: outside the repository"));
            } else if let Some(anchor) = anchor {
                let is_md = resolved.extension().is_some_and(|e| e == "md");
                if is_md && !anchors(&resolved).contains(anchor) {
                    problems.push(format!("{shown}: no heading with this anchor"));
                }
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let files = markdown_files();
    assert!(files.len() > 1, "docs/ has pages");
    let problems: Vec<String> = files
        .iter()
        .flat_map(|f| broken_links(f, &root()))
        .collect();
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_readme_stays_short() {
    let size = fs::metadata(root().join("README.md")).unwrap().len();
    assert!(
        size <= README_MAX_BYTES,
        "README.md is {size} bytes; keep it at most {README_MAX_BYTES} and move detail to docs/"
    );
}

#[test]
fn the_link_checker_finds_what_it_should() {
    assert_eq!(
        link_targets("see [a](x.md) and ![b](img/y.svg \"t\") and [c](#z)"),
        ["x.md", "img/y.svg", "#z"]
    );
    assert_eq!(
        slug(" Streaming subscriptions (`SubscribeTopicEventsAlpha1`)"),
        "streaming-subscriptions-subscribetopiceventsalpha1"
    );
    let prose = prose_lines("a `[x](nope.md)` b\n```\n[y](nope.md)\n```\n[z](z.md)\n");
    let found: Vec<String> = prose.iter().flat_map(|l| link_targets(l)).collect();
    assert_eq!(found, ["z.md"]);

    // A scratch repository: `repo/page.md` beside `outside.md`.
    let scratch = std::env::temp_dir().join(format!("sidebus-docs-links-{}", std::process::id()));
    let repo = scratch.join("repo");
    fs::create_dir_all(&repo).unwrap();
    fs::write(scratch.join("outside.md"), "# Outside\n").unwrap();
    let page = repo.join("page.md");
    fs::write(
        &page,
        "# The title\n[ok](page.md#the-title) [self](#the-title) [bad](missing.md) \
         [anchor](#nope) [out](../outside.md) [web](https://example.com/x.md)\n",
    )
    .unwrap();
    let problems = broken_links(&page, &repo);
    fs::remove_dir_all(&scratch).unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].ends_with("missing.md: no such file"),
        "{problems:?}"
    );
    assert!(
        problems[1].ends_with("#nope: no heading with this anchor"),
        "{problems:?}"
    );
    assert!(
        problems[2].ends_with("../outside.md: outside the repository"),
        "{problems:?}"
    );
}
