//! `piv-emu`: serves one emulated YubiKey PIV card to pcscd's vpcd driver until killed.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    sync::Mutex,
};

use piv_emu::{
    Card, CardState, EmulatorCa,
    attestation::DEFAULT_CA_SEED,
    card::Fault,
    harness::TouchDir,
    vpcd::{self, Event, Stopper},
};

const USAGE: &str = "\
usage: piv-emu [options]
Serves one emulated YubiKey 5 PIV card (P-256 only) to pcscd's vpcd driver until killed.

  --port N           vpcd port: 35963 = \"Virtual PCD 00 00\", 35964 = \"... 00 01\" [35963]
  --host ADDR        vpcd address [127.0.0.1]
  --serial N         serial number [12345678]
  --firmware X.Y.Z   firmware version; 5.7.0+ defaults the management key to AES-192 [5.4.3]
  --ca-seed TEXT     seed of the emulator attestation CA [piv-emu default attestation CA]
  --ca-seed-hex HEX  the same, as hex bytes
  --ca-out PATH      write the attestation CA certificate (PEM) to PATH
  --ca-dir DIR       write it to DIR/piv-emu-ca.pem
  --state FILE       load card state from FILE (JSON) if it exists; save it after every change
  --fault SPEC       fail a read with 6F00: metadata:SLOT or get-data:OBJECT (hex); repeatable
  --touch-dir DIR    wait for DIR/touch-N before touch N (log in DIR/log) instead of granting
  -v, --verbose      log control bytes and APDUs to stderr
  -h, --help         this help
";

struct Args {
    addr: SocketAddr,
    serial: u32,
    firmware: (u8, u8, u8),
    ca_seed: Vec<u8>,
    ca_out: Vec<PathBuf>,
    state: Option<PathBuf>,
    faults: Vec<Fault>,
    touch_dir: Option<PathBuf>,
    verbose: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut port = vpcd::FIRST_PORT;
    let mut args = Args {
        addr: SocketAddr::from((host, port)),
        serial: 12_345_678,
        firmware: (5, 4, 3),
        ca_seed: DEFAULT_CA_SEED.to_vec(),
        ca_out: Vec::new(),
        state: None,
        faults: Vec::new(),
        touch_dir: None,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "-v" | "--verbose" => args.verbose = true,
            "--port" => port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--host" => host = value()?.parse().map_err(|e| format!("--host: {e}"))?,
            "--serial" => args.serial = value()?.parse().map_err(|e| format!("--serial: {e}"))?,
            "--firmware" => args.firmware = parse_version(&value()?)?,
            "--ca-seed" => args.ca_seed = value()?.into_bytes(),
            "--ca-seed-hex" => args.ca_seed = parse_hex(&value()?)?,
            "--ca-out" => args.ca_out.push(value()?.into()),
            "--ca-dir" => args
                .ca_out
                .push(PathBuf::from(value()?).join("piv-emu-ca.pem")),
            "--state" => args.state = Some(value()?.into()),
            "--fault" => args.faults.push(value()?.parse()?),
            "--touch-dir" => args.touch_dir = Some(value()?.into()),
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    args.addr = SocketAddr::from((host, port));
    Ok(Some(args))
}

fn parse_version(s: &str) -> Result<(u8, u8, u8), String> {
    let parts: Vec<u8> = s
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--firmware {s:?}: {e}"))?;
    match parts[..] {
        [a, b, c] if a == 4 || a == 5 => Ok((a, b, c)),
        _ => Err(format!("--firmware {s:?}: expected 4.x.y or 5.x.y")),
    }
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return Err(format!("bad hex {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("bad hex {s:?}: {e}")))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_card(args: &Args, ca: &EmulatorCa) -> Result<Card, String> {
    let Some(path) = args.state.as_ref().filter(|p| p.exists()) else {
        return Ok(Card::new(args.serial, args.firmware, ca));
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let state: CardState =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if (state.serial, state.firmware) != (args.serial, args.firmware) {
        return Err(format!(
            "{}: holds serial {} firmware {:?}, not {} {:?}",
            path.display(),
            state.serial,
            state.firmware,
            args.serial,
            args.firmware
        ));
    }
    Ok(Card::from_state(state, ca))
}

fn run(args: Args) -> Result<(), String> {
    let ca = EmulatorCa::from_seed(&args.ca_seed);
    for path in &args.ca_out {
        ca.write_pem(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut card = load_card(&args, &ca)?;
    card.set_faults(args.faults.clone());
    if let Some(dir) = &args.touch_dir {
        let dir = TouchDir::new(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        card.set_touch_button(dir.button());
    }
    let card = Mutex::new(card);
    let mut saved = String::new();
    let verbose = args.verbose;
    let state_path = args.state.clone();
    let mut hook = |card: &Card, event: Event<'_>| {
        if verbose {
            match event {
                Event::Control(4) => {}
                Event::Apdu { command, response } => {
                    eprintln!("> {}\n< {}", hex(command), hex(response))
                }
                other => eprintln!("piv-emu: {other:?}"),
            }
        }
        if let Some(path) = &state_path {
            let json = serde_json::to_string_pretty(card.state()).expect("serializable state");
            if json != saved {
                let tmp = path.with_extension("tmp");
                match std::fs::write(&tmp, &json).and_then(|()| std::fs::rename(&tmp, path)) {
                    Ok(()) => saved = json,
                    Err(e) => eprintln!("piv-emu: cannot save state to {}: {e}", path.display()),
                }
            }
        }
    };
    if verbose {
        eprintln!(
            "piv-emu: serial {} firmware {:?} on vpcd {}",
            args.serial, args.firmware, args.addr
        );
    }
    let stopper = Stopper::default();
    vpcd::serve(args.addr, &card, &stopper, &mut hook)
        .map_err(|e| format!("vpcd {}: {e}", args.addr))
}

fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(args)) => run(args),
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("piv-emu: {err}");
            ExitCode::from(2)
        }
    }
}
