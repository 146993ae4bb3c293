//! The pure PIV applet: [`Card::handle`] maps one C-APDU to one R-APDU, with no I/O.

use std::collections::BTreeMap;

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use p256::ecdsa::{Signature, SigningKey, signature::hazmat::PrehashSigner};
use serde::{Deserialize, Serialize};
use x509_cert::der::Decode;

use crate::{
    attestation::{self, EmulatorCa, SlotFacts},
    tlv,
};

/// Status words the card returns.
pub mod sw {
    /// Success.
    pub const OK: u16 = 0x9000;
    /// Wrong length / malformed APDU.
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// Security status not satisfied (PIN or management key missing, wrong witness).
    pub const SECURITY: u16 = 0x6982;
    /// PIN or PUK blocked.
    pub const BLOCKED: u16 = 0x6983;
    /// Conditions of use not satisfied (e.g. RESET while PIN/PUK not blocked).
    pub const CONDITIONS: u16 = 0x6985;
    /// Incorrect data field.
    pub const WRONG_DATA: u16 = 0x6A80;
    /// Object or applet not found.
    pub const NOT_FOUND: u16 = 0x6A82;
    /// Not enough memory (object too large).
    pub const NO_SPACE: u16 = 0x6A84;
    /// Referenced data (slot, key) not found.
    pub const REF_NOT_FOUND: u16 = 0x6A88;
    /// Wrong P1/P2 (bad slot).
    pub const WRONG_P1P2: u16 = 0x6B00;
    /// Instruction not supported.
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    /// `63Cx`: verification failed, `x` tries left.
    pub const fn tries_left(n: u8) -> u16 {
        0x63C0 | (n as u16 & 0x0f)
    }
}

/// PIN policy byte: slot default.
pub const PIN_POLICY_DEFAULT: u8 = 0;
/// PIN policy byte: never.
pub const PIN_POLICY_NEVER: u8 = 1;
/// PIN policy byte: once per session.
pub const PIN_POLICY_ONCE: u8 = 2;
/// PIN policy byte: before every operation.
pub const PIN_POLICY_ALWAYS: u8 = 3;
/// Touch policy byte: never.
pub const TOUCH_POLICY_NEVER: u8 = 1;
/// Touch policy byte: always.
pub const TOUCH_POLICY_ALWAYS: u8 = 2;
/// Touch policy byte: cached for 15 s (the emulator counts every use).
pub const TOUCH_POLICY_CACHED: u8 = 3;

/// Key origin in metadata: generated on the card.
pub const ORIGIN_GENERATED: u8 = 1;
/// Key origin in metadata: imported.
pub const ORIGIN_IMPORTED: u8 = 2;

/// Algorithm byte for ECC P-256.
pub const ALG_P256: u8 = 0x11;
/// Management key algorithm: 3DES.
pub const MGM_3DES: u8 = 0x03;
/// Management key algorithm: AES-128.
pub const MGM_AES128: u8 = 0x08;
/// Management key algorithm: AES-192.
pub const MGM_AES192: u8 = 0x0A;
/// Management key algorithm: AES-256.
pub const MGM_AES256: u8 = 0x0C;

/// Factory PIN.
pub const DEFAULT_PIN: &[u8] = b"123456";
/// Factory PUK.
pub const DEFAULT_PUK: &[u8] = b"12345678";
/// Factory management key (3DES below firmware 5.7, AES-192 from 5.7).
pub const DEFAULT_MGM_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// The YubiKey 5 ATR (offers T=1), sent to vpcd.
pub const YUBIKEY5_ATR: [u8; 23] = [
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
    0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
];

/// Object id of the F9 attestation certificate.
pub const OBJ_ATTESTATION: u32 = 0x5F_FF01;
/// Object id of Yubico's PIN-protected ("printed") data, readable only with the PIN.
pub const OBJ_PRINTED: u32 = 0x5F_C109;
/// Largest object the card stores.
pub const MAX_OBJECT: usize = 3063;

const AID_PIV: &[u8] = &[0xA0, 0x00, 0x00, 0x03, 0x08];
const AID_MGMT: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];
/// The YubiKey OTP applet, where YubiKey 4 hosts read the serial (`00 01 10 00`).
const AID_OTP: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x20, 0x01, 0x01];

/// A status word for faults: "no precise diagnosis", as a card with a failing read gives.
pub const SW_FAULT: u16 = 0x6F00;

/// A read that the emulated card fails with [`SW_FAULT`], to test how hosts treat read errors
/// other than "not found" (a real card gives them on a failing chip or contact).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// GET METADATA of this slot fails.
    Metadata(u8),
    /// GET DATA of this object fails.
    GetData(u32),
}

impl std::str::FromStr for Fault {
    type Err = String;

