//! The two sides of a plan, parsed with as little work as possible.
//!
//! A plan compares two revisions that are mostly the same. [`parse_sides`] splits every
//! file into its YAML documents, parses each document of base once, hands that result to
//! head for each document head has unchanged (same file and text, wherever it stands in the
//! file), and parses only the documents that differ. Parsing runs on every core.
//!
//! Why documents can be parsed one by one: a line that starts with `---` followed by a
//! blank (or nothing) can only open a document, because YAML forbids such a line inside
//! every kind of scalar. A document parsed on its own, with its line numbers then moved
//! down to where it stands, reads exactly as it does within the whole file. A file where
//! that is not certain (text that is not UTF-8, line breaks other than `\n` and `\r\n`, a
//! document that could not be read, such as one with a syntax error, or one whose
//! diagnostics name other lines, such as a key given twice) is parsed whole, by the
//! caller's reader.
//!
//! Head comes out exactly as reading and validating it on its own gives. A plan reads only
//! the specs and files of base, so base is not validated, and its manifests lose their
//! field positions before head is parsed (they are about a quarter of what a parsed
//! manifest takes).

use std::collections::{BTreeSet, HashMap};

use crate::flink::spec::validate::Options;
use crate::flink::spec::{Locations, Manifest, ManifestSet};

/// Files of one revision: path and bytes, in the order they are read.
pub type Files = Vec<(String, Vec<u8>)>;

/// Reads one whole file (path, bytes) into a set, as the agent does.
pub type ParseFile = fn(String, Vec<u8>) -> ManifestSet;

/// Parses both sides of a plan and validates head (see the module comment).
pub fn parse_sides(
    base: Files,
    head: Files,
    parse_file: ParseFile,
    options: &Options,
) -> (ManifestSet, ManifestSet) {
    parse_sides_with(
        (base, ManifestSet::default()),
        (head, ManifestSet::default()),
        parse_file,
        options,
    )
}

/// [`parse_sides`], each side with manifests read elsewhere (rendered folders) that join
/// its files before head is validated, so rules across resources see them all.
pub fn parse_sides_with(
    (base, base_more): (Files, ManifestSet),
    (head, head_more): (Files, ManifestSet),
    parse_file: ParseFile,
    options: &Options,
) -> (ManifestSet, ManifestSet) {
    let (mut base_set, mut head_set) = parse_files_of_sides(base, head, parse_file);
    base_set.extend(without_positions(&base_more));
    head_set.extend(head_more);
    head_set.validate(options);
    (base_set, head_set)
}

/// Both sides' files, neither validated; base without positions.
fn parse_files_of_sides(
    base: Files,
    head: Files,
    parse_file: ParseFile,
) -> (ManifestSet, ManifestSet) {
    if base == head {
        let set = parse_tree(&split(base), parse_file, &mut Docs::new(), &|_, _| None).0;
        return (without_positions(&set), set);
    }
    let (base, head) = (split(base), split(head));
    let (mut base_set, mut shared) = {
        let mut wanted: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (path, text) in head.docs() {
            wanted.entry(path).or_default().insert(text);
        }
        parse_tree(&base, parse_file, &mut Docs::new(), &|path, text| {
            let (path, texts) = wanted.get_key_value(path)?;
            Some((*path, *texts.get(text)?))
        })
    };
    drop(base);
    for m in &mut base_set.manifests {
        m.locations = Locations::default();
    }
    let head_set = parse_tree(&head, parse_file, &mut shared, &|_, _| None).0;
    drop(shared);
    drop(head);
    (base_set, head_set)
}

/// Splits YAML text at the lines that open a document (`---` then a blank or the end of
/// the line). Returns each piece with the 1-based line it starts on; the pieces put
/// together are the text.
pub fn split_documents(text: &str) -> Vec<(u32, &str)> {
    let lines_in = |s: &str| s.bytes().filter(|b| *b == b'\n').count() as u32;
    let mut pieces = Vec::new();
    let (mut start, mut start_line) = (0, 1);
    let mut from = 0;
    // Candidates: `---` at the very start, or right after a line break.
    while let Some(at) = text
        .get(from..)
        .and_then(|rest| rest.find("---"))
        .map(|i| from + i)
    {
        from = at + 3;
        let at_line_start = at == 0 || text.as_bytes().get(at - 1) == Some(&b'\n');
        let blank_after = matches!(
            text.as_bytes().get(at + 3),
            None | Some(b' ' | b'\t' | b'\r' | b'\n')
        );
        if at_line_start && blank_after && at > start {
            pieces.push((start_line, &text[start..at]));
            start_line += lines_in(&text[start..at]);
            start = at;
        }
    }
    pieces.push((start_line, &text[start..]));
    pieces
}

