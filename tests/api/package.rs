//! `dist/token-broker.zip`, as `.ci/package` writes it: exactly host.json, the function folders and the
//! binary; the binary executable in its zip entry (the deployment keeps the entry's mode); no glibc symbol
//! newer than the Functions Linux workers have; host.json still valid. And `dist/access-helper`, the
//! runtime-access helper, statically linked.
//!
//! The zip is a build product: `.ci/run` writes it before the tests. Without it these tests say so and
//! pass, so `cargo test` on a fresh checkout needs nothing but the toolchain; under CI (`CI` set) a missing
//! zip fails. Two more need no zip: docs/deploy.md's listing of the package names every function folder
//! in the tree, and `.funcignore` (what `func azure functionapp publish` leaves out) leaves out every
//! top-level entry but those.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use object::Endianness;
use object::elf::{EM_X86_64, FileHeader64};
use object::read::elf::FileHeader;
use serde_json::Value;

use crate::helpers::function_app::{APP_ROOT, FunctionApp, function_json_paths, read_json};
use crate::helpers::schemas::{schema_errors, schema_path};

/// The newest glibc version the binary may need: 2.31 (Debian 11's), so it starts on the Functions Linux
/// workers whatever machine built it (docs/deploy.md, "glibc").
const GLIBC_CEILING: [u32; 2] = [2, 31];

struct Entry {
    name: String,
    unix_mode: Option<u32>,
    data: Vec<u8>,
}

fn zip_path() -> PathBuf {
    Path::new(APP_ROOT).join("dist/token-broker.zip")
}

/// Every entry of the package, or `None` (with a note) when it has not been built outside CI.
fn package() -> Option<Vec<Entry>> {
    let path = zip_path();
    if !path.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: .ci/run builds it with .ci/package before the tests",
            path.display()
        );
        eprintln!(
            "skipped: {} not built (run .ci/package; CI=true makes this a failure)",
            path.display()
        );
        return None;
    }
    let file = std::fs::File::open(&path).expect("open the package");
    let mut archive = zip::ZipArchive::new(file).expect("the package is a zip");
    let entries = (0..archive.len())
        .map(|index| {
            let mut entry = archive.by_index(index).expect("read a zip entry");
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("inflate a zip entry");
            Entry {
                name: entry.name().expect("a UTF-8 entry name").into_owned(),
                unix_mode: entry.unix_mode(),
                data,
            }
        })
        .collect();
    Some(entries)
}

fn entry<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("the package has no `{name}`"))
}

/// Every `GLIBC_x.y[.z]` version the ELF file's version-needed section asks for.
fn glibc_versions_needed(elf: &[u8]) -> Vec<Vec<u32>> {
    let header = FileHeader64::<Endianness>::parse(elf).expect("a 64-bit ELF file");
    let endian = header.endian().expect("ELF endianness");
    assert_eq!(
        header.e_machine(endian),
        EM_X86_64,
        "the workers are x86_64"
    );
    let sections = header.sections(endian, elf).expect("ELF sections");
    let (mut needed, link) = sections
        .gnu_verneed(endian, elf)
        .expect("the version-needed section")
        .expect("a dynamically linked binary has one");
    let strings = sections
        .strings(endian, elf, link)
        .expect("its string table");
    let mut versions = Vec::new();
    while let Some((_, mut auxes)) = needed.next().expect("a version-needed entry") {
        while let Some(aux) = auxes.next().expect("a version-needed aux entry") {
            let name = aux.name(endian, strings).expect("a version name");
            let name = String::from_utf8_lossy(name);
            let parts: Option<Vec<u32>> = name
                .strip_prefix("GLIBC_")
                .map(|v| v.split('.').map(str::parse).collect::<Result<_, _>>().ok())
                .unwrap_or(None);
            versions.extend(parts);
        }
    }
    versions
}

#[test]
fn package_holds_exactly_host_json_the_function_folders_and_the_binary() {
    let Some(entries) = package() else { return };
    let app = FunctionApp::load();

    let mut expected: BTreeSet<String> = ["host.json".to_owned(), app.executable.clone()].into();
    for (name, _) in function_json_paths() {
        expected.insert(format!("{name}/function.json"));
    }
    let actual: BTreeSet<String> = entries.iter().map(|e| e.name.clone()).collect();

    assert_eq!(actual, expected);
    for (name, path) in function_json_paths() {
        let packaged = entry(&entries, &format!("{name}/function.json"));
        let source = std::fs::read(&path).expect("read function.json");
        assert_eq!(
            packaged.data, source,
            "{name}/function.json differs from the repository's"
        );
    }
}

#[test]
fn package_binary_is_executable_in_its_zip_entry_and_the_rest_is_not() {
    let Some(entries) = package() else { return };
    let executable = FunctionApp::load().executable;

    for entry in &entries {
        let mode = entry
            .unix_mode
            .unwrap_or_else(|| panic!("`{}` has no Unix mode in its zip entry", entry.name));
        let expected = if entry.name == executable {
            0o755
        } else {
            0o644
        };
        assert_eq!(mode & 0o777, expected, "mode of `{}`: {mode:o}", entry.name);
        assert_eq!(
            mode & 0o170000,
            0o100000,
            "`{}` is a regular file",
            entry.name
        );
    }
}

