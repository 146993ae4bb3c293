//! Shamir's secret sharing over GF(256) with the polynomial x⁸+x⁴+x³+x²+1 (0x11d), byte by
//! byte: the scheme of Debian's `gfsplit`/`gfcombine` (libgfshare), so that shares recombine
//! with the stock tool. A share is its x coordinate (1…255, the `.NNN` of a gfshare file name)
//! and one y byte per secret byte (the gfshare file's contents).
//!
//! The arithmetic is branch-free and table-free (no secret-dependent memory access); every
//! coefficient and intermediate lives in zeroizing buffers; randomness comes from the operating
//! system and a failure to get it is an error, never a panic.

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// One share: `x` in 1…255 and the y bytes.
pub(crate) struct Share {
    pub x: u8,
    pub y: Zeroizing<Vec<u8>>,
}

/// Multiplication in GF(2⁸) modulo 0x11d, in constant time.
fn mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut product) = (a, b, 0u8);
    for _ in 0..8 {
        product ^= a & (b & 1).wrapping_neg();
        let carry = (a >> 7).wrapping_neg();
        a = a.wrapping_mul(2) ^ (0x1d & carry);
        b >>= 1;
    }
    product
}

/// The inverse in GF(2⁸): a²⁵⁴, by a fixed square-and-multiply chain. `inv(0)` is 0.
fn inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: a^2 · a^4 · … · a^128.
    let mut square = mul(a, a);
    let mut result = 1u8;
    for _ in 0..7 {
        result = mul(result, square);
        square = mul(square, square);
    }
    result
}

/// Splits `secret` into `count` shares at x = 1…count, any `threshold` of which recombine it.
pub(crate) fn split(secret: &[u8], threshold: u8, count: u8) -> Result<Vec<Share>> {
    if threshold < 2 || count < threshold {
        return Err(Error::Invalid(format!(
            "a {threshold}-of-{count} split is not possible: need 2 <= M <= N <= 255"
        )));
    }
    let degree = usize::from(threshold.saturating_sub(1));
    let mut coefficients = Zeroizing::new(vec![0u8; secret.len().saturating_mul(degree)]);
    getrandom::fill(coefficients.as_mut_slice())
        .map_err(|e| Error::Invalid(format!("no randomness from the operating system: {e}")))?;
    let mut shares = Vec::with_capacity(usize::from(count));
    for x in 1..=count {
        let mut y = Zeroizing::new(Vec::with_capacity(secret.len()));
        for (byte, coeffs) in secret.iter().zip(coefficients.chunks_exact(degree)) {
            // Horner: ((c_{m-1}·x + c_{m-2})·x + … + c_1)·x + secret.
            let mut acc = 0u8;
            for c in coeffs.iter().rev() {
                acc = mul(acc, x) ^ c;
            }
            y.push(mul(acc, x) ^ byte);
        }
        shares.push(Share { x, y });
    }
    Ok(shares)
}

/// Recombines the secret from shares with distinct, non-zero x and equal lengths (checked).
/// With fewer shares than the threshold the result is unrelated random bytes: the caller
/// checks the count, and checks the secret it gets.
pub(crate) fn combine(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>> {
    let len = shares.first().map(|s| s.y.len()).unwrap_or(0);
    for (i, share) in shares.iter().enumerate() {
        if share.x == 0 || share.y.len() != len {
            return Err(Error::Invalid(
                "a share has x = 0 or the wrong length".into(),
            ));
        }
        if shares
            .iter()
            .skip(i.saturating_add(1))
            .any(|s| s.x == share.x)
        {
            return Err(Error::Invalid(format!("share {} is given twice", share.x)));
        }
    }
    // Lagrange basis at 0: l_i = Π_{j≠i} x_j / (x_j − x_i); subtraction is XOR.
    let weights: Zeroizing<Vec<u8>> = Zeroizing::new(
        shares
            .iter()
            .map(|si| {
                shares
                    .iter()
                    .filter(|sj| sj.x != si.x)
                    .fold(1u8, |acc, sj| mul(acc, mul(sj.x, inv(sj.x ^ si.x))))
            })
            .collect(),
    );
    let mut secret = Zeroizing::new(vec![0u8; len]);
    for (share, weight) in shares.iter().zip(weights.iter()) {
        for (out, y) in secret.iter_mut().zip(share.y.iter()) {
            *out ^= mul(*y, *weight);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow reference multiplication (carry-less multiply, then reduce by 0x11d).
    fn mul_reference(a: u8, b: u8) -> u8 {
        let mut wide: u16 = 0;
        for bit in 0..8 {
            if b & (1 << bit) != 0 {
                wide ^= u16::from(a) << bit;
            }
        }
        for bit in (8..16).rev() {
            if wide & (1 << bit) != 0 {
                wide ^= 0x11d << (bit - 8);
            }
        }
        wide as u8
    }

    #[test]
    fn field_arithmetic_matches_the_reference() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), mul_reference(a, b), "{a} * {b}");
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a)), 1, "inverse of {a}");
            }
        }
        // 0x11d's generator table starts 1, 2, 4, ..., 0x80, 0x1d (as in libgfshare).
        assert_eq!(mul(0x80, 2), 0x1d);
    }

    #[test]
    fn every_threshold_subset_recombines() {
        let secret = b"AGE-SECRET-KEY-1 test secret, not a real one";
        let shares = split(secret, 3, 5).unwrap();
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let pick: Vec<Share> = [a, b, c]
                        .iter()
                        .map(|&i| Share {
                            x: shares[i].x,
                            y: shares[i].y.clone(),
                        })
                        .collect();
                    assert_eq!(combine(&pick).unwrap().as_slice(), secret);
                }
            }
        }
        let two: Vec<Share> = shares[..2]
            .iter()
            .map(|s| Share {
                x: s.x,
                y: s.y.clone(),
            })
            .collect();
        assert_ne!(combine(&two).unwrap().as_slice(), secret);
    }

    #[test]
    fn bad_share_sets_are_refused() {
        assert!(split(b"s", 1, 3).is_err());
        assert!(split(b"s", 4, 3).is_err());
        let dup = [
            Share {
                x: 1,
                y: Zeroizing::new(vec![1]),
            },
            Share {
                x: 1,
                y: Zeroizing::new(vec![2]),
            },
        ];
        assert!(combine(&dup).is_err());
        let zero = [Share {
            x: 0,
            y: Zeroizing::new(vec![1]),
        }];
        assert!(combine(&zero).is_err());
    }
}
