//! YubiKeys through their PIV applet, with the `yubikey` crate over PC/SC.
//!
//! Keys are P-256, generated on the device into a slot (`9a 9c 9d 9e 82..95`) with a PIN and a
//! touch policy; a self-signed certificate written next to the key lets other tools (ykman,
//! yubico-piv-tool, PKCS#11 modules) see it. Signing hashes with SHA-256 on the host and signs
//! the digest on the card (GENERAL AUTHENTICATE); the DER signature becomes raw r‖s.
//!
//! PIN safety, as for PKCS#11 tokens: the retry counter is read (GET METADATA, or an empty
//! VERIFY, neither of which uses a try) before any PIN is sent; a blocked PIN is reported, a PIN
//! with one retry left is not tried unless the operator said `--last-pin-attempt`; a PIN is
//! sent once per device per command (and again, unchanged, before each signature of a
//! PIN-always key); the factory PIN `123456` and the factory management key are never tried on
//! the operator's behalf: they are used only by `token setup`, and only when the card's own
//! metadata says they are still set.
//!
//! Readers whose name starts with "Virtual PCD" (vsmartcard's vpcd, which anyone on the network
//! can feed a card) are ignored unless `ROOTKEEPER_ALLOW_VIRTUAL_READERS=1`.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::Serialize;
use x509_cert::der::{Decode, Encode};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use yubikey::piv::{self, AlgorithmId, ManagementSlotId, SlotAlgorithmId, SlotId};
use yubikey::{MgmAlgorithmId, MgmKey, PinPolicy, TouchPolicy, YubiKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyuri::{PivSlot, YubiKeyUri};
use crate::notice::{Notice, Notifier};
use crate::secret::{Pin, PinSources};
use crate::signer::Signer;

/// Set to `1` to let rootkeeper use readers named "Virtual PCD…" (tests only).
pub const ALLOW_VIRTUAL_ENV: &str = "ROOTKEEPER_ALLOW_VIRTUAL_READERS";
/// The name prefix of vsmartcard's virtual readers.
pub const VIRTUAL_READER_PREFIX: &str = "Virtual PCD";

const FACTORY_PIN: &str = "123456";
const FACTORY_PUK: &str = "12345678";
const FACTORY_MGM_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];
const OBJ_ADMIN_DATA: u32 = 0x005f_ff00;

/// True when `ROOTKEEPER_ALLOW_VIRTUAL_READERS=1`.
pub fn virtual_readers_allowed() -> bool {
    std::env::var(ALLOW_VIRTUAL_ENV).is_ok_and(|v| v == "1")
}

/// A YubiKey firmware version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Firmware {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch.
    pub patch: u8,
}

impl Firmware {
    /// True for YubiKey 5 firmware before 5.7.0, which Yubico advisory YSA-2024-03 (the
    /// Infineon ECDSA side channel, "EUCLEAK") affects.
    pub fn ysa_2024_03(self) -> bool {
        self.major == 5 && self.minor < 7
    }

    /// GET METADATA exists from 5.3.
    pub fn has_metadata(self) -> bool {
        (self.major, self.minor) >= (5, 3)
    }

    /// Parses "5.4.3".
    pub fn parse(text: &str) -> Option<Firmware> {
        let mut parts = text.split('.').map(|p| p.parse::<u8>().ok());
        let fw = Firmware {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(fw)
    }

    /// The advisory note for `key list` and `key attest`, if any.
    pub fn advisory(self) -> Option<&'static str> {
        self.ysa_2024_03().then_some(
            "YSA-2024-03: YubiKey 5 firmware before 5.7.0 leaks ECDSA keys to an attacker with physical access and lab equipment; replace this device for root keys",
        )
    }
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Firmware {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// When a slot's key needs the PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PivPinPolicy {
    /// Never.
    Never,
    /// Once per session.
    Once,
    /// Before every operation.
    Always,
}

/// When a slot's key needs a touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PivTouchPolicy {
    /// Never.
    Never,
    /// For every operation.
    Always,
    /// Once per 15 seconds.
    Cached,
}

impl PivPinPolicy {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PivPinPolicy::Never => "never",
            PivPinPolicy::Once => "once",
            PivPinPolicy::Always => "always",
        }
    }

    /// From the one-byte encoding used by metadata and attestations.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(PivPinPolicy::Never),
            2 => Some(PivPinPolicy::Once),
            3 => Some(PivPinPolicy::Always),
            _ => None,
        }
    }

    fn from_yubikey(p: PinPolicy) -> Option<Self> {
        match p {
            PinPolicy::Never => Some(PivPinPolicy::Never),
            PinPolicy::Once => Some(PivPinPolicy::Once),
            PinPolicy::Always => Some(PivPinPolicy::Always),
            PinPolicy::Default => None,
        }
    }

    fn to_yubikey(self) -> PinPolicy {
        match self {
            PivPinPolicy::Never => PinPolicy::Never,
            PivPinPolicy::Once => PinPolicy::Once,
            PivPinPolicy::Always => PinPolicy::Always,
        }
    }
}

impl PivTouchPolicy {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PivTouchPolicy::Never => "never",
            PivTouchPolicy::Always => "always",
            PivTouchPolicy::Cached => "cached",
        }
    }

    /// From the one-byte encoding used by metadata and attestations.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(PivTouchPolicy::Never),
            2 => Some(PivTouchPolicy::Always),
            3 => Some(PivTouchPolicy::Cached),
            _ => None,
        }
    }

    fn from_yubikey(p: TouchPolicy) -> Option<Self> {
        match p {
            TouchPolicy::Never => Some(PivTouchPolicy::Never),
            TouchPolicy::Always => Some(PivTouchPolicy::Always),
            TouchPolicy::Cached => Some(PivTouchPolicy::Cached),
            TouchPolicy::Default => None,
        }
    }

    fn to_yubikey(self) -> TouchPolicy {
        match self {
            PivTouchPolicy::Never => TouchPolicy::Never,
            PivTouchPolicy::Always => TouchPolicy::Always,
            PivTouchPolicy::Cached => TouchPolicy::Cached,
        }
    }

    /// True when operations need a touch.
    pub fn needs_touch(self) -> bool {
        self != PivTouchPolicy::Never
    }

    /// The notice to give before an operation of a key with this policy on YubiKey `serial`
    /// (None when no touch is needed).
    pub fn notice(self, serial: u32) -> Option<Notice> {
        self.needs_touch().then_some(Notice::Touch {
            serial,
            cached: self == PivTouchPolicy::Cached,
        })
    }
}

/// Where a slot's key came from, as the card reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyOrigin {
    /// Generated on the device; the private key never existed elsewhere.
    Generated,
    /// Imported: the private key existed outside the device.
    Imported,
}

