//! Property tests for every parser of hostile input (issue "Trustworthy drafts", §2 "No crash
//! on any input"): metadata files and the client rules run on them, key documents, times and
//! `--expires` values, key URIs, PEM and DER certificates, the inventory, drafts and the trust
//! directory that holds them. Each parser gets random bytes or text, and mutations of real input
//! (the notary 0.7 samples in hsm-tests/fixtures). It must give a clean error and never panic.
//! Where it accepts, a stronger property must hold:
//!
//! - a metadata file it accepts is byte for byte `to_bytes()` of what it parsed;
//! - a time it accepts prints as exactly its input;
//! - a key URI it accepts, printed and parsed again, is the same URI;
//! - a mutated file that passes verification has the same signed part as the original;
//! - every error displays as one line, with no control or invisible characters.
//!
//! Seeds: every property starts from the fixed seed [`SEED`], so two runs try the same cases
//! and a failure shows up again on the next run. `PROPTEST_RNG_SEED=N` tries other cases,
//! `PROPTEST_CASES=N` runs N cases per property. A failing case is written to
//! `tests/parsers.proptest-regressions` and tried first on later runs (commit that file with
//! the fix).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestCaseResult, TestRunner,
};
use serde_json::Value;

use rootkeeper::Error;
use rootkeeper::backend::memory::MemorySigner;
use rootkeeper::keyuri::{KeyUri, ObjectType, PivSlot, Pkcs11Uri, YubiKeyUri};
use rootkeeper::root::draft::{self, Draft, DraftSigner, PendingDoc, ServerKey, SnapshotPlan};
use rootkeeper::trustdir::{Inventory, InventoryKey, TrustDir};
use rootkeeper::tuf::model::{
    Base64, DelegationRole, Document, FileMeta, GoTime, Hashes, KeyId, KeyType, Length, PublicKey,
    RoleFile, RoleKeys, RoleName, Root, RootRoles, Signature, Signed, Snapshot, Targets, Threshold,
    Timestamp, UtcTime, Version, parse_expiry, parse_key_document,
};
use rootkeeper::tuf::{notary, verify};
use rootkeeper::x509;

// ---------------------------------------------------------------------------------------
// Running properties

/// The seed every property starts from (see the module documentation).
const SEED: u64 = 0x726f_6f74_6b65_6570;

/// Runs `test` on `cases` values of `strategy` from the fixed seed, replaying the failures
/// recorded in tests/parsers.proptest-regressions first.
fn check<S: Strategy>(
    name: &'static str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> TestCaseResult,
) {
    let defaults = Config::default();
    let set = |var: &str| std::env::var_os(var).is_some();
    let config = Config {
        cases: if set("PROPTEST_CASES") {
            defaults.cases
        } else {
            cases
        },
        rng_seed: if set("PROPTEST_RNG_SEED") {
            defaults.rng_seed
        } else {
            RngSeed::Fixed(SEED)
        },
        failure_persistence: if set("PROPTEST_DISABLE_FAILURE_PERSISTENCE") {
            None
        } else {
            Some(Box::new(FileFailurePersistence::WithSource(
                "proptest-regressions",
            )))
        },
        source_file: Some(file!()),
        test_name: Some(name),
        ..defaults
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
}

/// Characters no error text may hold besides the controls: bidi controls, zero-width
/// characters, line and paragraph separators, the byte-order mark.
const INVISIBLE: &[char] = &[
    '\u{061c}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{2029}',
    '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}', '\u{feff}',
];

/// The text of an error and its sources, as the binary prints the chain.
fn error_text(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// An error is one non-empty line without control or invisible characters.
fn clean(err: &Error) -> TestCaseResult {
    let text = error_text(err);
    prop_assert!(!text.trim().is_empty(), "an empty error: {err:?}");
    if let Some(c) = text
        .chars()
        .find(|&c| c.is_control() || INVISIBLE.contains(&c))
    {
        return Err(TestCaseError::fail(format!(
            "the error text holds {c:?}: {text:?}"
        )));
    }
    Ok(())
}

/// `Ok(())` for an error that displays cleanly; the accepted value otherwise.
fn accepted<T>(result: rootkeeper::Result<T>) -> Result<Option<T>, TestCaseError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) => clean(&e).map(|()| None),
    }
}

fn unexpected(e: Error) -> TestCaseError {
    TestCaseError::fail(format!("unexpected error: {}", error_text(&e)))
}

/// Bytes shown short in a failure message.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let cut: String = text.chars().take(300).collect();
    format!("{cut:?} ({} bytes)", bytes.len())
}

fn chars(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

// ---------------------------------------------------------------------------------------
// The notary 0.7 samples

const GUN: &str = "example.com/demo/app";

macro_rules! sample {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../hsm-tests/fixtures/notary-0.7-samples/", $name)) as &[u8],
        )
    };
}

/// Every metadata sample and the server key file.
const SAMPLES: [(&str, &[u8]); 10] = [
    sample!("root.json"),
    sample!("root.v1.json"),
    sample!("targets.json"),
    sample!("targets-releases.json"),
    sample!("snapshot.json"),
    sample!("timestamp.json"),
    sample!("timestamp.key.json"),
    sample!("rust-prototype/root.json"),
    sample!("rust-prototype/targets.json"),
    sample!("rust-prototype/snapshot.json"),
];

const ROOT_CERT_PEM: &str =
    include_str!("../hsm-tests/fixtures/notary-0.7-samples/root-cert.2237ea2d.pem");

fn sample_bytes(name: &str) -> &'static [u8] {
    SAMPLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .unwrap()
}

/// A time when every notary sample is valid (made 2026-11-28, with 14-day timestamps).
fn sample_now() -> UtcTime {
    UtcTime::parse("2026-11-29T00:00:00Z").unwrap()
}

/// The samples checked once: the first root, the rotated root, the parent of the delegation.
struct Checked {
    v1: verify::CheckedRoot,
    v2: verify::CheckedRoot,
    targets: Signed<Targets>,
}

static CHECKED: LazyLock<Checked> = LazyLock::new(|| {
    let v1 = verify::check_chain_root(
        "root.v1.json",
        sample_bytes("root.v1.json"),
        GUN,
        None,
        sample_now(),
    )
    .unwrap();
    let v2 = verify::check_root(
        "root.json",
        sample_bytes("root.json"),
        Some(GUN),
        Some(&v1),
        sample_now(),
    )
    .unwrap();
    let targets = Signed::<Targets>::parse("targets.json", sample_bytes("targets.json")).unwrap();
    Checked { v1, v2, targets }
});

// ---------------------------------------------------------------------------------------
// Names, values and aliases that metadata files use

/// Every field name of the metadata model and the key documents.
const FIELDS: &[&str] = &[
    "signed",
    "signatures",
    "_type",
    "consistent_snapshot",
    "expires",
    "keys",
    "roles",
    "version",
    "keytype",
    "keyval",
    "private",
    "public",
    "keyids",
    "threshold",
    "root",
    "targets",
    "snapshot",
    "timestamp",
    "delegations",
    "name",
    "paths",
    "meta",
    "hashes",
    "sha256",
    "sha512",
    "length",
    "custom",
    "keyid",
    "method",
    "sig",
    "targets/releases",
];

/// String values with a meaning somewhere in a metadata file.
const WORDS: &[&str] = &[
    "Root",
    "Targets",
    "Snapshot",
    "Timestamp",
    "root",
    "TARGETS",
    "ecdsa",
    "ecdsa-x509",
    "ed25519",
    "rsa",
    "eddsa",
    "ECDSA",
    "rsapss",
    "targets/releases",
    "targets/a/b",
    "targets/../x",
    "targets/Releases",
    "",
    "2036-11-25T07:39:22.054272386Z",
    "2000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "2116-07-03T17:56:36.027379879-05:00",
    "2037-01-01T00:00:00+00:00",
    "QUI=",
    "QUI",
    "AAAA",
    "2237ea2d11a2370b1b991a08eaa50431172bbc14b474a381aa6e4d47df53182d",
    "20556b2e4900e598d3b79fc46ca623457515d4ae171e532272cb6f53afdab546",
    "eac06441cefcf68eabf6167f6e153f854cf7a76ffd3ec8538478bcb5684d6410",
    "dcfb5959f2ee6f33e46e860cb55c1d267c45c8028c1319f3a5e0930f808a0514",
    "efe8953bae91bad2307b5d9478074587f5427c0999977bbb8cc9f98da45416c1",
];

/// Numbers at and beyond the edges the model cares about, written as JSON.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "-0",
    "2",
    "1.0",
    "1e0",
    "1E2",
    "01",
    "0.5",
    "9007199254740992",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "-9223372036854775809",
    "1e400",
    "-1e400",
    "4294967296",
    "4294967295",
];

/// How a field name is spelled otherwise: Go's decoder folds case and Unicode (`ſ` is `s`,
/// the Kelvin sign `K` is `k`) and so reads each of these as the field itself.
#[derive(Debug, Clone)]
enum NameEdit {
    Upper,
    Capitalise,
    /// `s` to U+017F, `k` to U+212A, at the nth place that has one.
    Fold(Index),
    /// Another name of the model.
    Other(&'static str),
    Random(String),
}

fn name_edit() -> impl Strategy<Value = NameEdit> {
    prop_oneof![
        1 => Just(NameEdit::Upper),
        1 => Just(NameEdit::Capitalise),
        3 => any::<Index>().prop_map(NameEdit::Fold),
        2 => select(FIELDS).prop_map(NameEdit::Other),
        1 => chars(8).prop_map(NameEdit::Random),
    ]
}

fn rename(name: &str, edit: &NameEdit) -> String {
    match edit {
        NameEdit::Upper => name.to_uppercase(),
        NameEdit::Capitalise => {
            let mut chars = name.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        NameEdit::Fold(at) => {
            let places: Vec<usize> = name
                .char_indices()
                .filter(|(_, c)| matches!(c, 's' | 'S' | 'k' | 'K'))
                .map(|(i, _)| i)
                .collect();
            if places.is_empty() {
                return format!("{name}\u{17f}");
            }
            let i = places[at.index(places.len())];
            let alias = if matches!(name.as_bytes()[i], b's' | b'S') {
                "\u{17f}"
            } else {
                "\u{212a}"
            };
            format!("{}{alias}{}", &name[..i], &name[i + 1..])
        }
        NameEdit::Other(other) => (*other).to_owned(),
        NameEdit::Random(text) => text.clone(),
    }
}

/// A JSON leaf: the values metadata files hold, their edges, and random ones.
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => select(&[0u64, 1, 2, 3, (1 << 53) - 1, 1 << 53, (1 << 53) + 1, u64::MAX][..])
            .prop_map(Value::from),
        3 => select(WORDS).prop_map(Value::from),
        1 => near_miss_time().prop_map(|t| Value::from(t.text)),
        1 => vec(any::<u8>(), 0..80).prop_map(|b| Value::from(B64.encode(b))),
        1 => "[0-9a-f]{62,66}".prop_map(Value::from),
        1 => chars(24).prop_map(Value::from),
    ]
}

/// Random JSON, its object keys mostly the model's own names (or aliases of them).
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => select(FIELDS).prop_map(str::to_owned),
        2 => (select(FIELDS), name_edit()).prop_map(|(n, e)| rename(n, &e)),
        1 => chars(10),
    ];
    json_leaf().prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---------------------------------------------------------------------------------------
// Mutations of a JSON tree (the result is re-serialised with sorted keys, as canonical JSON
// is, so that more of them reach the typed parsers and the rules)

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    At(usize),
}