#[test]
fn package_binary_needs_no_glibc_symbol_newer_than_2_31() {
    let Some(entries) = package() else { return };
    let binary = entry(&entries, &FunctionApp::load().executable);

    let versions = glibc_versions_needed(&binary.data);
    let newest = versions
        .iter()
        .max()
        .expect("the binary needs some glibc symbols");

    assert!(
        newest.as_slice() <= GLIBC_CEILING.as_slice(),
        "the binary needs GLIBC_{}",
        newest
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".")
    );
}

#[test]
fn package_host_json_passes_its_schema_and_is_the_repositorys() {
    let Some(entries) = package() else { return };
    let packaged: Value =
        serde_json::from_slice(&entry(&entries, "host.json").data).expect("host.json is JSON");
    let schema = read_json(&schema_path("host.json"));
    let validator = jsonschema::draft7::new(&schema).expect("host.json schema compiles");

    assert_eq!(schema_errors(&validator, &packaged), Vec::<String>::new());
    assert_eq!(packaged, read_json(&Path::new(APP_ROOT).join("host.json")));
}

/// The lines of docs/deploy.md's package listing: the fenced block after "writes `dist/token-broker.zip`".
fn documented_package_listing() -> Vec<String> {
    let deploy = std::fs::read_to_string(Path::new(APP_ROOT).join("docs/deploy.md"))
        .expect("read docs/deploy.md");
    let after = deploy
        .split_once("writes `dist/token-broker.zip`")
        .map(|(_, rest)| rest)
        .expect("docs/deploy.md describes the package");
    let block = after
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("a listing of the package");
    block
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn deploy_md_package_listing_names_every_function_folder_and_nothing_else() {
    let app = FunctionApp::load();
    let mut expected: BTreeSet<String> = ["host.json".to_owned(), app.executable.clone()].into();
    for (name, _) in function_json_paths() {
        expected.insert(format!("{name}/function.json"));
    }
    assert!(
        expected.len() > 4,
        "the function folders were found: {expected:?}"
    );

    let documented: BTreeSet<String> = documented_package_listing().into_iter().collect();

    assert_eq!(documented, expected);
}

/// Whether a `.funcignore` line (a name or a `*` glob of one top-level entry) matches `name`.
fn ignores(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
    match pattern.split_once('*') {
        Some((prefix, suffix)) => {
            name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        }
        None => name == pattern,
    }
}

#[test]
fn funcignore_leaves_out_every_top_level_entry_not_needed_at_run_time() {
    let root = Path::new(APP_ROOT);
    let funcignore = std::fs::read_to_string(root.join(".funcignore")).expect("read .funcignore");
    let patterns: Vec<&str> = funcignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let app = FunctionApp::load();
    let mut needed: BTreeSet<String> = ["host.json".to_owned(), app.executable].into();
    needed.extend(function_json_paths().into_iter().map(|(name, _)| name));
    // What a checkout and a build leave at the top level, besides the tracked files: build output,
    // the package, local settings and the emulator's state.
    let mut present: BTreeSet<String> = std::fs::read_dir(root)
        .expect("read the app root")
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    present.extend(
        [
            "target",
            "dist",
            ".local",
            "local.settings.json",
            ".git",
            ".vscode",
        ]
        .map(str::to_owned),
    );

    let shipped: Vec<&String> = present
        .iter()
        .filter(|name| !needed.contains(*name))
        .filter(|name| !patterns.iter().any(|p| ignores(p, name)))
        .collect();
    let dropped: Vec<&String> = needed
        .iter()
        .filter(|name| patterns.iter().any(|p| ignores(p, name)))
        .collect();

    assert_eq!(
        shipped,
        Vec::<&String>::new(),
        "not needed at run time, yet packaged"
    );
    assert_eq!(
        dropped,
        Vec::<&String>::new(),
        "needed at run time, yet ignored"
    );
}

/// `dist/access-helper`, as `.ci/package` writes it, or `None` (with a note) outside CI when not built.
fn static_helper() -> Option<Vec<u8>> {
    let path = Path::new(APP_ROOT).join("dist/access-helper");
    if !path.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: .ci/run builds it with .ci/package before the tests",
            path.display()
        );
        eprintln!("skipped: {} not built (run .ci/package)", path.display());
        return None;
    }
    Some(std::fs::read(&path).expect("read the helper"))
}

#[test]
fn static_helper_is_an_x86_64_executable_that_needs_no_shared_library() {
    use object::read::elf::{Dyn, ProgramHeader, SectionHeader};
    let Some(elf) = static_helper() else { return };
    let header = FileHeader64::<Endianness>::parse(&*elf).expect("a 64-bit ELF file");
    let endian = header.endian().expect("ELF endianness");

    assert_eq!(header.e_machine(endian), EM_X86_64);
    let segments = header
        .program_headers(endian, &*elf)
        .expect("program headers");
    let kinds: Vec<_> = segments.iter().map(|s| s.p_type(endian)).collect();
    assert!(
        !kinds.contains(&object::elf::PT_INTERP),
        "the helper names a dynamic loader: it is not statically linked"
    );
    // A static-pie executable keeps a dynamic section for its own relocations, but it needs no library.
    let sections = header.sections(endian, &*elf).expect("ELF sections");
    let mut needed = 0;
    for section in sections.iter() {
        if let Some((entries, _)) = section.dynamic(endian, &*elf).expect("a dynamic section") {
            needed += entries
                .iter()
                .filter(|entry| entry.d_tag(endian) == object::elf::DT_NEEDED)
                .count();
        }
    }
    assert_eq!(needed, 0, "the helper needs shared libraries");
}