/// A filled key slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotInfo {
    /// The slot, e.g. `9c`.
    pub slot: String,
    /// `ecdsa-p256`, or the algorithm of a key rootkeeper cannot use.
    pub algorithm: String,
    /// The P-256 public key (None for other algorithms).
    #[serde(skip)]
    pub public_key: Option<VerifyingKey>,
    /// PIN policy (None when the firmware has no metadata).
    pub pin_policy: Option<PivPinPolicy>,
    /// Touch policy (None when the firmware has no metadata).
    pub touch_policy: Option<PivTouchPolicy>,
    /// Generated or imported (None when the firmware has no metadata).
    pub origin: Option<KeyOrigin>,
    /// The CN of the slot's certificate, when there is one.
    pub label: Option<String>,
    /// True when the slot holds a certificate.
    pub certificate: bool,
    /// The key's URI.
    pub uri: String,
    /// The canonical key ID of the P-256 key (notary's ID of the bare key, 64 hex digits).
    pub key_id: Option<String>,
    #[serde(skip)]
    piv_slot: PivSlot,
}

impl SlotInfo {
    /// The slot.
    pub fn piv_slot(&self) -> PivSlot {
        self.piv_slot
    }

    /// The label to show and record: the certificate's CN, else "slot 9c".
    pub fn display_label(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| format!("slot {}", self.slot))
    }
}

/// PIN or PUK state, read without using a try.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RetryState {
    /// Tries left.
    pub remaining: u8,
    /// Tries in total (from metadata; None before firmware 5.3).
    pub total: Option<u8>,
    /// Still the factory value (from metadata; None before firmware 5.3).
    pub factory_default: Option<bool>,
}

/// What `token list` shows of a YubiKey.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// Serial number.
    pub serial: u32,
    /// Firmware version.
    pub firmware: Firmware,
    /// PC/SC reader.
    pub reader: String,
    /// `yubikey:serial=N`.
    pub uri: String,
    /// PIN retries left and whether it is the factory PIN.
    pub pin: Option<RetryState>,
    /// PUK retries left and whether it is the factory PUK (firmware 5.3+).
    pub puk: Option<RetryState>,
    /// The management key algorithm (`3des`, `aes128`, `aes192`, `aes256`).
    pub management_key_algorithm: Option<String>,
    /// The management key is still the factory one (firmware 5.3+).
    pub management_key_default: Option<bool>,
    /// The management key is stored PIN-protected on the card.
    pub management_key_protected: bool,
    /// Firmware affected by YSA-2024-03.
    pub ysa_2024_03: bool,
    /// Filled key slots.
    pub slots: Vec<SlotInfo>,
    /// Slots the card did not answer for (a read error other than "not found"): what they
    /// hold is unknown.
    pub unreadable_slots: Vec<UnreadableSlot>,
}

/// A slot whose contents could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadableSlot {
    /// The slot, e.g. `9c`.
    pub slot: String,
    /// The error.
    pub error: String,
}

/// What a key slot holds, as far as the card can tell.
#[derive(Debug, Clone)]
pub enum SlotState {
    /// The card says the slot holds no key and no certificate.
    Empty,
    /// A key or a certificate is there.
    Filled(SlotInfo),
    /// The firmware cannot say (no GET METADATA before 5.3) and there is no certificate: a
    /// key may be there.
    Unknown {
        /// Why the card cannot say.
        reason: String,
    },
}

/// What GET METADATA says about a key slot.
enum KeyMetadata {
    /// The firmware has no GET METADATA.
    Unsupported,
    /// No key in the slot.
    Empty,
    /// The key's metadata.
    Key(piv::SlotMetadata),
}

impl DeviceInfo {
    /// Names of the credentials still at their factory values.
    pub fn factory_values(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.pin.and_then(|p| p.factory_default) == Some(true) {
            out.push("PIN");
        }
        if self.puk.and_then(|p| p.factory_default) == Some(true) {
            out.push("PUK");
        }
        if self.management_key_default == Some(true) {
            out.push("management key");
        }
        out
    }
}

fn mgm_alg_name(alg: MgmAlgorithmId) -> &'static str {
    match alg {
        MgmAlgorithmId::ThreeDes => "3des",
        MgmAlgorithmId::Aes128 => "aes128",
        MgmAlgorithmId::Aes192 => "aes192",
        MgmAlgorithmId::Aes256 => "aes256",
    }
}

fn algorithm_name(alg: AlgorithmId) -> &'static str {
    match alg {
        AlgorithmId::EccP256 => "ecdsa-p256",
        AlgorithmId::EccP384 => "ecdsa-p384",
        AlgorithmId::Rsa1024 => "rsa1024",
        AlgorithmId::Rsa2048 => "rsa2048",
        AlgorithmId::Rsa3072 => "rsa3072",
        AlgorithmId::Rsa4096 => "rsa4096",
        AlgorithmId::Ed25519 => "ed25519",
        AlgorithmId::X25519 => "x25519",
    }
}

fn slot_id(slot: PivSlot) -> Result<SlotId> {
    SlotId::try_from(slot.id()).map_err(|_| Error::Invalid(format!("{slot} is not a PIV key slot")))
}

/// The PIV data object that holds a key slot's certificate (SP 800-73-4 and Yubico's retired
/// slots: 82 is 5FC10D, ..., 95 is 5FC120).
fn certificate_object(slot: PivSlot) -> Option<u32> {
    match slot.id() {
        0x9a => Some(0x005f_c105),
        0x9c => Some(0x005f_c10a),
        0x9d => Some(0x005f_c10b),
        0x9e => Some(0x005f_c101),
        id => 0x005f_c10d_u32.checked_add(u32::from(id.checked_sub(0x82)?)),
    }
}

/// The DER certificate inside a certificate object (`70 len cert 71 01 00 FE 00`, or a bare
/// certificate as some tools write it).
fn certificate_in_object(object: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = object.split_first()?;
    if tag == 0x30 {
        return Some(object);
    }
    if tag != 0x70 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0x81 => {
            let (&len, rest) = rest.split_first()?;
            (usize::from(len), rest)
        }
        0x82 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (usize::from(u16::from_be_bytes(*len)), rest)
        }
        len if len < 0x80 => (usize::from(len), rest),
        _ => return None,
    };
    rest.get(..len)
}

/// The canonical key ID of a P-256 key, as every command shows it: notary's ID of the bare
/// key (SHA-256 of its canonical JSON form), 64 hex digits.
pub fn key_id(public_key: &VerifyingKey) -> Result<String> {
    Ok(crate::tuf::notary::p256_key_id(public_key)?.to_string())
}

fn device_name(serial: u32) -> String {
    format!("YubiKey serial {serial}")
}

/// An open YubiKey. Dropping it resets the card, which clears the PIN and management key
/// authentication.
pub struct Device {
    yk: RefCell<YubiKey>,
    serial: u32,
    firmware: Firmware,
    reader: String,
    pin: RefCell<Option<Pin>>,
    mgm_authenticated: Cell<bool>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("serial", &self.serial)
            .field("firmware", &self.firmware)
            .field("reader", &self.reader)
            .field("logged_in", &self.pin.borrow().is_some())
            .finish()
    }
}