fn node_paths(value: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Step::Key(k.clone()));
                out.push(path.clone());
                node_paths(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Step::At(i));
                out.push(path.clone());
                node_paths(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(mut value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    for step in path {
        value = match step {
            Step::Key(k) => value.get_mut(k.as_str())?,
            Step::At(i) => value.get_mut(*i)?,
        };
    }
    Some(value)
}

#[derive(Debug, Clone)]
enum TreeEdit {
    Replace(Index, Value),
    Remove(Index),
    Add(Index, String, Value),
    Rename(Index, NameEdit),
    Duplicate(Index),
    Swap(Index, Index),
    /// The node becomes a copy of another node of the same file (a key ID of another role, a
    /// time of another field, a key of another ID): edits that keep the types right.
    Transplant(Index, Index),
    /// A number changed by a little, a bool flipped, a time or base64 value replaced by a
    /// valid one.
    Nudge(Index, i64, Value),
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    let member = prop_oneof![
        3 => select(FIELDS).prop_map(str::to_owned),
        1 => (select(FIELDS), name_edit()).prop_map(|(n, e)| rename(n, &e)),
    ];
    prop_oneof![
        4 => (any::<Index>(), json_leaf()).prop_map(|(i, v)| TreeEdit::Replace(i, v)),
        1 => (any::<Index>(), json()).prop_map(|(i, v)| TreeEdit::Replace(i, v)),
        2 => any::<Index>().prop_map(TreeEdit::Remove),
        2 => (any::<Index>(), member, json_leaf()).prop_map(|(i, n, v)| TreeEdit::Add(i, n, v)),
        3 => (any::<Index>(), name_edit()).prop_map(|(i, e)| TreeEdit::Rename(i, e)),
        1 => any::<Index>().prop_map(TreeEdit::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TreeEdit::Swap(a, b)),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TreeEdit::Transplant(a, b)),
        4 => (any::<Index>(), -3i64..=3, prop_oneof![
                near_miss_time().prop_filter_map("valid", |t| t.valid.then(|| Value::from(t.text))),
                vec(any::<u8>(), 0..80).prop_map(|b| Value::from(B64.encode(b))),
            ])
            .prop_map(|(i, d, v)| TreeEdit::Nudge(i, d, v)),
    ]
}

fn apply_tree_edit(value: &mut Value, edit: &TreeEdit) {
    let mut paths = Vec::new();
    node_paths(value, &mut Vec::new(), &mut paths);
    let pick = |at: &Index| (!paths.is_empty()).then(|| paths[at.index(paths.len())].clone());
    let at = match edit {
        TreeEdit::Replace(at, _)
        | TreeEdit::Remove(at)
        | TreeEdit::Add(at, _, _)
        | TreeEdit::Rename(at, _)
        | TreeEdit::Duplicate(at)
        | TreeEdit::Swap(at, _)
        | TreeEdit::Transplant(at, _)
        | TreeEdit::Nudge(at, _, _) => at,
    };
    let Some(path) = pick(at) else {
        return;
    };
    let (last, parent_path) = path.split_last().unwrap();
    match edit {
        TreeEdit::Replace(_, leaf) => {
            if let Some(node) = node_mut(value, &path) {
                *node = leaf.clone();
            }
        }
        TreeEdit::Remove(_) => match (node_mut(value, parent_path), last) {
            (Some(Value::Object(map)), Step::Key(k)) => {
                map.remove(k);
            }
            (Some(Value::Array(items)), Step::At(i)) if *i < items.len() => {
                items.remove(*i);
            }
            _ => {}
        },
        TreeEdit::Add(_, name, leaf) => match node_mut(value, &path) {
            Some(Value::Object(map)) => {
                map.insert(name.clone(), leaf.clone());
            }
            _ => {
                if let Some(Value::Object(map)) = node_mut(value, parent_path) {
                    map.insert(name.clone(), leaf.clone());
                }
            }
        },
        TreeEdit::Rename(_, how) => {
            if let (Some(Value::Object(map)), Step::Key(k)) = (node_mut(value, parent_path), last)
                && let Some(v) = map.remove(k)
            {
                map.insert(rename(k, how), v);
            }
        }
        TreeEdit::Duplicate(_) => match (node_mut(value, parent_path), last) {
            (Some(Value::Array(items)), Step::At(i)) if *i < items.len() => {
                let copy = items[*i].clone();
                items.insert(*i, copy);
            }
            _ => {
                if let Some(Value::Array(items)) = node_mut(value, &path)
                    && let Some(first) = items.first().cloned()
                {
                    items.push(first);
                }
            }
        },
        TreeEdit::Transplant(_, from) => {
            let from = paths[from.index(paths.len())].clone();
            if let Some(copy) = node_mut(value, &from).map(|v| v.clone())
                && let Some(node) = node_mut(value, &path)
            {
                *node = copy;
            }
        }
        TreeEdit::Nudge(_, delta, replacement) => {
            if let Some(node) = node_mut(value, &path) {
                match node {
                    Value::Number(n) => {
                        if let Some(v) = n.as_u64() {
                            *node = Value::from(v.saturating_add_signed(*delta));
                        }
                    }
                    Value::Bool(b) => *b = !*b,
                    Value::String(text) => {
                        let same_kind = if is_time(text.as_bytes()) {
                            replacement.as_str().is_some_and(|r| is_time(r.as_bytes()))
                        } else {
                            replacement.as_str().is_some_and(|r| !is_time(r.as_bytes()))
                        };
                        if same_kind {
                            *node = replacement.clone();
                        }
                    }
                    _ => {}
                }
            }
        }
        TreeEdit::Swap(_, other) => {
            if let Some(Value::Array(items)) = node_mut(value, &path)
                && items.len() >= 2
            {
                let b = other.index(items.len());
                items.swap(0, b);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Mutations of bytes, and of the JSON tokens in them

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Key,
    Str,
    Num,
}

/// A token of JSON text: for strings the span between the quotes.
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// The strings and numbers of (possibly broken) JSON text.
fn tokens(b: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(b.len());
                let mut k = end + 1;
                while k < b.len() && b[k].is_ascii_whitespace() {
                    k += 1;
                }
                let kind = if b.get(k) == Some(&b':') {
                    Kind::Key
                } else {
                    Kind::Str
                };
                out.push(Token { kind, start, end });
                i = end + 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                out.push(Token {
                    kind: Kind::Num,
                    start,
                    end: i,
                });
            }
            _ => i += 1,
        }
    }
    out
}

/// How a base64 value is spelled otherwise.
#[derive(Debug, Clone, Copy)]
enum Repad {
    StripPadding,
    AddPadding,
    /// A JSON-escaped newline inside the value (MIME-style line breaks).
    Newline(Index),
    UrlSafe,
    /// The last data character one higher: unused low bits set, so not canonical.
    NonCanonical,
}

/// How a time value is spelled otherwise.
#[derive(Debug, Clone)]
enum TimeEdit {
    TrailingZero,
    DropFraction,
    LowerCase,
    ZeroOffset,
    LocalOffset,
    LeapSecond,
    FullwidthDigit(Index),
    Replace(String),
}

