//! Key stores. Each backend gives [`Signer`]s and facts about its tokens; the [`Keyring`] turns
//! key URIs into signers for one command, logging in to each token at most once.

pub mod memory;
pub mod piv;
pub mod pkcs11;

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use p256::ecdsa::VerifyingKey;

use crate::error::{Error, Result};
use crate::keyuri::{KeyUri, Pkcs11Uri, YubiKeyUri};
use crate::secret::PinSources;
use crate::signer::Signer;

use self::piv::{Device, PivSigner};
use self::pkcs11::{KeyObject, Module, Pkcs11Signer, TokenInfo, TokenSession};

/// A key as the inventory records it, whatever holds it: read without logging in.
#[derive(Debug, Clone)]
pub struct KeyDescription {
    /// A URI naming exactly this key (never with `pin-source` or `management-key-source`).
    pub uri: String,
    /// The key's label on its token (PKCS#11 CKA_LABEL; for a YubiKey, the CN of the slot's
    /// certificate, else "slot 9c").
    pub label: String,
    /// The public key.
    pub public_key: VerifyingKey,
    /// The token's label (for a YubiKey: "YubiKey <firmware>").
    pub token_label: String,
    /// The token's serial number.
    pub token_serial: String,
}

impl KeyDescription {
    /// A key on a PKCS#11 token.
    pub fn pkcs11(key: &KeyObject, token: &TokenInfo) -> KeyDescription {
        KeyDescription {
            uri: key.uri(token).to_string(),
            label: key.label.clone(),
            public_key: key.public_key,
            token_label: token.label.clone(),
            token_serial: token.serial.clone(),
        }
    }

    /// A key in a YubiKey's PIV slot. `None` when the slot holds no P-256 key.
    pub fn yubikey(device: &Device, slot: &piv::SlotInfo) -> Option<KeyDescription> {
        Some(KeyDescription {
            uri: slot.uri.clone(),
            label: slot.display_label(),
            public_key: slot.public_key?,
            token_label: format!("YubiKey {}", device.firmware()),
            token_serial: device.serial().to_string(),
        })
    }
}

/// Opens tokens and keys for one command: each module is loaded once and each token is logged
/// in to once, however many keys on it sign. Sessions close when the keyring is dropped.
///
/// A login belongs to the token in one slot of one module: sessions are cached by (module,
/// slot ID), never by token serial, which two tokens may share (two PIV cards through OpenSC
/// both say serial `00000000`) or leave blank.
pub struct Keyring<'a> {
    pins: &'a PinSources<'a>,
    modules: HashMap<PathBuf, Rc<Module>>,
    sessions: HashMap<(PathBuf, u64), Rc<TokenSession>>,
    yubikeys: Vec<Rc<Device>>,
    logins: Vec<String>,
}

impl std::fmt::Debug for Keyring<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .field("logged_in", &self.sessions.len())
            .field("yubikeys", &self.yubikeys.len())
            .finish()
    }
}

impl<'a> Keyring<'a> {
    /// A keyring that takes PINs from `pins`.
    pub fn new(pins: &'a PinSources<'a>) -> Self {
        Keyring {
            pins,
            modules: HashMap::new(),
            sessions: HashMap::new(),
            yubikeys: Vec::new(),
            logins: Vec::new(),
        }
    }

    /// The module a URI names (or the default one), loaded once.
    pub fn module(&mut self, uri: &Pkcs11Uri) -> Result<Rc<Module>> {
        let path = pkcs11::module_path(uri.module_path.as_deref())?;
        if let Some(module) = self.modules.get(&path) {
            return Ok(module.clone());
        }
        let module = Rc::new(Module::load(&path)?);
        self.modules.insert(path, module.clone());
        Ok(module)
    }

    /// The token a URI names.
    pub fn token(&mut self, uri: &Pkcs11Uri) -> Result<(Rc<Module>, TokenInfo)> {
        let module = self.module(uri)?;
        let token = module.find_token(uri)?;
        Ok((module, token))
    }

    /// A logged-in session on the token a URI names; logs in only the first time.
    pub fn session(&mut self, uri: &Pkcs11Uri) -> Result<Rc<TokenSession>> {
        let (module, token) = self.token(uri)?;
        let key = (module.path().to_owned(), token.slot_id);
        if let Some(session) = self.sessions.get(&key) {
            return Ok(session.clone());
        }
        let session = Rc::new(module.login(&token, self.pins, uri.pin_source.as_deref())?);
        self.logins.push(token.describe());
        self.sessions.insert(key, session.clone());
        Ok(session)
    }