    /// `metadata:9c` or `get-data:5fc10a` (hex).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("fault {s:?}: expected metadata:SLOT or get-data:OBJECT (hex)");
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        let value = u32::from_str_radix(value, 16).map_err(|_| bad())?;
        match kind {
            "metadata" => Ok(Fault::Metadata(u8::try_from(value).map_err(|_| bad())?)),
            "get-data" => Ok(Fault::GetData(value)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Metadata(slot) => write!(f, "metadata:{slot:02x}"),
            Fault::GetData(object) => write!(f, "get-data:{object:x}"),
        }
    }
}

/// Decides whether the holder touched the card: called with the touch's number (1-based,
/// counting every touch the card ever needed) when an operation waits for one; `false`
/// means no touch came in time and the operation fails with `6982`.
pub type TouchButton = Box<dyn FnMut(u64) -> bool + Send>;
const DISCOVERY: &[u8] = &[
    0x7E, 0x12, 0x4F, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x5F,
    0x2F, 0x02, 0x40, 0x00,
];

/// A key held in a slot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlotKey {
    /// Algorithm byte (only [`ALG_P256`]).
    pub alg: u8,
    /// Private scalar (32 bytes big-endian). Test emulator: stored in the clear.
    pub secret: Vec<u8>,
    /// Effective PIN policy (never `PIN_POLICY_DEFAULT`).
    pub pin_policy: u8,
    /// Effective touch policy.
    pub touch_policy: u8,
    /// [`ORIGIN_GENERATED`] or [`ORIGIN_IMPORTED`].
    pub origin: u8,
}

/// Everything that survives a power cycle (and is saved by `piv-emu --state`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CardState {
    /// Serial number reported by GET SERIAL.
    pub serial: u32,
    /// Firmware version reported by GET VERSION.
    pub firmware: (u8, u8, u8),
    /// Current PIN.
    pub pin: Vec<u8>,
    /// Current PUK.
    pub puk: Vec<u8>,
    /// Configured PIN tries.
    pub pin_total: u8,
    /// Remaining PIN tries.
    pub pin_left: u8,
    /// Configured PUK tries.
    pub puk_total: u8,
    /// Remaining PUK tries.
    pub puk_left: u8,
    /// Management key algorithm byte.
    pub mgm_alg: u8,
    /// Management key.
    pub mgm_key: Vec<u8>,
    /// Whether the management key requires touch.
    pub mgm_touch: bool,
    /// Keys by slot.
    pub keys: BTreeMap<u8, SlotKey>,
    /// Data objects by id (the value inside tag 53).
    pub objects: BTreeMap<u32, Vec<u8>>,
    /// Number of touches the card "required" (touch is always granted).
    pub touches: u64,
}

impl CardState {
    /// Factory state for a card; `f9_object` is the stored F9 certificate object.
    fn factory(serial: u32, firmware: (u8, u8, u8), f9_object: Vec<u8>, touches: u64) -> Self {
        CardState {
            serial,
            firmware,
            pin: DEFAULT_PIN.to_vec(),
            puk: DEFAULT_PUK.to_vec(),
            pin_total: 3,
            pin_left: 3,
            puk_total: 3,
            puk_left: 3,
            mgm_alg: default_mgm_alg(firmware),
            mgm_key: DEFAULT_MGM_KEY.to_vec(),
            mgm_touch: false,
            keys: BTreeMap::new(),
            objects: BTreeMap::from([(OBJ_ATTESTATION, f9_object)]),
            touches,
        }
    }
}

/// The factory management key algorithm for a firmware version.
pub fn default_mgm_alg(firmware: (u8, u8, u8)) -> u8 {
    if firmware >= (5, 7, 0) {
        MGM_AES192
    } else {
        MGM_3DES
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Applet {
    None,
    Piv,
    Mgmt,
    Otp,
}

#[derive(Debug)]
enum Challenge {
    Witness(Vec<u8>),
    Single(Vec<u8>),
}

struct Chain {
    ins: u8,
    p1: u8,
    p2: u8,
    data: Vec<u8>,
}

/// A parsed command APDU (short or extended).
struct Command<'a> {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &'a [u8],
    extended: bool,
}

impl<'a> Command<'a> {
    fn parse(apdu: &'a [u8]) -> Option<Self> {
        let (header, body) = apdu.split_at_checked(4)?;
        let (data, extended) = match body {
            [] | [_] => (&body[..0], false),
            [0, _, _] => (&body[..0], true),
            [0, hi, lo, rest @ ..] => {
                let lc = usize::from(u16::from_be_bytes([*hi, *lo]));
                (
                    rest.get(..lc)
                        .filter(|_| rest.len() == lc || rest.len() == lc + 2)?,
                    true,
                )
            }
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                (
                    rest.get(..lc)
                        .filter(|_| rest.len() == lc || rest.len() == lc + 1)?,
                    false,
                )
            }
        };
        Some(Command {
            cla: header[0],
            ins: header[1],
            p1: header[2],
            p2: header[3],
            data,
            extended,
        })
    }
}