#[derive(Debug, Clone)]
enum Edit {
    FlipBit(Index, u8),
    Insert(Index, u8),
    InsertText(Index, &'static str),
    Delete(Index, usize),
    Truncate(Index),
    Duplicate(Index, usize, Index),
    Swap(Index, Index, usize),
    Name(Index, NameEdit),
    Number(Index, &'static str),
    Base64(Index, Repad),
    Time(Index, TimeEdit),
    Text(Index, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let repad = prop_oneof![
        Just(Repad::StripPadding),
        Just(Repad::AddPadding),
        any::<Index>().prop_map(Repad::Newline),
        Just(Repad::UrlSafe),
        Just(Repad::NonCanonical),
    ];
    let time = prop_oneof![
        1 => Just(TimeEdit::TrailingZero),
        1 => Just(TimeEdit::DropFraction),
        1 => Just(TimeEdit::LowerCase),
        1 => Just(TimeEdit::ZeroOffset),
        1 => Just(TimeEdit::LocalOffset),
        1 => Just(TimeEdit::LeapSecond),
        1 => any::<Index>().prop_map(TimeEdit::FullwidthDigit),
        3 => near_miss_time().prop_map(|t| TimeEdit::Replace(t.text)),
    ];
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => (any::<Index>(), select(&["\"", ",", "{", "}", "[", "]", ":", "\\", "\\u0000", " ", "\n", "null", "\u{17f}", "\u{212a}", "\u{feff}"][..]))
            .prop_map(|(i, t)| Edit::InsertText(i, t)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => (any::<Index>(), 1usize..80, any::<Index>()).prop_map(|(a, n, b)| Edit::Duplicate(a, n, b)),
        1 => (any::<Index>(), any::<Index>(), 1usize..80).prop_map(|(a, b, n)| Edit::Swap(a, b, n)),
        4 => (any::<Index>(), name_edit()).prop_map(|(i, e)| Edit::Name(i, e)),
        3 => (any::<Index>(), select(NUMBERS)).prop_map(|(i, n)| Edit::Number(i, n)),
        3 => (any::<Index>(), repad).prop_map(|(i, r)| Edit::Base64(i, r)),
        3 => (any::<Index>(), time).prop_map(|(i, t)| Edit::Time(i, t)),
        1 => (any::<Index>(), chars(12)).prop_map(|(i, s)| Edit::Text(i, s)),
    ]
}

fn pick_token(b: &[u8], at: &Index, want: impl Fn(&Token, &[u8]) -> bool) -> Option<Token> {
    let found: Vec<Token> = tokens(b)
        .into_iter()
        .filter(|t| want(t, b.get(t.start..t.end).unwrap_or_default()))
        .collect();
    (!found.is_empty()).then(|| found[at.index(found.len())])
}

fn splice(b: &mut Vec<u8>, token: Token, with: &[u8]) {
    b.splice(token.start..token.end, with.iter().copied());
}

fn is_base64(text: &[u8]) -> bool {
    text.len() >= 4
        && text
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(c))
}

fn is_time(text: &[u8]) -> bool {
    text.len() >= 19 && text.get(4) == Some(&b'-') && text.get(10) == Some(&b'T')
}

fn edit_time(text: &str, how: &TimeEdit) -> String {
    let (body, zone) = match text
        .find(['Z', '+'])
        .or_else(|| text.rfind('-').filter(|&i| i > 10))
    {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    match how {
        TimeEdit::TrailingZero if body.contains('.') => format!("{body}0{zone}"),
        TimeEdit::TrailingZero => format!("{body}.0{zone}"),
        TimeEdit::DropFraction => format!("{}{zone}", body.split('.').next().unwrap_or(body)),
        TimeEdit::LowerCase => text.to_lowercase(),
        TimeEdit::ZeroOffset => format!("{body}+00:00"),
        TimeEdit::LocalOffset => format!("{body}-05:00"),
        TimeEdit::LeapSecond => match body.get(..17) {
            Some(head) => format!("{head}60{}{zone}", body.get(19..).unwrap_or_default()),
            None => text.to_owned(),
        },
        TimeEdit::FullwidthDigit(at) => {
            let digits: Vec<usize> = text
                .char_indices()
                .filter(|(_, c)| c.is_ascii_digit())
                .map(|(i, _)| i)
                .collect();
            if digits.is_empty() {
                return text.to_owned();
            }
            let i = digits[at.index(digits.len())];
            let d = text.as_bytes()[i] - b'0';
            let wide = char::from_u32(0xff10 + u32::from(d)).unwrap();
            format!("{}{wide}{}", &text[..i], &text[i + 1..])
        }
        TimeEdit::Replace(other) => other.clone(),
    }
}

fn apply_edit(b: &mut Vec<u8>, edit: &Edit) {
    let n = b.len();
    match edit {
        Edit::FlipBit(at, bit) if n > 0 => b[at.index(n)] ^= 1 << bit,
        Edit::Insert(at, byte) => b.insert(at.index(n + 1), *byte),
        Edit::InsertText(at, text) => {
            let i = at.index(n + 1);
            b.splice(i..i, text.bytes());
        }
        Edit::Delete(at, len) if n > 0 => {
            let i = at.index(n);
            b.drain(i..(i + len).min(n));
        }
        Edit::Truncate(at) => b.truncate(at.index(n + 1)),
        Edit::Duplicate(from, len, to) if n > 0 => {
            let i = from.index(n);
            let span = b[i..(i + len).min(n)].to_vec();
            let j = to.index(n + 1);
            b.splice(j..j, span);
        }
        Edit::Swap(x, y, len) if n > 0 => {
            let (i, j) = {
                let (i, j) = (x.index(n), y.index(n));
                (i.min(j), i.max(j))
            };
            let len = (*len).min(j - i).min(n - j);
            for k in 0..len {
                b.swap(i + k, j + k);
            }
        }
        Edit::Name(at, how) => {
            if let Some(t) = pick_token(b, at, |t, _| t.kind == Kind::Key) {
                let old = String::from_utf8_lossy(&b[t.start..t.end]).into_owned();
                let new = serde_json::to_string(&rename(&old, how)).unwrap();
                splice(b, t, &new.as_bytes()[1..new.len() - 1]);
            }
        }
        Edit::Number(at, number) => {
            if let Some(t) = pick_token(b, at, |t, _| t.kind == Kind::Num) {
                splice(b, t, number.as_bytes());
            }
        }
        Edit::Base64(at, how) => {
            if let Some(t) = pick_token(b, at, |t, s| t.kind == Kind::Str && is_base64(s)) {
                let mut text = b[t.start..t.end].to_vec();
                match how {
                    Repad::StripPadding => {
                        while text.last() == Some(&b'=') {
                            text.pop();
                        }
                    }
                    Repad::AddPadding => text.push(b'='),
                    Repad::Newline(i) => {
                        let i = i.index(text.len() + 1);
                        text.splice(i..i, *b"\\n");
                    }
                    Repad::UrlSafe => {
                        for c in &mut text {
                            *c = match *c {
                                b'+' => b'-',
                                b'/' => b'_',
                                c => c,
                            };
                        }
                    }
                    Repad::NonCanonical => {
                        if let Some(c) = text.iter_mut().rev().find(|c| **c != b'=') {
                            *c = match *c {
                                b'Z' => b'a',
                                b'z' => b'0',
                                b'9' => b'+',
                                b'+' => b'/',
                                b'/' => b'A',
                                c => c + 1,
                            };
                        }
                    }
                }
                splice(b, t, &text);
            }
        }
        Edit::Time(at, how) => {
            if let Some(t) = pick_token(b, at, |t, s| t.kind == Kind::Str && is_time(s)) {
                let old = String::from_utf8_lossy(&b[t.start..t.end]).into_owned();
                let new = serde_json::to_string(&edit_time(&old, how)).unwrap();
                splice(b, t, &new.as_bytes()[1..new.len() - 1]);
            }
        }
        Edit::Text(at, text) => {
            if let Some(t) = pick_token(b, at, |t, _| t.kind == Kind::Str) {
                let new = serde_json::to_string(text).unwrap();
                splice(b, t, &new.as_bytes()[1..new.len() - 1]);
            }
        }
        _ => {}
    }
}

/// A mutation of a JSON file: tree edits (then re-serialised), then byte and token edits.
#[derive(Debug, Clone)]
struct Mutation {
    tree: Vec<TreeEdit>,
    edits: Vec<Edit>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        // Byte and token edits only: the sample's own bytes around them.
        2 => vec(edit(), 1..4).prop_map(|edits| Mutation { tree: Vec::new(), edits }),
        // Tree edits: canonical files with other content, that reach the rules.
        2 => vec(tree_edit(), 1..3).prop_map(|tree| Mutation { tree, edits: Vec::new() }),
        1 => (vec(tree_edit(), 1..3), vec(edit(), 1..3)).prop_map(|(tree, edits)| Mutation { tree, edits }),
    ]
}

/// JSON with sorted keys, but `signed` first in an envelope, as Go writes notary's
/// `data.Signed`.
fn envelope_order(value: &Value) -> Vec<u8> {
    let Value::Object(map) = value else {
        return serde_json::to_vec(value).unwrap();
    };
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by_key(|(k, _)| (k.as_str() != "signed", k.as_str()));
    let mut out = b"{".to_vec();
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend(serde_json::to_vec(k).unwrap());
        out.push(b':');
        out.extend(serde_json::to_vec(v).unwrap());
    }
    out.push(b'}');
    out
}

fn mutate(original: &[u8], m: &Mutation) -> Vec<u8> {
    let mut bytes = original.to_vec();
    if !m.tree.is_empty()
        && let Ok(mut value) = serde_json::from_slice::<Value>(original)
    {
        for edit in &m.tree {
            apply_tree_edit(&mut value, edit);
        }
        bytes = envelope_order(&value);
    }
    for edit in &m.edits {
        apply_edit(&mut bytes, edit);
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// Metadata: every parser, and the rules on what they accept

/// A typed parse: a file it accepts is byte for byte `to_bytes()` of what it parsed.
fn typed<T: RoleFile + PartialEq + Debug>(
    name: &str,
    bytes: &[u8],
) -> Result<Option<Signed<T>>, TestCaseError> {
    let Some(doc) = accepted(Signed::<T>::parse(name, bytes))? else {
        return Ok(None);
    };
    let again = doc.to_bytes().map_err(unexpected)?;
    prop_assert!(
        again == bytes,
        "accepted as {}, but to_bytes() differs: {} for {}",
        T::TYPE,
        shown(&again),
        shown(bytes)
    );
    Ok(Some(doc))
}

/// Every metadata parser on `bytes`, and the root rules on any root they accept.
fn every_metadata_parser(name: &str, bytes: &[u8]) -> TestCaseResult {
    let root = typed::<Root>(name, bytes)?;
    let targets = typed::<Targets>(name, bytes)?;
    let snapshot = typed::<Snapshot>(name, bytes)?;
    let timestamp = typed::<Timestamp>(name, bytes)?;
    let typed_as = [
        root.as_ref().map(|_| "Root"),
        targets.as_ref().map(|_| "Targets"),
        snapshot.as_ref().map(|_| "Snapshot"),
        timestamp.as_ref().map(|_| "Timestamp"),
    ];
    prop_assert!(
        typed_as.iter().flatten().count() <= 1,
        "one file parsed as several types: {typed_as:?}"
    );
    match accepted(Document::parse(name, bytes))? {
        Some(doc) => {
            prop_assert_eq!(Some(doc.type_name()), typed_as.into_iter().flatten().next());
            let signed = doc.signed_bytes().map_err(unexpected)?;
            prop_assert!(bytes.windows(signed.len()).any(|w| w == signed));
        }
        None => prop_assert!(
            typed_as.iter().all(Option::is_none),
            "Document::parse refused what a typed parse accepted"
        ),
    }
    if let Some(key) = accepted(parse_key_document(name, bytes))? {
        let again = serde_json::to_vec(&key).unwrap();
        prop_assert_eq!(parse_key_document(name, &again).map_err(unexpected)?, key);
    }
    if let Some(key) = accepted(notary::parse_server_key(name, bytes))? {
        prop_assert!(key.keytype != KeyType::EcdsaX509);
        prop_assert!(notary::verifying_key(&key).is_ok());
        prop_assert_eq!(parse_key_document(name, bytes).map_err(unexpected)?, key);
    }
    if root.is_some() {
        for gun in [None, Some(GUN)] {
            if let Some(checked) =
                accepted(verify::check_root(name, bytes, gun, None, sample_now()))?
            {
                prop_assert!(checked.bytes == bytes);
                prop_assert!(gun.is_none_or(|g| g == checked.gun));
            }
        }
    }
    Ok(())
}

/// The signed part of a file, when it parses as a document.
fn signed_part(bytes: &[u8]) -> Option<Vec<u8>> {
    Document::parse("f", bytes).ok()?.signed_bytes().ok()
}

/// The rules of the sample's own place in the repository, with the mutated file there and
/// the other samples around it. A mutated file that passes has the sample's signed part:
/// nobody without the keys can make a changed one that verifies.
fn rules_in_place(name: &str, original: &[u8], mutated: &[u8]) -> TestCaseResult {
    let c = &*CHECKED;
    let now = sample_now();
    let files = |slot: &str| -> verify::RepoFiles<'_> {
        let pick = |own: &str| {
            if slot == own {
                mutated
            } else {
                sample_bytes(own)
            }
        };
        verify::RepoFiles {
            root: pick("root.json"),
            targets: Some(pick("targets.json")),
            snapshot: Some(pick("snapshot.json")),
            timestamp: Some(pick("timestamp.json")),
        }
    };
    let passed = match name {
        "root.v1.json" => {
            match accepted(verify::check_chain_root(name, mutated, GUN, None, now))? {
                Some(v1) => {
                    // Rotation from the mutated first root (any result is fine, no panic).
                    let _ = accepted(verify::check_root(
                        "root.json",
                        sample_bytes("root.json"),
                        Some(GUN),
                        Some(&v1),
                        now,
                    ))?;
                    true
                }
                None => false,
            }
        }
        "root.json" | "targets.json" | "snapshot.json" | "timestamp.json" => {
            let previous = (name == "root.json").then_some(&c.v1);
            accepted(verify::verify_repo(files(name), Some(GUN), previous, now))?.is_some()
        }
        "targets-releases.json" => {
            let role = &c.targets.signed.delegations.roles[0];
            accepted(verify::check_delegation(
                name,
                mutated,
                &c.targets.signed,
                role,
                now,
            ))?
            .is_some()
        }
        "rust-prototype/root.json" => {
            accepted(verify::check_root(name, mutated, None, None, now))?.is_some()
        }
        "rust-prototype/targets.json" | "rust-prototype/snapshot.json" => {
            let root = sample_bytes("rust-prototype/root.json");
            let Ok(checked) = verify::check_root(name, root, None, None, now) else {
                return Ok(());
            };
            if name.ends_with("targets.json") {
                accepted(verify::check_targets(name, mutated, &checked, now))?.is_some()
            } else {
                let covers = [
                    ("root", root),
                    ("targets", sample_bytes("rust-prototype/targets.json")),
                ];
                accepted(verify::check_snapshot(
                    name, mutated, &checked, &covers, now,
                ))?
                .is_some()
            }
        }
        _ => false,
    };
    if passed {
        prop_assert!(
            signed_part(mutated) == signed_part(original),
            "a changed signed part passed the rules: {}",
            shown(mutated)
        );
    }
    // The targets rules against the rotated root, and the timestamp against the mutated
    // file as its snapshot: whatever the file is, no panic.
    let _ = accepted(verify::check_targets(name, mutated, &c.v2, now))?;
    let _ = accepted(verify::check_timestamp(
        "timestamp.json",
        sample_bytes("timestamp.json"),
        &c.v2,
        mutated,
        now,
    ))?;
    Ok(())
}

#[test]
fn the_samples_pass_every_parser_and_their_rules() {
    for (name, bytes) in SAMPLES {
        every_metadata_parser(name, bytes).unwrap();
        rules_in_place(name, bytes, bytes).unwrap();
        // Tree edits re-serialise in Go's order: an unchanged tree is the same file.
        if name != "timestamp.key.json" {
            let value: Value = serde_json::from_slice(bytes).unwrap();
            assert!(envelope_order(&value) == bytes, "{name}");
        }
    }
    // The rules do pass on the unmutated samples, so a mutation that passes means something.
    let c = &*CHECKED;
    let mut files = verify::RepoFiles {
        root: sample_bytes("root.json"),
        targets: Some(sample_bytes("targets.json")),
        snapshot: Some(sample_bytes("snapshot.json")),
        timestamp: Some(sample_bytes("timestamp.json")),
    };
    verify::verify_repo(files, Some(GUN), Some(&c.v1), sample_now()).unwrap();
    files.root = sample_bytes("root.v1.json");
    assert!(verify::verify_repo(files, Some(GUN), Some(&c.v1), sample_now()).is_err());
}

#[test]
fn random_bytes_to_metadata_parsers() {
    let bytes = prop_oneof![
        vec(any::<u8>(), 0..512),
        // Bytes after a real envelope's start, so that the envelope parser has to look.
        vec(any::<u8>(), 0..256)
            .prop_map(|tail| [&b"{\"signed\":{\"_type\":\"Root\","[..], &tail].concat()),
    ];
    check("random_bytes_to_metadata_parsers", 10000, bytes, |bytes| {
        every_metadata_parser("random", &bytes)
    });
}

#[test]
fn random_json_to_metadata_parsers() {
    let envelope = (
        json(),
        select(&["Root", "Targets", "Snapshot", "Timestamp", "root"][..]),
        json(),
    )
        .prop_map(|(mut signed, type_, signatures)| {
            if let Value::Object(map) = &mut signed {
                map.insert("_type".into(), type_.into());
            }
            serde_json::json!({ "signed": signed, "signatures": signatures })
        });
    let files = prop_oneof![json(), envelope].prop_map(|v| serde_json::to_vec(&v).unwrap());
    check("random_json_to_metadata_parsers", 8000, files, |bytes| {
        every_metadata_parser("random.json", &bytes)
    });
}

#[test]
fn mutated_samples_to_metadata_parsers_and_rules() {
    let cases = (0..SAMPLES.len(), mutation());
    check(
        "mutated_samples_to_metadata_parsers_and_rules",
        12000,
        cases,
        |(i, m)| {
            let (name, original) = SAMPLES[i];
            let mutated = mutate(original, &m);
            every_metadata_parser(name, &mutated)?;
            rules_in_place(name, original, &mutated)
        },
    );
}

// ---------------------------------------------------------------------------------------
// Times and durations

/// A time in Go's form or near it, with what an independent model says about it.
#[derive(Debug, Clone)]
struct TimeText {
    text: String,
    /// Go's own form, a real date and time, within the years 0 to 9999 in UTC.
    valid: bool,
    /// Seconds since the Unix epoch in UTC, when valid.
    unix: i64,
}

#[derive(Debug, Clone)]
enum Zone {
    Z,
    LowerZ,
    Offset(char, u32, u32),
    Missing,
    Other(String),
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn month_days(y: i64, m: u32) -> u32 {
    const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    match m {
        2 if is_leap(y) => 29,
        1..=12 => DAYS[m as usize - 1],
        _ => 0,
    }
}

/// The UTC offset in seconds of a zone as Go writes it: `Z`, or `±hh:mm` other than zero.
fn zone_offset(zone: &str) -> Option<i64> {
    if zone == "Z" {
        return Some(0);
    }
    let b = zone.as_bytes();
    let two = |i: usize| -> Option<i64> {
        let d = b.get(i..i + 2)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| i64::from(d[0] - b'0') * 10 + i64::from(d[1] - b'0'))
    };
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let (h, m) = (two(1)?, two(4)?);
    let secs = (h * 60 + m) * 60;
    match b[0] {
        _ if h > 23 || m > 59 || secs == 0 => None,
        b'+' => Some(secs),
        b'-' => Some(-secs),
        _ => None,
    }
}

/// Days from 0000-01-01 (proleptic Gregorian; year 0 is a leap year), counted another way
/// than the library's calendar module.
fn days_from_year_0(y: i64, m: u32, d: u32) -> i64 {
    const BEFORE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leaps = if y == 0 {
        0
    } else {
        (y - 1) / 4 + 1 - ((y - 1) / 100 + 1) + ((y - 1) / 400 + 1)
    };
    365 * y + leaps + BEFORE[m as usize - 1] + i64::from(is_leap(y) && m > 2) + i64::from(d) - 1
}

fn unix_of(y: i64, m: u32, d: u32, sod: i64) -> i64 {
    (days_from_year_0(y, m, d) - days_from_year_0(1970, 1, 1)) * 86_400 + sod
}

const MIN_UNIX: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
const MAX_UNIX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

#[allow(clippy::type_complexity)]
fn render_time(
    (year, month, day, hour, minute, second, frac, zone, glitch): (
        u32,
        u32,
        u32,
        u32,
        u32,
        u32,
        Option<String>,
        Zone,
        Option<(Index, char)>,
    ),
) -> TimeText {
    let frac_text = frac.as_ref().map(|f| format!(".{f}")).unwrap_or_default();
    let zone_text = match &zone {
        Zone::Z => "Z".to_owned(),
        Zone::LowerZ => "z".to_owned(),
        Zone::Offset(sign, h, m) => format!("{sign}{h:02}:{m:02}"),
        Zone::Missing => String::new(),
        Zone::Other(text) => text.clone(),
    };
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{frac_text}{zone_text}"
    );
    let mut glitched = false;
    if let Some((at, c)) = glitch {
        // Only characters that never fit where they land (a digit or sign might).
        let mut chars: Vec<char> = text.chars().collect();
        let i = at.index(chars.len());
        if chars[i] != c && !c.is_ascii_digit() && c != '+' && c != '-' {
            glitched = true;
            chars[i] = c;
            text = chars.into_iter().collect();
        }
    }
    let y = i64::from(year);
    let offset = zone_offset(&zone_text);
    let frac_ok = frac
        .as_ref()
        .is_none_or(|f| (1..=9).contains(&f.len()) && !f.ends_with('0'));
    let calendar_ok = year <= 9999
        && (1..=12).contains(&month)
        && (1..=month_days(y, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 59;
    let unix = if calendar_ok {
        let sod = i64::from(hour * 3600 + minute * 60 + second);
        unix_of(y, month, day, sod) - offset.unwrap_or(0)
    } else {
        0
    };
    let valid = !glitched
        && calendar_ok
        && frac_ok
        && offset.is_some()
        && (MIN_UNIX..=MAX_UNIX).contains(&unix);
    TimeText { text, valid, unix }
}

fn near_miss_time() -> impl Strategy<Value = TimeText> {
    let year = prop_oneof![
        8 => 0u32..=9999,
        1 => 10_000u32..=99_999,
        1 => select(&[0u32, 1, 9999, 1969, 1970, 2000, 2100][..]),
    ];
    let month = prop_oneof![8 => 1u32..=12, 1 => 0u32..=13];
    let day = prop_oneof![5 => 1u32..=28, 4 => 28u32..=31, 1 => 0u32..=32];
    let hour = prop_oneof![8 => 0u32..=23, 1 => 0u32..=24];
    let minute = prop_oneof![8 => 0u32..=59, 1 => 0u32..=60];
    let second = prop_oneof![8 => 0u32..=59, 1 => 59u32..=61];
    let frac = prop_oneof![
        3 => Just(None),
        3 => "[0-9]{0,8}[1-9]".prop_map(Some),
        1 => "[0-9]{0,12}".prop_map(Some),
    ];
    let zone = prop_oneof![
        6 => Just(Zone::Z),
        1 => Just(Zone::LowerZ),
        4 => (select(&['+', '-'][..]), prop_oneof![3 => 0u32..=23, 1 => 0u32..=25], prop_oneof![3 => 0u32..=59, 1 => 0u32..=61])
            .prop_map(|(s, h, m)| Zone::Offset(s, h, m)),
        1 => Just(Zone::Missing),
        1 => "[Z+: -][Z+:0-9 -]{0,6}".prop_map(Zone::Other),
    ];
    let glitch = prop_oneof![9 => Just(None), 1 => (any::<Index>(), any::<char>()).prop_map(Some)];
    (year, month, day, hour, minute, second, frac, zone, glitch).prop_map(render_time)
}

/// A time it accepts prints as exactly its input; `UtcTime` agrees with `GoTime`.
fn time_round_trip(text: &str) -> Result<Option<GoTime>, TestCaseError> {
    let go = accepted(GoTime::parse(text))?;
    let utc = accepted(UtcTime::parse(text))?;
    prop_assert_eq!(utc, go.map(GoTime::instant));
    if let Some(t) = go {
        prop_assert_eq!(t.to_string(), text);
        let z = t.instant().to_go_string();
        prop_assert_eq!(UtcTime::parse(&z).map_err(unexpected)?, t.instant());
        let json = serde_json::to_string(&t).unwrap();
        prop_assert_eq!(serde_json::from_str::<GoTime>(&json).unwrap(), t);
    }
    Ok(go)
}

#[test]
fn times_near_gos_form_are_accepted_exactly_when_valid() {
    check(
        "times_near_gos_form_are_accepted_exactly_when_valid",
        20000,
        near_miss_time(),
        |t| {
            let parsed = time_round_trip(&t.text)?;
            prop_assert_eq!(parsed.is_some(), t.valid, "{:?}", t.text);
            if let Some(p) = parsed {
                prop_assert_eq!(p.instant().unix_seconds(), t.unix, "{:?}", t.text);
            }
            Ok(())
        },
    );
}

#[test]
fn arbitrary_text_as_a_time() {
    let texts = prop_oneof![
        chars(40),
        "[0-9TZz:.+ -]{0,36}",
        // A real time with a character changed, added or removed.
        (near_miss_time(), any::<Index>(), any::<char>(), 0u8..3).prop_map(|(t, at, c, how)| {
            let mut chars: Vec<char> = t.text.chars().collect();
            let i = at.index(chars.len() + 1);
            match how {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => {}
            }
            chars.into_iter().collect()
        }),
    ];
    check("arbitrary_text_as_a_time", 10000, texts, |text| {
        time_round_trip(&text).map(|_| ())
    });
}

fn utc_at(secs: i64, nanos: u32) -> UtcTime {
    let at = if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            + Duration::from_nanos(u64::from(nanos))
    };
    UtcTime::from_system(at)
}

fn nanos_of(t: UtcTime) -> u32 {
    let secs = t.unix_seconds();
    let whole = utc_at(secs, 0).to_system();
    t.to_system().duration_since(whole).unwrap().subsec_nanos()
}

/// "Now" anywhere in the years 0 to 9999, and at their edges.
fn any_now() -> impl Strategy<Value = UtcTime> {
    prop_oneof![
        3 => (MIN_UNIX..=MAX_UNIX, 0u32..1_000_000_000).prop_map(|(s, n)| utc_at(s, n)),
        1 => select(&[
            "0000-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2026-11-29T00:00:00Z",
            "2028-02-29T12:00:00.5Z",
            "9996-02-29T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999999999Z",
        ][..])
        .prop_map(|t| UtcTime::parse(t).unwrap()),
    ]
}

#[test]
fn expiries_on_the_command_line() {
    let count = prop_oneof![
        3 => "[0-9]{1,4}",
        2 => "[0-9]{5,30}",
        1 => select(&["0", "18446744073709551615", "18446744073709551616", "300000000000", "00", "07"][..]).prop_map(str::to_owned),
    ];
    let unit = select(
        &[
            "y", "w", "d", "h", "m", "s", "Y", "D", "", " y", "yy", "\u{ff59}", "y\n",
        ][..],
    );
    let texts = prop_oneof![
        4 => (count, unit).prop_map(|(n, u)| format!("{n}{u}")),
        1 => "[+-]?[0-9]{0,4}(\\.[0-9])?[ywdh]",
        2 => near_miss_time().prop_map(|t| t.text),
        2 => near_miss_time().prop_map(|t| t.text.chars().take(10).collect()),
        1 => chars(16),
    ];
    check(
        "expiries_on_the_command_line",
        10000,
        (texts, any_now()),
        |(text, now)| {
            let Some(t) = accepted(parse_expiry(&text, now))? else {
                return Ok(());
            };
            // Every expiry is a time that metadata can hold and read back.
            prop_assert_eq!(UtcTime::parse(&t.to_go_string()).map_err(unexpected)?, t);
            let Some(unit) = text.chars().last().filter(|u| "ywdh".contains(*u)) else {
                return Ok(());
            };
            let Some(count) = text
                .strip_suffix(unit)
                .filter(|n| n.bytes().all(|c| c.is_ascii_digit()))
            else {
                return Ok(());
            };
            let count: u128 = count.parse().unwrap();
            // A duration never moves the expiry before now, and saturates at the end of 9999.
            prop_assert!(t >= now, "{text} from {now} gave the earlier {t}");
            if unit == 'y' {
                let now_text = now.to_go_string();
                let year: u128 = now_text[..4].parse().unwrap();
                let want = if year + count > 9999 {
                    "9999-12-31T23:59:59Z".to_owned()
                } else {
                    let year = year + count;
                    let rest = &now_text[4..];
                    let rest = if rest.starts_with("-02-29") && !is_leap(year as i64) {
                        rest.replacen("-02-29", "-02-28", 1)
                    } else {
                        rest.to_owned()
                    };
                    format!("{year:04}{rest}")
                };
                prop_assert_eq!(
                    t,
                    UtcTime::parse(&want).unwrap().max(now),
                    "{} from {}",
                    text,
                    now
                );
            } else {
                let per: u128 = match unit {
                    'w' => 7 * 86_400,
                    'd' => 86_400,
                    _ => 3_600,
                };
                let target = i128::from(now.unix_seconds()) + (count * per) as i128;
                if target <= i128::from(MAX_UNIX) {
                    prop_assert_eq!(t.unix_seconds() as i128, target);
                    prop_assert_eq!(nanos_of(t), nanos_of(now));
                } else {
                    prop_assert_eq!(t, utc_at(MAX_UNIX, 0).max(now));
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// Key URIs

/// Percent-encodes every byte but the unreserved ones (more than the library does, which is
/// allowed), in upper or lower case hex.
fn pct(value: &[u8], lower: bool) -> String {
    value
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn abs_path() -> impl Strategy<Value = String> {
    vec("[A-Za-z0-9._ -]{1,10}", 1..4).prop_map(|parts| format!("/{}", parts.join("/")))
}

/// A valid `pkcs11:` URI, its text and the URI it must parse to.
fn pkcs11_uri() -> impl Strategy<Value = (String, Pkcs11Uri)> {
    let text = || proptest::option::of(chars(12));
    let kind = proptest::option::of(select(
        &[ObjectType::Private, ObjectType::Public, ObjectType::Cert][..],
    ));
    (
        (text(), text(), text(), text(), text()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(vec(any::<u8>(), 0..8)),
        kind,
        (
            proptest::option::of(abs_path()),
            any::<bool>(),
            text(),
            proptest::option::of(abs_path()),
        ),
        any::<bool>(),
    )
        .prop_map(
            |(
                (token, manufacturer, model, serial, object),
                slot_id,
                id,
                object_type,
                (module, module_in_path, module_name, pin),
                lower,
            )| {
                let uri = Pkcs11Uri {
                    token,
                    manufacturer,
                    model,
                    serial,
                    slot_id,
                    object,
                    id,
                    object_type,
                    module_path: module.clone().map(Into::into),
                    module_name,
                    pin_source: pin.clone().map(Into::into),
                };
                let mut path = Vec::new();
                let mut query = Vec::new();
                for (name, value) in [
                    ("token", &uri.token),
                    ("manufacturer", &uri.manufacturer),
                    ("model", &uri.model),
                    ("serial", &uri.serial),
                    ("object", &uri.object),
                ] {
                    if let Some(v) = value {
                        path.push(format!("{name}={}", pct(v.as_bytes(), lower)));
                    }
                }
                if let Some(slot) = uri.slot_id {
                    path.push(format!("slot-id={slot}"));
                }
                if let Some(id) = &uri.id {
                    path.push(format!("id={}", pct(id, lower)));
                }
                if let Some(t) = uri.object_type {
                    let t = match t {
                        ObjectType::Private => "private",
                        ObjectType::Public => "public",
                        ObjectType::Cert => "cert",
                    };
                    path.push(format!("type={t}"));
                }
                if let Some(m) = &module {
                    let attr = format!("module-path={}", pct(m.as_bytes(), lower));
                    if module_in_path {
                        path.push(attr)
                    } else {
                        query.push(attr)
                    }
                }
                if let Some(n) = &uri.module_name {
                    query.push(format!("module-name={}", pct(n.as_bytes(), lower)));
                }
                if let Some(p) = &pin {
                    query.push(format!("pin-source=file:{}", pct(p.as_bytes(), lower)));
                }
                let mut text = format!("pkcs11:{}", path.join(";"));
                if !query.is_empty() {
                    text = format!("{text}?{}", query.join("&"));
                }
                (text, uri)
            },
        )
}

/// A valid `yubikey:` URI, its text and the URI it must parse to.
fn yubikey_uri() -> impl Strategy<Value = (String, YubiKeyUri)> {
    let slots: Vec<PivSlot> = PivSlot::all().collect();
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of((select(slots), 0u8..3)),
        proptest::option::of(abs_path()),
        proptest::option::of(abs_path()),
    )
        .prop_map(|(serial, slot, pin, mgm)| {
            let uri = YubiKeyUri {
                serial,
                slot: slot.map(|(s, _)| s),
                pin_source: pin.clone().map(Into::into),
                management_key_source: mgm.clone().map(Into::into),
            };
            let mut path = Vec::new();
            if let Some(serial) = serial {
                path.push(format!("serial={serial}"));
            }
            if let Some((s, how)) = slot {
                path.push(match how {
                    0 => format!("slot={s}"),
                    1 => format!("slot={}", s.to_string().to_uppercase()),
                    _ => format!("slot=0x{s}"),
                });
            }
            let mut query = Vec::new();
            if let Some(p) = &pin {
                query.push(format!("pin-source=file:{}", pct(p.as_bytes(), false)));
            }
            if let Some(m) = &mgm {
                query.push(format!(
                    "management-key-source=file:{}",
                    pct(m.as_bytes(), true)
                ));
            }
            let mut text = format!("yubikey:{}", path.join(";"));
            if !query.is_empty() {
                text = format!("{text}?{}", query.join("&"));
            }
            (text, uri)
        })
}

/// Text edits of a URI: characters that mean something in one, percent escapes cut short or
/// signed, attributes doubled, separators swapped.
#[derive(Debug, Clone)]
enum UriEdit {
    Insert(Index, &'static str),
    InsertChar(Index, char),
    Delete(Index, usize),
    Replace(Index, char),
    DoubleAttribute(Index),
    SwapSeparators,
    Upper,
}

fn uri_edit() -> impl Strategy<Value = UriEdit> {
    prop_oneof![
        3 => (any::<Index>(), select(&[";", "?", "&", "=", "%", "%4", "%zz", "%+1", "%-1", "%%", "%00", "%C3", "%ff", "file:", "//", "/", "..", "pin-value=1", "management-key=00", "module-path=", "slot-id=", "serial=", "slot=", "0x"][..]))
            .prop_map(|(i, t)| UriEdit::Insert(i, t)),
        1 => (any::<Index>(), any::<char>()).prop_map(|(i, c)| UriEdit::InsertChar(i, c)),
        2 => (any::<Index>(), 1usize..6).prop_map(|(i, n)| UriEdit::Delete(i, n)),
        1 => (any::<Index>(), any::<char>()).prop_map(|(i, c)| UriEdit::Replace(i, c)),
        1 => any::<Index>().prop_map(UriEdit::DoubleAttribute),
        1 => Just(UriEdit::SwapSeparators),
        1 => Just(UriEdit::Upper),
    ]
}

fn edit_uri(text: &str, edit: &UriEdit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    match edit {
        UriEdit::Insert(at, s) => {
            let i = at.index(n + 1);
            chars.splice(i..i, s.chars());
        }
        UriEdit::InsertChar(at, c) => chars.insert(at.index(n + 1), *c),
        UriEdit::Delete(at, len) if n > 0 => {
            let i = at.index(n);
            chars.drain(i..(i + len).min(n));
        }
        UriEdit::Replace(at, c) if n > 0 => chars[at.index(n)] = *c,
        UriEdit::DoubleAttribute(at) => {
            let parts: Vec<&str> = text.split([';', '?', '&']).collect();
            let part = parts[at.index(parts.len())];
            return format!("{text};{part}");
        }
        UriEdit::SwapSeparators => {
            return text
                .chars()
                .map(|c| match c {
                    ';' => '&',
                    '&' => ';',
                    c => c,
                })
                .collect();
        }
        UriEdit::Upper => return text.to_uppercase(),
        _ => {}
    }
    chars.into_iter().collect()
}

/// A URI it accepts prints as a URI that parses to the same URI. Errors are not looked at
/// here (see `key_uri_errors_display_cleanly`).
fn uri_round_trip(text: &str) -> TestCaseResult {
    if let Ok(uri) = text.parse::<KeyUri>() {
        let printed = uri.to_string();
        match printed.parse::<KeyUri>() {
            Ok(again) => prop_assert_eq!(again, uri, "{:?} printed as {:?}", text, printed),
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "{text:?} parsed, printed as {printed:?}, which does not parse: {e}"
                )));
            }
        }
    }
    Ok(())
}

fn uri_texts() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => chars(40),
        1 => (select(&["pkcs11:", "yubikey:", "PKCS11:", "pkcs11", ""][..]), "[a-z=;?&%0-9A-F/:. -]{0,50}").prop_map(|(s, r)| format!("{s}{r}")),
        3 => (pkcs11_uri(), vec(uri_edit(), 0..3)).prop_map(|((t, _), edits)| edits.iter().fold(t, |t, e| edit_uri(&t, e))),
        3 => (yubikey_uri(), vec(uri_edit(), 0..3)).prop_map(|((t, _), edits)| edits.iter().fold(t, |t, e| edit_uri(&t, e))),
    ]
}

#[test]
fn valid_key_uris_parse_to_what_they_say() {
    check(
        "valid_key_uris_parse_to_what_they_say",
        5000,
        (pkcs11_uri(), yubikey_uri()),
        |((p11_text, p11), (yk_text, yk))| {
            prop_assert_eq!(
                p11_text.parse::<KeyUri>().map_err(unexpected)?,
                KeyUri::Pkcs11(p11)
            );
            prop_assert_eq!(
                yk_text.parse::<KeyUri>().map_err(unexpected)?,
                KeyUri::YubiKey(yk)
            );
            uri_round_trip(&p11_text)?;
            uri_round_trip(&yk_text)
        },
    );
}

#[test]
fn arbitrary_and_mutated_key_uris_round_trip() {
    check(
        "arbitrary_and_mutated_key_uris_round_trip",
        10000,
        uri_texts(),
        |text| uri_round_trip(&text),
    );
}

#[test]
fn key_uri_errors_display_cleanly() {
    check(
        "key_uri_errors_display_cleanly",
        3000,
        uri_texts(),
        |text| accepted(text.parse::<KeyUri>()).map(|_| ()),
    );
}

/// The first input `key_uri_errors_display_cleanly` found: the error shows a zero-width
/// space raw (and so would it a newline or ESC).
#[test]
fn a_key_uri_error_shows_the_uri_escaped() {
    for text in ["\u{200b}", "pkcs11:tok\nen=x", "yubikey:serial=\u{1b}[2J"] {
        let err = text.parse::<KeyUri>().unwrap_err();
        clean(&err).unwrap();
    }
}

/// `pin-source=file:////x` names the absolute path `//x`; it prints as `file://x`, which
/// reads as the relative path `x` and is refused.
#[test]
fn a_pin_source_with_a_leading_double_slash_round_trips() {
    for text in [
        "pkcs11:token=t?pin-source=file:////x",
        "pkcs11:token=t?pin-source=////run/pin",
        "yubikey:serial=1?pin-source=file:////run/pin",
        "yubikey:serial=1?management-key-source=file:////run/mgm",
    ] {
        uri_round_trip(text).unwrap();
    }
}

/// Every absolute path, however many slashes it starts with, as a pin source.
#[test]
fn pin_sources_round_trip_for_every_absolute_path() {
    let paths = ("/{1,4}", abs_path()).prop_map(|(slashes, path)| format!("{slashes}{path}"));
    check(
        "pin_sources_round_trip_for_every_absolute_path",
        500,
        (
            paths,
            select(
                &[
                    "pkcs11:token=t?pin-source=",
                    "yubikey:?pin-source=",
                    "yubikey:?management-key-source=",
                ][..],
            ),
            any::<bool>(),
        ),
        |(path, prefix, with_scheme)| {
            let text = format!("{prefix}{}{path}", if with_scheme { "file:" } else { "" });
            uri_round_trip(&text)
        },
    );
}

// ---------------------------------------------------------------------------------------
// Certificates

fn cert_der() -> Vec<u8> {
    let body: String = ROOT_CERT_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    B64.decode(body).unwrap()
}

/// The byte edits of a DER certificate, and DER's own edges: long and indefinite lengths,
/// other tags.
fn der_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::FlipBit(i, b)),
        2 => (any::<Index>(), select(&[0x00u8, 0x80, 0x81, 0x82, 0x84, 0x88, 0xff, 0x30, 0x31, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x17, 0x18, 0xa0, 0xa3][..]))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => (any::<Index>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => (any::<Index>(), 1usize..64, any::<Index>()).prop_map(|(a, n, b)| Edit::Duplicate(a, n, b)),
        1 => (any::<Index>(), any::<Index>(), 1usize..32).prop_map(|(a, b, n)| Edit::Swap(a, b, n)),
    ]
}

/// The facts of a certificate, and the key rules on it as an `ecdsa-x509` key.
fn cert_and_key(der: &[u8]) -> TestCaseResult {
    let _ = accepted(x509::cert_facts(der))?;
    let pem = x509::go_pem(der);
    prop_assert_eq!(
        x509::pem_certificates(&pem).map_err(unexpected)?,
        vec![der.to_vec()]
    );
    prop_assert_eq!(
        x509::pem_certificates_in_text(&pem).map_err(unexpected)?,
        vec![der.to_vec()]
    );
    let key = notary::x509_key(&pem);
    let id = notary::key_id(&key);
    if let Some(facts) = accepted(verify::key_facts("root.json", &id, &key))? {
        prop_assert!(facts.go_pem);
        prop_assert_eq!(facts.certs.len(), 1);
    }
    let _ = accepted(notary::canonical_key_id(&key))?;
    Ok(())
}

#[test]
fn random_and_mutated_der_certificates() {
    let original = cert_der();
    cert_and_key(&original).unwrap();
    let facts = x509::cert_facts(&original).unwrap();
    assert_eq!(facts.common_name.as_deref(), Some(GUN));
    let ders = prop_oneof![
        1 => vec(any::<u8>(), 0..400),
        4 => vec(der_edit(), 1..4).prop_map(move |edits| {
            let mut der = cert_der();
            for e in &edits {
                apply_edit(&mut der, e);
            }
            der
        }),
    ];
    check("random_and_mutated_der_certificates", 6000, ders, |der| {
        cert_and_key(&der)
    });
}

#[derive(Debug, Clone)]
enum LineEdit {
    Delete(Index),
    Duplicate(Index),
    Insert(Index, String),
    Crlf,
    Indent(Index),
    Chars(Index, char),
}

fn pem_texts() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        2 => select(&[
            "-----BEGIN CERTIFICATE-----",
            "-----END CERTIFICATE-----",
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE----- ",
            "-----begin certificate-----",
            "",
            "   ",
            "MAMCAQE=",
            "====",
            "Yubico PIV Root CA",
        ][..]).prop_map(str::to_owned),
        1 => chars(20),
    ];
    let edit = prop_oneof![
        2 => any::<Index>().prop_map(LineEdit::Delete),
        2 => any::<Index>().prop_map(LineEdit::Duplicate),
        3 => (any::<Index>(), line).prop_map(|(i, l)| LineEdit::Insert(i, l)),
        1 => Just(LineEdit::Crlf),
        1 => any::<Index>().prop_map(LineEdit::Indent),
        3 => (any::<Index>(), any::<char>()).prop_map(|(i, c)| LineEdit::Chars(i, c)),
    ];
    let mutated = (1usize..3, vec(edit, 1..5)).prop_map(|(copies, edits)| {
        let mut lines: Vec<String> = ROOT_CERT_PEM
            .repeat(copies)
            .lines()
            .map(str::to_owned)
            .collect();
        for e in &edits {
            let n = lines.len();
            match e {
                LineEdit::Delete(at) if n > 0 => {
                    lines.remove(at.index(n));
                }
                LineEdit::Duplicate(at) if n > 0 => {
                    let i = at.index(n);
                    let copy = lines[i].clone();
                    lines.insert(i, copy);
                }
                LineEdit::Insert(at, line) => lines.insert(at.index(n + 1), line.clone()),
                LineEdit::Crlf => lines.iter_mut().for_each(|l| l.push('\r')),
                LineEdit::Indent(at) if n > 0 => lines[at.index(n)].insert(0, ' '),
                LineEdit::Chars(at, c) if n > 0 => {
                    let line = &mut lines[at.index(n)];
                    let mut chars: Vec<char> = line.chars().collect();
                    let i = at.index(chars.len() + 1);
                    if i < chars.len() {
                        chars[i] = *c;
                    } else {
                        chars.push(*c);
                    }
                    *line = chars.into_iter().collect();
                }
                _ => {}
            }
        }
        lines.join("\n")
    });
    prop_oneof![1 => chars(200), 3 => mutated]
}

