//! Any PKCS#11 module (SoftHSM, YubiHSM, Nitrokey, nShield...) through `cryptoki`.
//!
//! Keys are EC P-256, generated inside the token: the private object is CKA_TOKEN,
//! CKA_PRIVATE, CKA_SENSITIVE, not extractable, CKA_SIGN; the public object shares its CKA_LABEL
//! and CKA_ID. Signing hashes with SHA-256 on the host and signs the digest with CKM_ECDSA
//! (SoftHSM has no CKM_ECDSA_SHA256), which returns raw r‖s. Before a login the token flags are
//! read: a locked PIN is reported as locked, and a PIN on its final try is not tried unless the
//! operator said `--last-pin-attempt`. Sessions close (and log out) when dropped.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::keyuri::Pkcs11Uri;
use crate::notice::Notice;
use crate::secret::{Pin, PinSources};
use crate::signer::Signer;

/// DER of the P-256 curve OID (prime256v1), the value of CKA_EC_PARAMS.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// Where SoftHSM's module lives on common platforms, tried in order when nothing else names one.
pub const SOFTHSM_MODULE_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

/// The environment variable naming the default PKCS#11 module.
pub const MODULE_ENV: &str = "ROOTKEEPER_PKCS11_MODULE";

/// The module to load: the one named explicitly, else `ROOTKEEPER_PKCS11_MODULE`, else SoftHSM.
pub fn module_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(path) = std::env::var_os(MODULE_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    SOFTHSM_MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| Error::Module {
            path: PathBuf::from(SOFTHSM_MODULE_PATHS.first().copied().unwrap_or_default()),
            reason: "no module-path given, ROOTKEEPER_PKCS11_MODULE is unset and SoftHSM is not installed".into(),
        })
}

/// The environment variable SoftHSM reads its configuration file name from.
pub const SOFTHSM_CONF_ENV: &str = "SOFTHSM2_CONF";
/// Where SoftHSM looks for its configuration when SOFTHSM2_CONF is unset (Debian's build).
const SOFTHSM_DEFAULT_CONF: &str = "/etc/softhsm/softhsm2.conf";

/// True when `path` names a SoftHSM module.
pub fn is_softhsm(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().contains("softhsm"))
}

/// SoftHSM's configuration file as its module will look for it, and whether it exists.
fn softhsm_config() -> String {
    match std::env::var_os(SOFTHSM_CONF_ENV) {
        Some(conf) => {
            let path = Path::new(&conf);
            if path.is_file() {
                format!("{SOFTHSM_CONF_ENV}={}", path.display())
            } else {
                format!(
                    "{SOFTHSM_CONF_ENV}={}, which does not exist",
                    path.display()
                )
            }
        }
        None if Path::new(SOFTHSM_DEFAULT_CONF).is_file() => {
            format!("{SOFTHSM_CONF_ENV} is unset, so SoftHSM reads {SOFTHSM_DEFAULT_CONF}")
        }
        None => format!("{SOFTHSM_CONF_ENV} is unset and {SOFTHSM_DEFAULT_CONF} does not exist"),
    }
}

/// The PKCS#11 name of a return value, e.g. `CKR_GENERAL_ERROR` (never the spec's prose).
pub fn ckr_name(rv: RvError) -> String {
    let mut name = String::from("CKR");
    for c in format!("{rv:?}").chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn ck<'a>(function: &'static str, target: &'a str) -> impl FnOnce(CkError) -> Error + 'a {
    move |e| match e {
        CkError::Pkcs11(rv, _) => Error::Pkcs11 {
            function: function.into(),
            target: target.into(),
            rv: ckr_name(rv),
        },
        other => Error::Pkcs11 {
            function: function.into(),
            target: target.into(),
            rv: other.to_string(),
        },
    }
}

/// A loaded and initialised PKCS#11 module. Load each module once per process.
pub struct Module {
    ctx: Pkcs11,
    path: PathBuf,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("path", &self.path).finish()
    }
}

