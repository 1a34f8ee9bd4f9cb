//! The scanner: one pass over a JSON document's bytes, validating it as
//! PostgreSQL's parser does and noting the last place the path matches.

/// The document is not valid JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Invalid;

/// Where the last match of the whole path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hit {
    Absent,
    /// `doc[s..e]` is the answer: a number, `true`/`false`, or a string's
    /// content without escapes.
    Raw(usize, usize),
    /// `doc[s..e]` is a string's content with escapes.
    Escaped(usize, usize),
    NotScalar,
}

/// What the next value is to the path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    /// Its key matched a key on the way: a container here continues the path.
    OnPath,
    /// Its key matched the last key: this is (so far) the answer.
    Target,
}

/// One bit per open container (set: object, clear: array), for depths of
/// any size: 256 levels inline, more on the heap only when a document has them.
struct Containers {
    inline: [u64; 4],
    spill: Vec<u64>,
}

impl Containers {
    fn new() -> Self {
        Containers {
            inline: [0; 4],
            spill: Vec::new(),
        }
    }

    /// Records the container at `depth` (1-based).
    #[inline]
    fn set(&mut self, depth: usize, object: bool) {
        let i = depth - 1;
        let word = if i < 256 {
            &mut self.inline[i / 64]
        } else {
            let w = (i - 256) / 64;
            if self.spill.len() <= w {
                self.spill.resize(w + 1, 0);
            }
            &mut self.spill[w]
        };
        let bit = 1u64 << (i % 64);
        if object {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }

    /// Whether the container at `depth` (1-based) is an object.
    #[inline]
    fn is_object(&self, depth: usize) -> bool {
        let i = depth - 1;
        let word = if i < 256 {
            self.inline[i / 64]
        } else {
            self.spill[(i - 256) / 64]
        };
        word & (1u64 << (i % 64)) != 0
    }
}

#[inline]
fn skip_ws(doc: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = doc.get(i) {
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Flags (high bit of the byte) the bytes of `w` that end a run of plain
/// string content: `"`, `\` or a control character. Only the lowest flag is
/// exact (a borrow can flag a byte above it), which is the one used.
#[inline]
fn specials(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero_q = quote.wrapping_sub(ONES) & !quote;
    let zero_b = backslash.wrapping_sub(ONES) & !backslash;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (zero_q | zero_b | control) & HIGHS
}

/// The index of the closing quote of the string whose content starts at
/// `i`, and whether it has escapes (checked later by [`unescape`]).
///
/// # Errors
/// Unterminated, or a raw control character (PostgreSQL requires them escaped).
#[inline]
pub(super) fn string_end(doc: &[u8], mut i: usize) -> Result<(usize, bool), Invalid> {
    let mut escaped = false;
    loop {
        while let Some(chunk) = doc.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let m = specials(w);
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        // At a special byte, or fewer than 8 bytes from the end.
        loop {
            match doc.get(i) {
                None => return Err(Invalid),
                Some(b'"') => return Ok((i, escaped)),
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                    break;
                }
                Some(&c) if c < 0x20 => return Err(Invalid),
                Some(_) => i += 1,
            }
        }
    }
}

/// Decodes the content of a JSON string (between its quotes, without raw
/// control characters) into `out`, in pieces, as PostgreSQL does.
///
/// # Errors
/// An unknown escape, `\u` without four hex digits, `\u0000`, or a UTF-16
/// surrogate that is not a high one followed by a low one.
pub(super) fn unescape(raw: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), Invalid> {
    let mut i = 0;
    let mut high: Option<u32> = None;
    while i < raw.len() {
        if raw[i] != b'\\' {
            if high.is_some() {
                return Err(Invalid);
            }
            let end = memchr::memchr(b'\\', &raw[i..]).map_or(raw.len(), |p| i + p);
            out(&raw[i..end]);
            i = end;
            continue;
        }
        let e = *raw.get(i + 1).ok_or(Invalid)?;
        i += 2;
        let byte = match e {
            b'u' => {
                let unit = raw.get(i..i + 4).and_then(hex4).ok_or(Invalid)?;
                i += 4;
                let code = match (unit, high.take()) {
                    (0xD800..=0xDBFF, None) => {
                        high = Some(unit);
                        continue;
                    }
                    (0xDC00..=0xDFFF, Some(h)) => 0x10000 + ((h - 0xD800) << 10) + (unit - 0xDC00),
                    (0, _) | (0xD800..=0xDFFF, _) | (_, Some(_)) => return Err(Invalid),
                    (u, None) => u,
                };
                let c = char::from_u32(code).ok_or(Invalid)?;
                out(c.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            _ if high.is_some() => return Err(Invalid),
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            _ => return Err(Invalid),
        };
        out(&[byte]);
    }
    if high.is_some() {
        return Err(Invalid);
    }
    Ok(())
}

/// Four hex digits as a number.
fn hex4(h: &[u8]) -> Option<u32> {
    h.iter()
        .try_fold(0u32, |v, &c| Some(v * 16 + (c as char).to_digit(16)?))
}

/// Whether the string content `raw` (with escapes) decodes to `want`.
fn escaped_key_eq(raw: &[u8], want: &[u8]) -> Result<bool, Invalid> {
    let mut pos = 0;
    let mut same = true;
    unescape(raw, |part| {
        if same && want.len() - pos >= part.len() && want[pos..pos + part.len()] == *part {
            pos += part.len();
        } else {
            same = false;
        }
    })?;
    Ok(same && pos == want.len())
}

/// The end of the number starting at `i` (JSON's grammar, as PostgreSQL's).
#[inline]
fn number_end(doc: &[u8], mut i: usize) -> Result<usize, Invalid> {
    let digits = |mut i: usize| {
        while doc.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    if doc.get(i) == Some(&b'-') {
        i += 1;
    }
    match doc.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return Err(Invalid),
    }
    if doc.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return Err(Invalid);
        }
        i = end;
    }
    if let Some(b'e' | b'E') = doc.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = doc.get(i) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return Err(Invalid);
        }
        i = end;
    }
    Ok(i)
}