    /// The tokens logged in to so far, in order (each at most once).
    pub fn logins(&self) -> &[String] {
        &self.logins
    }

    /// Where notices for the operator go (the prompter's notifier).
    pub fn notifier(&self) -> Rc<dyn crate::notice::Notifier> {
        self.pins.prompter.notifier()
    }

    /// The YubiKey a URI names, opened once per command (no login).
    pub fn yubikey(&mut self, uri: &YubiKeyUri) -> Result<Rc<Device>> {
        if let Some(serial) = uri.serial
            && let Some(device) = self.yubikeys.iter().find(|d| d.serial() == serial)
        {
            return Ok(device.clone());
        }
        let device = piv::open(uri)?;
        if let Some(open) = self.yubikeys.iter().find(|d| d.serial() == device.serial()) {
            // Already open (the URI had no serial): keep the handle that holds the login.
            drop(device);
            return Ok(open.clone());
        }
        let device = Rc::new(device);
        self.yubikeys.push(device.clone());
        Ok(device)
    }

    /// The YubiKey a URI names, with its PIN verified; the PIN is asked for and sent at most
    /// once per device per command.
    pub fn yubikey_login(&mut self, uri: &YubiKeyUri) -> Result<Rc<Device>> {
        let device = self.yubikey(uri)?;
        if !device.logged_in() {
            device.login(self.pins, uri.pin_source.as_deref())?;
            self.logins.push(device.describe());
        }
        Ok(device)
    }

    /// Authenticates to a YubiKey with its management key (see
    /// [`Device::authenticate`]), logging in first when the key is stored PIN-protected.
    pub fn yubikey_admin(&mut self, uri: &YubiKeyUri) -> Result<Rc<Device>> {
        let device = self.yubikey(uri)?;
        let was_logged_in = device.logged_in();
        device.authenticate(self.pins, uri)?;
        if !was_logged_in && device.logged_in() {
            self.logins.push(device.describe());
        }
        Ok(device)
    }

    fn yubikey_slot(&mut self, uri: &YubiKeyUri) -> Result<(Rc<Device>, piv::SlotInfo)> {
        let Some(slot) = uri.slot else {
            return Err(Error::KeyUri {
                uri: uri.without_sources().to_string(),
                reason: "names a YubiKey but no key: add slot=9c (or 9a, 9d, 9e, 82..95)".into(),
            });
        };
        let device = self.yubikey(uri)?;
        match device.slot(slot)? {
            Some(info) => Ok((device, info)),
            None => Err(Error::KeyNotFound {
                uri: device.slot_uri(slot).to_string(),
                token: device.describe(),
            }),
        }
    }

    /// A signer for the key a URI names.
    pub fn signer(&mut self, uri: &KeyUri) -> Result<Box<dyn Signer>> {
        match uri {
            KeyUri::Pkcs11(uri) => {
                let session = self.session(uri)?;
                Ok(Box::new(Pkcs11Signer::new(session, uri)?))
            }
            KeyUri::YubiKey(uri) => {
                let (device, info) = self.yubikey_slot(uri)?;
                let signer = PivSigner::new(device, &info, self.pins.prompter.notifier())?;
                if info.pin_policy != Some(piv::PivPinPolicy::Never) {
                    self.yubikey_login(uri)?;
                }
                Ok(Box::new(signer))
            }
        }
    }

    /// The public key a URI names, read without logging in.
    pub fn public_key(&mut self, uri: &KeyUri) -> Result<KeyDescription> {
        match uri {
            KeyUri::Pkcs11(uri) => {
                let (module, token) = self.token(uri)?;
                let keys = module.public_keys(&token)?;
                let found = keys.into_iter().find(|k| {
                    uri.object.as_ref().is_none_or(|o| *o == k.label)
                        && uri.id.as_ref().is_none_or(|i| *i == k.id)
                });
                match found {
                    Some(k) if uri.names_key() => Ok(KeyDescription::pkcs11(&k, &token)),
                    _ => Err(Error::KeyNotFound {
                        uri: uri.without_pin_source().to_string(),
                        token: token.label.clone(),
                    }),
                }
            }
            KeyUri::YubiKey(uri) => {
                let (device, info) = self.yubikey_slot(uri)?;
                KeyDescription::yubikey(&device, &info).ok_or_else(|| Error::Key {
                    what: info.uri.clone(),
                    reason: format!(
                        "holds a {} key; rootkeeper signs with P-256 only",
                        info.algorithm
                    ),
                })
            }
        }
    }
}