/// Whether every line break is `\n` or `\r\n`, so that lines count as the YAML reader
/// counts them.
fn splittable(text: &str) -> bool {
    if text.is_ascii() && !text.contains('\r') {
        return true;
    }
    let bytes = text.as_bytes();
    !text.contains(['\u{85}', '\u{2028}', '\u{2029}'])
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| *b != b'\r' || bytes.get(i + 1) == Some(&b'\n'))
}

/// A file, split.
enum Pieces {
    /// Its documents, each with the line it starts on.
    Docs(Vec<(u32, String)>),
    /// Read whole.
    Whole(Vec<u8>),
}

struct Tree {
    files: Vec<(String, Pieces)>,
}

impl Tree {
    /// Every document: file and text.
    fn docs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().flat_map(|(path, pieces)| {
            let docs: &[(u32, String)] = match pieces {
                Pieces::Docs(d) => d,
                Pieces::Whole(_) => &[],
            };
            docs.iter()
                .map(move |(_, text)| (path.as_str(), text.as_str()))
        })
    }
}

/// Parsed documents by file and text (borrowed from head's tree), each read as if it
/// started on line 1. A text that stands in a file more than once has one entry per time.
type Docs<'h> = HashMap<&'h str, HashMap<&'h str, Vec<ManifestSet>>>;

/// Which parsed documents to keep for head: the file and text as head holds them.
type Keep<'k, 'h> = dyn Fn(&str, &str) -> Option<(&'h str, &'h str)> + Sync + 'k;

fn split(files: Files) -> Tree {
    let files = files
        .into_iter()
        .map(|(path, bytes)| {
            let pieces = match std::str::from_utf8(&bytes) {
                Ok(text) if splittable(text) => Pieces::Docs(
                    split_documents(text)
                        .into_iter()
                        .map(|(line, doc)| (line, doc.to_string()))
                        .collect(),
                ),
                _ => Pieces::Whole(bytes),
            };
            (path, pieces)
        })
        .collect();
    Tree { files }
}

/// What to parse: a document of a file, or a whole file.
enum Job<'a> {
    Doc(&'a str, &'a str),
    Whole(&'a str, &'a [u8]),
}