/// Scans the whole document (PostgreSQL rejects it whole if any of it is
/// invalid) and returns the last match of `keys`.
pub(super) fn scan(doc: &[u8], keys: &[Vec<u8>]) -> Result<Hit, Invalid> {
    #[derive(Clone, Copy)]
    enum Next {
        Value,
        Key,
        AfterValue,
    }
    let mut open = Containers::new();
    // Open containers, and how many of the innermost ones, counted from the
    // root, were reached through keys matching the path (`on_path == depth`:
    // the innermost one was).
    let mut depth = 0usize;
    let mut on_path = 0usize;
    let mut role = Role::Other;
    let mut hit = Hit::Absent;
    let mut i = skip_ws(doc, 0);
    let mut next = Next::Value;
    loop {
        match next {
            Next::Value => {
                let c = *doc.get(i).ok_or(Invalid)?;
                match c {
                    b'{' | b'[' => {
                        if role == Role::Target {
                            hit = Hit::NotScalar;
                        }
                        depth += 1;
                        open.set(depth, c == b'{');
                        if role == Role::OnPath || depth == 1 {
                            on_path = depth;
                        }
                        role = Role::Other;
                        i = skip_ws(doc, i + 1);
                        let close = if c == b'{' { b'}' } else { b']' };
                        if doc.get(i) == Some(&close) {
                            next = Next::AfterValue; // closed below
                            continue;
                        }
                        next = if c == b'{' { Next::Key } else { Next::Value };
                        continue;
                    }
                    b'"' => {
                        let (end, escaped) = string_end(doc, i + 1)?;
                        let raw = &doc[i + 1..end];
                        if escaped {
                            unescape(raw, |_| {})?;
                        }
                        if role == Role::Target {
                            hit = if escaped {
                                Hit::Escaped(i + 1, end)
                            } else {
                                Hit::Raw(i + 1, end)
                            };
                        }
                        i = end + 1;
                    }
                    b't' | b'f' | b'n' => {
                        let word: &[u8] = match c {
                            b't' => b"true",
                            b'f' => b"false",
                            _ => b"null",
                        };
                        if !doc[i..].starts_with(word) {
                            return Err(Invalid);
                        }
                        if role == Role::Target {
                            hit = if c == b'n' {
                                Hit::Absent
                            } else {
                                Hit::Raw(i, i + word.len())
                            };
                        }
                        i += word.len();
                    }
                    b'-' | b'0'..=b'9' => {
                        let end = number_end(doc, i)?;
                        if role == Role::Target {
                            hit = Hit::Raw(i, end);
                        }
                        i = end;
                    }
                    _ => return Err(Invalid),
                }
                role = Role::Other;
                next = Next::AfterValue;
            }
            Next::Key => {
                if doc.get(i) != Some(&b'"') {
                    return Err(Invalid);
                }
                let (end, escaped) = string_end(doc, i + 1)?;
                let raw = &doc[i + 1..end];
                let relevant = on_path == depth && depth <= keys.len();
                if relevant {
                    let want = &keys[depth - 1];
                    let same = if escaped {
                        escaped_key_eq(raw, want)?
                    } else {
                        raw == want.as_slice()
                    };
                    if same {
                        role = if depth == keys.len() {
                            Role::Target
                        } else {
                            Role::OnPath
                        };
                    }
                } else if escaped {
                    unescape(raw, |_| {})?;
                }
                i = skip_ws(doc, end + 1);
                if doc.get(i) != Some(&b':') {
                    return Err(Invalid);
                }
                i = skip_ws(doc, i + 1);
                next = Next::Value;
            }
            Next::AfterValue => {
                i = skip_ws(doc, i);
                if depth == 0 {
                    return if i == doc.len() {
                        Ok(hit)
                    } else {
                        Err(Invalid)
                    };
                }
                let object = open.is_object(depth);
                match doc.get(i) {
                    Some(b',') => {
                        i = skip_ws(doc, i + 1);
                        next = if object { Next::Key } else { Next::Value };
                    }
                    Some(b'}') if object => {
                        i += 1;
                        on_path = on_path.min(depth - 1);
                        depth -= 1;
                    }
                    Some(b']') if !object => {
                        i += 1;
                        on_path = on_path.min(depth - 1);
                        depth -= 1;
                    }
                    _ => return Err(Invalid),
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