type Reply = Result<Vec<u8>, u16>;

/// An emulated YubiKey 5 PIV applet (P-256 only) plus a minimal management applet for ykman.
pub struct Card {
    state: CardState,
    f9_key: SigningKey,
    selected: Applet,
    pin_verified: bool,
    mgm_authed: bool,
    challenge: Option<Challenge>,
    chain: Option<Chain>,
    pending: Vec<u8>,
    faults: Vec<Fault>,
    button: Option<TouchButton>,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("serial", &self.state.serial)
            .field("firmware", &self.state.firmware)
            .field("pin_verified", &self.pin_verified)
            .field("mgm_authed", &self.mgm_authed)
            .finish_non_exhaustive()
    }
}

impl Card {
    /// A factory-fresh card whose F9 certificate is issued by `ca`.
    pub fn new(serial: u32, firmware: (u8, u8, u8), ca: &EmulatorCa) -> Self {
        let f9_cert = x509_cert::der::Encode::to_der(&ca.device_certificate(serial))
            .expect("encodable certificate");
        let state = CardState::factory(serial, firmware, cert_object(&f9_cert), 0);
        Self::from_state(state, ca)
    }

    /// Restores a card from saved state; the F9 key is re-derived from `ca` and the serial.
    pub fn from_state(state: CardState, ca: &EmulatorCa) -> Self {
        Card {
            f9_key: ca.device_key(state.serial),
            state,
            selected: Applet::None,
            pin_verified: false,
            mgm_authed: false,
            challenge: None,
            chain: None,
            pending: Vec::new(),
            faults: Vec::new(),
            button: None,
        }
    }

    /// Makes the given reads fail with [`SW_FAULT`] from now on.
    pub fn set_faults(&mut self, faults: Vec<Fault>) {
        self.faults = faults;
    }

    /// Replaces the always-granted touch by `button`.
    pub fn set_touch_button(&mut self, button: TouchButton) {
        self.button = Some(button);
    }

    /// Waits for a touch (always granted without a button); counts it when it comes.
    fn touch(&mut self) -> bool {
        let n = self.state.touches.saturating_add(1);
        let touched = self.button.as_mut().is_none_or(|button| button(n));
        if touched {
            self.state.touches = n;
        }
        touched
    }

    /// The persistent state (for saving, or for assertions in tests).
    pub fn state(&self) -> &CardState {
        &self.state
    }

    /// How many operations required a touch so far (touch is simulated as always given).
    pub fn touch_count(&self) -> u64 {
        self.state.touches
    }

    /// Whether the PIN is currently verified.
    pub fn pin_verified(&self) -> bool {
        self.pin_verified
    }

    /// Whether the management key is currently authenticated.
    pub fn mgm_authenticated(&self) -> bool {
        self.mgm_authed
    }

    /// Card reset or power off/on: drops all volatile state (PIN, MK, selection, chaining).
    pub fn power_cycle(&mut self) {
        self.selected = Applet::None;
        self.clear_auth();
        self.chain = None;
        self.pending.clear();
    }

    /// Processes one command APDU; returns response data followed by SW1 SW2.
    pub fn handle(&mut self, apdu: &[u8]) -> Vec<u8> {
        let Some(cmd) = Command::parse(apdu) else {
            return sw::WRONG_LENGTH.to_be_bytes().to_vec();
        };
        if cmd.ins == 0xC0 {
            return if self.pending.is_empty() {
                sw::WRONG_DATA.to_be_bytes().to_vec()
            } else {
                self.chunk_out(cmd.extended)
            };
        }
        self.pending.clear();
        if cmd.cla & 0x10 != 0 {
            match &mut self.chain {
                Some(c) if (c.ins, c.p1, c.p2) == (cmd.ins, cmd.p1, cmd.p2) => {
                    c.data.extend_from_slice(cmd.data)
                }
                _ => {
                    let (ins, p1, p2) = (cmd.ins, cmd.p1, cmd.p2);
                    self.chain = Some(Chain {
                        ins,
                        p1,
                        p2,
                        data: cmd.data.to_vec(),
                    });
                }
            }
            return sw::OK.to_be_bytes().to_vec();
        }
        let data = match self.chain.take() {
            Some(mut c) if (c.ins, c.p1, c.p2) == (cmd.ins, cmd.p1, cmd.p2) => {
                c.data.extend_from_slice(cmd.data);
                c.data
            }
            _ => cmd.data.to_vec(),
        };
        match self.dispatch(cmd.ins, cmd.p1, cmd.p2, &data) {
            Ok(body) => {
                self.pending = body;
                self.chunk_out(cmd.extended)
            }
            Err(code) => code.to_be_bytes().to_vec(),
        }
    }