/// The state of a token's user PIN, from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinState {
    /// No warning flag set.
    Ok,
    /// CKF_USER_PIN_COUNT_LOW: a wrong PIN was entered since the last good login.
    CountLow,
    /// CKF_USER_PIN_FINAL_TRY: the next wrong PIN locks the token.
    FinalTry,
    /// CKF_USER_PIN_LOCKED.
    Locked,
    /// The user PIN was never set.
    NotInitialized,
}

impl std::fmt::Display for PinState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PinState::Ok => "no retry warning (the token reports no failed attempts)",
            PinState::CountLow => "retry count low (a wrong PIN was entered before)",
            PinState::FinalTry => "final try (the next wrong PIN locks the token)",
            PinState::Locked => "locked",
            PinState::NotInitialized => "user PIN not initialised",
        })
    }
}

/// What a token says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// CKA label.
    pub label: String,
    /// Serial number.
    pub serial: String,
    /// Manufacturer ID.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// User PIN state from the token flags.
    pub pin_state: PinState,
    /// The module that serves it.
    pub module_path: PathBuf,
    /// The module's slot ID (unstable across loads for some modules, e.g. SoftHSM).
    pub slot_id: u64,
    /// True when another token of the module has the same label and serial (e.g. two PIV
    /// cards through OpenSC): its URI then names the slot too.
    pub shares_identity: bool,
    #[serde(skip)]
    slot: Slot,
}

impl TokenInfo {
    /// A URI that names exactly this token (with `slot-id` when another token of the module
    /// has the same label and serial).
    pub fn uri(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            token: Some(self.label.clone()),
            serial: Some(self.serial.clone()),
            slot_id: self.shares_identity.then_some(self.slot_id),
            module_path: Some(self.module_path.clone()),
            ..Pkcs11Uri::default()
        }
    }

    /// "token `root-a` (serial 1a2b)", for messages; with the slot when another token has
    /// the same label and serial.
    pub fn describe(&self) -> String {
        if self.shares_identity {
            format!(
                "token `{}` (serial {}, slot {})",
                self.label, self.serial, self.slot_id
            )
        } else {
            format!("token `{}` (serial {})", self.label, self.serial)
        }
    }

    fn matches(&self, uri: &Pkcs11Uri) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&uri.token, &self.label)
            && eq(&uri.serial, &self.serial)
            && eq(&uri.manufacturer, &self.manufacturer)
            && eq(&uri.model, &self.model)
            && uri.slot_id.is_none_or(|id| id == self.slot.id())
    }
}

/// A P-256 key on a token, as seen through its public object.
#[derive(Debug, Clone)]
pub struct KeyObject {
    /// CKA_LABEL.
    pub label: String,
    /// CKA_ID.
    pub id: Vec<u8>,
    /// The public key.
    pub public_key: VerifyingKey,
}

impl KeyObject {
    /// A URI naming this key on `token`.
    pub fn uri(&self, token: &TokenInfo) -> Pkcs11Uri {
        Pkcs11Uri {
            object: Some(self.label.clone()),
            id: Some(self.id.clone()),
            ..token.uri()
        }
    }
}

fn parse_ec_point(raw: &[u8]) -> Option<VerifyingKey> {
    // DER OCTET STRING (SoftHSM: 04 41 04‖X‖Y) or the bare uncompressed point.
    if let [0x04, 0x41, point @ ..] = raw
        && point.len() == 65
    {
        return VerifyingKey::from_sec1_bytes(point).ok();
    }
    VerifyingKey::from_sec1_bytes(raw).ok()
}