#[test]
fn random_and_mutated_pem_bundles() {
    assert_eq!(
        x509::pem_certificates(ROOT_CERT_PEM).unwrap(),
        vec![cert_der()]
    );
    check("random_and_mutated_pem_bundles", 6000, pem_texts(), |pem| {
        let strict = accepted(x509::pem_certificates(&pem))?;
        let lax = accepted(x509::pem_certificates_in_text(&pem))?;
        if let Some(strict) = &strict {
            prop_assert!(!strict.is_empty());
            prop_assert_eq!(
                Some(strict),
                lax.as_ref(),
                "the strict splitter accepts what the lax one refuses"
            );
        }
        for der in lax.iter().flatten() {
            let _ = accepted(x509::cert_facts(der))?;
        }
        // As the public part of a root key in a metadata file.
        let key = notary::x509_key(&pem);
        let _ = accepted(verify::key_facts("root.json", &notary::key_id(&key), &key))?;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// The trust directory: inventory, journal, drafts

fn inventory_key() -> impl Strategy<Value = InventoryKey> {
    let text = || prop_oneof![3 => "[a-z0-9:;=/.-]{0,30}", 1 => chars(12)];
    (
        (
            text(),
            text(),
            proptest::option::of(select(
                &["root", "targets", "snapshot", "timestamp", "Root"][..],
            )),
        ),
        (text(), text(), text()),
        (text(), text(), text()),
    )
        .prop_map(
            |(
                (uri, label, role),
                (algorithm, public_key, key_id),
                (token_label, token_serial, created),
            )| InventoryKey {
                uri,
                label,
                role: role.map(str::to_owned),
                algorithm,
                public_key,
                key_id,
                token_label,
                token_serial,
                created,
                ..InventoryKey::default()
            },
        )
}

fn inventory_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid = vec(inventory_key(), 0..4)
        .prop_map(|keys| Inventory { version: 1, keys }.to_bytes().unwrap());
    prop_oneof![
        1 => vec(any::<u8>(), 0..200),
        1 => json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        4 => (valid, mutation()).prop_map(|(bytes, m)| mutate(&bytes, &m)),
    ]
}

#[test]
fn inventories_parse_strictly() {
    check(
        "inventories_parse_strictly",
        5000,
        inventory_bytes(),
        |bytes| {
            if let Ok(inventory) = serde_json::from_slice::<Inventory>(&bytes) {
                let again = inventory.to_bytes().map_err(unexpected)?;
                let reread: Inventory = serde_json::from_slice(&again).unwrap();
                prop_assert_eq!(reread.keys, inventory.keys);
                prop_assert_eq!(reread.version, inventory.version);
            }
            Ok(())
        },
    );
}

/// A journal of a batch that passed its commit point: rewrite the inventory, remove a file.
const JOURNAL: &str = "rootkeeper-journal 1\n{\"ops\":[{\"write\":{\"target\":\"inventory.json\",\"len\":2}},{\"remove\":{\"target\":\"repos/x.json\"}}]}\n{}";

#[test]
fn trust_directories_with_mutated_inventories_and_journals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("trust");
    std::fs::create_dir_all(&dir).unwrap();
    let journal = prop_oneof![
        2 => Just(None),
        1 => Just(Some(JOURNAL.as_bytes().to_vec())),
        2 => mutation().prop_map(|m| Some(mutate(JOURNAL.as_bytes(), &m))),
        1 => vec(any::<u8>(), 0..64).prop_map(Some),
    ];
    check(
        "trust_directories_with_mutated_inventories_and_journals",
        1500,
        (inventory_bytes(), journal),
        |(inventory, journal)| {
            std::fs::write(dir.join("inventory.json"), &inventory).unwrap();
            match &journal {
                Some(j) => std::fs::write(dir.join(".journal"), j).unwrap(),
                None => {
                    let _ = std::fs::remove_file(dir.join(".journal"));
                }
            }
            let Some(trust) = accepted(TrustDir::open_read(&dir))? else {
                return Ok(());
            };
            if let Some(read) = accepted(trust.inventory())? {
                prop_assert_eq!(read.version, 1);
            }
            let _ = accepted(trust.guns())?;
            Ok(())
        },
    );
}

/// A pending draft made of the notary samples, as `root init` would have left it: the first
/// root (its root and targets keys are signers, the snapshot key an offline signer, the
/// timestamp key the server's), targets.json and snapshot.json, and an inventory holding
/// the signers' keys.
struct DraftFiles {
    /// (path below the trust directory, bytes)
    files: Vec<(String, Vec<u8>)>,
    root_signed: Vec<u8>,
    targets_signed: Vec<u8>,
}

static DRAFT: LazyLock<DraftFiles> = LazyLock::new(|| {
    let root_bytes = sample_bytes("root.v1.json");
    let targets_bytes = sample_bytes("targets.json");
    let snapshot_bytes = sample_bytes("snapshot.json");
    let root = Signed::<Root>::parse("root", root_bytes).unwrap();
    let targets = Signed::<Targets>::parse("targets", targets_bytes).unwrap();
    let snapshot = Signed::<Snapshot>::parse("snapshot", snapshot_bytes).unwrap();
    let keys = verify::key_table("root", &root.signed.keys).unwrap();
    let mut signers = Vec::new();
    let mut inventory = Inventory {
        version: 1,
        keys: Vec::new(),
    };
    for role in [RoleName::Root, RoleName::Targets, RoleName::Snapshot] {
        let keyid = root.signed.roles.get(role).keyids[0].clone();
        let facts = &keys[&keyid];
        let spki = match facts.certs.first() {
            Some(leaf) => leaf.spki_der.clone(),
            None => facts.key.public().to_vec(),
        };
        let uri = format!("pkcs11:token=custodian;object={role}-2026");
        signers.push(DraftSigner {
            role,
            keyid: keyid.clone(),
            key_id: facts.canonical.clone(),
            uri: uri.clone(),
            previous: false,
            legacy: None,
        });
        inventory.keys.push(InventoryKey {
            uri,
            label: format!("{role}-2026"),
            role: Some(role.to_string()),
            algorithm: "ecdsa-p256".into(),
            public_key: B64.encode(spki),
            key_id: facts.canonical.to_string(),
            token_label: "custodian".into(),
            token_serial: "2c1f".into(),
            created: "2026-11-28T07:39:08Z".into(),
            ..InventoryKey::default()
        });
    }
    let root_signed = root.signed_bytes().unwrap();
    let targets_signed = targets.signed_bytes().unwrap();
    let draft = Draft {
        format: 1,
        gun: GUN.into(),
        created: "2026-11-28T07:39:08Z".into(),
        purpose: "a new repository".into(),
        root: PendingDoc::of(root.signed.version.get(), &root_signed),
        targets: PendingDoc::of(targets.signed.version.get(), &targets_signed),
        snapshot: SnapshotPlan::Offline {
            version: snapshot.signed.version.get(),
            expires: snapshot.signed.expires.to_string(),
        },
        signers,
        server_keys: vec![ServerKey {
            role: RoleName::Timestamp,
            keyid: root.signed.roles.timestamp.keyids[0].clone(),
        }],
        delegations: Default::default(),
        exported: None,
    };
    let pending = |name: &str| format!("repos/{GUN}/pending/{name}");
    DraftFiles {
        files: vec![
            (pending("draft.json"), draft.to_bytes().unwrap()),
            (pending("root.json"), root_bytes.to_vec()),
            (pending("targets.json"), targets_bytes.to_vec()),
            (pending("snapshot.json"), snapshot_bytes.to_vec()),
            ("inventory.json".into(), inventory.to_bytes().unwrap()),
        ],
        root_signed,
        targets_signed,
    }
});

/// Writes the draft's files with `mutated` in place of file `which` (`None`: the file is
/// missing), and loads the draft as every root command does.
fn load_draft(dir: &Path, which: usize, mutated: Option<&[u8]>) -> TestCaseResult {
    for (i, (path, bytes)) in DRAFT.files.iter().enumerate() {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match (i == which, mutated) {
            (false, _) => std::fs::write(&path, bytes).unwrap(),
            (true, Some(m)) => std::fs::write(&path, m).unwrap(),
            (true, None) => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let trust = TrustDir::open_read(dir).map_err(unexpected)?;
    let inventory = accepted(trust.inventory())?.unwrap_or_default();
    let repo = trust.repo(GUN).map_err(unexpected)?;
    let _ = accepted(rootkeeper::root::status(&trust, &[GUN.to_owned()]))?;
    let Some(pending) = accepted(draft::load(&repo, &inventory))? else {
        return Ok(());
    };
    // The draft records the hashes of what custodians sign: no mutation gets past that.
    prop_assert!(
        pending.root_signed == DRAFT.root_signed,
        "a changed root passed as the draft"
    );
    prop_assert!(
        pending.targets_signed == DRAFT.targets_signed,
        "changed targets passed as the draft"
    );
    let status = draft::status(&pending);
    prop_assert_eq!(status.gun, GUN);
    let _ = accepted(pending.root_file())?;
    let _ = accepted(pending.targets_file())?;
    let _ = accepted(draft::snapshot_expiry(&pending.draft.snapshot))?;
    let _ = accepted(rootkeeper::root::verify_draft(&repo, sample_now()))?;
    Ok(())
}

#[test]
fn the_sample_draft_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("trust");
    load_draft(&dir, usize::MAX, None).unwrap();
    let trust = TrustDir::open_read(&dir).unwrap();
    let pending = draft::load(&trust.repo(GUN).unwrap(), &trust.inventory().unwrap()).unwrap();
    let status = draft::status(&pending);
    assert!(
        status.root.complete() && status.targets.complete(),
        "{status:?}"
    );
    assert_eq!(status.snapshot, "signed");
}

#[test]
fn drafts_parse_strictly() {
    let original = DRAFT.files[0].1.clone();
    let drafts = prop_oneof![
        1 => json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        5 => mutation().prop_map(move |m| mutate(&original, &m)),
    ];
    check("drafts_parse_strictly", 5000, drafts, |bytes| {
        if let Ok(draft) = serde_json::from_slice::<Draft>(&bytes) {
            let again = draft.to_bytes().map_err(unexpected)?;
            let reread: Draft = serde_json::from_slice(&again).unwrap();
            prop_assert!(reread.to_bytes().map_err(unexpected)? == again);
            let _ = accepted(draft::snapshot_expiry(&draft.snapshot))?;
        }
        Ok(())
    });
}

#[test]
fn drafts_with_mutated_pending_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("trust");
    let cases = (
        0..DRAFT.files.len(),
        prop_oneof![
            10 => mutation().prop_map(Some),
            1 => Just(None),
        ],
        vec(any::<u8>(), 0..64),
        any::<bool>(),
    );
    check(
        "drafts_with_mutated_pending_files",
        2000,
        cases,
        |(which, m, random, use_random)| {
            let mutated = match &m {
                Some(m) if !use_random || which == 0 => Some(mutate(&DRAFT.files[which].1, m)),
                Some(_) => Some(random),
                None => None,
            };
            load_draft(&dir, which, mutated.as_deref())
        },
    );
}

// ---------------------------------------------------------------------------------------
// The rules on re-signed repositories: valid k-of-n repositories made with in-memory keys,
// varied in what must not matter, each with at most one breakage. None passes every rule;
// one fails with exactly its rule. (Mutated samples rarely get past `signatures`; these reach
// every rule after it.)

fn signer(seed: u8, name: &str) -> MemorySigner {
    MemorySigner::from_key(
        p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap(),
        name,
    )
    .unwrap()
}

fn at(text: &str) -> std::time::SystemTime {
    UtcTime::parse(text).unwrap().to_system()
}

/// The certificate of a root key: valid for the GUN now, for another GUN, expired, not yet
/// valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cert {
    Good,
    OtherGun,
    Expired,
    Future,
}

