//! COPY text format values: decoding a field's escapes (what COPY FROM
//! would store) and escaping a value for a COPY stream.

/// The decoded value of a raw COPY field, `None` for NULL (`\N`). Fields
/// without a backslash are returned as they are, without copying.
#[inline]
pub fn decoded<'r>(field: &'r [u8], scratch: &'r mut Vec<u8>) -> Option<&'r [u8]> {
    if field == b"\\N" {
        return None;
    }
    // Key fields are mostly short: a plain loop beats a `memchr` call there.
    let escaped = if field.len() <= 16 {
        field.contains(&b'\\')
    } else {
        memchr::memchr(b'\\', field).is_some()
    };
    if !escaped {
        return Some(field);
    }
    decode_escapes(field, scratch);
    Some(scratch)
}

/// Decodes COPY text escapes into `out` (cleared first), as PostgreSQL's
/// COPY FROM does: `\b \f \n \r \t \v`, `\NNN` (1–3 octal digits), `\xHH`
/// (1–2 hex digits), and any other `\c` is `c`.
pub fn decode_escapes(field: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < field.len() {
        let Some(off) = memchr::memchr(b'\\', &field[i..]) else {
            out.extend_from_slice(&field[i..]);
            return;
        };
        out.extend_from_slice(&field[i..i + off]);
        i += off + 1;
        let Some(&c) = field.get(i) else {
            // A lone trailing backslash: COPY FROM would reject the row; keep it.
            out.push(b'\\');
            return;
        };
        i += 1;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => match field.get(i).and_then(|&d| hex_val(d)) {
                Some(h) => {
                    i += 1;
                    let mut v = h;
                    if let Some(l) = field.get(i).and_then(|&d| hex_val(d)) {
                        v = v * 16 + l;
                        i += 1;
                    }
                    out.push(v);
                }
                None => out.push(b'x'),
            },
            other => out.push(other),
        }
    }
}

#[inline]
fn hex_val(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Escapes a value for COPY text (the inverse of `decode_escapes` for what
/// PostgreSQL itself emits).
pub fn encode_copy_text(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for &b in v {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out
}