/// The YubiKeys present, and the virtual readers that were skipped.
#[derive(Debug)]
pub struct Present {
    /// Open devices.
    pub devices: Vec<Device>,
    /// Readers named "Virtual PCD…" that were not looked at.
    pub ignored_virtual: Vec<String>,
}

fn is_transient(e: &yubikey::Error) -> bool {
    matches!(
        e,
        yubikey::Error::PcscError {
            inner: Some(pcsc::Error::ProtoMismatch | pcsc::Error::ResetCard)
        }
    )
}

/// Opens every YubiKey on every reader (virtual ones only when allowed). Readers without a
/// PIV card are skipped.
pub fn open_all() -> Result<Present> {
    let pcsc_error = |e: yubikey::Error| Error::PcscUnavailable {
        reason: format!("listing readers failed: {e}"),
    };
    let mut context = match yubikey::reader::Context::open() {
        Ok(c) => c,
        Err(yubikey::Error::PcscError {
            inner: Some(pcsc::Error::NoReadersAvailable),
        }) => {
            return Ok(Present {
                devices: Vec::new(),
                ignored_virtual: Vec::new(),
            });
        }
        Err(e) => return Err(pcsc_error(e)),
    };
    let readers = match context.iter() {
        Ok(r) => r,
        Err(yubikey::Error::PcscError {
            inner: Some(pcsc::Error::NoReadersAvailable),
        }) => Vec::new().into_iter(),
        Err(e) => return Err(pcsc_error(e)),
    };
    let allow_virtual = virtual_readers_allowed();
    let mut present = Present {
        devices: Vec::new(),
        ignored_virtual: Vec::new(),
    };
    for reader in readers {
        let name = reader.name().into_owned();
        if name.starts_with(VIRTUAL_READER_PREFIX) && !allow_virtual {
            present.ignored_virtual.push(name);
            continue;
        }
        let opened = match reader.open() {
            Err(e) if is_transient(&e) => {
                std::thread::sleep(Duration::from_millis(200));
                reader.open()
            }
            other => other,
        };
        let Ok(yk) = opened else { continue };
        let v = yk.version();
        present.devices.push(Device {
            serial: yk.serial().0,
            firmware: Firmware {
                major: v.major,
                minor: v.minor,
                patch: v.patch,
            },
            reader: name,
            yk: RefCell::new(yk),
            pin: RefCell::new(None),
            mgm_authenticated: Cell::new(false),
        });
    }
    Ok(present)
}

fn describe_present(present: &Present) -> String {
    let mut parts: Vec<String> = present
        .devices
        .iter()
        .map(|d| {
            format!(
                "yubikey:serial={} (firmware {}, reader \"{}\")",
                d.serial, d.firmware, d.reader
            )
        })
        .collect();
    if parts.is_empty() {
        parts.push("none".into());
    }
    let mut text = parts.join(", ");
    if !present.ignored_virtual.is_empty() {
        text.push_str(&format!(
            "; ignored virtual readers: {} (set {ALLOW_VIRTUAL_ENV}=1 only in tests)",
            present.ignored_virtual.join(", ")
        ));
    }
    text
}

/// Opens the YubiKey a URI names: by serial, or the only one present. Without a serial and
/// with several present, refuses and lists them.
pub fn open(uri: &YubiKeyUri) -> Result<Device> {
    let mut present = open_all()?;
    let wanted = uri.token_only().without_sources().to_string();
    let index = match uri.serial {
        Some(serial)
            if present
                .devices
                .iter()
                .filter(|d| d.serial == serial)
                .count()
                > 1 =>
        {
            let listed = describe_present(&present);
            present.devices.drain(..).for_each(Device::leave);
            return Err(Error::YubiKeyAmbiguous {
                uri: wanted,
                present: format!("{listed} (two devices report serial {serial})"),
            });
        }
        Some(serial) => present.devices.iter().position(|d| d.serial == serial),
        None if present.devices.len() > 1 => {
            let listed = describe_present(&present);
            present.devices.drain(..).for_each(Device::leave);
            return Err(Error::YubiKeyAmbiguous {
                uri: wanted,
                present: listed,
            });
        }
        None => (!present.devices.is_empty()).then_some(0),
    };
    match index {
        Some(i) => {
            let device = present.devices.swap_remove(i);
            present.devices.drain(..).for_each(Device::leave);
            Ok(device)
        }
        None => {
            let listed = describe_present(&present);
            present.devices.drain(..).for_each(Device::leave);
            Err(Error::YubiKeyNotFound {
                uri: wanted,
                present: listed,
            })
        }
    }
}

/// Everything `token list` shows about every YubiKey present.
pub fn list() -> Result<(Vec<DeviceInfo>, Vec<String>)> {
    let present = open_all()?;
    let mut infos = Vec::new();
    for device in &present.devices {
        infos.push(device.info()?);
    }
    Ok((infos, present.ignored_virtual))
}

fn parse_hex_key(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let clean: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    let clean = clean
        .strip_prefix("0x")
        .map(str::to_owned)
        .map(Zeroizing::new)
        .unwrap_or(clean);
    hex::decode(clean.as_bytes()).ok().map(Zeroizing::new)
}

impl Device {
    /// Disconnects without resetting the card (for devices opened only to be looked at while
    /// another handle may hold a login).
    fn leave(self) {
        let _ = self
            .yk
            .into_inner()
            .disconnect(pcsc::Disposition::LeaveCard);
    }

    /// The serial number.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The firmware version.
    pub fn firmware(&self) -> Firmware {
        self.firmware
    }

    /// The PC/SC reader.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// "YubiKey serial 12345678", for messages.
    pub fn describe(&self) -> String {
        device_name(self.serial)
    }

    /// `yubikey:serial=N`.
    pub fn uri(&self) -> YubiKeyUri {
        YubiKeyUri {
            serial: Some(self.serial),
            ..YubiKeyUri::default()
        }
    }

    /// The URI of a slot on this device.
    pub fn slot_uri(&self, slot: PivSlot) -> YubiKeyUri {
        YubiKeyUri {
            serial: Some(self.serial),
            slot: Some(slot),
            ..YubiKeyUri::default()
        }
    }

