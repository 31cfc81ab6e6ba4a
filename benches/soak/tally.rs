//! What the soak saw: answers by status and code, wrong answers with their first reasons, undocumented
//! 5xx, faults, rotations and RSS samples; the worker loop that fills it; and the report.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::emulator::Emulator;
use crate::traffic::{self, Case, MIX, NewUser, SQL_RESOURCE, SharedTokens};
use crate::verify::{Expected, Verifier};

/// Wrong answers and undocumented 5xx described in the report, at most.
const EXAMPLES: usize = 10;

/// The (status, code) pairs of the error table: rows such as "| 502 | `entra_unavailable` | ...".
pub struct DocumentedErrors(BTreeSet<(u16, String)>);

impl DocumentedErrors {
    /// Reads the table from README.md or, if it has moved, from docs/*.md.
    pub fn read() -> anyhow::Result<Self> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = vec![std::fs::read_to_string(root.join("README.md"))?];
        if let Ok(entries) = std::fs::read_dir(root.join("docs")) {
            for entry in entries.flatten() {
                texts.extend(std::fs::read_to_string(entry.path()).ok());
            }
        }
        let rows: BTreeSet<(u16, String)> = texts
            .iter()
            .flat_map(|text| text.lines())
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let status = cells.next()?.parse().ok()?;
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                Some((status, code.to_owned()))
            })
            .collect();
        if !rows.iter().any(|(status, _)| *status >= 500) {
            bail!("no error table with 5xx rows found in README.md or docs/");
        }
        Ok(Self(rows))
    }
}

pub struct Tally {
    documented: DocumentedErrors,
    answers: Mutex<BTreeMap<(u16, String), u64>>,
    /// Valid requests not answered 200, by case, status and code.
    refused: Mutex<BTreeMap<(String, u16, String), u64>>,
    valid: AtomicU64,
    hostile: AtomicU64,
    issued: AtomicU64,
    wrong: Mutex<(u64, Vec<String>)>,
    undocumented: Mutex<(u64, Vec<String>)>,
    transport_errors: AtomicU64,
    faults: AtomicU64,
    rotations: AtomicU64,
    rss: Mutex<Vec<(Duration, u64)>>,
}

impl Tally {
    pub fn new(documented: DocumentedErrors) -> Self {
        Self {
            documented,
            answers: Mutex::default(),
            refused: Mutex::default(),
            valid: AtomicU64::default(),
            hostile: AtomicU64::default(),
            issued: AtomicU64::default(),
            wrong: Mutex::default(),
            undocumented: Mutex::default(),
            transport_errors: AtomicU64::default(),
            faults: AtomicU64::default(),
            rotations: AtomicU64::default(),
            rss: Mutex::default(),
        }
    }

