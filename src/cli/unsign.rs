//! `rootkeeper root unsign`: take a key's signatures back out of a draft not exported yet.

use std::fmt::Write as _;

use rootkeeper::backend::Keyring;
use rootkeeper::root::unsign::{self, KeyRef, UnsignPlan};
use serde_json::json;

use super::{Ctx, GunArgs, Output, json};

/// Take back the signatures of the given keys from a draft that is not exported yet (a
/// signature by mistake, or one custodian too many); no token is logged in to. The snapshot
/// that covered them is dropped.
#[derive(Debug, clap::Args)]
pub struct UnsignArgs {
    #[command(flatten)]
    guns: GunArgs,
    /// The key: its URI, or its key ID as `root status` shows it (all 64 hex digits, or the
    /// first 8 or more); repeat for several.
    #[arg(long = "key", value_name = "URI|KEYID", required = true)]
    keys: Vec<String>,
    /// Show what would be taken back without changing anything.
    #[arg(long)]
    dry_run: bool,
}

fn plan_text(plan: &UnsignPlan) -> String {
    let mut text = String::new();
    for d in &plan.drafts {
        let s = &d.before;
        let _ = writeln!(
            text,
            "{}: root v{} ({} of {} root signatures now), expires {}",
            s.gun, s.version, s.root.signed, s.root.threshold, s.expires
        );
        super::root::fingerprint_text(
            &mut text,
            &super::root::draft_fingerprint_label(s),
            &s.fingerprint,
        );
        for r in &d.removals {
            let _ = writeln!(
                text,
                "  will take back the {} signature of key ID {}  {}",
                r.role.as_str(),
                r.key_id,
                r.uri
            );
        }
        if d.drops_snapshot && d.removals.iter().all(|r| r.role.as_str() != "snapshot") {
            let _ = writeln!(text, "  will drop the snapshot, which covered them");
        }
        for n in &d.notes {
            let _ = writeln!(text, "  note: {n}");
        }
    }
    text
}

pub fn run(ctx: &Ctx, args: UnsignArgs) -> anyhow::Result<Output> {
    let guns = args.guns.resolve()?;
    let keys = args
        .keys
        .iter()
        .map(|k| {
            KeyRef::parse(k)
                .map_err(|e| anyhow::Error::new(e).context(super::Usage("invalid --key".into())))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dir = ctx.trust_dir_existing()?;
    let pins = ctx.pins();
    let mut keyring = Keyring::new(&pins);
    let plan = unsign::plan(&dir, &mut keyring, &guns, &keys)?;
    let text = plan_text(&plan);
    if args.dry_run {
        return Ok(Output::new(text, json!({"plan": json(&plan)})));
    }
    if plan.is_empty() {
        return Ok(Output::new(
            format!("{text}nothing to take back; nothing was changed\n"),
            json!({"unsigned": [], "plan": json(&plan)}),
        ));
    }
    ctx.show(&text);
    ctx.prompter
        .confirm("Take these signatures back (the custodians must sign again)?")?;
    let outcomes = unsign::execute(&dir, plan)?;
    let mut out = String::new();
    for o in &outcomes {
        let _ = writeln!(
            out,
            "{}: took back {}",
            o.gun,
            if o.removed.is_empty() {
                "nothing".into()
            } else {
                o.removed.join(", ")
            }
        );
        for n in &o.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        super::root::status_text(&mut out, &o.status);
    }
    Ok(Output::new(out, json!({"unsigned": json(&outcomes)})))
}