    fn fail(&self, operation: impl Into<String>) -> impl FnOnce(yubikey::Error) -> Error + '_ {
        let operation = operation.into();
        move |e| Error::Piv {
            device: self.describe(),
            operation,
            reason: e.to_string(),
        }
    }

    /// True once the PIN was verified in this command.
    pub fn logged_in(&self) -> bool {
        self.pin.borrow().is_some()
    }

    /// GET METADATA for a key slot: only "not found" means empty; every other error is
    /// reported.
    fn key_metadata(&self, slot: PivSlot) -> Result<KeyMetadata> {
        if !self.firmware.has_metadata() {
            return Ok(KeyMetadata::Unsupported);
        }
        match piv::metadata(&mut self.yk.borrow_mut(), slot_id(slot)?) {
            Ok(m) => Ok(KeyMetadata::Key(m)),
            Err(yubikey::Error::NotFound) => Ok(KeyMetadata::Empty),
            Err(yubikey::Error::NotSupported) => Ok(KeyMetadata::Unsupported),
            Err(e) => Err(self.fail(format!("reading the metadata of slot {slot}"))(e)),
        }
    }

    /// The certificate stored for a key slot: None only when the card says the object is
    /// not there; every other error is reported.
    fn certificate(&self, slot: PivSlot) -> Result<Option<x509_cert::Certificate>> {
        let operation = || format!("reading the certificate of slot {slot}");
        let object = certificate_object(slot)
            .ok_or_else(|| Error::Invalid(format!("{slot} is not a PIV key slot")))?;
        let data = match self.yk.borrow_mut().fetch_object(object) {
            Ok(data) => data,
            Err(yubikey::Error::NotFound) => return Ok(None),
            Err(e) => return Err(self.fail(operation())(e)),
        };
        let bad = |reason: &str| Error::Piv {
            device: self.describe(),
            operation: operation(),
            reason: reason.into(),
        };
        if data.is_empty() {
            return Ok(None);
        }
        let der = certificate_in_object(&data)
            .ok_or_else(|| bad("the certificate object is malformed"))?;
        x509_cert::Certificate::from_der(der)
            .map(Some)
            .map_err(|_| bad("the slot's certificate object holds no X.509 certificate"))
    }

    fn metadata(&self, slot: SlotId) -> Result<Option<piv::SlotMetadata>> {
        if !self.firmware.has_metadata() {
            return Ok(None);
        }
        match piv::metadata(&mut self.yk.borrow_mut(), slot) {
            Ok(m) => Ok(Some(m)),
            Err(yubikey::Error::NotSupported) => Ok(None),
            Err(e) => Err(self.fail(format!("reading the metadata of slot {slot:?}"))(
                e,
            )),
        }
    }

    /// PIN retries left (and whether it is the factory PIN), read without using a try.
    pub fn pin_state(&self) -> Result<RetryState> {
        if let Some(m) = self.metadata(SlotId::Management(ManagementSlotId::Pin))?
            && let Some(r) = &m.retries
        {
            return Ok(RetryState {
                remaining: r.remaining_count,
                total: Some(r.retry_count),
                factory_default: m.default,
            });
        }
        // An empty VERIFY answers with the retries left and uses no try. Sent as it is: the
        // crate's get_pin_retries() selects the applet first, which would also drop a
        // management-key authentication made earlier in this command.
        let empty_verify = self.yk.borrow_mut().verify_pin(&[]);
        let remaining = match empty_verify {
            Err(yubikey::Error::WrongPin { tries }) => tries,
            Err(yubikey::Error::PinLocked) => 0,
            // Already verified: the card does not say how many tries are left.
            Ok(()) => self
                .yk
                .borrow_mut()
                .get_pin_retries()
                .map_err(self.fail("reading the PIN retry counter"))?,
            Err(e) => return Err(self.fail("reading the PIN retry counter")(e)),
        };
        Ok(RetryState {
            remaining,
            total: None,
            factory_default: None,
        })
    }

    /// PUK retries left (firmware 5.3+; None before).
    pub fn puk_state(&self) -> Result<Option<RetryState>> {
        Ok(self
            .metadata(SlotId::Management(ManagementSlotId::Puk))?
            .and_then(|m| {
                m.retries.map(|r| RetryState {
                    remaining: r.remaining_count,
                    total: Some(r.retry_count),
                    factory_default: m.default,
                })
            }))
    }

    /// The management key's algorithm and whether it is the factory key (metadata, 5.3+).
    fn management_key_state(&self) -> Result<(MgmAlgorithmId, Option<bool>)> {
        match self.metadata(SlotId::Management(ManagementSlotId::Management))? {
            Some(m) => match m.algorithm {
                SlotAlgorithmId::Management(alg) => Ok((alg, m.default)),
                _ => Ok((MgmAlgorithmId::ThreeDes, m.default)),
            },
            None => Ok((MgmAlgorithmId::ThreeDes, None)),
        }
    }

    /// True when the admin data says the management key is stored PIN-protected.
    pub fn management_key_protected(&self) -> bool {
        let Ok(data) = self.yk.borrow_mut().fetch_object(OBJ_ADMIN_DATA) else {
            return false;
        };
        // 80 L { 81 01 flags, ... }; flag 0x02 = PIN-protected management key.
        let Some((&0x80, rest)) = data.split_first() else {
            return false;
        };
        let Some((&len, inner)) = rest.split_first() else {
            return false;
        };
        let mut inner = inner.get(..usize::from(len)).unwrap_or(inner);
        while let [tag, len, rest @ ..] = inner {
            let Some((value, next)) = rest.split_at_checked(usize::from(*len)) else {
                return false;
            };
            if let (0x81, [flags]) = (*tag, value) {
                return flags & 0x02 != 0;
            }
            inner = next;
        }
        false
    }

    /// What `slot` holds (read without the PIN). Only the card's "not found" counts as
    /// empty; any other read error is returned. On firmware without metadata (before 5.3) a
    /// slot without a certificate is [`SlotState::Unknown`]: a key may be there.
    pub fn slot_state(&self, slot: PivSlot) -> Result<SlotState> {
        let meta = self.key_metadata(slot)?;
        let cert = self.certificate(slot)?;
        let meta = match (meta, &cert) {
            (KeyMetadata::Empty, None) => return Ok(SlotState::Empty),
            (KeyMetadata::Unsupported, None) => {
                return Ok(SlotState::Unknown {
                    reason: format!(
                        "it holds no certificate, and firmware {} cannot say whether it holds a key (GET METADATA needs firmware 5.3)",
                        self.firmware
                    ),
                });
            }
            (KeyMetadata::Key(m), _) => Some(m),
            (KeyMetadata::Empty | KeyMetadata::Unsupported, Some(_)) => None,
        };
        let (mut algorithm, mut public_key) = (String::from("unknown"), None);
        let mut pin_policy = None;
        let mut touch_policy = None;
        let mut origin = None;
        if let Some(m) = &meta {
            if let SlotAlgorithmId::Asymmetric(alg) = m.algorithm {
                algorithm = algorithm_name(alg).into();
            }
            if let Some((p, t)) = m.policy {
                pin_policy = PivPinPolicy::from_yubikey(p);
                touch_policy = PivTouchPolicy::from_yubikey(t);
            }
            origin = m.origin.map(|o| match o {
                piv::Origin::Generated => KeyOrigin::Generated,
                piv::Origin::Imported => KeyOrigin::Imported,
            });
            public_key = m
                .public
                .as_ref()
                .and_then(|spki| spki.to_der().ok())
                .and_then(|der| VerifyingKey::from_public_key_der(&der).ok());
        }
        let mut label = None;
        if let Some(c) = &cert {
            let tbs = c.tbs_certificate();
            label = tbs.subject().common_name().ok().flatten().map(String::from);
            if meta.is_none() && self.firmware.has_metadata() {
                // The card says no key is there: only a certificate.
                algorithm = "none (certificate only)".into();
            } else if meta.is_none() {
                public_key = tbs
                    .subject_public_key_info()
                    .to_der()
                    .ok()
                    .and_then(|der| VerifyingKey::from_public_key_der(&der).ok());
                if public_key.is_some() {
                    algorithm = "ecdsa-p256".into();
                }
            }
        }
        Ok(SlotState::Filled(SlotInfo {
            slot: slot.to_string(),
            algorithm,
            key_id: public_key.as_ref().map(key_id).transpose()?,
            public_key,
            pin_policy,
            touch_policy,
            origin,
            label,
            certificate: cert.is_some(),
            uri: self.slot_uri(slot).to_string(),
            piv_slot: slot,
        }))
    }

    /// The key in `slot`, if the card shows one (read without the PIN); read errors are
    /// returned, never taken for an empty slot.
    pub fn slot(&self, slot: PivSlot) -> Result<Option<SlotInfo>> {
        Ok(match self.slot_state(slot)? {
            SlotState::Filled(info) => Some(info),
            SlotState::Empty | SlotState::Unknown { .. } => None,
        })
    }

    /// Refuses a slot that holds a key, or may hold one, unless `force`. Returns what `force`
    /// would destroy (None when the card shows the slot empty).
    pub fn check_slot_free(&self, slot: PivSlot, force: bool) -> Result<Option<String>> {
        match self.slot_state(slot)? {
            SlotState::Empty => Ok(None),
            SlotState::Filled(info) => {
                let detail = format!("{} `{}`", info.algorithm, info.display_label());
                if force {
                    Ok(Some(detail))
                } else {
                    Err(Error::SlotInUse {
                        slot: slot.to_string(),
                        device: self.describe(),
                        detail,
                    })
                }
            }
            SlotState::Unknown { reason } => {
                if force {
                    Ok(Some(format!("whatever it holds ({reason})")))
                } else {
                    Err(Error::SlotMayBeInUse {
                        slot: slot.to_string(),
                        device: self.describe(),
                        reason,
                    })
                }
            }
        }
    }

    /// Every filled key slot, and the slots that could not be read.
    pub fn slots(&self) -> (Vec<SlotInfo>, Vec<UnreadableSlot>) {
        let mut filled = Vec::new();
        let mut unreadable = Vec::new();
        for slot in PivSlot::all() {
            match self.slot(slot) {
                Ok(Some(info)) => filled.push(info),
                Ok(None) => {}
                Err(e) => unreadable.push(UnreadableSlot {
                    slot: slot.to_string(),
                    error: e.to_string(),
                }),
            }
        }
        (filled, unreadable)
    }

    /// Everything `token list` shows, read without the PIN and without using a try.
    pub fn info(&self) -> Result<DeviceInfo> {
        let pin = self.pin_state().ok();
        let puk = self.puk_state().ok().flatten();
        let (alg, mgm_default) = match self.management_key_state() {
            Ok((alg, default)) => (Some(alg), default),
            Err(_) => (None, None),
        };
        let (slots, unreadable_slots) = self.slots();
        Ok(DeviceInfo {
            serial: self.serial,
            firmware: self.firmware,
            reader: self.reader.clone(),
            uri: self.uri().to_string(),
            pin,
            puk,
            management_key_algorithm: alg
                .filter(|_| self.firmware.has_metadata())
                .map(|a| mgm_alg_name(a).to_owned()),
            management_key_default: mgm_default,
            management_key_protected: self.management_key_protected(),
            ysa_2024_03: self.firmware.ysa_2024_03(),
            slots,
            unreadable_slots,
        })
    }

    fn check_retries(&self, state: RetryState, what: &str, pins: &PinSources<'_>) -> Result<()> {
        if state.remaining == 0 {
            return Err(Error::PivBlocked {
                what: what.into(),
                device: self.describe(),
            });
        }
        if state.remaining == 1 && !pins.last_pin_attempt {
            return Err(Error::PinFinalTry {
                token: format!("{} ({what}: 1 retry left)", self.describe()),
            });
        }
        Ok(())
    }

    fn verify_once(&self, pin: &Pin) -> Result<()> {
        let bytes = pin.expose().as_bytes();
        if bytes.len() < 6 || bytes.len() > 8 {
            return Err(Error::Invalid(format!(
                "a YubiKey PIN has 6 to 8 characters; the PIN given for {} has {}; nothing was tried",
                self.describe(),
                bytes.len()
            )));
        }
        match self.yk.borrow_mut().verify_pin(bytes) {
            Ok(()) => Ok(()),
            Err(yubikey::Error::WrongPin { tries: 0 }) | Err(yubikey::Error::PinLocked) => Err(pin
                .wrong(
                    self.describe(),
                    "0 retries left: the PIN is now blocked".into(),
                )),
            Err(yubikey::Error::WrongPin { tries }) => Err(pin.wrong(
                self.describe(),
                format!(
                    "{tries} PIN {} left",
                    if tries == 1 { "retry" } else { "retries" }
                ),
            )),
            Err(e) => Err(self.fail("verifying the PIN")(e)),
        }
    }

    /// Verifies the PIN once per command: reads the retry counter first, refuses a blocked PIN
    /// and (without `--last-pin-attempt`) a PIN with one retry left, then sends the PIN from
    /// `pin_source` or `pins` exactly once.
    pub fn login(&self, pins: &PinSources<'_>, pin_source: Option<&Path>) -> Result<()> {
        if self.logged_in() {
            return Ok(());
        }
        let state = self.pin_state()?;
        self.check_retries(state, "PIN", pins)?;
        if state
            .total
            .map_or(state.remaining < 3, |total| state.remaining < total)
        {
            pins.prompter.notifier().notice(&Notice::PinRetriesLow {
                token: self.describe(),
                remaining: Some(state.remaining),
            });
        }
        let pin = pins.pin_for(&self.describe(), pin_source)?;
        self.verify_once(&pin)?;
        *self.pin.borrow_mut() = Some(pin);
        Ok(())
    }

    /// Verifies the factory PIN, only when the card's metadata says the PIN is still the
    /// factory one (so no try can be lost); for `token setup`.
    pub fn login_factory(&self, pins: &PinSources<'_>) -> Result<()> {
        if self.logged_in() {
            return Ok(());
        }
        let state = self.pin_state()?;
        if state.factory_default != Some(true) {
            return Err(Error::Invalid(format!(
                "{} does not report a factory PIN; the factory PIN is never tried blindly",
                self.describe()
            )));
        }
        self.check_retries(state, "PIN", pins)?;
        let pin = Pin::new(FACTORY_PIN.into());
        self.verify_once(&pin)?;
        *self.pin.borrow_mut() = Some(pin);
        Ok(())
    }

    /// Sends the PIN verified earlier in this command again (PIN-always keys need it before
    /// every operation). No-op before a login.
    pub fn reverify(&self) -> Result<()> {
        let pin = self.pin.borrow().clone();
        match pin {
            Some(pin) => self.verify_once(&pin),
            None => Ok(()),
        }
    }

    fn mgm_from_bytes(&self, bytes: &[u8], what: &str) -> Result<MgmKey> {
        let (alg, _) = self.management_key_state()?;
        let expected = match alg {
            MgmAlgorithmId::ThreeDes | MgmAlgorithmId::Aes192 => 24,
            MgmAlgorithmId::Aes128 => 16,
            MgmAlgorithmId::Aes256 => 32,
        };
        if bytes.len() != expected {
            return Err(Error::ManagementKey {
                device: self.describe(),
                reason: format!(
                    "{what} holds {} bytes, but the card's management key is {} ({expected} bytes)",
                    bytes.len(),
                    mgm_alg_name(alg)
                ),
            });
        }
        MgmKey::from_bytes(bytes, Some(alg)).map_err(|e| Error::ManagementKey {
            device: self.describe(),
            reason: format!("{what} is not a usable {} key: {e}", mgm_alg_name(alg)),
        })
    }

    fn authenticate_with(&self, key: &MgmKey, what: &str) -> Result<()> {
        self.yk
            .borrow_mut()
            .authenticate(key)
            .map_err(|e| Error::ManagementKey {
                device: self.describe(),
                reason: format!("the card refused {what} ({e}); nothing was changed"),
            })?;
        self.mgm_authenticated.set(true);
        Ok(())
    }

    /// Authenticates with the management key, taken from (in order) the URI's
    /// `management-key-source` file (hex), the PIN-protected copy on the card (needs the PIN,
    /// so the device logs in first), or a prompt. The factory key is never tried.
    pub fn authenticate(&self, pins: &PinSources<'_>, uri: &YubiKeyUri) -> Result<()> {
        if self.mgm_authenticated.get() {
            return Ok(());
        }
        if let Some(path) = &uri.management_key_source {
            let text = Zeroizing::new(String::from_utf8(crate::trustdir::read(path)?).map_err(
                |_| Error::ManagementKey {
                    device: self.describe(),
                    reason: format!("{} is not text", path.display()),
                },
            )?);
            let first = text.lines().next().unwrap_or_default();
            let bytes = parse_hex_key(first).ok_or_else(|| Error::ManagementKey {
                device: self.describe(),
                reason: format!(
                    "{} does not hold a hex key on its first line",
                    path.display()
                ),
            })?;
            let what = format!("the management key from {}", path.display());
            let key = self.mgm_from_bytes(&bytes, &what)?;
            return self.authenticate_with(&key, &what);
        }
        if self.management_key_protected() {
            self.login(pins, uri.pin_source.as_deref())?;
            let key = MgmKey::get_protected(&mut self.yk.borrow_mut()).map_err(|e| {
                Error::ManagementKey {
                    device: self.describe(),
                    reason: format!("cannot read the PIN-protected management key: {e}"),
                }
            })?;
            return self.authenticate_with(&key, "the PIN-protected management key");
        }
        let (_, default) = self.management_key_state()?;
        let prompt = format!("management key (hex) for {}", self.describe());
        match pins.prompter.secret(&prompt)? {
            Some(text) if !text.expose().trim().is_empty() => {
                let bytes = parse_hex_key(text.expose()).ok_or_else(|| Error::ManagementKey {
                    device: self.describe(),
                    reason: "the management key entered is not hex".into(),
                })?;
                let key = self.mgm_from_bytes(&bytes, "the management key entered")?;
                self.authenticate_with(&key, "the management key entered")
            }
            _ => Err(Error::ManagementKey {
                device: self.describe(),
                reason: if default == Some(true) {
                    "the card still has the factory management key, which rootkeeper never uses on its own; run `rootkeeper token setup` first".into()
                } else {
                    "no management-key-source in the URI, none stored PIN-protected on the card, and no terminal to ask on".into()
                },
            }),
        }
    }

    /// Authenticates with the factory management key, only when the card's metadata says it
    /// is still set; for `token setup`.
    pub fn authenticate_factory(&self) -> Result<()> {
        let (alg, default) = self.management_key_state()?;
        if default != Some(true) {
            return Err(Error::Invalid(format!(
                "{} does not report a factory management key; the factory key is never tried blindly",
                self.describe()
            )));
        }
        let key =
            MgmKey::from_bytes(FACTORY_MGM_KEY, Some(alg)).map_err(|e| Error::ManagementKey {
                device: self.describe(),
                reason: e.to_string(),
            })?;
        self.authenticate_with(&key, "the factory management key")
    }

    /// Generates a P-256 key in `slot` with the given policies and stores a self-signed
    /// certificate (CN = `label`) next to it. Needs [`login`](Self::login) and
    /// [`authenticate`](Self::authenticate) first. Refuses a filled slot unless `force`.
    pub fn generate(
        &self,
        slot: PivSlot,
        label: &str,
        pin_policy: PivPinPolicy,
        touch_policy: PivTouchPolicy,
        force: bool,
        notifier: &dyn Notifier,
    ) -> Result<SlotInfo> {
        self.check_slot_free(slot, force)?;
        if !self.mgm_authenticated.get() {
            return Err(Error::ManagementKey {
                device: self.describe(),
                reason: "not authenticated".into(),
            });
        }
        let id = slot_id(slot)?;
        let spki = piv::generate(
            &mut self.yk.borrow_mut(),
            id,
            AlgorithmId::EccP256,
            pin_policy.to_yubikey(),
            touch_policy.to_yubikey(),
        )
        .map_err(self.fail(format!("generating a P-256 key in slot {slot}")))?;
        let der = spki.to_der().map_err(|e| Error::Key {
            what: format!("new key in slot {slot} of {}", self.describe()),
            reason: e.to_string(),
        })?;
        let public_key = VerifyingKey::from_public_key_der(&der).map_err(|e| Error::Key {
            what: format!("new key in slot {slot} of {}", self.describe()),
            reason: e.to_string(),
        })?;
        self.self_sign(slot, label, spki, &public_key, touch_policy, notifier)?;
        self.slot(slot)?.ok_or_else(|| Error::Piv {
            device: self.describe(),
            operation: format!("reading slot {slot} back"),
            reason: "the slot is empty after generating".into(),
        })
    }

    /// Imports a P-256 key held in memory into `slot` (`key generate --in-memory`, `backup
    /// restore`, `key import`), with the given policies, and stores a self-signed certificate
    /// (CN = `label`) signed by the imported key on the card, so that other PIV tools see it.
    /// Needs [`login`](Self::login) and [`authenticate`](Self::authenticate) first. A filled
    /// slot is refused (an import never overwrites). The card then reports the key as
    /// imported (firmware 5.3 and later) and cannot attest it. Afterwards the slot must give
    /// back the same public key (from its metadata or the certificate).
    pub fn import(
        &self,
        slot: PivSlot,
        label: &str,
        key: &crate::backend::memory::MemorySigner,
        pin_policy: PivPinPolicy,
        touch_policy: PivTouchPolicy,
        notifier: &dyn Notifier,
    ) -> Result<SlotInfo> {
        self.check_slot_free(slot, false)?;
        if !self.mgm_authenticated.get() {
            return Err(Error::ManagementKey {
                device: self.describe(),
                reason: "not authenticated".into(),
            });
        }
        let public_key = *key.public_key();
        let what = format!("imported key in slot {slot} of {}", self.describe());
        let spki_der = public_key.to_public_key_der().map_err(|e| Error::Key {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
            .map_err(|e| Error::Key {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let id = slot_id(slot)?;
        {
            // Exactly 32 bytes: the crate computes the padding from the length.
            let scalar = key.scalar();
            piv::import_ecc_key(
                &mut self.yk.borrow_mut(),
                id,
                AlgorithmId::EccP256,
                scalar.as_slice(),
                touch_policy.to_yubikey(),
                pin_policy.to_yubikey(),
            )
            .map_err(self.fail(format!("importing a P-256 key into slot {slot}")))?;
        }
        self.self_sign(slot, label, spki, &public_key, touch_policy, notifier)?;
        let info = self.slot(slot)?.ok_or_else(|| Error::Piv {
            device: self.describe(),
            operation: format!("reading slot {slot} back"),
            reason: "the slot is empty after importing".into(),
        })?;
        if info.public_key != Some(public_key) {
            return Err(Error::Key {
                what,
                reason: "the card gives back another public key than the one imported".into(),
            });
        }
        Ok(info)
    }

    fn self_sign(
        &self,
        slot: PivSlot,
        label: &str,
        spki: x509_cert::spki::SubjectPublicKeyInfoOwned,
        public_key: &VerifyingKey,
        touch_policy: PivTouchPolicy,
        notifier: &dyn Notifier,
    ) -> Result<()> {
        let what = format!("certificate for slot {slot} of {}", self.describe());
        let err = |reason: String| Error::Key {
            what: what.clone(),
            reason,
        };
        let subject =
            Name::from_str(&format!("CN={}", dn_escape(label))).map_err(|e| err(e.to_string()))?;
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).map_err(|e| err(e.to_string()))?;
        if let Some(first) = serial.first_mut() {
            // A positive serial with no leading zero byte.
            *first = (*first & 0x7f) | 0x40;
        }
        let now = SystemTime::now();
        let not_after = now
            .checked_add(Duration::from_secs(20 * 365 * 86400))
            .ok_or_else(|| err("the clock is too far in the future".into()))?;
        let validity = Validity::new(
            Time::try_from(now).map_err(|e| err(e.to_string()))?,
            Time::try_from(not_after).map_err(|e| err(e.to_string()))?,
        );
        self.reverify()?;
        if let Some(notice) = touch_policy.notice(self.serial) {
            notifier.notice(&notice);
        }
        let cert = yubikey::Certificate::generate_self_signed::<_, p256::NistP256>(
            &mut self.yk.borrow_mut(),
            slot_id(slot)?,
            SerialNumber::new(&serial).map_err(|e| err(e.to_string()))?,
            validity,
            subject,
            spki,
            |_| Ok(()),
        )
        .map_err(self.fail(format!(
            "signing and storing the certificate of slot {slot}"
        )))?;
        // The certificate was signed on the card: check it with p256 before trusting it.
        let tbs = cert
            .cert
            .tbs_certificate()
            .to_der()
            .map_err(|e| err(e.to_string()))?;
        let sig = p256::ecdsa::DerSignature::from_bytes(cert.cert.signature().raw_bytes())
            .map_err(|e| err(e.to_string()))?;
        signature::Verifier::verify(public_key, &tbs, &sig)
            .map_err(|_| Error::BadSignature { key: what.clone() })?;
        Ok(())
    }

    /// The slot's attestation certificate (INS F9) and the device certificate (slot f9), DER.
    pub fn attest(&self, slot: PivSlot) -> Result<(Vec<u8>, Vec<u8>)> {
        let attestation = piv::attest(&mut self.yk.borrow_mut(), slot_id(slot)?).map_err(|e| {
            Error::Attestation {
                what: self.slot_uri(slot).to_string(),
                reason: format!(
                    "the card gave no attestation ({e}); a YubiKey attests only keys generated on it"
                ),
            }
        })?;
        let device = yubikey::Certificate::read(&mut self.yk.borrow_mut(), SlotId::Attestation)
            .map_err(|e| Error::Attestation {
                what: self.slot_uri(slot).to_string(),
                reason: format!("cannot read the device attestation certificate (slot f9): {e}"),
            })?;
        let device_der = device.cert.to_der().map_err(|e| Error::Attestation {
            what: self.slot_uri(slot).to_string(),
            reason: e.to_string(),
        })?;
        Ok((attestation.to_vec(), device_der))
    }

    /// Changes the PIN from the one verified in this command (the device must be logged in).
    pub fn change_pin(&self, new: &Pin) -> Result<()> {
        check_new_secret(new, "PIN", FACTORY_PIN)?;
        let current = self.pin.borrow().clone().ok_or_else(|| {
            Error::Invalid(format!(
                "{}: log in before changing the PIN",
                self.describe()
            ))
        })?;
        self.yk
            .borrow_mut()
            .change_pin(current.expose().as_bytes(), new.expose().as_bytes())
            .map_err(self.fail("changing the PIN"))?;
        *self.pin.borrow_mut() = Some(new.clone());
        Ok(())
    }

    /// Changes the PUK. `current` None means the factory PUK, used only when the card's
    /// metadata says it is still set. The PUK retry counter is read first.
    pub fn change_puk(
        &self,
        current: Option<&Pin>,
        new: &Pin,
        pins: &PinSources<'_>,
    ) -> Result<()> {
        check_new_secret(new, "PUK", FACTORY_PUK)?;
        let state = self.puk_state()?;
        if let Some(state) = state {
            self.check_retries(state, "PUK", pins)?;
        }
        let factory;
        let current = match current {
            Some(c) => c,
            None => {
                if state.and_then(|s| s.factory_default) != Some(true) {
                    return Err(Error::Invalid(format!(
                        "{} does not report a factory PUK; give the current PUK (--current-puk-file)",
                        self.describe()
                    )));
                }
                factory = Pin::new(FACTORY_PUK.into());
                &factory
            }
        };
        match self
            .yk
            .borrow_mut()
            .change_puk(current.expose().as_bytes(), new.expose().as_bytes())
        {
            Ok(()) => Ok(()),
            Err(yubikey::Error::WrongPin { tries }) => Err(Error::WrongPin {
                token: format!("{} (PUK)", self.describe()),
                state: format!("{tries} PUK retries left"),
            }),
            Err(e) => Err(self.fail("changing the PUK")(e)),
        }
    }

    /// Replaces the management key with a random one (AES-192 on firmware 5.7 and later,
    /// 3DES before, as ykman does) stored PIN-protected on the card. Needs the PIN and the
    /// current management key. Returns the new key in hex, for an optional backup.
    pub fn set_random_protected_management_key(&self) -> Result<Zeroizing<String>> {
        if !self.mgm_authenticated.get() || !self.logged_in() {
            return Err(Error::Invalid(format!(
                "{}: the PIN and the current management key are needed first",
                self.describe()
            )));
        }
        let alg = if (self.firmware.major, self.firmware.minor) >= (5, 7) {
            MgmAlgorithmId::Aes192
        } else {
            MgmAlgorithmId::ThreeDes
        };
        let key = loop {
            let mut bytes = Zeroizing::new([0u8; 24]);
            getrandom::fill(bytes.as_mut())
                .map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
            // 3DES rejects weak keys; draw again in that (negligible) case.
            if let Ok(key) = MgmKey::from_bytes(bytes.as_ref(), Some(alg)) {
                break (key, Zeroizing::new(hex::encode(bytes.as_ref())));
            }
        };
        self.reverify()?;
        key.0
            .set_protected(&mut self.yk.borrow_mut())
            .map_err(self.fail("storing the new PIN-protected management key"))?;
        // Prove the new key works before reporting success.
        self.mgm_authenticated.set(false);
        self.authenticate_with(&key.0, "the new management key")?;
        Ok(key.1)
    }
}

fn check_new_secret(new: &Pin, what: &str, factory: &str) -> Result<()> {
    let len = new.expose().len();
    if !(6..=8).contains(&len) || !new.expose().is_ascii() {
        return Err(Error::Invalid(format!(
            "a new YubiKey {what} must be 6 to 8 ASCII characters (got {len})"
        )));
    }
    if new.expose() == factory {
        return Err(Error::Invalid(format!(
            "the new {what} is the factory {what}; choose another"
        )));
    }
    Ok(())
}

fn dn_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Signs with the P-256 key in a slot of an open YubiKey.
pub struct PivSigner {
    device: Rc<Device>,
    slot: PivSlot,
    public_key: VerifyingKey,
    pin_policy: Option<PivPinPolicy>,
    touch_policy: Option<PivTouchPolicy>,
    uri: String,
    notifier: std::rc::Rc<dyn Notifier>,
}

impl std::fmt::Debug for PivSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PivSigner").field("uri", &self.uri).finish()
    }
}