struct Keys {
    /// Root keys 0..3, and a fourth certificate key that no root role lists.
    roots: Vec<MemorySigner>,
    targets: MemorySigner,
    snapshot: MemorySigner,
    timestamp: MemorySigner,
    delegation: MemorySigner,
    /// Per root key, the PEM of each `Cert` variant.
    certs: Vec<BTreeMap<&'static str, String>>,
}

fn cert_name(c: Cert) -> &'static str {
    match c {
        Cert::Good => "good",
        Cert::OtherGun => "other-gun",
        Cert::Expired => "expired",
        Cert::Future => "future",
    }
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let roots: Vec<MemorySigner> = (1..=4).map(|i| signer(i, "root")).collect();
    let certs = roots
        .iter()
        .map(|s| {
            let mut m = BTreeMap::new();
            for (c, gun, from, to) in [
                (
                    Cert::Good,
                    GUN,
                    "2026-01-01T00:00:00Z",
                    "2036-01-01T00:00:00Z",
                ),
                (
                    Cert::OtherGun,
                    "example.com/other",
                    "2026-01-01T00:00:00Z",
                    "2036-01-01T00:00:00Z",
                ),
                (
                    Cert::Expired,
                    GUN,
                    "2020-01-01T00:00:00Z",
                    "2021-01-01T00:00:00Z",
                ),
                (
                    Cert::Future,
                    GUN,
                    "2030-01-01T00:00:00Z",
                    "2040-01-01T00:00:00Z",
                ),
            ] {
                m.insert(
                    cert_name(c),
                    x509::root_certificate(s, gun, at(from), at(to)).unwrap(),
                );
            }
            m
        })
        .collect();
    Keys {
        roots,
        targets: signer(11, "targets"),
        snapshot: signer(12, "snapshot"),
        timestamp: signer(13, "timestamp"),
        delegation: signer(14, "delegation"),
        certs,
    }
});