impl Module {
    /// Loads and initialises the module at `path`.
    pub fn load(path: &Path) -> Result<Module> {
        let module_error = |reason: String| Error::Module {
            path: path.to_owned(),
            reason,
        };
        if !path.exists() {
            return Err(module_error("no such file".into()));
        }
        let ctx = Pkcs11::new(path).map_err(|e| module_error(e.to_string()))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| {
                let softhsm = is_softhsm(path);
                Error::ModuleInit {
                    path: path.to_owned(),
                    reason: match e {
                        CkError::Pkcs11(rv, _) => format!("C_Initialize returned {}", ckr_name(rv)),
                        other => format!("C_Initialize failed: {other}"),
                    },
                    config: softhsm.then(softhsm_config),
                    softhsm,
                }
            })?;
        Ok(Module {
            ctx,
            path: path.to_owned(),
        })
    }

    /// The module's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn token_info(&self, slot: Slot) -> Result<TokenInfo> {
        let info = self
            .ctx
            .get_token_info(slot)
            .map_err(ck("C_GetTokenInfo", "a slot"))?;
        let pin_state = if info.user_pin_locked() {
            PinState::Locked
        } else if !info.user_pin_initialized() {
            PinState::NotInitialized
        } else if info.user_pin_final_try() {
            PinState::FinalTry
        } else if info.user_pin_count_low() {
            PinState::CountLow
        } else {
            PinState::Ok
        };
        Ok(TokenInfo {
            label: info.label().trim_end().to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            model: info.model().trim_end().to_owned(),
            pin_state,
            module_path: self.path.clone(),
            slot_id: slot.id(),
            shares_identity: false,
            slot,
        })
    }

    /// Every initialised token of the module.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let slots = self
            .ctx
            .get_slots_with_initialized_token()
            .map_err(ck("C_GetSlotList", "the module"))?;
        let mut tokens = slots
            .into_iter()
            .map(|s| self.token_info(s))
            .collect::<Result<Vec<_>>>()?;
        let identities: Vec<(String, String)> = tokens
            .iter()
            .map(|t| (t.label.clone(), t.serial.clone()))
            .collect();
        for token in &mut tokens {
            let same = identities
                .iter()
                .filter(|(label, serial)| *label == token.label && *serial == token.serial)
                .count();
            token.shares_identity = same > 1;
        }
        Ok(tokens)
    }

    /// The one token that `uri` names; the error lists the tokens present.
    pub fn find_token(&self, uri: &Pkcs11Uri) -> Result<TokenInfo> {
        let tokens = self.tokens()?;
        let matching: Vec<&TokenInfo> = tokens.iter().filter(|t| t.matches(uri)).collect();
        let list = |ts: &[&TokenInfo]| {
            if ts.is_empty() {
                "none".to_string()
            } else {
                ts.iter()
                    .map(|t| t.uri().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::TokenNotFound {
                uri: uri.token_only().without_pin_source().to_string(),
                available: list(&tokens.iter().collect::<Vec<_>>()),
            }),
            many => Err(Error::TokenAmbiguous {
                uri: uri.token_only().without_pin_source().to_string(),
                matches: list(many),
            }),
        }
    }

    /// Initialises a new token with `label` in the first free slot (soft tokens such as SoftHSM).
    pub fn init_token(&self, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<TokenInfo> {
        if self.tokens()?.iter().any(|t| t.label == label) {
            return Err(Error::TokenLabelTaken {
                label: label.into(),
            });
        }
        let initialised = self
            .ctx
            .get_slots_with_initialized_token()
            .map_err(ck("C_GetSlotList", "the module"))?;
        let free = self
            .ctx
            .get_slots_with_token()
            .map_err(ck("C_GetSlotList", "the module"))?
            .into_iter()
            .find(|s| !initialised.contains(s))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "module {} has no free slot for a new token",
                    self.path.display()
                ))
            })?;
        let info = self
            .ctx
            .get_token_info(free)
            .map_err(ck("C_GetTokenInfo", "the free slot"))?;
        let (min, max) = (info.min_pin_length(), info.max_pin_length());
        for (what, pin) in [("SO PIN", so_pin), ("user PIN", user_pin)] {
            let len = pin.expose().len();
            if len < min || len > max {
                return Err(Error::Invalid(format!(
                    "the {what} has {len} characters; this token takes {min} to {max}"
                )));
            }
        }
        let so = AuthPin::from(so_pin.expose().to_owned());
        self.ctx
            .init_token(free, &so, label)
            .map_err(ck("C_InitToken", label))?;
        // SoftHSM renumbers the slot after C_InitToken: find the token again by its label.
        let token = self.find_token(&Pkcs11Uri {
            token: Some(label.into()),
            ..Pkcs11Uri::default()
        })?;
        let session = self
            .ctx
            .open_rw_session(token.slot)
            .map_err(ck("C_OpenSession", label))?;
        session
            .login(UserType::So, Some(&so))
            .map_err(ck("C_Login(SO)", label))?;
        session
            .init_pin(&AuthPin::from(user_pin.expose().to_owned()))
            .map_err(ck("C_InitPIN", label))?;
        drop(session);
        self.token_info(token.slot)
    }

    /// The P-256 public keys on a token, read without logging in.
    pub fn public_keys(&self, token: &TokenInfo) -> Result<Vec<KeyObject>> {
        let session = self
            .ctx
            .open_ro_session(token.slot)
            .map_err(ck("C_OpenSession", &token.label))?;
        find_public_keys(&session, &token.label, &[])
    }

    /// Logs in to `token` once, after checking its PIN flags. The PIN comes from `pin_source`
    /// (the URI's) or from `pins`. One attempt only: a wrong PIN is reported, never retried.
    pub fn login(
        self: &Rc<Self>,
        token: &TokenInfo,
        pins: &PinSources<'_>,
        pin_source: Option<&Path>,
    ) -> Result<TokenSession> {
        let mut fresh = self.token_info(token.slot)?;
        fresh.shares_identity = token.shares_identity;
        match fresh.pin_state {
            PinState::Locked => {
                return Err(Error::PinLocked {
                    token: fresh.describe(),
                });
            }
            PinState::FinalTry if !pins.last_pin_attempt => {
                return Err(Error::PinFinalTry {
                    token: fresh.describe(),
                });
            }
            PinState::NotInitialized => {
                return Err(Error::Invalid(format!(
                    "{} has no user PIN yet; initialise it first",
                    fresh.describe()
                )));
            }
            PinState::CountLow | PinState::FinalTry => {
                pins.prompter.notifier().notice(&Notice::PinRetriesLow {
                    token: fresh.describe(),
                    remaining: (fresh.pin_state == PinState::FinalTry).then_some(1),
                });
            }
            PinState::Ok => {}
        }
        let pin = pins.pin_for(&fresh.describe(), pin_source)?;
        let session = self
            .ctx
            .open_rw_session(token.slot)
            .map_err(ck("C_OpenSession", &fresh.label))?;
        let auth = AuthPin::from(pin.expose().to_owned());
        match session.login(UserType::User, Some(&auth)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                let after = self.token_info(token.slot)?;
                return Err(pin.wrong(fresh.describe(), after.pin_state.to_string()));
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(Error::PinLocked {
                    token: fresh.describe(),
                });
            }
            Err(e) => return Err(ck("C_Login", &fresh.label)(e)),
        }
        Ok(TokenSession {
            session,
            token: fresh,
        })
    }
}

