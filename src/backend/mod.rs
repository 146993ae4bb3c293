//! Key stores. Each backend gives [`Signer`]s and facts about its tokens; the [`Keyring`] turns
//! key URIs into signers for one command, logging in to each token at most once.

pub mod memory;
pub mod pkcs11;

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use crate::error::Result;
use crate::keyuri::{KeyUri, Pkcs11Uri};
use crate::secret::PinSources;
use crate::signer::Signer;

use self::pkcs11::{KeyObject, Module, Pkcs11Signer, TokenInfo, TokenSession};

/// Opens tokens and keys for one command: each module is loaded once and each token is logged
/// in to once, however many keys on it sign. Sessions close when the keyring is dropped.
pub struct Keyring<'a> {
    pins: &'a PinSources<'a>,
    modules: HashMap<PathBuf, Rc<Module>>,
    sessions: HashMap<(PathBuf, String), Rc<TokenSession>>,
    logins: Vec<String>,
}

impl std::fmt::Debug for Keyring<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .field("logged_in", &self.sessions.len())
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
        let key = (module.path().to_owned(), token.serial.clone());
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

    /// A signer for the key a URI names.
    pub fn signer(&mut self, uri: &KeyUri) -> Result<Box<dyn Signer>> {
        match uri {
            KeyUri::Pkcs11(uri) => {
                let session = self.session(uri)?;
                Ok(Box::new(Pkcs11Signer::new(session, uri)?))
            }
        }
    }

    /// The public key a URI names, read without logging in.
    pub fn public_key(&mut self, uri: &KeyUri) -> Result<(KeyObject, TokenInfo)> {
        match uri {
            KeyUri::Pkcs11(uri) => {
                let (module, token) = self.token(uri)?;
                let keys = module.public_keys(&token)?;
                let found = keys.into_iter().find(|k| {
                    uri.object.as_ref().is_none_or(|o| *o == k.label)
                        && uri.id.as_ref().is_none_or(|i| *i == k.id)
                });
                match found {
                    Some(k) if uri.names_key() => Ok((k, token)),
                    _ => Err(crate::error::Error::KeyNotFound {
                        uri: uri.without_pin_source().to_string(),
                        token: token.label.clone(),
                    }),
                }
            }
        }
    }
}