/// The first root (version 1: root key 0 alone), checked, for the rotation rules.
static FIRST_ROOT: LazyLock<verify::CheckedRoot> = LazyLock::new(|| {
    let files = build(&KEYS, &RepoPlan::valid_v1());
    verify::check_root("v1", &files.root, Some(GUN), None, sample_now()).unwrap()
});

/// One way to break one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breakage {
    WrongKeyId,
    DuplicateRoleKey,
    UnknownRoleKey,
    ThresholdTooHigh,
    DuplicateSignature,
    CorruptSignature,
    TooFewSignatures,
    BareRootKey,
    OtherGunCert,
    ExpiredCert,
    FutureCert,
    RootExpired,
    RootOutlivesCert,
    CertInSnapshotRole,
    SharedKey,
    WrongVersion,
    NotSignedByPrevious,
    TargetsUnsigned,
    TargetsCorrupt,
    TargetsExpired,
    BadDelegationName,
    DelegationThreshold,
    BadHashLength,
    SnapshotUnsigned,
    SnapshotExpired,
    SnapshotWrongRoot,
    SnapshotMissingTargets,
    TimestampUnsigned,
    TimestampExpired,
    TimestampExtraMeta,
    TimestampWrongHash,
}

impl Breakage {
    const ALL: [Breakage; 31] = [
        Breakage::WrongKeyId,
        Breakage::DuplicateRoleKey,
        Breakage::UnknownRoleKey,
        Breakage::ThresholdTooHigh,
        Breakage::DuplicateSignature,
        Breakage::CorruptSignature,
        Breakage::TooFewSignatures,
        Breakage::BareRootKey,
        Breakage::OtherGunCert,
        Breakage::ExpiredCert,
        Breakage::FutureCert,
        Breakage::RootExpired,
        Breakage::RootOutlivesCert,
        Breakage::CertInSnapshotRole,
        Breakage::SharedKey,
        Breakage::WrongVersion,
        Breakage::NotSignedByPrevious,
        Breakage::TargetsUnsigned,
        Breakage::TargetsCorrupt,
        Breakage::TargetsExpired,
        Breakage::BadDelegationName,
        Breakage::DelegationThreshold,
        Breakage::BadHashLength,
        Breakage::SnapshotUnsigned,
        Breakage::SnapshotExpired,
        Breakage::SnapshotWrongRoot,
        Breakage::SnapshotMissingTargets,
        Breakage::TimestampUnsigned,
        Breakage::TimestampExpired,
        Breakage::TimestampExtraMeta,
        Breakage::TimestampWrongHash,
    ];