fn attr_bytes(session: &Session, handle: ObjectHandle, ty: AttributeType) -> Option<Vec<u8>> {
    let attrs = session.get_attributes(handle, &[ty]).ok()?;
    attrs.into_iter().find_map(|a| match a {
        Attribute::Label(v) | Attribute::Id(v) | Attribute::EcPoint(v) | Attribute::EcParams(v) => {
            Some(v)
        }
        _ => None,
    })
}

fn find_public_keys(
    session: &Session,
    token_label: &str,
    filter: &[Attribute],
) -> Result<Vec<KeyObject>> {
    let mut template = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
    ];
    template.extend_from_slice(filter);
    let handles = session
        .find_objects(&template)
        .map_err(ck("C_FindObjects", token_label))?;
    let mut keys = Vec::new();
    for handle in handles {
        if attr_bytes(session, handle, AttributeType::EcParams).as_deref() != Some(&P256_PARAMS[..])
        {
            continue;
        }
        let Some(public_key) =
            attr_bytes(session, handle, AttributeType::EcPoint).and_then(|p| parse_ec_point(&p))
        else {
            continue;
        };
        keys.push(KeyObject {
            label: attr_bytes(session, handle, AttributeType::Label)
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default(),
            id: attr_bytes(session, handle, AttributeType::Id).unwrap_or_default(),
            public_key,
        });
    }
    keys.sort_by(|a, b| a.label.cmp(&b.label).then(a.id.cmp(&b.id)));
    Ok(keys)
}