/// Parses a tree. Each document `take` holds (same file and text) is taken from there
/// instead of parsed; each parsed document that `keep` names is returned, and the tree
/// keeps a copy of it without field positions.
fn parse_tree<'h>(
    tree: &Tree,
    parse_file: ParseFile,
    take: &mut Docs<'_>,
    keep: &Keep<'_, 'h>,
) -> (ManifestSet, Docs<'h>) {
    let files_read = tree.files.len();
    // One slot per piece, filled from `take` or by parsing; documents as if on line 1.
    let mut slots: Vec<Vec<Option<ManifestSet>>> = Vec::with_capacity(files_read);
    let mut jobs: Vec<((usize, usize), Job)> = Vec::new();
    for (f, (path, pieces)) in tree.files.iter().enumerate() {
        match pieces {
            Pieces::Docs(docs) => {
                let mut row = Vec::with_capacity(docs.len());
                for (d, (_, text)) in docs.iter().enumerate() {
                    let taken = take
                        .get_mut(path.as_str())
                        .and_then(|texts| texts.get_mut(text.as_str()))
                        .and_then(Vec::pop);
                    if taken.is_none() {
                        jobs.push(((f, d), Job::Doc(path, text)));
                    }
                    row.push(taken);
                }
                slots.push(row);
            }
            Pieces::Whole(bytes) => {
                jobs.push(((f, 0), Job::Whole(path, bytes)));
                slots.push(vec![None]);
            }
        }
    }
    let parsed = on_every_core(jobs, |(at, job)| {
        let set = run(&job, parse_file);
        match job {
            // Kept whole for head; this tree keeps a copy without positions (only base
            // keeps documents, and a plan reads no positions of base).
            Job::Doc(path, text) => match keep(path, text) {
                Some(key) => (at, without_positions(&set), Some((key, set))),
                None => (at, set, None),
            },
            Job::Whole(..) => (at, set, None),
        }
    });
    let mut kept = Docs::new();
    for ((f, d), set, keep) in parsed {
        if let Some(((path, text), full)) = keep {
            kept.entry(path)
                .or_default()
                .entry(text)
                .or_default()
                .push(full);
        }
        if let Some(slot) = slots.get_mut(f).and_then(|row| row.get_mut(d)) {
            *slot = Some(set);
        }
    }
    // A file with a document that could not be read, or whose diagnostics name lines that
    // moving it would not move, is read whole: what a file yields must not depend on how it
    // was split.
    let broken: Vec<(usize, String)> = tree
        .files
        .iter()
        .zip(&slots)
        .enumerate()
        .filter_map(|(f, ((_, pieces), row))| match pieces {
            Pieces::Docs(docs)
                if row
                    .iter()
                    .flatten()
                    .any(|set| !set.unreadable_files.is_empty() || set.names_other_lines) =>
            {
                Some((f, docs.iter().map(|(_, t)| t.as_str()).collect()))
            }
            _ => None,
        })
        .collect();
    let jobs: Vec<(usize, Job)> = broken
        .iter()
        .filter_map(|(f, text)| {
            let (path, _) = tree.files.get(*f)?;
            Some((*f, Job::Whole(path, text.as_bytes())))
        })
        .collect();
    let mut whole: HashMap<usize, ManifestSet> =
        on_every_core(jobs, |(f, job)| (f, run(&job, parse_file)))
            .into_iter()
            .collect();
    // In file order; each document moved down to where it stands.
    let mut parts = Vec::new();
    for (f, ((_, pieces), row)) in tree.files.iter().zip(slots).enumerate() {
        match (whole.remove(&f), pieces) {
            (Some(set), _) => parts.push(set),
            (None, Pieces::Docs(docs)) => {
                for ((line, _), set) in docs.iter().zip(row) {
                    parts.extend(set.map(|s| shifted(s, line.saturating_sub(1))));
                }
            }
            (None, Pieces::Whole(_)) => parts.extend(row.into_iter().flatten()),
        }
    }
    let mut set = merge(parts);
    set.files_read = files_read;
    (set, kept)
}

fn run(job: &Job, parse_file: ParseFile) -> ManifestSet {
    match job {
        Job::Doc(path, text) => {
            let mut set = ManifestSet::default();
            set.add_file(path, text);
            // A document holds one manifest; a vector grown by push holds room for four
            // (a few KiB each), which adds up over a thousand documents kept for head.
            set.manifests.shrink_to_fit();
            set
        }
        Job::Whole(path, bytes) => parse_file(path.to_string(), bytes.to_vec()),
    }
}

/// A set read from a document as if it started on line 1, moved down by `lines`.
fn shifted(mut set: ManifestSet, lines: u32) -> ManifestSet {
    if lines == 0 {
        return set;
    }
    for m in &mut set.manifests {
        // Destructured so that a new field with a position cannot be forgotten here.
        let Manifest {
            key: _,
            file: _,
            labels: _,
            annotations: _,
            spec: _,
            locations,
            rendered: _,
        } = m;
        // Rendered manifests are never split (they are not files of the tree), so their
        // source positions stay as they are.
        locations.shift_lines(lines);
    }
    for d in set.diagnostics.iter_mut().filter(|d| d.line > 0) {
        d.line += lines;
    }
    set
}