    fn chunk_out(&mut self, extended: bool) -> Vec<u8> {
        let n = if extended {
            self.pending.len()
        } else {
            self.pending.len().min(256)
        };
        let mut out: Vec<u8> = self.pending.drain(..n).collect();
        match self.pending.len() {
            0 => out.extend_from_slice(&sw::OK.to_be_bytes()),
            rem => out.extend_from_slice(&[0x61, u8::try_from(rem).unwrap_or(0)]),
        }
        out
    }

    fn clear_auth(&mut self) {
        self.pin_verified = false;
        self.mgm_authed = false;
        self.challenge = None;
    }

    fn dispatch(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Reply {
        if ins == 0xA4 {
            return self.select(p1, data);
        }
        if self.selected == Applet::Mgmt {
            return match ins {
                0x1D => Ok(self.mgmt_config()),
                _ => Err(sw::INS_NOT_SUPPORTED),
            };
        }
        if self.selected == Applet::Otp {
            return match (ins, p1) {
                (0x01, 0x10) => Ok(self.state.serial.to_be_bytes().to_vec()),
                _ => Err(sw::INS_NOT_SUPPORTED),
            };
        }
        let (major, minor, patch) = self.state.firmware;
        match ins {
            0xFD => Ok(vec![major, minor, patch]),
            0xF8 => Ok(self.state.serial.to_be_bytes().to_vec()),
            0x20 => self.verify(p1, p2, data),
            0x24 => self.change_reference(p1, p2, data),
            0x2C => self.reset_retry(p2, data),
            0xFA => self.set_retries(p1, p2),
            0x87 => self.general_authenticate(p1, p2, data),
            0xFF => self.set_mgm_key(p1, p2, data),
            0x47 => self.generate(p2, data),
            0xFE => self.import(p1, p2, data),
            0xDB => self.put_data(p1, p2, data),
            0xCB => self.get_data(p1, p2, data),
            0xF7 if self.state.firmware >= (5, 3, 0) => self.metadata(p2),
            0xF9 => self.attest(p1),
            0xFB => self.reset(),
            _ => Err(sw::INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, p1: u8, aid: &[u8]) -> Reply {
        if p1 != 0x04 {
            return Err(sw::WRONG_P1P2);
        }
        self.clear_auth();
        if aid.len() >= AID_PIV.len() && AID_PIV.starts_with(&aid[..AID_PIV.len()]) {
            self.selected = Applet::Piv;
            let mut body = tlv::tlv(0x4F, &[0x00, 0x00, 0x10, 0x00, 0x01, 0x00]);
            body.extend(tlv::tlv(0x79, &tlv::tlv(0x4F, AID_PIV)));
            Ok(tlv::tlv(0x61, &body))
        } else if aid.starts_with(AID_OTP) {
            self.selected = Applet::Otp;
            let (a, b, c) = self.state.firmware;
            // Version and the sequence/touch-level bytes a YubiKey 4 OTP applet reports.
            Ok(vec![a, b, c, 0x01, 0x05, 0x00])
        } else if aid.starts_with(AID_MGMT) {
            self.selected = Applet::Mgmt;
            let (a, b, c) = self.state.firmware;
            Ok(format!("Virtual mgr - FW version {a}.{b}.{c}").into_bytes())
        } else {
            Err(sw::NOT_FOUND)
        }
    }

    /// READ CONFIG of the management applet (what ykman reads for `info`).
    fn mgmt_config(&self) -> Vec<u8> {
        let (a, b, c) = self.state.firmware;
        let mut body = Vec::new();
        body.extend(tlv::tlv(0x01, &[0x02, 0x3B])); // USB supported: OTP U2F PGP PIV OATH FIDO2
        body.extend(tlv::tlv(0x02, &self.state.serial.to_be_bytes()));
        body.extend(tlv::tlv(0x03, &[0x02, 0x3B])); // USB enabled
        body.extend(tlv::tlv(0x04, &[0x01])); // form factor: USB-A keychain
        body.extend(tlv::tlv(0x05, &[a, b, c]));
        body.extend(tlv::tlv(0x0A, &[0x00])); // config not locked
        let mut out = vec![body.len() as u8];
        out.extend(body);
        out
    }

    // ---- PIN / PUK ----

    fn check_secret(&mut self, puk: bool, candidate: &[u8]) -> Result<(), u16> {
        let s = &mut self.state;
        let (secret, left, total) = if puk {
            (&s.puk, &mut s.puk_left, s.puk_total)
        } else {
            (&s.pin, &mut s.pin_left, s.pin_total)
        };
        if *left == 0 {
            return Err(sw::BLOCKED);
        }
        if unpad(candidate) == secret.as_slice() {
            *left = total;
            Ok(())
        } else {
            *left -= 1;
            if !puk {
                self.pin_verified = false;
            }
            Err(if *left == 0 {
                sw::BLOCKED
            } else {
                sw::tries_left(*left)
            })
        }
    }

    fn verify(&mut self, p1: u8, p2: u8, data: &[u8]) -> Reply {
        if p2 != 0x80 {
            return Err(sw::REF_NOT_FOUND);
        }
        match (p1, data.len()) {
            (0xFF, _) => {
                self.pin_verified = false;
                Ok(Vec::new())
            }
            (0x00, 0) if self.state.pin_left == 0 => Err(sw::BLOCKED),
            (0x00, 0) if self.pin_verified => Ok(Vec::new()),
            (0x00, 0) => Err(sw::tries_left(self.state.pin_left)),
            (0x00, 8) => {
                self.check_secret(false, data)?;
                self.pin_verified = true;
                Ok(Vec::new())
            }
            (0x00, _) => Err(sw::WRONG_DATA),
            _ => Err(sw::WRONG_P1P2),
        }
    }

    fn change_reference(&mut self, p1: u8, p2: u8, data: &[u8]) -> Reply {
        let puk = match (p1, p2) {
            (0, 0x80) => false,
            (0, 0x81) => true,
            _ => return Err(sw::REF_NOT_FOUND),
        };
        let (old, new) = split_pair(data)?;
        self.check_secret(puk, old)?;
        if puk {
            self.state.puk = new;
        } else {
            self.state.pin = new;
        }
        Ok(Vec::new())
    }

    fn reset_retry(&mut self, p2: u8, data: &[u8]) -> Reply {
        if p2 != 0x80 {
            return Err(sw::REF_NOT_FOUND);
        }
        let (puk, new_pin) = split_pair(data)?;
        self.check_secret(true, puk)?;
        self.state.pin = new_pin;
        self.state.pin_left = self.state.pin_total;
        Ok(Vec::new())
    }

    fn set_retries(&mut self, pin_tries: u8, puk_tries: u8) -> Reply {
        if !(self.mgm_authed && self.pin_verified) {
            return Err(sw::SECURITY);
        }
        if pin_tries == 0 || puk_tries == 0 || pin_tries > 15 || puk_tries > 15 {
            return Err(sw::WRONG_P1P2);
        }
        let s = &mut self.state;
        (s.pin_total, s.pin_left, s.puk_total, s.puk_left) =
            (pin_tries, pin_tries, puk_tries, puk_tries);
        s.pin = DEFAULT_PIN.to_vec();
        s.puk = DEFAULT_PUK.to_vec();
        Ok(Vec::new())
    }

    // ---- management key ----

    fn general_authenticate(&mut self, alg: u8, key: u8, data: &[u8]) -> Reply {
        let items = match tlv::read(data) {
            Some((0x7C, inner, [])) => tlv::read_all(inner).ok_or(sw::WRONG_DATA)?,
            _ => return Err(sw::WRONG_DATA),
        };
        if key == 0x9B {
            self.mgm_auth(alg, &items)
        } else {
            self.sign(alg, key, &items)
        }
    }

    fn mgm_auth(&mut self, alg: u8, items: &[(u8, &[u8])]) -> Reply {
        if alg != self.state.mgm_alg {
            return Err(sw::WRONG_DATA);
        }
        let bs = if alg == MGM_3DES { 8 } else { 16 };
        let field = |tag| tlv::find(items, tag);
        match (field(0x80), field(0x81), field(0x82)) {
            // Mutual auth step 1: the host asks for an encrypted witness.
            (Some([]), None, None) => {
                let witness = random_vec(bs);
                let enc = self.mgm_crypt(&witness, true)?;
                self.challenge = Some(Challenge::Witness(witness));
                Ok(tlv::tlv(0x7C, &tlv::tlv(0x80, &enc)))
            }
            // Step 2: decrypted witness plus the host's challenge.
            (Some(witness), Some(chal), _) if witness.len() == bs && chal.len() == bs => {
                match self.challenge.take() {
                    Some(Challenge::Witness(expected)) if expected == witness => {}
                    Some(Challenge::Witness(_)) => return Err(sw::SECURITY),
                    _ => return Err(sw::WRONG_DATA),
                }
                self.authenticated_mgm();
                let enc = self.mgm_crypt(chal, true)?;
                Ok(tlv::tlv(0x7C, &tlv::tlv(0x82, &enc)))
            }
            // Single auth: card challenge, then the host's encryption of it.
            (None, Some([]), None) => {
                let chal = random_vec(bs);
                self.challenge = Some(Challenge::Single(chal.clone()));
                Ok(tlv::tlv(0x7C, &tlv::tlv(0x81, &chal)))
            }
            (None, None, Some(resp)) => match self.challenge.take() {
                Some(Challenge::Single(chal)) if self.mgm_crypt(&chal, true)? == resp => {
                    self.authenticated_mgm();
                    Ok(Vec::new())
                }
                Some(Challenge::Single(_)) => Err(sw::SECURITY),
                _ => Err(sw::WRONG_DATA),
            },
            _ => Err(sw::WRONG_DATA),
        }
    }

    fn authenticated_mgm(&mut self) {
        self.mgm_authed = !self.state.mgm_touch || self.touch();
    }

    fn mgm_crypt(&self, block: &[u8], encrypt: bool) -> Result<Vec<u8>, u16> {
        crypt_block(self.state.mgm_alg, &self.state.mgm_key, block, encrypt).ok_or(sw::WRONG_DATA)
    }

    fn set_mgm_key(&mut self, p1: u8, p2: u8, data: &[u8]) -> Reply {
        if !self.mgm_authed {
            return Err(sw::SECURITY);
        }
        let touch = match (p1, p2) {
            (0xFF, 0xFF) => false,
            (0xFF, 0xFE) => true,
            _ => return Err(sw::WRONG_P1P2),
        };
        let [alg, 0x9B, len, key @ ..] = data else {
            return Err(sw::WRONG_DATA);
        };
        if usize::from(*len) != key.len() || mgm_key_len(*alg) != Some(key.len()) {
            return Err(sw::WRONG_DATA);
        }
        self.state.mgm_alg = *alg;
        self.state.mgm_key = key.to_vec();
        self.state.mgm_touch = touch;
        Ok(Vec::new())
    }

    // ---- keys ----

    fn parse_policies(&self, slot: u8, items: &[(u8, &[u8])]) -> Result<(u8, u8), u16> {
        let byte = |tag, max| match tlv::find(items, tag) {
            None => Ok(0),
            Some(&[b]) if b <= max => Ok(b),
            Some(_) => Err(sw::WRONG_DATA),
        };
        let pin = match byte(0xAA, PIN_POLICY_ALWAYS)? {
            PIN_POLICY_DEFAULT => default_pin_policy(slot),
            p => p,
        };
        let touch = match byte(0xAB, TOUCH_POLICY_CACHED)? {
            0 => TOUCH_POLICY_NEVER,
            t => t,
        };
        Ok((pin, touch))
    }

    fn generate(&mut self, slot: u8, data: &[u8]) -> Reply {
        if !self.mgm_authed {
            return Err(sw::SECURITY);
        }
        if !is_key_slot(slot) {
            return Err(sw::WRONG_P1P2);
        }
        let items = match tlv::read(data) {
            Some((0xAC, inner, [])) => tlv::read_all(inner).ok_or(sw::WRONG_DATA)?,
            _ => return Err(sw::WRONG_DATA),
        };
        if tlv::find(&items, 0x80) != Some(&[ALG_P256]) {
            return Err(sw::WRONG_DATA);
        }
        let (pin_policy, touch_policy) = self.parse_policies(slot, &items)?;
        let key = attestation::random_key();
        let point = public_point(&key);
        let secret = key.to_bytes().to_vec();
        let origin = ORIGIN_GENERATED;
        let slot_key = SlotKey {
            alg: ALG_P256,
            secret,
            pin_policy,
            touch_policy,
            origin,
        };
        self.state.keys.insert(slot, slot_key);
        Ok(tlv::tlv(0x7F49, &tlv::tlv(0x86, &point)))
    }

    fn import(&mut self, alg: u8, slot: u8, data: &[u8]) -> Reply {
        if !self.mgm_authed {
            return Err(sw::SECURITY);
        }
        if !is_key_slot(slot) {
            return Err(sw::WRONG_P1P2);
        }
        let items = tlv::read_all(data).ok_or(sw::WRONG_DATA)?;
        let secret = match (alg, tlv::find(&items, 0x06)) {
            (ALG_P256, Some(d)) if d.len() == 32 => d,
            _ => return Err(sw::WRONG_DATA),
        };
        SigningKey::from_slice(secret).map_err(|_| sw::WRONG_DATA)?;
        let (pin_policy, touch_policy) = self.parse_policies(slot, &items)?;
        let origin = ORIGIN_IMPORTED;
        let secret = secret.to_vec();
        let slot_key = SlotKey {
            alg,
            secret,
            pin_policy,
            touch_policy,
            origin,
        };
        self.state.keys.insert(slot, slot_key);
        Ok(Vec::new())
    }

    fn sign(&mut self, alg: u8, slot: u8, items: &[(u8, &[u8])]) -> Reply {
        let key = self.state.keys.get(&slot).ok_or(sw::REF_NOT_FOUND)?.clone();
        if key.alg != alg || tlv::find(items, 0x82) != Some(&[]) {
            return Err(sw::WRONG_DATA);
        }
        // 0x85 (ECDH) is not implemented; only signatures over a digest (tag 81).
        let digest = tlv::find(items, 0x81)
            .filter(|d| d.len() <= 32)
            .ok_or(sw::WRONG_DATA)?;
        if key.pin_policy != PIN_POLICY_NEVER && !self.pin_verified {
            return Err(sw::SECURITY);
        }
        let signing_key = SigningKey::from_slice(&key.secret).map_err(|_| sw::WRONG_DATA)?;
        if key.pin_policy == PIN_POLICY_ALWAYS {
            self.pin_verified = false;
        }
        if key.touch_policy != TOUCH_POLICY_NEVER && !self.touch() {
            return Err(sw::SECURITY);
        }
        let mut prehash = [0u8; 32];
        prehash[32 - digest.len()..].copy_from_slice(digest);
        let sig: Signature = signing_key
            .sign_prehash(&prehash)
            .map_err(|_| sw::WRONG_DATA)?;
        Ok(tlv::tlv(0x7C, &tlv::tlv(0x82, sig.to_der().as_bytes())))
    }

    // ---- data objects ----

    fn object_id(p1: u8, p2: u8, items: &[(u8, &[u8])]) -> Result<u32, u16> {
        if (p1, p2) != (0x3F, 0xFF) {
            return Err(sw::WRONG_P1P2);
        }
        match tlv::find(items, 0x5C) {
            Some(id) if (1..=3).contains(&id.len()) => {
                Ok(id.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
            }
            _ => Err(sw::WRONG_DATA),
        }
    }

    fn put_data(&mut self, p1: u8, p2: u8, data: &[u8]) -> Reply {
        if !self.mgm_authed {
            return Err(sw::SECURITY);
        }
        let items = tlv::read_all(data).ok_or(sw::WRONG_DATA)?;
        let id = Self::object_id(p1, p2, &items)?;
        let value = tlv::find(&items, 0x53).ok_or(sw::WRONG_DATA)?;
        if id == 0x7E {
            return Err(sw::WRONG_DATA);
        }
        if value.len() > MAX_OBJECT {
            return Err(sw::NO_SPACE);
        }
        if value.is_empty() {
            self.state.objects.remove(&id);
        } else {
            self.state.objects.insert(id, value.to_vec());
        }
        Ok(Vec::new())
    }

    fn get_data(&mut self, p1: u8, p2: u8, data: &[u8]) -> Reply {
        let items = tlv::read_all(data).ok_or(sw::WRONG_DATA)?;
        let id = Self::object_id(p1, p2, &items)?;
        if self.faults.contains(&Fault::GetData(id)) {
            return Err(SW_FAULT);
        }
        match id {
            0x7E => Ok(DISCOVERY.to_vec()),
            OBJ_PRINTED if !self.pin_verified => Err(sw::SECURITY),
            id => self
                .state
                .objects
                .get(&id)
                .map(|v| tlv::tlv(0x53, v))
                .ok_or(sw::NOT_FOUND),
        }
    }

    // ---- Yubico extensions ----

    fn metadata(&self, slot: u8) -> Reply {
        if self.faults.contains(&Fault::Metadata(slot)) {
            return Err(SW_FAULT);
        }
        let s = &self.state;
        let mut out = Vec::new();
        match slot {
            0x80 | 0x81 => {
                let (is_default, total, left) = if slot == 0x80 {
                    (s.pin == DEFAULT_PIN, s.pin_total, s.pin_left)
                } else {
                    (s.puk == DEFAULT_PUK, s.puk_total, s.puk_left)
                };
                out.extend(tlv::tlv(0x01, &[0xFF]));
                out.extend(tlv::tlv(0x05, &[u8::from(is_default)]));
                out.extend(tlv::tlv(0x06, &[total, left]));
            }
            0x9B => {
                let is_default =
                    s.mgm_key == DEFAULT_MGM_KEY && s.mgm_alg == default_mgm_alg(s.firmware);
                let touch = if s.mgm_touch {
                    TOUCH_POLICY_ALWAYS
                } else {
                    TOUCH_POLICY_NEVER
                };
                out.extend(tlv::tlv(0x01, &[s.mgm_alg]));
                out.extend(tlv::tlv(0x02, &[0x00, touch]));
                out.extend(tlv::tlv(0x05, &[u8::from(is_default)]));
            }
            0xF9 => {
                out.extend(tlv::tlv(0x01, &[ALG_P256]));
                out.extend(tlv::tlv(0x02, &[PIN_POLICY_NEVER, TOUCH_POLICY_NEVER]));
                out.extend(tlv::tlv(0x03, &[ORIGIN_IMPORTED]));
                out.extend(tlv::tlv(0x04, &tlv::tlv(0x86, &public_point(&self.f9_key))));
            }
            _ => {
                let key = s.keys.get(&slot).ok_or(sw::REF_NOT_FOUND)?;
                let signing_key =
                    SigningKey::from_slice(&key.secret).map_err(|_| sw::WRONG_DATA)?;
                out.extend(tlv::tlv(0x01, &[key.alg]));
                out.extend(tlv::tlv(0x02, &[key.pin_policy, key.touch_policy]));
                out.extend(tlv::tlv(0x03, &[key.origin]));
                out.extend(tlv::tlv(0x04, &tlv::tlv(0x86, &public_point(&signing_key))));
            }
        }
        Ok(out)
    }

    fn attest(&self, slot: u8) -> Reply {
        let key = self.state.keys.get(&slot).ok_or(sw::REF_NOT_FOUND)?;
        if key.origin != ORIGIN_IMPORTED {
            let f9_cert = self
                .state
                .objects
                .get(&OBJ_ATTESTATION)
                .and_then(|obj| cert_from_object(obj))
                .ok_or(sw::NOT_FOUND)?;
            let signing_key = SigningKey::from_slice(&key.secret).map_err(|_| sw::WRONG_DATA)?;
            let facts = SlotFacts {
                slot,
                public: *signing_key.verifying_key(),
                pin_policy: key.pin_policy,
                touch_policy: key.touch_policy,
                firmware: self.state.firmware,
                serial: self.state.serial,
            };
            Ok(attestation::attest_slot(&self.f9_key, &f9_cert, &facts))
        } else {
            Err(sw::WRONG_DATA)
        }
    }

    fn reset(&mut self) -> Reply {
        if self.state.pin_left != 0 || self.state.puk_left != 0 {
            return Err(sw::CONDITIONS);
        }
        let f9 = self
            .state
            .objects
            .remove(&OBJ_ATTESTATION)
            .unwrap_or_default();
        let s = &self.state;
        self.state = CardState::factory(s.serial, s.firmware, f9, s.touches);
        self.clear_auth();
        Ok(Vec::new())
    }
}

/// Wraps a DER certificate the way PIV stores it: `70 cert 71 01 00 FE 00`.
pub fn cert_object(der: &[u8]) -> Vec<u8> {
    let mut obj = tlv::tlv(0x70, der);
    obj.extend_from_slice(&[0x71, 0x01, 0x00, 0xFE, 0x00]);
    obj
}

fn cert_from_object(obj: &[u8]) -> Option<x509_cert::Certificate> {
    let items = tlv::read_all(obj)?;
    x509_cert::Certificate::from_der(tlv::find(&items, 0x70)?).ok()
}

/// The default PIN policy of a slot (9C signature: ALWAYS; 9E card auth: NEVER; else ONCE).
pub fn default_pin_policy(slot: u8) -> u8 {
    match slot {
        0x9C => PIN_POLICY_ALWAYS,
        0x9E => PIN_POLICY_NEVER,
        _ => PIN_POLICY_ONCE,
    }
}

/// Whether `slot` can hold a user key (9A, 9C, 9D, 9E, 82–95).
pub fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95)
}

fn public_point(key: &SigningKey) -> Vec<u8> {
    key.verifying_key().to_sec1_point(false).as_bytes().to_vec()
}

fn unpad(value: &[u8]) -> &[u8] {
    let end = value.iter().rposition(|b| *b != 0xFF).map_or(0, |i| i + 1);
    &value[..end]
}

/// Splits `old(8) || new(8)` and checks the new value is 6–8 bytes after unpadding.
fn split_pair(data: &[u8]) -> Result<(&[u8], Vec<u8>), u16> {
    if data.len() != 16 {
        return Err(sw::WRONG_DATA);
    }
    let (old, new) = data.split_at(8);
    let new = unpad(new);
    if new.len() < 6 {
        return Err(sw::WRONG_DATA);
    }
    Ok((old, new.to_vec()))
}

fn mgm_key_len(alg: u8) -> Option<usize> {
    match alg {
        MGM_3DES | MGM_AES192 => Some(24),
        MGM_AES128 => Some(16),
        MGM_AES256 => Some(32),
        _ => None,
    }
}

/// Encrypts or decrypts one block (ECB) with a management key; `None` on bad sizes.
pub fn crypt_block(alg: u8, key: &[u8], block: &[u8], encrypt: bool) -> Option<Vec<u8>> {
    fn run<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
        key: &[u8],
        block: &[u8],
        encrypt: bool,
    ) -> Option<Vec<u8>> {
        let cipher = C::new_from_slice(key).ok()?;
        let mut out = aes::cipher::Block::<C>::try_from(block).ok()?;
        if encrypt {
            cipher.encrypt_block(&mut out);
        } else {
            cipher.decrypt_block(&mut out);
        }
        Some(out.to_vec())
    }
    match alg {
        MGM_3DES => run::<des::TdesEde3>(key, block, encrypt),
        MGM_AES128 => run::<aes::Aes128>(key, block, encrypt),
        MGM_AES192 => run::<aes::Aes192>(key, block, encrypt),
        MGM_AES256 => run::<aes::Aes256>(key, block, encrypt),
        _ => None,
    }
}

fn random_vec(len: usize) -> Vec<u8> {
    attestation::random_bytes::<32>()[..len].to_vec()
}