impl PivSigner {
    /// A signer for the key `info` describes on `device`; touch notices go to `notifier`,
    /// just before each signature that waits for one.
    pub fn new(
        device: Rc<Device>,
        info: &SlotInfo,
        notifier: Rc<dyn Notifier>,
    ) -> Result<PivSigner> {
        let public_key = info.public_key.ok_or_else(|| Error::Key {
            what: info.uri.clone(),
            reason: format!(
                "holds a {} key; rootkeeper signs with P-256 only",
                info.algorithm
            ),
        })?;
        Ok(PivSigner {
            slot: info.piv_slot(),
            public_key,
            pin_policy: info.pin_policy,
            touch_policy: info.touch_policy,
            uri: info.uri.clone(),
            device,
            notifier,
        })
    }

    /// True when each signature needs a touch.
    pub fn needs_touch(&self) -> bool {
        self.touch_policy.is_some_and(PivTouchPolicy::needs_touch)
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

impl Signer for PivSigner {
    fn public_key(&self) -> &VerifyingKey {
        &self.public_key
    }

    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Signature> {
        if self.pin_policy != Some(PivPinPolicy::Never) {
            self.device.reverify()?;
        }
        let slot = slot_id(self.slot)?;
        if let Some(notice) = self.touch_policy.and_then(|t| t.notice(self.device.serial)) {
            self.notifier.notice(&notice);
        }
        let der = piv::sign_data(
            &mut self.device.yk.borrow_mut(),
            digest,
            AlgorithmId::EccP256,
            slot,
        )
        .map_err(|e| match e {
            yubikey::Error::AuthenticationError => Error::Piv {
                device: self.device.describe(),
                operation: format!("signing with slot {}", self.slot),
                reason:
                    "the card refused: the PIN was not verified or the touch did not come in time"
                        .into(),
            },
            e => Error::Piv {
                device: self.device.describe(),
                operation: format!("signing with slot {}", self.slot),
                reason: e.to_string(),
            },
        })?;
        Signature::from_der(&der)
            .or_else(|_| Signature::from_slice(&der))
            .map_err(|_| Error::BadSignature {
                key: self.uri.clone(),
            })
    }

    fn describe(&self) -> String {
        self.uri.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_advisory() {
        assert!(Firmware::parse("5.4.3").unwrap().ysa_2024_03());
        assert!(Firmware::parse("5.6.9").unwrap().ysa_2024_03());
        assert!(!Firmware::parse("5.7.0").unwrap().ysa_2024_03());
        assert!(!Firmware::parse("5.7.4").unwrap().ysa_2024_03());
        assert!(!Firmware::parse("4.3.7").unwrap().ysa_2024_03());
        assert_eq!(Firmware::parse("5.7.1").unwrap().to_string(), "5.7.1");
        assert!(Firmware::parse("5.7").is_none());
        assert!(Firmware::parse("5.7.1.2").is_none());
    }

    #[test]
    fn hex_keys() {
        assert_eq!(
            parse_hex_key("0x0102 0304\n").unwrap().as_slice(),
            &[1, 2, 3, 4]
        );
        assert!(parse_hex_key("xyz").is_none());
    }

    #[test]
    fn new_secrets_are_checked() {
        assert!(check_new_secret(&Pin::new("123456".into()), "PIN", FACTORY_PIN).is_err());
        assert!(check_new_secret(&Pin::new("12345".into()), "PIN", FACTORY_PIN).is_err());
        assert!(check_new_secret(&Pin::new("123456789".into()), "PIN", FACTORY_PIN).is_err());
        assert!(check_new_secret(&Pin::new("471193".into()), "PIN", FACTORY_PIN).is_ok());
    }

    #[test]
    fn virtual_readers_are_refused_by_default() {
        // The variable is unset in unit tests unless a developer exports it.
        if std::env::var_os(ALLOW_VIRTUAL_ENV).is_none() {
            assert!(!virtual_readers_allowed());
        }
    }
}