    pub fn count_fault(&self) {
        self.faults.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_rotation(&self) {
        self.rotations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sample_rss(&self, at: Duration, kib: u64) {
        self.rss.lock().expect("rss poisoned").push((at, kib));
    }

    pub fn wrong_answers(&self) -> u64 {
        self.wrong.lock().expect("wrong poisoned").0
    }

    pub fn undocumented_5xx(&self) -> u64 {
        self.undocumented.lock().expect("undocumented poisoned").0
    }

    fn note(list: &Mutex<(u64, Vec<String>)>, what: String) {
        let mut list = list.lock().expect("list poisoned");
        list.0 += 1;
        if list.1.len() < EXAMPLES {
            list.1.push(what);
        }
    }

    /// Judges one answer to `case`, whose token (if valid) must be issued to `expected_oid`.
    async fn judge(
        &self,
        verifier: &Verifier,
        case: Case,
        expected_oid: Option<&str>,
        status: u16,
        body: &Value,
    ) {
        let code = body["error"].as_str().unwrap_or_default().to_owned();
        if status >= 500 && !self.documented.0.contains(&(status, code.clone())) {
            Self::note(&self.undocumented, format!("{case:?}: {status} {body}"));
        }
        *self
            .answers
            .lock()
            .expect("answers poisoned")
            .entry((status, code.clone()))
            .or_default() += 1;
        let Some(oid) = expected_oid else {
            self.hostile.fetch_add(1, Ordering::Relaxed);
            if status == 200 {
                Self::note(&self.wrong, format!("{case:?}: a hostile request got 200"));
            }
            return;
        };
        self.valid.fetch_add(1, Ordering::Relaxed);
        if status != 200 {
            let case = format!("{case:?}");
            *self
                .refused
                .lock()
                .expect("refused poisoned")
                .entry((case, status, code))
                .or_default() += 1;
            return;
        }
        self.issued.fetch_add(1, Ordering::Relaxed);
        let Some(token) = body["access_token"].as_str() else {
            return Self::note(&self.wrong, format!("{case:?}: 200 without access_token"));
        };
        let expected = Expected {
            audience: SQL_RESOURCE,
            oid,
        };
        if let Err(reason) = verifier.check(token, &expected).await {
            Self::note(&self.wrong, format!("{case:?}: {reason}"));
        }
        if let Some(caller) = traffic::expected_caller(case)
            && body["caller"]["oid"] != caller
        {
            Self::note(&self.wrong, format!("{case:?}: caller {}", body["caller"]));
        }
    }

    pub fn print(&self, duration: Duration) {
        let (valid, hostile) = (
            self.valid.load(Ordering::Relaxed),
            self.hostile.load(Ordering::Relaxed),
        );
        let wrong = self.wrong.lock().expect("wrong poisoned");
        let undocumented = self.undocumented.lock().expect("undocumented poisoned");
        println!(
            "soak: {:?}, {} requests ({valid} valid, {hostile} hostile)",
            duration,
            valid + hostile
        );
        println!(
            "tokens issued and verified: {}",
            self.issued.load(Ordering::Relaxed)
        );
        println!("wrong answers: {}", wrong.0);
        wrong.1.iter().for_each(|what| println!("  {what}"));
        println!("undocumented 5xx: {}", undocumented.0);
        undocumented.1.iter().for_each(|what| println!("  {what}"));
        println!(
            "faults injected: {}, key rotations: {}, transport errors: {}",
            self.faults.load(Ordering::Relaxed),
            self.rotations.load(Ordering::Relaxed),
            self.transport_errors.load(Ordering::Relaxed)
        );
        println!("answers by status and code:");
        for ((status, code), count) in self.answers.lock().expect("answers poisoned").iter() {
            println!("  {status} {code:<28} {count}");
        }
        println!("valid requests not answered 200, by case:");
        for ((case, status, code), count) in self.refused.lock().expect("refused poisoned").iter() {
            println!("  {case:<16} {status} {code:<28} {count}");
        }
        println!("broker RSS (KiB) by time:");
        for (at, kib) in self.rss.lock().expect("rss poisoned").iter() {
            println!("  {:>6.0} s  {kib}", at.as_secs_f64());
        }
    }
}

/// One worker: the mix in turn, from `worker`'s offset, until `deadline`.
pub async fn drive(
    worker: usize,
    broker: SocketAddr,
    emulator: &Emulator,
    tokens: &SharedTokens,
    verifier: &Verifier,
    tally: &Tally,
    deadline: Instant,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("build the soak's HTTP client")?;
    let mut new_users = 0;
    for case in MIX.iter().copied().cycle().skip(worker) {
        if Instant::now() >= deadline {
            break;
        }
        let current = tokens.read().expect("tokens poisoned").clone();
        let new_user = match case {
            Case::NewUserObo => {
                new_users += 1;
                Some(NewUser::mint(emulator, worker, new_users).await?)
            }
            _ => None,
        };
        let expected_oid = traffic::expected_oid(case, new_user.as_ref());
        match traffic::send(&client, broker, &current, case, new_user.as_ref()).await {
            Ok((status, body)) => {
                tally
                    .judge(verifier, case, expected_oid, status, &body)
                    .await;
            }
            Err(_) => {
                tally.transport_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}