/// A logged-in session on one token. Logs out and closes when dropped.
pub struct TokenSession {
    session: Session,
    token: TokenInfo,
}

impl std::fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSession")
            .field("token", &self.token.describe())
            .finish()
    }
}

fn object_filter(uri: &Pkcs11Uri) -> Vec<Attribute> {
    let mut filter = Vec::new();
    if let Some(label) = &uri.object {
        filter.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        filter.push(Attribute::Id(id.clone()));
    }
    filter
}

impl TokenSession {
    /// The token this session is on.
    pub fn token(&self) -> &TokenInfo {
        &self.token
    }

    /// Generates a P-256 key pair inside the token, labelled `label`, with a fresh CKA_ID.
    /// A label already used by any object on the token is refused.
    pub fn generate_key(&self, label: &str) -> Result<KeyObject> {
        let taken = self
            .session
            .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
            .map_err(ck("C_FindObjects", &self.token.label))?;
        if !taken.is_empty() {
            return Err(Error::LabelTaken {
                token: self.token.label.clone(),
                label: label.into(),
            });
        }
        let mut id = vec![0u8; 8];
        getrandom::fill(&mut id).map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let (public, _private) = self
            .session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(ck("C_GenerateKeyPair", &self.token.label))?;
        let public_key = attr_bytes(&self.session, public, AttributeType::EcPoint)
            .and_then(|p| parse_ec_point(&p))
            .ok_or_else(|| Error::Key {
                what: format!("new key `{label}` on {}", self.token.describe()),
                reason: "the token returned no readable CKA_EC_POINT".into(),
            })?;
        Ok(KeyObject {
            label: label.into(),
            id,
            public_key,
        })
    }

    /// The one key that `uri` names (by `object` and/or `id`), with a handle to its private part.
    pub fn find_key(&self, uri: &Pkcs11Uri) -> Result<(KeyObject, ObjectHandle)> {
        let not_found = || Error::KeyNotFound {
            uri: uri.without_pin_source().to_string(),
            token: self.token.label.clone(),
        };
        if !uri.names_key() {
            return Err(Error::KeyUri {
                uri: uri.without_pin_source().to_string(),
                reason: "names a token but no key: add object=LABEL (or id=...)".into(),
            });
        }
        let filter = object_filter(uri);
        let mut template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
        ];
        template.extend_from_slice(&filter);
        let mut privates = self
            .session
            .find_objects(&template)
            .map_err(ck("C_FindObjects", &self.token.label))?;
        if privates.is_empty() && uri.object.is_some() {
            // `token list` names a key by its public object, whose label may differ from the
            // private key's (OpenSC: "PIV AUTH pubkey" and "PIV AUTH key"): the private key
            // with the public object's CKA_ID is the same key.
            for public in find_public_keys(&self.session, &self.token.label, &filter)? {
                privates.extend(
                    self.session
                        .find_objects(&[
                            Attribute::Class(ObjectClass::PRIVATE_KEY),
                            Attribute::KeyType(KeyType::EC),
                            Attribute::Id(public.id.clone()),
                        ])
                        .map_err(ck("C_FindObjects", &self.token.label))?,
                );
            }
        }
        let private = match privates.as_slice() {
            [one] => *one,
            [] => return Err(not_found()),
            _ => {
                return Err(Error::KeyUri {
                    uri: uri.without_pin_source().to_string(),
                    reason: format!(
                        "matches {} private keys on {}; add id=...",
                        privates.len(),
                        self.token.describe()
                    ),
                });
            }
        };
        let id = attr_bytes(&self.session, private, AttributeType::Id).unwrap_or_default();
        let publics = find_public_keys(
            &self.session,
            &self.token.label,
            &[Attribute::Id(id.clone())],
        )?;
        let key = match publics.into_iter().next() {
            Some(k) => k,
            None => KeyObject {
                label: attr_bytes(&self.session, private, AttributeType::Label)
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default(),
                id,
                public_key: attr_bytes(&self.session, private, AttributeType::EcPoint)
                    .and_then(|p| parse_ec_point(&p))
                    .ok_or_else(not_found)?,
            },
        };
        Ok((key, private))
    }
}

