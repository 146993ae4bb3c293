//! Fixtures for tests that drive an emulated card through a real pcscd.
//!
//! Tests must run inside a private pcscd (see `hsm-tests/piv/pcscd-ns`), which exports
//! [`ENV_PCSCD`]`=1`; mark them `#[ignore]` and fail when [`in_private_pcscd`] is false. Run such tests with
//! `--test-threads=1`: pcscd resets the card between clients, and concurrent users race.
//!
//! ```no_run
//! use piv_emu::harness::{VirtualCard, in_private_pcscd};
//! assert!(in_private_pcscd(), "run inside hsm-tests/piv/pcscd-ns");
//! let card = VirtualCard::attach(0, 12345678, (5, 4, 3)).unwrap();
//! // ... yubikey::YubiKey::open_by_serial(12345678.into()) ...
//! drop(card); // kills the emulator; pcscd sees the card removed
//! ```

use std::{
    env, io,
    io::Write as _,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::{
    Card, EmulatorCa,
    attestation::DEFAULT_CA_SEED,
    card::{Fault, TouchButton},
    vpcd::{self, Stopper},
};

/// How long the card waits for a touch before it gives up (a YubiKey waits about 15 s).
pub const TOUCH_TIMEOUT: Duration = Duration::from_secs(15);

/// A touch button pressed through files, for tests that must see *when* the card waits: when
/// an operation needs touch `N`, the card appends `wait N <unix-nanos>` to `DIR/log` and
/// waits until `DIR/touch-N` exists (then logs `touched N <unix-nanos>`) or
/// [`TOUCH_TIMEOUT`] passes (`timeout N <unix-nanos>`, and the operation fails with `6982`).
#[derive(Clone, Debug)]
pub struct TouchDir {
    dir: PathBuf,
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl TouchDir {
    /// Uses `dir` (created if missing).
    pub fn new(dir: &Path) -> io::Result<TouchDir> {
        std::fs::create_dir_all(dir)?;
        Ok(TouchDir {
            dir: dir.to_owned(),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Presses the button for touch `n`.
    pub fn press(&self, n: u64) -> io::Result<()> {
        std::fs::write(self.dir.join(format!("touch-{n}")), b"")
    }

    /// The card's log so far, one event a line (`wait N T`, `touched N T`, `timeout N T`).
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn append(&self, line: &str) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"));
        if let Ok(mut file) = file {
            let _ = writeln!(file, "{line}");
        }
    }

    /// The button for [`Card::set_touch_button`].
    pub fn button(&self) -> TouchButton {
        let me = self.clone();
        Box::new(move |n| {
            me.append(&format!("wait {n} {}", unix_nanos()));
            let flag = me.dir.join(format!("touch-{n}"));
            let deadline = Instant::now() + TOUCH_TIMEOUT;
            while Instant::now() < deadline {
                if flag.exists() {
                    me.append(&format!("touched {n} {}", unix_nanos()));
                    return true;
                }
                thread::sleep(Duration::from_millis(5));
            }
            me.append(&format!("timeout {n} {}", unix_nanos()));
            false
        })
    }
}

/// Set to `1` by `pcscd-ns`: a private pcscd with the vpcd driver is running.
pub const ENV_PCSCD: &str = "PIV_EMU_PCSCD";
/// Path of the `piv-emu` binary; when unset, it is looked up next to the test executable.
pub const ENV_BIN: &str = "PIV_EMU_BIN";

/// How long [`VirtualCard`] waits for pcscd to report the card present or removed.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether this process runs inside `pcscd-ns` (env [`ENV_PCSCD`] is `1`).
pub fn in_private_pcscd() -> bool {
    env::var(ENV_PCSCD).is_ok_and(|v| v == "1")
}

/// PC/SC name of vpcd reader `index` ("Virtual PCD 00 00", "Virtual PCD 00 01").
pub fn reader_name(index: u8) -> String {
    format!("Virtual PCD 00 {index:02}")
}

/// TCP port of vpcd reader `index` on 127.0.0.1.
pub fn vpcd_port(index: u8) -> u16 {
    vpcd::FIRST_PORT + u16::from(index)
}

/// How to start an emulated card.
#[derive(Clone, Debug)]
pub struct CardOptions {
    /// vpcd reader slot (0 or 1 with the Debian vpcd build).
    pub reader_index: u8,
    /// Serial number.
    pub serial: u32,
    /// Firmware version; 5.7+ switches the default management key to AES-192.
    pub firmware: (u8, u8, u8),
    /// Attestation CA seed (default [`DEFAULT_CA_SEED`]).
    pub ca_seed: Vec<u8>,
    /// `--state FILE` for the binary (ignored in process).
    pub state_file: Option<PathBuf>,
    /// Reads that fail (`--fault`).
    pub faults: Vec<Fault>,
    /// A [`TouchDir`] folder whose files press the touch button (`--touch-dir`); without
    /// one, every touch is granted at once.
    pub touch_dir: Option<PathBuf>,
}

impl CardOptions {
    /// Options with the default CA and no state file.
    pub fn new(reader_index: u8, serial: u32, firmware: (u8, u8, u8)) -> Self {
        let ca_seed = DEFAULT_CA_SEED.to_vec();
        CardOptions {
            reader_index,
            serial,
            firmware,
            ca_seed,
            state_file: None,
            faults: Vec::new(),
            touch_dir: None,
        }
    }
}

enum Backend {
    Process(Child),
    Thread {
        card: Arc<Mutex<Card>>,
        stopper: Arc<Stopper>,
        thread: Option<JoinHandle<()>>,
    },
}

/// An emulated card inserted into a vpcd reader; removed again on drop.
pub struct VirtualCard {
    options: CardOptions,
    reader: String,
    backend: Backend,
}

impl std::fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCard")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl VirtualCard {
    /// Spawns the `piv-emu` binary on vpcd reader `reader_index` and waits until pcscd sees it.
    pub fn attach(reader_index: u8, serial: u32, firmware: (u8, u8, u8)) -> io::Result<Self> {
        Self::spawn(CardOptions::new(reader_index, serial, firmware))
    }

    /// Spawns the `piv-emu` binary with `options` and waits until pcscd sees the card.
    pub fn spawn(options: CardOptions) -> io::Result<Self> {
        let bin = emulator_binary()?;
        let (a, b, c) = options.firmware;
        let mut cmd = Command::new(&bin);
        cmd.arg("--port")
            .arg(vpcd_port(options.reader_index).to_string())
            .arg("--serial")
            .arg(options.serial.to_string())
            .arg("--firmware")
            .arg(format!("{a}.{b}.{c}"))
            .arg("--ca-seed-hex")
            .arg(hex(&options.ca_seed))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(state) = &options.state_file {
            cmd.arg("--state").arg(state);
        }
        for fault in &options.faults {
            cmd.arg("--fault").arg(fault.to_string());
        }
        if let Some(dir) = &options.touch_dir {
            cmd.arg("--touch-dir").arg(dir);
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
        })?;
        Self::ready(options, Backend::Process(child))
    }

    /// Runs the card on a thread of this process instead (gives access via [`card`](Self::card)).
    pub fn attach_in_process(options: CardOptions) -> io::Result<Self> {
        let ca = EmulatorCa::from_seed(&options.ca_seed);
        let mut card = Card::new(options.serial, options.firmware, &ca);
        card.set_faults(options.faults.clone());
        if let Some(dir) = &options.touch_dir {
            card.set_touch_button(TouchDir::new(dir)?.button());
        }
        let card = Arc::new(Mutex::new(card));
        let stopper = Arc::new(Stopper::default());
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, vpcd_port(options.reader_index)));
        let (card2, stopper2) = (Arc::clone(&card), Arc::clone(&stopper));
        let thread = thread::Builder::new()
            .name("piv-emu".into())
            .spawn(move || {
                // Errors end the thread; `ready` then times out with a clear message.
                let _ = vpcd::serve(addr, &card2, &stopper2, &mut |_, _| {});
            })?;
        Self::ready(
            options,
            Backend::Thread {
                card,
                stopper,
                thread: Some(thread),
            },
        )
    }

    fn ready(options: CardOptions, backend: Backend) -> io::Result<Self> {
        let reader = reader_name(options.reader_index);
        let mut me = VirtualCard {
            options,
            reader,
            backend,
        };
        me.wait_for(true)?;
        Ok(me)
    }

    /// PC/SC reader name the card sits in.
    pub fn reader_name(&self) -> &str {
        &self.reader
    }

    /// The card's serial number.
    pub fn serial(&self) -> u32 {
        self.options.serial
    }

    /// The card's firmware version.
    pub fn firmware(&self) -> (u8, u8, u8) {
        self.options.firmware
    }

    /// The attestation CA the card's F9 certificate chains to.
    pub fn ca(&self) -> EmulatorCa {
        EmulatorCa::from_seed(&self.options.ca_seed)
    }

    /// The card itself (only for [`attach_in_process`](Self::attach_in_process)); do not hold
    /// the guard across PC/SC calls.
    pub fn card(&self) -> Option<MutexGuard<'_, Card>> {
        match &self.backend {
            Backend::Thread { card, .. } => {
                Some(card.lock().unwrap_or_else(PoisonError::into_inner))
            }
            Backend::Process(_) => None,
        }
    }

    /// Removes the card now and waits until pcscd reports the reader empty.
    pub fn detach(mut self) -> io::Result<()> {
        self.stop();
        self.wait_for(false)
    }

    fn stop(&mut self) {
        match &mut self.backend {
            Backend::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Backend::Thread {
                stopper, thread, ..
            } => {
                stopper.stop();
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
        }
    }

    fn exited(&mut self) -> Option<String> {
        match &mut self.backend {
            Backend::Process(child) => match child.try_wait() {
                Ok(Some(status)) => Some(format!("piv-emu exited early ({status})")),
                _ => None,
            },
            Backend::Thread { thread, .. } => thread
                .as_ref()
                .filter(|t| t.is_finished())
                .map(|_| "emulator thread ended early".to_string()),
        }
    }

    /// Polls pcscd until the reader reports the card `present` (or absent).
    fn wait_for(&mut self, present: bool) -> io::Result<()> {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| {
            io::Error::other(format!(
                "pcscd not reachable ({e}); run under hsm-tests/piv/pcscd-ns"
            ))
        })?;
        let name = std::ffi::CString::new(self.reader.clone()).map_err(io::Error::other)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut states = [pcsc::ReaderState::new(name.clone(), pcsc::State::UNAWARE)];
            if ctx.get_status_change(Duration::ZERO, &mut states).is_ok() {
                let flags = states[0].event_state();
                if present == flags.contains(pcsc::State::PRESENT)
                    && !flags.contains(pcsc::State::UNKNOWN)
                {
                    return Ok(());
                }
            }
            if present && let Some(why) = self.exited() {
                return Err(io::Error::other(why));
            }
            if Instant::now() > deadline {
                let what = if present { "insert" } else { "remove" };
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "pcscd did not see the card {what} in {:?} within {READY_TIMEOUT:?}; is pcscd running with the vpcd driver?",
                        self.reader
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        self.stop();
        let _ = self.wait_for(false);
    }
}

/// Finds the `piv-emu` binary: [`ENV_BIN`], else `piv-emu` in the target directory that
/// holds the running executable (`target/<profile>/` or its `deps/`).
pub fn emulator_binary() -> io::Result<PathBuf> {
    if let Some(path) = env::var_os(ENV_BIN) {
        return Ok(PathBuf::from(path));
    }
    let exe = env::current_exe()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("piv-emu"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "piv-emu binary not found near {}; run `cargo build -p piv-emu` or set {ENV_BIN}",
                    exe.display()
                ),
            )
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
