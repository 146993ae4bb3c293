//! Benchmark helper: how long one C_Sign (CKM_ECDSA over a SHA-256 digest, what rootkeeper
//! asks every token for) takes on a SoftHSM token, measured in the caller's run so the
//! many-GUN benchmark can print its ratio to the hardware's own floor.
//!
//!     c-sign-rate 'pkcs11:token=repo;object=targets?pin-source=file:/path/pin' [COUNT]
//!
//! Prints `c_sign_ms <median milliseconds per signature over 5 batches of COUNT>`.

use std::time::Instant;

use rootkeeper::backend::Keyring;
use rootkeeper::keyuri::KeyUri;
use rootkeeper::secret::{NoPrompter, PinSources};

fn main() {
    let mut args = std::env::args().skip(1);
    let uri: KeyUri = args
        .next()
        .expect("a key URI with pin-source")
        .parse()
        .expect("a key URI");
    let count: u32 = args.next().map_or(200, |c| c.parse().expect("a count"));
    let pins = PinSources {
        pin_file: None,
        env_pin: None,
        prompter: &NoPrompter,
        last_pin_attempt: false,
    };
    let mut keyring = Keyring::new(&pins);
    let signer = keyring.signer(&uri).expect("a signer");
    let digest = [7u8; 32];
    signer.sign_digest(&digest).expect("a warm-up signature");
    let mut batches: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..count {
                signer.sign_digest(&digest).expect("a signature");
            }
            start.elapsed().as_secs_f64() * 1000.0 / f64::from(count)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    println!("c_sign_ms {:.4}", batches[2]);
}