    /// The rule that must report it.
    fn rule(self) -> &'static str {
        use Breakage::*;
        match self {
            WrongKeyId => "key-ids",
            DuplicateRoleKey | UnknownRoleKey | ThresholdTooHigh => "structure",
            DuplicateSignature | CorruptSignature | TargetsCorrupt => "signatures",
            TooFewSignatures => "root-threshold",
            BareRootKey => "root-certs",
            OtherGunCert => "root-cn",
            ExpiredCert | FutureCert => "root-cert-validity",
            RootExpired | RootOutlivesCert => "root-expiry",
            CertInSnapshotRole => "role-key-types",
            SharedKey => "distinct-role-keys",
            WrongVersion => "root-version",
            NotSignedByPrevious => "root-rotation",
            TargetsUnsigned => "targets-threshold",
            TargetsExpired => "targets-expiry",
            BadDelegationName | DelegationThreshold => "delegations",
            BadHashLength => "target-hashes",
            SnapshotUnsigned => "snapshot-threshold",
            SnapshotExpired => "snapshot-expiry",
            SnapshotWrongRoot | SnapshotMissingTargets => "snapshot-meta",
            TimestampUnsigned => "timestamp-threshold",
            TimestampExpired => "timestamp-expiry",
            TimestampExtraMeta | TimestampWrongHash => "timestamp-meta",
        }
    }
}

/// A repository to make: what may vary, and at most one breakage.
#[derive(Debug, Clone)]
struct RepoPlan {
    /// Root keys 1 to 3, and how many must sign.
    roots: usize,
    threshold: usize,
    /// Root keys beyond the threshold that sign too (bit i: key i).
    extra_signers: u8,
    /// The snapshot key signs the root too (not a root key: ignored).
    outsider_signs: bool,
    /// Signatures in reverse order.
    reversed: bool,
    root_expires: &'static str,
    /// Checked against the first root as the previous one (this root is then version 2).
    rotation: bool,
    targets_version: u64,
    snapshot_version: u64,
    timestamp_version: u64,
    expires: &'static str,
    delegations: Vec<&'static str>,
    target_files: BTreeMap<String, (Vec<u8>, bool)>,
    breakage: Option<Breakage>,
}

impl RepoPlan {
    fn valid_v1() -> RepoPlan {
        RepoPlan {
            roots: 1,
            threshold: 1,
            extra_signers: 0,
            outsider_signs: false,
            reversed: false,
            root_expires: "2030-01-01T00:00:00Z",
            rotation: false,
            targets_version: 1,
            snapshot_version: 1,
            timestamp_version: 1,
            expires: "2027-01-01T00:00:00Z",
            delegations: Vec::new(),
            target_files: BTreeMap::new(),
            breakage: None,
        }
    }
}

fn repo_plan() -> impl Strategy<Value = RepoPlan> {
    let version = || prop_oneof![3 => 1u64..=10, 1 => Just(1u64 << 53)];
    (
        (1usize..=3).prop_flat_map(|n| (Just(n), 1..=n)),
        any::<u8>(),
        any::<bool>(),
        any::<bool>(),
        select(
            &[
                "2026-11-29T00:00:00.000000001Z",
                "2031-06-30T12:00:00Z",
                "2035-12-31T23:59:59.999999999Z",
                "2036-01-01T00:00:00Z",
            ][..],
        ),
        any::<bool>(),
        (version(), version(), version()),
        select(
            &[
                "2026-11-30T00:00:00Z",
                "2029-11-27T07:39:44.474547808Z",
                "2116-07-03T17:56:36.027379879-05:00",
            ][..],
        ),
        proptest::sample::subsequence(
            &["targets/releases", "targets/ci-bot_2", "targets/a-b"][..],
            0..=3,
        ),
        btree_map(
            "[a-z0-9/._-]{1,20}",
            (vec(any::<u8>(), 0..40), any::<bool>()),
            0..3,
        ),
        prop_oneof![1 => Just(None), 3 => select(&Breakage::ALL[..]).prop_map(Some)],
    )
        .prop_map(
            |(
                (roots, threshold),
                extra_signers,
                outsider_signs,
                reversed,
                root_expires,
                rotation,
                (tv, sv, mv),
                expires,
                delegations,
                target_files,
                breakage,
            )| RepoPlan {
                roots,
                threshold,
                extra_signers,
                outsider_signs,
                reversed,
                root_expires,
                rotation,
                targets_version: tv,
                snapshot_version: sv,
                timestamp_version: mv,
                expires,
                delegations: delegations.to_vec(),
                target_files,
                breakage,
            },
        )
}

