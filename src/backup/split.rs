//! M-of-N splits. The key itself is never split: the backup is encrypted to a fresh X25519
//! identity made for the split, and only that identity's text (an age identity file) is split
//! with [`super::shamir`], byte for byte as Debian's `gfsplit` would. Share i is a small text
//! document encrypted to recipient i alone:
//!
//! ```text
//! # rootkeeper backup share (format 1): share 2 of split 9f3c… (2-of-3) of key `root-2026`.
//! # Recovery with stock tools: docs/backup.md, "Twenty-year recovery".
//! rootkeeper-backup-share: 1
//! split: 2-of-3 9f3c…                       (ID, M and N: the same in every share of a split)
//! share: 2
//! label: root-2026
//! role: root
//! public-key: MFkw…                         (the backed-up key's public key)
//! key-id: 5f0c…
//! identity-recipient: age1…                 (the split identity's public half)
//! created: 2026-12-01T07:31:00Z
//! gfshare-file: identity-9f3c0a12.002       (the file name gfcombine wants: the x coordinate)
//! gfshare-data: q83v…                       (base64 of that file's bytes)
//!
//! ```
//!
//! Stock recovery: `age -d` each share, `base64 -d` its `gfshare-data` into a file named by its
//! `gfshare-file`, `gfcombine` M of them into an identity file, `age -d -i` that on the backup.
//! Because anyone can encrypt to a custodian's public key, a share proves nothing alone: the
//! recombined identity must be the one the shares name, the backup must decrypt with it, and
//! the key must be the inventory's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::BackupProblem;
use super::document::{Fields, KeyBackup, SplitInfo, is_hex, parse_small, public_forms};
use super::shamir;

/// The share format version.
pub const SHARE_FORMAT: u32 = 1;
pub(crate) const SHARE_MAGIC: &str = "rootkeeper-backup-share";

/// One decrypted share.
pub(crate) struct ShareDoc {
    pub split: SplitInfo,
    pub index: u8,
    pub label: String,
    pub role: String,
    pub public_key: String,
    pub key_id: String,
    pub identity_recipient: String,
    pub created: String,
    pub gfshare_file: String,
    pub data: Zeroizing<Vec<u8>>,
}

/// The gfshare stem of a split: `identity-` and the first 8 digits of its ID.
pub(crate) fn gfshare_stem(split: &SplitInfo) -> String {
    format!("identity-{}", split.id.get(..8).unwrap_or(&split.id))
}

/// What the shares split: an age identity file for this split.
pub(crate) fn identity_text(split: &SplitInfo, secret: &str) -> Zeroizing<String> {
    // Built in one allocation: `format!` would grow and leave copies of the secret behind.
    let mut text = Zeroizing::new(String::with_capacity(256));
    text.push_str("# rootkeeper split ");
    text.push_str(&split.id);
    text.push('\n');
    text.push_str(secret);
    text.push('\n');
    text
}