/// Maps `f` over `items` on every available core, keeping the order.
fn on_every_core<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || items.len() < 2 {
        return items.into_iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut rest = items.into_iter();
    loop {
        let chunk: Vec<T> = rest.by_ref().take(per_thread).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Joins the sets of pieces into the set of a tree (`files_read` is left to the caller).
fn merge(parts: Vec<ManifestSet>) -> ManifestSet {
    let mut set = ManifestSet::default();
    set.manifests
        .reserve_exact(parts.iter().map(|p| p.manifests.len()).sum());
    for part in parts {
        // Destructured so that a new field cannot be forgotten here.
        let ManifestSet {
            manifests,
            diagnostics,
            unreadable_files,
            files_read: _,
            names_other_lines,
            drift_ignore,
        } = part;
        set.drift_ignore.extend(drift_ignore);
        set.manifests.extend(manifests);
        set.diagnostics.extend(diagnostics);
        set.unreadable_files.extend(unreadable_files);
        set.names_other_lines |= names_other_lines;
    }
    set
}

/// A copy of a set without the field positions of its manifests.
fn without_positions(set: &ManifestSet) -> ManifestSet {
    ManifestSet {
        manifests: set
            .manifests
            .iter()
            .map(|m| Manifest {
                key: m.key.clone(),
                file: m.file.clone(),
                labels: m.labels.clone(),
                annotations: m.annotations.clone(),
                spec: m.spec.clone(),
                locations: Locations::default(),
                rendered: None,
            })
            .collect(),
        diagnostics: set.diagnostics.clone(),
        unreadable_files: set.unreadable_files.clone(),
        files_read: set.files_read,
        names_other_lines: set.names_other_lines,
        drift_ignore: set.drift_ignore.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::source;

    fn parse_file(path: String, bytes: Vec<u8>) -> ManifestSet {
        source::parse_files(vec![(path, bytes)])
    }

    fn files(list: &[(&str, &[u8])]) -> Files {
        list.iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect()
    }

    /// What reading and validating one side on its own gives.
    fn alone(f: Files) -> ManifestSet {
        let mut set = source::parse_files(f);
        set.validate(&Options::default());
        set
    }

    /// Parses both sides and checks them against reading each alone.
    fn check(base: Files, head: Files) {
        let (got_b, got_h) =
            parse_sides(base.clone(), head.clone(), parse_file, &Options::default());
        let want_h = alone(head);
        assert_eq!(got_h.manifests, want_h.manifests);
        assert_eq!(got_h.diagnostics, want_h.diagnostics);
        assert_eq!(got_h.unreadable_files, want_h.unreadable_files);
        assert_eq!(got_h.files_read, want_h.files_read);
        // Base is not validated and has no positions: its specs and files count.
        let want_b = without_positions(&alone(base));
        let mut b = got_b.manifests.clone();
        b.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(b, want_b.manifests);
        assert_eq!(got_b.unreadable_files, want_b.unreadable_files);
        assert_eq!(got_b.files_read, want_b.files_read);
        assert!(got_b
            .manifests
            .iter()
            .all(|m| m.locations == Locations::default()));
    }

    const APP: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: NAME\nspec:\n  flinkVersion: v1_20\n  serviceAccount: flink\n  jobManager:\n    resource:\n      memory: 1g\n  taskManager:\n    resource:\n      memory: 1g\n  job:\n    jarURI: local:///job.jar\n    parallelism: P\n";

    fn app(name: &str, parallelism: u32) -> String {
        APP.replace("NAME", name)
            .replace("P", &parallelism.to_string())
    }

    #[test]
    fn documents_split_at_document_markers_only() {
        let text =
            "# lead\na: 1\n--- # second\nb: |\n  ---\n  text\n----\nc: 3\n---\n\n---\td: 4\n...\n";
        let pieces = split_documents(text);
        let lines: Vec<u32> = pieces.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![1, 3, 9, 11]);
        assert_eq!(pieces.iter().map(|(_, t)| *t).collect::<String>(), text);
        assert_eq!(split_documents(""), vec![(1, "")]);
        assert_eq!(split_documents("---\na: 1\n"), vec![(1, "---\na: 1\n")]);
        assert!(splittable("a: 1\r\nb: 2\r\n"));
        assert!(!splittable("a: 1\rb: 2\r"));
    }

    #[test]
    fn parsing_shared_documents_once_reads_as_each_side_alone() {
        let session = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: s\nspec:\n  flinkVersion: v1_20\n  serviceAccount: flink\n  jobManager:\n    resource:\n      memory: 1g\n  taskManager:\n    resource:\n      memory: 1g\n";
        let job = |name: &str, v: &str| {
            format!("apiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: {name}\nspec:\n  deploymentName: s\n  job:\n    jarURI: https://h/j-{v}.jar\n    parallelism: 1\n")
        };
        let many = |p: u32| {
            format!(
                "# apps of team a\n{}--- # b\n{}---\n---\n{}\n...\n",
                app("a", 1),
                app("b", p),
                app("c", 1)
            )
        };
        let shifted = format!("# one more line\n{}", many(1));
        let broken = many(1).replace("name: b\n", "name: [b\n");
        let nameless = many(1).replace("  name: b\n", "");
        let crlf = many(1).replace('\n', "\r\n");
        let bare_cr = app("d", 1).replace('\n', "\r");
        // The forms kubectl reads: byte order marks, merge keys (a warning where a merge
        // replaces a key), keys given twice, a List, a tab after a colon, UTF-16.
        let forms = format!(
            "\u{feff}{}---\n\u{feff}{}--- # dup\n{}",
            app("g", 1).replace("memory: 1g\n  taskManager:\n    resource:\n      memory: 1g", "memory: 1g\n      cpu: &c 1\n  taskManager:\n    resource:\n      cpu: 2\n      <<: {cpu: *c}\n      memory: 1g"),
            app("h", 1).replace("serviceAccount: flink", "serviceAccount:\tflink"),
            app("i", 1).replace("parallelism: 1", "parallelism: 1\n    parallelism: 2"),
        );
        let list = format!(
            "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeploymentList\nitems:\n- {}",
            app("j", 1)
                .replace(
                    "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\n",
                    ""
                )
                .replace('\n', "\n  ")
                .trim_end()
        );
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(app("k", 1).encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let base = files(&[
            ("a.yaml", many(1).as_bytes()),
            ("cluster.yaml", session.as_bytes()),
            ("j.yaml", job("j", "1").as_bytes()),
            ("x.yaml", b"\xff\xfe"),
            ("y.yaml", nameless.as_bytes()),
        ]);
        let variants = [
            files(&[
                ("a.yaml", many(2).as_bytes()),
                ("cluster.yaml", session.as_bytes()),
                ("j.yaml", job("j", "2").as_bytes()),
                ("k.yaml", job("k", "1").as_bytes()),
                ("x.yaml", b"\xff\xfe"),
                ("y.yaml", nameless.as_bytes()),
            ]),
            files(&[
                ("a.yaml", shifted.as_bytes()),
                ("cluster.yaml", session.as_bytes()),
            ]),
            files(&[
                ("a.yaml", broken.as_bytes()),
                ("j.yaml", job("j", "1").as_bytes()),
            ]),
            files(&[("a.yaml", crlf.as_bytes()), ("d.yaml", bare_cr.as_bytes())]),
            files(&[
                ("a.yaml", many(1).as_bytes()),
                ("g.yaml", forms.as_bytes()),
                ("l.yaml", list.as_bytes()),
                ("u.yaml", &utf16),
            ]),
            files(&[
                ("a.yaml", format!("%YAML 1.2\n---\n{}", many(2)).as_bytes()),
                ("e.yaml", b""),
                ("f.yaml", b"# nothing here yet\n---\n"),
            ]),
            base.clone(),
            Files::new(),
        ];
        for head in &variants {
            check(base.clone(), head.clone());
            check(head.clone(), base.clone());
        }
        check(Files::new(), Files::new());
    }

    #[test]
    fn every_manifest_in_the_repository_reads_the_same_split() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut all = Files::new();
        // tests/fixtures holds a copy of the operator's examples; the shared conformance
        // folder beside the repository is read too when it is there (not in a fresh clone).
        for dir in ["examples", "tests/fixtures", "../shared/conformance"] {
            match source::read_folder(&root.join(dir)) {
                Ok(found) => all.extend(found.into_iter().map(|(p, b)| (format!("{dir}/{p}"), b))),
                // Not there in a fresh clone: the repository's own manifests are read.
                Err(_) if dir.starts_with("../") => {}
                Err(e) => panic!("cannot read {dir}: {e}"),
            }
        }
        all.sort();
        assert!(all.len() > 50, "found only {} manifest files", all.len());
        // Everything new (each document parsed alone), then everything shared.
        check(Files::new(), all.clone());
        let (_, head) = parse_sides(all.clone(), all.clone(), parse_file, &Options::default());
        let want = alone(all);
        assert_eq!(head.manifests, want.manifests);
        assert_eq!(head.diagnostics, want.diagnostics);
    }
}