struct RepoBytes {
    root: Vec<u8>,
    targets: Vec<u8>,
    snapshot: Vec<u8>,
    timestamp: Vec<u8>,
}

fn ecdsa(s: &MemorySigner) -> (KeyId, PublicKey) {
    use rootkeeper::signer::Signer as _;
    let key = notary::ecdsa_key(s.public_key()).unwrap();
    (notary::key_id(&key), key)
}

fn role(keyids: Vec<KeyId>, threshold: u64) -> RoleKeys {
    RoleKeys {
        keyids,
        threshold: Threshold::new(threshold).unwrap(),
    }
}

fn sign_as(signed: &[u8], by: &MemorySigner, keyid: &KeyId) -> Signature {
    notary::signature(by, keyid, signed).unwrap()
}

/// `doc`, signed by `by` or unsigned.
fn signed_by<T: RoleFile>(doc: T, by: Option<(&MemorySigner, &KeyId)>) -> Signed<T> {
    let mut file = Signed::new(doc);
    if let Some((key, id)) = by {
        let bytes = file.signed_bytes().unwrap();
        file.signatures.push(sign_as(&bytes, key, id));
    }
    file
}

fn corrupt(sigs: &mut [Signature]) {
    if let Some(s) = sigs.first_mut() {
        s.sig.0[7] ^= 1;
    }
}

fn build(keys: &Keys, plan: &RepoPlan) -> RepoBytes {
    use Breakage::*;
    let broken = |b: Breakage| plan.breakage == Some(b);
    let expiry = |text: &str| GoTime::parse(text).unwrap();
    let cert_of = |i: usize| match plan.breakage {
        Some(OtherGunCert) if i == 0 => Cert::OtherGun,
        Some(ExpiredCert) if i == 0 => Cert::Expired,
        Some(FutureCert) if i == 0 => Cert::Future,
        _ => Cert::Good,
    };
    // Root keys: 0..n, or 1..=n when the previous root's key 0 must not sign.
    let first = usize::from(broken(NotSignedByPrevious));
    let indices: Vec<usize> = (first..first + plan.roots).collect();
    let mut all_keys = BTreeMap::new();
    let mut root_ids = Vec::new();
    for &i in &indices {
        let key = notary::x509_key(&keys.certs[i][cert_name(cert_of(i))]);
        let id = notary::key_id(&key);
        all_keys.insert(id.clone(), key);
        root_ids.push(id);
    }
    let (targets_id, targets_key) = ecdsa(&keys.targets);
    let (snapshot_id, snapshot_key) = ecdsa(&keys.snapshot);
    let (timestamp_id, timestamp_key) = ecdsa(&keys.timestamp);
    all_keys.insert(targets_id.clone(), targets_key.clone());
    all_keys.insert(snapshot_id.clone(), snapshot_key);
    all_keys.insert(timestamp_id.clone(), timestamp_key);
    let mut root_role = root_ids.clone();
    let mut threshold = plan.threshold as u64;
    let mut targets_role = vec![targets_id.clone()];
    let mut snapshot_role = vec![snapshot_id.clone()];
    match plan.breakage {
        Some(WrongKeyId) => {
            let (id, key) = all_keys.pop_first().unwrap();
            let wrong = KeyId::from_digest(&[0x5a; 32]);
            for r in [&mut root_role, &mut targets_role, &mut snapshot_role] {
                r.iter_mut()
                    .filter(|k| **k == id)
                    .for_each(|k| *k = wrong.clone());
            }
            all_keys.insert(wrong, key);
        }
        Some(DuplicateRoleKey) => root_role.push(root_ids[0].clone()),
        Some(UnknownRoleKey) => root_role.push(KeyId::from_digest(&[0xa5; 32])),
        Some(ThresholdTooHigh) => threshold = plan.roots as u64 + 1,
        Some(BareRootKey) => root_role.push(targets_id.clone()),
        Some(CertInSnapshotRole) => {
            let key = notary::x509_key(&keys.certs[3]["good"]);
            let id = notary::key_id(&key);
            all_keys.insert(id.clone(), key);
            snapshot_role.push(id);
        }
        Some(SharedKey) => targets_role.push(root_ids[0].clone()),
        _ => {}
    }
    let version = match plan.breakage {
        Some(WrongVersion) => 3,
        _ if plan.rotation || broken(NotSignedByPrevious) => 2,
        _ => 1,
    };
    let root_expires = match plan.breakage {
        Some(RootExpired) => "2026-11-28T23:59:59Z",
        Some(RootOutlivesCert) => "2036-01-01T00:00:01Z",
        _ => plan.root_expires,
    };
    let root = notary::new_root(
        all_keys,
        RootRoles {
            root: role(root_role, threshold),
            snapshot: role(snapshot_role, 1),
            targets: role(targets_role, 1),
            timestamp: role(vec![timestamp_id.clone()], 1),
        },
        expiry(root_expires).instant(),
        Version::new(version).unwrap(),
    );
    let mut root = Signed::new(Root {
        expires: expiry(root_expires),
        ..root
    });
    let signed = root.signed_bytes().unwrap();
    let signing = if broken(TooFewSignatures) {
        plan.threshold - 1
    } else {
        plan.threshold
    };
    for (n, &i) in indices.iter().enumerate() {
        let extra = !broken(TooFewSignatures) && plan.extra_signers & (1 << n) != 0;
        if n < signing || extra {
            root.signatures
                .push(sign_as(&signed, &keys.roots[i], &root_ids[n]));
        }
    }
    if plan.outsider_signs {
        root.signatures
            .push(sign_as(&signed, &keys.snapshot, &snapshot_id));
    }
    if broken(DuplicateSignature) {
        root.signatures
            .push(sign_as(&signed, &keys.roots[indices[0]], &root_ids[0]));
    }
    if broken(CorruptSignature) {
        corrupt(&mut root.signatures);
    }
    if plan.reversed {
        root.signatures.reverse();
    }
    let root_bytes = root.to_bytes().unwrap();

    let expires = |text: &str, b: Breakage| {
        expiry(if broken(b) {
            "2026-11-28T00:00:00Z"
        } else {
            text
        })
    };
    let (delegation_id, delegation_key) = ecdsa(&keys.delegation);
    let mut targets =
        notary::new_targets(UtcTime::now(), Version::new(plan.targets_version).unwrap());
    targets.expires = expires(plan.expires, TargetsExpired);
    if !plan.delegations.is_empty() || broken(BadDelegationName) || broken(DelegationThreshold) {
        targets
            .delegations
            .keys
            .insert(delegation_id.clone(), delegation_key);
        let mut names = plan.delegations.clone();
        if broken(BadDelegationName) {
            names.push("targets/Releases");
        }
        if names.is_empty() {
            names.push("targets/releases");
        }
        for name in names {
            targets.delegations.roles.push(DelegationRole {
                keyids: vec![delegation_id.clone()],
                name: name.into(),
                paths: vec![String::new()],
                threshold: Threshold::new(if broken(DelegationThreshold) { 2 } else { 1 }).unwrap(),
            });
        }
    }
    for (name, (content, with_sha512)) in &plan.target_files {
        let mut meta = notary::file_meta(content);
        if !with_sha512 {
            meta.hashes.sha512 = None;
        }
        targets.targets.insert(name.clone(), meta);
    }
    if broken(BadHashLength) {
        targets.targets.insert(
            "short".into(),
            FileMeta {
                hashes: Hashes {
                    sha256: Some(Base64(vec![0; 31])),
                    sha512: None,
                },
                length: Length::of(b""),
                custom: None,
            },
        );
    }
    let unless = |b: Breakage, key, id| (!broken(b)).then_some((key, id));
    let mut targets = signed_by(targets, unless(TargetsUnsigned, &keys.targets, &targets_id));
    if broken(TargetsCorrupt) {
        corrupt(&mut targets.signatures);
    }
    let targets_bytes = targets.to_bytes().unwrap();

    let covered_root = if broken(SnapshotWrongRoot) {
        &targets_bytes
    } else {
        &root_bytes
    };
    let mut snapshot = notary::new_snapshot(
        covered_root,
        &targets_bytes,
        UtcTime::now(),
        Version::new(plan.snapshot_version).unwrap(),
    );
    snapshot.expires = expires(plan.expires, SnapshotExpired);
    if broken(SnapshotMissingTargets) {
        snapshot.meta.remove("targets");
    }
    let snapshot = signed_by(
        snapshot,
        unless(SnapshotUnsigned, &keys.snapshot, &snapshot_id),
    );
    let snapshot_bytes = snapshot.to_bytes().unwrap();

    let mut meta = BTreeMap::new();
    meta.insert(
        "snapshot".to_owned(),
        notary::file_meta(if broken(TimestampWrongHash) {
            &root_bytes
        } else {
            &snapshot_bytes
        }),
    );
    if broken(TimestampExtraMeta) {
        meta.insert("root".to_owned(), notary::file_meta(&root_bytes));
    }
    let timestamp = signed_by(
        Timestamp {
            type_: Default::default(),
            expires: expires(plan.expires, TimestampExpired),
            meta,
            version: Version::new(plan.timestamp_version).unwrap(),
        },
        unless(TimestampUnsigned, &keys.timestamp, &timestamp_id),
    );
    RepoBytes {
        root: root_bytes,
        targets: targets_bytes,
        snapshot: snapshot_bytes,
        timestamp: timestamp.to_bytes().unwrap(),
    }
}

#[test]
fn re_signed_repositories_break_exactly_the_rule_they_break() {
    let keys = &*KEYS;
    check(
        "re_signed_repositories_break_exactly_the_rule_they_break",
        1500,
        repo_plan(),
        |plan| {
            let files = build(keys, &plan);
            let rotation = plan.rotation
                || matches!(
                    plan.breakage,
                    Some(Breakage::WrongVersion | Breakage::NotSignedByPrevious)
                );
            let previous = rotation.then_some(&*FIRST_ROOT);
            let repo = verify::RepoFiles {
                root: &files.root,
                targets: Some(&files.targets),
                snapshot: Some(&files.snapshot),
                timestamp: Some(&files.timestamp),
            };
            for file in [
                &files.root,
                &files.targets,
                &files.snapshot,
                &files.timestamp,
            ] {
                every_metadata_parser("made.json", file)?;
            }
            let result = verify::verify_repo(repo, Some(GUN), previous, sample_now());
            match (plan.breakage, result) {
                (None, Ok((root, verified))) => {
                    prop_assert_eq!(verified.gun, GUN);
                    prop_assert!(root.signatures.count() >= plan.threshold as u64);
                    // Without the GUN given, the certificates name it.
                    let alone =
                        verify::check_root("root.json", &files.root, None, previous, sample_now());
                    prop_assert_eq!(alone.map_err(unexpected)?.gun, GUN);
                }
                (None, Err(e)) => {
                    return Err(TestCaseError::fail(format!(
                        "a valid repository was refused: {}",
                        error_text(&e)
                    )));
                }
                (Some(b), Ok(_)) => {
                    return Err(TestCaseError::fail(format!("{b:?} passed every rule")));
                }
                (Some(b), Err(e)) => {
                    clean(&e)?;
                    match &e {
                        Error::Rule { rule, .. } => {
                            prop_assert_eq!(*rule, b.rule(), "{:?}: {}", b, error_text(&e))
                        }
                        other => {
                            return Err(TestCaseError::fail(format!(
                                "{b:?}: not a rule error: {}",
                                error_text(other)
                            )));
                        }
                    }
                }
            }
            Ok(())
        },
    );
}