impl ShareDoc {
    pub fn to_text(&self) -> Zeroizing<String> {
        use std::fmt::Write as _;
        // One allocation large enough for any share, so no grown-out copy stays behind.
        let mut text = Zeroizing::new(String::with_capacity(4096));
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "# rootkeeper backup share (format {SHARE_FORMAT}): share {index} of split {id} ({m}-of-{n}) of key `{label}`.\n\
             # Recovery with stock tools: docs/backup.md, \"Twenty-year recovery\".\n\
             {SHARE_MAGIC}: {SHARE_FORMAT}\nsplit: {split}\nshare: {index}\nlabel: {label}\nrole: {role}\n\
             public-key: {public}\nkey-id: {key_id}\nidentity-recipient: {recipient}\ncreated: {created}\n\
             gfshare-file: {file}\ngfshare-data: {data}\n\n",
            index = self.index,
            id = self.split.id,
            m = self.split.threshold,
            n = self.split.count,
            label = self.label,
            split = self.split,
            role = self.role,
            public = self.public_key,
            key_id = self.key_id,
            recipient = self.identity_recipient,
            created = self.created,
            file = self.gfshare_file,
            data = Zeroizing::new(B64.encode(self.data.as_slice())).as_str(),
        );
        text
    }

    pub fn parse(bytes: &[u8]) -> Result<ShareDoc, BackupProblem> {
        let bad = |reason: String| BackupProblem::Document(reason);
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        let fields = Fields::parse(text, SHARE_MAGIC, SHARE_FORMAT)?;
        if !fields.rest.bytes().all(|b| b == b'\n') {
            return Err(bad("text after the blank line".into()));
        }
        const NAMES: [&str; 10] = [
            "split",
            "share",
            "label",
            "role",
            "public-key",
            "key-id",
            "identity-recipient",
            "created",
            "gfshare-file",
            "gfshare-data",
        ];
        let mut values: [Option<&str>; 10] = [None; 10];
        for (line, name, value) in &fields.fields {
            let Some(slot) = NAMES
                .iter()
                .position(|n| n == name)
                .and_then(|i| values.get_mut(i))
            else {
                return Err(bad(format!("line {line}: unknown field")));
            };
            if slot.replace(*value).is_some() {
                return Err(bad(format!("line {line}: field `{name}` appears twice")));
            }
        }
        let get = |i: usize| {
            values
                .get(i)
                .copied()
                .flatten()
                .ok_or_else(|| bad(format!("no `{}` field", NAMES.get(i).unwrap_or(&"?"))))
        };
        let split = SplitInfo::parse(get(0)?).ok_or_else(|| bad("bad `split` field".into()))?;
        let index: u8 = parse_small(get(1)?).ok_or_else(|| bad("bad `share` field".into()))?;
        if index == 0 || index > split.count {
            return Err(bad(format!("share {index} of a split of {}", split.count)));
        }
        let gfshare_file = get(8)?.to_owned();
        if gfshare_file != format!("{}.{index:03}", gfshare_stem(&split)) {
            return Err(bad(
                "`gfshare-file` does not match the split and share number".into(),
            ));
        }
        let key_id = get(5)?.to_owned();
        if !is_hex(&key_id, 64) {
            return Err(bad("bad `key-id` field".into()));
        }
        let data = Zeroizing::new(
            B64.decode(get(9)?)
                .map_err(|_| bad("`gfshare-data` is not base64".into()))?,
        );
        if data.is_empty() || data.len() > 256 {
            return Err(bad("`gfshare-data` has the wrong length".into()));
        }
        Ok(ShareDoc {
            split,
            index,
            label: get(2)?.to_owned(),
            role: get(3)?.to_owned(),
            public_key: get(4)?.to_owned(),
            key_id,
            identity_recipient: get(6)?.to_owned(),
            created: get(7)?.to_owned(),
            gfshare_file,
            data,
        })
    }
}

/// Makes the share documents of a fresh split of `identity_secret` for `backup`.
pub(crate) fn make_shares(
    backup: &KeyBackup,
    split: &SplitInfo,
    identity_secret: &str,
    identity_recipient: &str,
) -> crate::Result<Vec<ShareDoc>> {
    let text = identity_text(split, identity_secret);
    let shares = shamir::split(text.as_bytes(), split.threshold, split.count)?;
    let (public_key, key_id) = public_forms(backup.public_key());
    let stem = gfshare_stem(split);
    let docs: Vec<ShareDoc> = shares
        .into_iter()
        .map(|s| ShareDoc {
            split: split.clone(),
            index: s.x,
            label: backup.meta.label.clone(),
            role: backup.meta.role.clone(),
            public_key: public_key.clone(),
            key_id: key_id.clone(),
            identity_recipient: identity_recipient.to_owned(),
            created: backup.meta.created.clone(),
            gfshare_file: format!("{stem}.{:03}", s.x),
            data: s.y,
        })
        .collect();
    self_check(&docs, &text)?;
    Ok(docs)
}