/// Signs with a key on a logged-in token.
pub struct Pkcs11Signer {
    session: Rc<TokenSession>,
    handle: ObjectHandle,
    key: KeyObject,
    uri: String,
}

impl Pkcs11Signer {
    /// A signer for the key that `uri` names on `session`'s token.
    pub fn new(session: Rc<TokenSession>, uri: &Pkcs11Uri) -> Result<Pkcs11Signer> {
        let (key, handle) = session.find_key(uri)?;
        let uri = key.uri(session.token()).to_string();
        Ok(Pkcs11Signer {
            session,
            handle,
            key,
            uri,
        })
    }

    /// The key's label, ID and public key.
    pub fn key(&self) -> &KeyObject {
        &self.key
    }

    /// The token the key is on.
    pub fn token(&self) -> &TokenInfo {
        self.session.token()
    }
}

impl Signer for Pkcs11Signer {
    fn public_key(&self) -> &VerifyingKey {
        &self.key.public_key
    }

    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Signature> {
        let raw = self
            .session
            .session
            .sign(&Mechanism::Ecdsa, self.handle, digest)
            .map_err(ck("C_Sign", &self.uri))?;
        Signature::from_slice(&raw)
            .or_else(|_| Signature::from_der(&raw))
            .map_err(|_| Error::BadSignature {
                key: self.uri.clone(),
            })
    }

    fn describe(&self) -> String {
        self.uri.clone()
    }
}

/// Importing keys made in memory (`key generate --in-memory`, `backup restore`, `key import`).
impl TokenSession {
    /// A fresh random 8-byte CKA_ID, to give every copy of an imported key the same ID.
    pub fn fresh_key_id() -> Result<Vec<u8>> {
        let mut id = vec![0u8; 8];
        getrandom::fill(&mut id).map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
        Ok(id)
    }

