//! Minimal BER-TLV helpers (single-byte tags except where noted, definite lengths).

/// Appends the BER length encoding of `len` to `out`.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

/// Encodes one TLV with a one- or two-byte tag (`tag > 0xff` writes two bytes).
pub fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 5);
    if tag > 0xff {
        out.extend_from_slice(&tag.to_be_bytes());
    } else {
        out.push(tag as u8);
    }
    push_len(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

/// Reads one TLV with a one-byte tag from `buf`; returns `(tag, value, rest)`.
pub fn read(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (first as usize, rest),
        0x81 => (*rest.first()? as usize, &rest[1..]),
        0x82 if rest.len() >= 2 => (((rest[0] as usize) << 8) | rest[1] as usize, &rest[2..]),
        _ => return None,
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Parses a sequence of one-byte-tag TLVs; `None` if any element is malformed.
pub fn read_all(mut buf: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut items = Vec::new();
    while !buf.is_empty() {
        let (tag, value, rest) = read(buf)?;
        items.push((tag, value));
        buf = rest;
    }
    Some(items)
}

/// Finds the value of the first TLV with `tag` in a parsed list.
pub fn find<'a>(items: &[(u8, &'a [u8])], tag: u8) -> Option<&'a [u8]> {
    items.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0usize, 5, 127, 128, 255, 256, 1000] {
            let enc = tlv(0x53, &vec![7; len]);
            let (tag, value, rest) = read(&enc).unwrap();
            assert_eq!((tag, value.len(), rest.len()), (0x53, len, 0));
        }
        assert_eq!(tlv(0x7f49, &[1]), [0x7f, 0x49, 1, 1]);
        assert!(read(&[0x53, 0x05, 1, 2]).is_none());
    }
}