/// Before anything is written: every M-subset (or, for large splits, N sliding windows)
/// recombines to the identity text.
fn self_check(docs: &[ShareDoc], text: &str) -> crate::Result<()> {
    let m = docs
        .first()
        .map(|d| usize::from(d.split.threshold))
        .unwrap_or(0);
    let n = docs.len();
    let mut subsets: Vec<Vec<usize>> = Vec::new();
    let mut pick: Vec<usize> = (0..m).collect();
    // All combinations in lexicographic order, at most 256 of them.
    while subsets.len() < 256 {
        subsets.push(pick.clone());
        let Some(i) = (0..m)
            .rev()
            .find(|&i| pick.get(i).copied() != Some(n.saturating_sub(m).saturating_add(i)))
        else {
            break;
        };
        if let Some(p) = pick.get_mut(i) {
            *p = p.saturating_add(1);
        }
        let base = pick.get(i).copied().unwrap_or(0);
        for (k, p) in pick.iter_mut().enumerate().skip(i.saturating_add(1)) {
            *p = base.saturating_add(k.saturating_sub(i));
        }
    }
    for start in 0..n {
        subsets.push(
            (0..m)
                .map(|k| start.saturating_add(k).checked_rem(n).unwrap_or(0))
                .collect(),
        );
    }
    for subset in subsets {
        let shares: Vec<shamir::Share> = subset
            .iter()
            .filter_map(|&i| docs.get(i))
            .map(|d| shamir::Share {
                x: d.index,
                y: d.data.clone(),
            })
            .collect();
        let secret = shamir::combine(&shares)?;
        if secret.as_slice() != text.as_bytes() {
            return Err(crate::Error::Invalid(
                "the fresh split does not recombine (a bug): nothing was written".into(),
            ));
        }
    }
    Ok(())
}

/// Checks a set of decrypted shares and recombines the split identity.
/// `names` are the files the shares came from, in the same order.
pub(crate) fn recombine(
    shares: &[(String, ShareDoc)],
) -> Result<(SplitInfo, age::x25519::Identity), BackupProblem> {
    let Some((_, first)) = shares.first() else {
        return Err(BackupProblem::TooFewShares {
            have: 0,
            need: 2,
            detail: String::new(),
        });
    };
    for (_, s) in shares {
        if s.public_key != first.public_key {
            return Err(BackupProblem::MixedKeys {
                a: format!("{} ({})", first.key_id, first.label),
                b: format!("{} ({})", s.key_id, s.label),
            });
        }
    }
    for (_, s) in shares {
        if s.split.id != first.split.id {
            return Err(BackupProblem::MixedSplits {
                key: first.label.clone(),
                a: first.split.id.clone(),
                b: s.split.id.clone(),
            });
        }
    }
    for (name, s) in shares {
        let same = s.split == first.split
            && s.label == first.label
            && s.role == first.role
            && s.key_id == first.key_id
            && s.identity_recipient == first.identity_recipient
            && s.created == first.created
            && s.data.len() == first.data.len();
        if !same {
            return Err(BackupProblem::Inconsistent(format!(
                "{name} disagrees with the other shares of split {} about the split: one of them is forged or damaged",
                first.split.id
            )));
        }
    }
    for (i, (_, s)) in shares.iter().enumerate() {
        if shares
            .iter()
            .skip(i.saturating_add(1))
            .any(|(_, t)| t.index == s.index)
        {
            return Err(BackupProblem::DuplicateShare(s.index));
        }
    }
    let have = shares.len();
    let need = usize::from(first.split.threshold);
    if have < need {
        return Err(BackupProblem::TooFewShares {
            have,
            need,
            detail: format!(" of split {} of key `{}`", first.split, first.label),
        });
    }
    let parts: Vec<shamir::Share> = shares
        .iter()
        .map(|(_, s)| shamir::Share {
            x: s.index,
            y: s.data.clone(),
        })
        .collect();
    let forged = || {
        BackupProblem::Inconsistent(format!(
            "the shares do not recombine to the identity of split {} that they name: at least one is forged or damaged",
            first.split.id
        ))
    };
    let secret = shamir::combine(&parts).map_err(|_| forged())?;
    let text = std::str::from_utf8(&secret).map_err(|_| forged())?;
    let prefix = format!("# rootkeeper split {}\n", first.split.id);
    let line = text
        .strip_prefix(&prefix)
        .and_then(|t| t.strip_suffix('\n'))
        .ok_or_else(forged)?;
    let identity: age::x25519::Identity = line.parse().map_err(|_| forged())?;
    if identity.to_public().to_string() != first.identity_recipient {
        return Err(forged());
    }
    Ok((first.split.clone(), identity))
}

/// Whether a decrypted document is a share (by its first field).
pub(crate) fn is_share(plaintext: &[u8]) -> bool {
    let magic = format!("{SHARE_MAGIC}: ");
    plaintext
        .split(|&b| b == b'\n')
        .find(|l| !l.starts_with(b"#"))
        .is_some_and(|l| l.starts_with(magic.as_bytes()))
}