    /// Imports a P-256 key held in memory: a private object (CKA_TOKEN, CKA_PRIVATE,
    /// CKA_SENSITIVE set explicitly, not CKA_EXTRACTABLE, CKA_SIGN, not CKA_DERIVE, the 32-byte
    /// CKA_VALUE) and a public object (CKA_EC_POINT DER-wrapped: `04 41 04‖X‖Y`), both with
    /// `label` and `id`. A label or ID already on the token is refused. The template holding
    /// the scalar is wiped whether or not the token takes it. Afterwards the token must report
    /// the private object sensitive and not extractable, give back the same public key, and
    /// make a signature that verifies; otherwise both objects are destroyed again.
    ///
    /// Tokens mark imported keys as such (SoftHSM clears CKA_LOCAL, CKA_ALWAYS_SENSITIVE and
    /// CKA_NEVER_EXTRACTABLE), which is the honest record that the key existed outside.
    pub fn import_p256_key(
        &self,
        label: &str,
        id: &[u8],
        key: &crate::backend::memory::MemorySigner,
    ) -> Result<KeyObject> {
        use zeroize::Zeroize;
        let token = self.token.label.clone();
        if label.is_empty() || id.is_empty() {
            return Err(Error::Invalid(
                "an imported key needs a non-empty label and CKA_ID".into(),
            ));
        }
        self.check_free(label, id)?;
        let public_key = *crate::signer::Signer::public_key(key);
        let point = public_key.to_sec1_point(false);
        let mut ec_point = vec![0x04, 0x41];
        ec_point.extend_from_slice(point.as_bytes());

        let scalar = key.scalar();
        let mut private_template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Derive(false),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Value(scalar.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        let created = self.session.create_object(&private_template);
        for attribute in &mut private_template {
            if let Attribute::Value(value) = attribute {
                value.zeroize();
            }
        }
        drop(scalar);
        let private = created.map_err(ck("C_CreateObject (private key)", &token))?;
        let public_template = [
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::EcPoint(ec_point),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        let public = match self.session.create_object(&public_template) {
            Ok(handle) => handle,
            Err(e) => {
                let _ = self.session.destroy_object(private);
                return Err(ck("C_CreateObject (public key)", &token)(e));
            }
        };
        if let Err(e) = self.check_import(private, public, &public_key, label) {
            let _ = self.session.destroy_object(private);
            let _ = self.session.destroy_object(public);
            return Err(e);
        }
        Ok(KeyObject {
            label: label.into(),
            id: id.to_vec(),
            public_key,
        })
    }

    /// Refuses when the token holds any object labelled `label` or with CKA_ID `id` (checked
    /// before a key is made or imported, so that a refusal costs nothing).
    pub fn check_free(&self, label: &str, id: &[u8]) -> Result<()> {
        let token = &self.token.label;
        let taken = |attr: Attribute| -> Result<bool> {
            Ok(!self
                .session
                .find_objects(&[attr])
                .map_err(ck("C_FindObjects", token))?
                .is_empty())
        };
        if taken(Attribute::Label(label.as_bytes().to_vec()))? {
            return Err(Error::LabelTaken {
                token: token.clone(),
                label: label.into(),
            });
        }
        if !id.is_empty() && taken(Attribute::Id(id.to_vec()))? {
            return Err(Error::KeyIdTaken {
                token: token.clone(),
                id: hex::encode(id),
            });
        }
        Ok(())
    }

    /// Destroys the objects labelled `label` with CKA_ID `id` that
    /// [`import_p256_key`](Self::import_p256_key) made: to take an import back when a later
    /// step of the same command failed. Returns how many objects were destroyed.
    pub fn remove_imported(&self, label: &str, id: &[u8]) -> Result<usize> {
        let handles = self
            .session
            .find_objects(&[
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
            ])
            .map_err(ck("C_FindObjects", &self.token.label))?;
        let mut n = 0usize;
        for handle in handles {
            self.session
                .destroy_object(handle)
                .map_err(ck("C_DestroyObject", &self.token.label))?;
            n = n.saturating_add(1);
        }
        Ok(n)
    }

    fn check_import(
        &self,
        private: ObjectHandle,
        public: ObjectHandle,
        expected: &VerifyingKey,
        label: &str,
    ) -> Result<()> {
        use signature::hazmat::PrehashVerifier;
        let refuse = |reason: &str| Error::Key {
            what: format!("imported key `{label}` on {}", self.token.describe()),
            reason: format!("{reason}; the key was removed from the token again"),
        };
        let flags = self
            .session
            .get_attributes(
                private,
                &[AttributeType::Sensitive, AttributeType::Extractable],
            )
            .map_err(ck("C_GetAttributeValue", &self.token.label))?;
        let sensitive = flags
            .iter()
            .any(|a| matches!(a, Attribute::Sensitive(true)));
        let extractable = flags
            .iter()
            .any(|a| matches!(a, Attribute::Extractable(true)));
        if !sensitive || extractable {
            return Err(refuse(
                "the token does not keep it sensitive and non-extractable",
            ));
        }
        let stored = attr_bytes(&self.session, public, AttributeType::EcPoint)
            .and_then(|p| parse_ec_point(&p));
        if stored.as_ref() != Some(expected) {
            return Err(refuse("the token gives back another public key"));
        }
        let mut digest = [0u8; 32];
        getrandom::fill(&mut digest).map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
        let raw = self
            .session
            .sign(&Mechanism::Ecdsa, private, &digest)
            .map_err(ck("C_Sign (test signature)", &self.token.label))?;
        let signature = Signature::from_slice(&raw)
            .or_else(|_| Signature::from_der(&raw))
            .map_err(|_| refuse("its test signature is not an ECDSA signature"))?;
        expected
            .verify_prehash(&digest, &signature)
            .map_err(|_| refuse("its test signature does not verify"))
    }
}
