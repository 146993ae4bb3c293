//! Client side of vsmartcard's vpcd protocol: the card connects to pcscd's `libifdvpcd` over
//! TCP (one connection per reader slot) and answers framed messages:
//! a 2-byte big-endian length, then either a 1-byte control code (0 power off, 1 power on,
//! 2 reset, 4 get ATR) or a C-APDU, which is answered with an R-APDU in the same framing.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use crate::card::{Card, YUBIKEY5_ATR};

/// vpcd port of reader "Virtual PCD 00 00"; reader `n` listens on `FIRST_PORT + n`.
pub const FIRST_PORT: u16 = 35963;

/// Something that happened on the vpcd link, reported to the caller's hook.
#[derive(Debug)]
pub enum Event<'a> {
    /// Connected to vpcd (the card is "inserted").
    Connected,
    /// vpcd closed the connection (pcscd stopped); the client will reconnect.
    Disconnected,
    /// A control byte (0 off, 1 on, 2 reset, 4 ATR).
    Control(u8),
    /// An APDU and the card's response.
    Apdu {
        /// Command APDU as received.
        command: &'a [u8],
        /// Response APDU as sent (data + SW).
        response: &'a [u8],
    },
}

/// Stops a running [`serve`] loop from another thread.
#[derive(Debug, Default)]
pub struct Stopper {
    stop: AtomicBool,
    current: Mutex<Option<TcpStream>>,
}

impl Stopper {
    /// Requests the loop to end and closes its connection, which "removes" the card.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stream) = current.as_ref() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Connects to vpcd at `addr` and serves `card` until `stopper` is stopped. Connection
/// failures (pcscd not up yet) and disconnects (pcscd restarted) are retried every 100 ms;
/// each new connection is a fresh insertion, so volatile card state is dropped.
pub fn serve(
    addr: SocketAddr,
    card: &Mutex<Card>,
    stopper: &Stopper,
    hook: &mut dyn FnMut(&Card, Event<'_>),
) -> io::Result<()> {
    while !stopper.is_stopped() {
        let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            thread::sleep(Duration::from_millis(100));
            continue;
        };
        stream.set_nodelay(true)?;
        *stopper
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(stream.try_clone()?);
        if stopper.is_stopped() {
            break;
        }
        {
            let mut card = card.lock().unwrap_or_else(PoisonError::into_inner);
            card.power_cycle();
            hook(&card, Event::Connected);
        }
        let result = serve_connection(stream, card, hook);
        *stopper
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let card = card.lock().unwrap_or_else(PoisonError::into_inner);
        hook(&card, Event::Disconnected);
        if let Err(err) = result {
            if stopper.is_stopped() {
                break;
            }
            if !matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ) {
                return Err(err);
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Serves one vpcd connection until vpcd closes it (returns `Ok`) or an I/O error occurs.
pub fn serve_connection(
    mut stream: impl Read + Write,
    card: &Mutex<Card>,
    hook: &mut dyn FnMut(&Card, Event<'_>),
) -> io::Result<()> {
    loop {
        let mut header = [0u8; 2];
        match stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err),
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(header))];
        stream.read_exact(&mut msg)?;
        let mut card = card.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = match msg.as_slice() {
            [] => None,
            [code] => {
                hook(&card, Event::Control(*code));
                match code {
                    0..=2 => {
                        card.power_cycle();
                        None
                    }
                    4 => Some(YUBIKEY5_ATR.to_vec()),
                    _ => None,
                }
            }
            command => {
                let response = card.handle(command);
                hook(
                    &card,
                    Event::Apdu {
                        command,
                        response: &response,
                    },
                );
                Some(response)
            }
        };
        drop(card);
        if let Some(reply) = reply {
            let len = u16::try_from(reply.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response too long"))?;
            let mut frame = len.to_be_bytes().to_vec();
            frame.extend_from_slice(&reply);
            stream.write_all(&frame)?;
        }
    }
}
