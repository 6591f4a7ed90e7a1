//! Low-level CBOR pieces shared by the writer, the reader and serde: heads, floats,
//! bignums, tag numbers, and a small inline stack.

use crate::Buffer;

/// Major types (RFC 8949 §3.1).
pub(crate) const MAJOR_UINT: u8 = 0;
pub(crate) const MAJOR_NINT: u8 = 1;
pub(crate) const MAJOR_BYTES: u8 = 2;
pub(crate) const MAJOR_TEXT: u8 = 3;
pub(crate) const MAJOR_ARRAY: u8 = 4;
pub(crate) const MAJOR_MAP: u8 = 5;
pub(crate) const MAJOR_TAG: u8 = 6;

pub(crate) const FALSE: u8 = 0xf4;
pub(crate) const TRUE: u8 = 0xf5;
pub(crate) const NULL: u8 = 0xf6;
pub(crate) const UNDEFINED: u8 = 0xf7;

/// The tag numbers this format uses (docs/wire-format.md, "Tags").
pub mod tag {
    /// Epoch-based date/time in seconds (RFC 8949 §3.4.2).
    pub const EPOCH_DATE: u64 = 1;
    /// Positive bignum (RFC 8949 §3.4.3).
    pub const POS_BIGNUM: u64 = 2;
    /// Negative bignum: the value is -1 - n (RFC 8949 §3.4.3).
    pub const NEG_BIGNUM: u64 = 3;
    /// Mark a value as shareable (IANA, "value sharing").
    pub const SHAREABLE: u64 = 28;
    /// Reference the n-th shareable value (IANA, "value sharing").
    pub const SHARED_REF: u64 = 29;
    /// Absent value in an array: an array hole (IANA); content is `undefined`.
    pub const ABSENT: u64 = 31;
    /// Set (IANA, finite set as an array).
    pub const SET: u64 = 258;
    /// Map with keys of any type (IANA).
    pub const MAP: u64 = 259;
    /// Private range start (the envelope; + version number).
    pub const PRIVATE_BASE: u64 = 0xCB00;
    /// The message envelope of format version 1.
    pub const ENVELOPE_V1: u64 = 0xCB01;
    /// Last tag number reserved for envelopes (versions 0..=15).
    pub const ENVELOPE_LAST: u64 = 0xCB0F;
    /// A transferred port: content is its index in the message's port list.
    pub const PORT: u64 = 0xCB10;
    /// A byte buffer in the side table: content is its index there.
    pub const SIDE_BUFFER: u64 = 0xCB11;
    /// An Error object: content is a map with text keys.
    pub const ERROR: u64 = 0xCB12;
    /// A RegExp: content is `[source, flags]`.
    pub const REGEXP: u64 = 0xCB13;
    /// A string with lone surrogates: content is a byte string of UTF-16LE code units.
    pub const UTF16: u64 = 0xCB14;
    /// A boxed primitive (`new Number(1)`): content is the primitive.
    pub const BOXED: u64 = 0xCB15;
    /// A typed array or DataView: content is `[byte_offset, length, buffer]`.
    pub const VIEW: u64 = 0xCB16;
    /// A date as a float number of milliseconds (used when tag 1 would not be exact).
    pub const DATE_MS: u64 = 0xCB17;
    /// A SharedArrayBuffer: content is the index of its side-table buffer, whose memory
    /// the sender shares. Only the Node face maps it; this crate's decoders refuse it.
    pub const SHARED_MEMORY: u64 = 0xCB18;
    /// A resizable ArrayBuffer: content is `[max_byte_length, buffer]` (the buffer a byte
    /// string or a side-table buffer). Decoded here as the buffer (Rust has no maximum).
    pub const RESIZABLE: u64 = 0xCB19;
    /// A length-tracking view (JavaScript): content is the view (tag `VIEW`), whose
    /// length is its length now. Decoded here as that view.
    pub const LENGTH_TRACKING: u64 = 0xCB1A;
    /// A sparse JavaScript array: content is `[length, {index or name: value, ...}]`.
    /// Only the Node face writes and reads it; this crate's decoders refuse it (a list of
    /// up to 2^32 - 1 holes has no Rust, C or Python form).
    pub const SPARSE_ARRAY: u64 = 0xCB1B;
}

/// The 3-byte header of a version 1 message: tag `ENVELOPE_V1`.
pub(crate) const HEADER_V1: [u8; 3] = [0xd9, 0xcb, 0x01];

/// Writes a CBOR head (major type and argument) in its shortest form.
#[inline(always)]
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    if arg < 24 {
        out.push((major << 5) | arg as u8);
    } else {
        write_long_head(out, major, arg);
    }
}

/// `write_head` for arguments of 24 and more.
#[inline(never)]
fn write_long_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg <= 0xff {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= 0xffff {
        let b = (arg as u16).to_be_bytes();
        out.extend_from_slice(&[m | 25, b[0], b[1]]);
    } else if arg <= 0xffff_ffff {
        let b = (arg as u32).to_be_bytes();
        out.extend_from_slice(&[m | 26, b[0], b[1], b[2], b[3]]);
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// The shortest head for `arg`, as bytes (for patching).
pub(crate) fn head_bytes(major: u8, arg: u64) -> ([u8; 9], usize) {
    let mut v = Vec::with_capacity(9);
    write_head(&mut v, major, arg);
    let mut b = [0u8; 9];
    b[..v.len()].copy_from_slice(&v);
    (b, v.len())
}

#[inline]
pub(crate) fn write_tag(out: &mut Vec<u8>, tag: u64) {
    write_head(out, MAJOR_TAG, tag);
}

#[inline]
pub(crate) fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_head(out, MAJOR_UINT, v as u64);
    } else {
        write_head(out, MAJOR_NINT, !(v as u64));
    }
}

#[inline]
pub(crate) fn write_text(out: &mut Vec<u8>, s: &str) {
    write_head(out, MAJOR_TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[inline]
pub(crate) fn write_byte_string(out: &mut Vec<u8>, b: &[u8]) {
    write_head(out, MAJOR_BYTES, b.len() as u64);
    out.extend_from_slice(b);
}

/// Writes `bits` (an f64) in the shortest of f16 / f32 / f64 that gives back exactly the
/// same 64 bits (NaN payloads included).
#[inline]
pub(crate) fn write_float(out: &mut Vec<u8>, v: f64) {
    let bits = v.to_bits();
    if let Some(h) = f64_to_f16_exact(bits) {
        let b = h.to_be_bytes();
        out.extend_from_slice(&[0xf9, b[0], b[1]]);
    } else if let Some(s) = f64_to_f32_exact(bits) {
        let b = s.to_be_bytes();
        out.extend_from_slice(&[0xfa, b[0], b[1], b[2], b[3]]);
    } else {
        out.push(0xfb);
        out.extend_from_slice(&bits.to_be_bytes());
    }
}

/// Writes a BigInt as tag 2 / tag 3 over its magnitude (big-endian, no leading zeros).
/// A negative zero is written as zero.
pub(crate) fn write_bigint(out: &mut Vec<u8>, negative: bool, magnitude: &[u8]) {
    let first = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let mag = &magnitude[first..];
    if !negative || mag.is_empty() {
        write_tag(out, tag::POS_BIGNUM);
        write_byte_string(out, mag);
        return;
    }
    // Tag 3 holds n = magnitude - 1.
    write_tag(out, tag::NEG_BIGNUM);
    let mut n = mag.to_vec();
    for b in n.iter_mut().rev() {
        if *b == 0 {
            *b = 0xff;
        } else {
            *b -= 1;
            break;
        }
    }
    let first = n.iter().position(|&b| b != 0).unwrap_or(n.len());
    write_byte_string(out, &n[first..]);
}

/// Writes a `u64` that does not fit `i64` as a positive bignum.
pub(crate) fn write_u128(out: &mut Vec<u8>, v: u128) {
    if let Ok(i) = i64::try_from(v) {
        write_int(out, i);
    } else {
        write_bigint(out, false, &v.to_be_bytes());
    }
}

/// Writes an `i128`: a CBOR integer when it fits `i64`, a bignum otherwise.
pub(crate) fn write_i128(out: &mut Vec<u8>, v: i128) {
    if let Ok(i) = i64::try_from(v) {
        write_int(out, i);
    } else {
        write_bigint(out, v < 0, &v.unsigned_abs().to_be_bytes());
    }
}

/// Writes a Date: tag 1 (seconds) when `seconds * 1000.0` gives back exactly the same
/// f64, otherwise the private tag DATE_MS over the milliseconds.
pub(crate) fn write_date(out: &mut Vec<u8>, ms: f64) {
    if !ms.is_nan() {
        let s = ms / 1000.0;
        if (s * 1000.0).to_bits() == ms.to_bits() {
            write_tag(out, tag::EPOCH_DATE);
            if s.fract() == 0.0
                && s.abs() < 9_007_199_254_740_992.0
                && !(s == 0.0 && s.is_sign_negative())
            {
                write_int(out, s as i64);
            } else {
                write_float(out, s);
            }
            return;
        }
    }
    write_tag(out, tag::DATE_MS);
    write_float(out, ms);
}

/// Writes a string given as UTF-16 code units: a text string when they are valid
/// UTF-16, tag UTF16 over the little-endian units otherwise.
pub(crate) fn write_utf16(out: &mut Vec<u8>, units: &[u16]) {
    match String::from_utf16(units) {
        Ok(s) => write_text(out, &s),
        Err(_) => {
            write_tag(out, tag::UTF16);
            write_head(out, MAJOR_BYTES, units.len() as u64 * 2);
            out.reserve(units.len() * 2);
            for u in units {
                out.extend_from_slice(&u.to_le_bytes());
            }
        }
    }
}

/// Writes a RegExp.
pub(crate) fn write_regexp(out: &mut Vec<u8>, source: &str, flags: &str) {
    write_tag(out, tag::REGEXP);
    out.push(0x82);
    write_text(out, source);
    write_text(out, flags);
}

/// Writes an Error up to its cause (which follows when `has_cause`).
pub(crate) fn write_error(
    out: &mut Vec<u8>,
    name: crate::ErrorName,
    message: Option<&str>,
    stack: Option<&str>,
    has_cause: bool,
) {
    write_tag(out, tag::ERROR);
    let n = 1 + u64::from(message.is_some()) + u64::from(stack.is_some()) + u64::from(has_cause);
    write_head(out, MAJOR_MAP, n);
    write_text(out, "name");
    write_text(out, name.as_str());
    if let Some(m) = message {
        write_text(out, "message");
        write_text(out, m);
    }
    if let Some(s) = stack {
        write_text(out, "stack");
        write_text(out, s);
    }
    if has_cause {
        write_text(out, "cause");
    }
}

/// Writes a view up to its buffer (which follows).
pub(crate) fn write_view(out: &mut Vec<u8>, kind: crate::ViewKind, byte_offset: u64, length: u64) {
    write_tag(out, tag::VIEW);
    out.push(0x83);
    write_head(out, MAJOR_UINT, byte_offset);
    write_head(out, MAJOR_UINT, length);
    if let Some(t) = super::view_kind_tag(kind) {
        write_tag(out, t);
    }
}

/// Writes a byte buffer inline, or into the side table when `len >= inline_limit`.
pub(crate) fn write_bytes_or_side(
    out: &mut Vec<u8>,
    buffers: &mut Vec<Buffer>,
    inline_limit: usize,
    bytes: &[u8],
    to_buffer: impl FnOnce() -> Buffer,
) -> Result<(), crate::DataCloneError> {
    if bytes.len() < inline_limit {
        write_byte_string(out, bytes);
        Ok(())
    } else {
        write_side(out, buffers, to_buffer())
    }
}

/// Writes a side-table reference, pushing `buf` to the side table.
pub(crate) fn write_side(
    out: &mut Vec<u8>,
    buffers: &mut Vec<Buffer>,
    buf: Buffer,
) -> Result<(), crate::DataCloneError> {
    let index = u32::try_from(buffers.len())
        .map_err(|_| crate::DataCloneError::new("too many buffers in one message"))?;
    write_tag(out, tag::SIDE_BUFFER);
    write_head(out, MAJOR_UINT, u64::from(index));
    buffers.push(buf);
    Ok(())
}

/// The f16 bits that denote exactly the f64 `bits`, if any.
pub(crate) fn f64_to_f16_exact(bits: u64) -> Option<u16> {
    let sign = ((bits >> 48) & 0x8000) as u16;
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let mant = bits & 0x000f_ffff_ffff_ffff;
    if exp == 0x7ff {
        // Infinity or NaN: the payload must fit 10 bits.
        if mant & ((1 << 42) - 1) != 0 {
            return None;
        }
        return Some(sign | 0x7c00 | (mant >> 42) as u16);
    }
    if exp == 0 && mant == 0 {
        return Some(sign);
    }
    let e = exp - 1023;
    if (-14..=15).contains(&e) {
        if mant & ((1 << 42) - 1) != 0 {
            return None;
        }
        return Some(sign | (((e + 15) as u16) << 10) | (mant >> 42) as u16);
    }
    if (-24..-14).contains(&e) {
        // f16 subnormal: value = m * 2^-24 with m in 1..1024.
        let v = f64::from_bits(bits & !(1 << 63)) * 16_777_216.0;
        if v.fract() == 0.0 && v < 1024.0 {
            return Some(sign | v as u16);
        }
    }
    None
}

/// The f32 bits that denote exactly the f64 `bits`, if any (NaN payloads included).
pub(crate) fn f64_to_f32_exact(bits: u64) -> Option<u32> {
    let v = f64::from_bits(bits);
    if v.is_nan() {
        let mant = bits & 0x000f_ffff_ffff_ffff;
        if mant & ((1 << 29) - 1) != 0 {
            return None;
        }
        let sign = ((bits >> 32) & 0x8000_0000) as u32;
        return Some(sign | 0x7f80_0000 | (mant >> 29) as u32);
    }
    let f = v as f32;
    if (f as f64).to_bits() == bits {
        Some(f.to_bits())
    } else {
        None
    }
}

/// The f64 equal to the f16 `h` (NaN payloads kept).
pub(crate) fn f16_to_f64(h: u16) -> f64 {
    let sign = u64::from(h >> 15) << 63;
    let exp = (h >> 10) & 0x1f;
    let mant = u64::from(h & 0x3ff);
    let bits = match exp {
        0 => {
            let v = mant as f64 / 16_777_216.0;
            return if sign != 0 { -v } else { v };
        }
        0x1f => sign | (0x7ff << 52) | (mant << 42),
        _ => sign | ((u64::from(exp) + 1023 - 15) << 52) | (mant << 42),
    };
    f64::from_bits(bits)
}

/// The f64 equal to the f32 `bits` (NaN payloads kept, never quieted).
pub(crate) fn f32_to_f64(bits: u32) -> f64 {
    let f = f32::from_bits(bits);
    if f.is_nan() {
        let sign = u64::from(bits >> 31) << 63;
        let mant = u64::from(bits & 0x7f_ffff);
        f64::from_bits(sign | (0x7ff << 52) | (mant << 29))
    } else {
        f64::from(f)
    }
}

/// A stack that keeps its first few entries inline, so that small messages need no
/// allocation.
#[derive(Debug)]
pub(crate) struct Stack<T: Copy + Default> {
    inline: [T; 8],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy + Default> Stack<T> {
    pub(crate) fn new() -> Self {
        Stack {
            inline: [T::default(); 8],
            len: 0,
            spill: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn push(&mut self, v: T) {
        if self.len < 8 {
            self.inline[self.len] = v;
        } else {
            self.spill.push(v);
        }
        self.len += 1;
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        match self.len {
            0 => None,
            n if n <= 8 => {
                self.len = n - 1;
                Some(self.inline[n - 1])
            }
            _ => {
                self.len -= 1;
                self.spill.pop()
            }
        }
    }

    #[inline]
    pub(crate) fn last_mut(&mut self) -> Option<&mut T> {
        match self.len {
            0 => None,
            n if n <= 8 => Some(&mut self.inline[n - 1]),
            _ => self.spill.last_mut(),
        }
    }

    #[inline]
    pub(crate) fn last(&self) -> Option<&T> {
        match self.len {
            0 => None,
            n if n <= 8 => Some(&self.inline[n - 1]),
            _ => self.spill.last(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_shortest() {
        let cases: [(u64, &[u8]); 7] = [
            (0, &[0x00]),
            (23, &[0x17]),
            (24, &[0x18, 24]),
            (255, &[0x18, 0xff]),
            (256, &[0x19, 1, 0]),
            (65536, &[0x1a, 0, 1, 0, 0]),
            (1 << 32, &[0x1b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (arg, want) in cases {
            let mut v = Vec::new();
            write_head(&mut v, 0, arg);
            assert_eq!(v, want, "{arg}");
        }
    }

    #[test]
    fn floats_pick_the_shortest_exact_width() {
        let cases: [(f64, &[u8]); 9] = [
            (0.0, &[0xf9, 0, 0]),
            (-0.0, &[0xf9, 0x80, 0]),
            (1.5, &[0xf9, 0x3e, 0]),
            (65504.0, &[0xf9, 0x7b, 0xff]),
            (5.960464477539063e-8, &[0xf9, 0, 1]),
            (f64::INFINITY, &[0xf9, 0x7c, 0]),
            (f64::NAN, &[0xf9, 0x7e, 0]),
            (100000.0, &[0xfa, 0x47, 0xc3, 0x50, 0]),
            (1.1, &[0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]),
        ];
        for (f, want) in cases {
            let mut v = Vec::new();
            write_float(&mut v, f);
            assert_eq!(v, want, "{f}");
        }
    }

    #[test]
    fn float_conversions_keep_bits() {
        for h in 0..=u16::MAX {
            let f = f16_to_f64(h);
            assert_eq!(f64_to_f16_exact(f.to_bits()), Some(h), "{h:04x}");
        }
        for bits in [
            0x7ff0_0000_0000_0001u64,
            0xfff8_0000_2000_0000,
            0x7ff4_0000_0000_0000,
        ] {
            let f = f64::from_bits(bits);
            if let Some(s) = f64_to_f32_exact(bits) {
                assert_eq!(f32_to_f64(s).to_bits(), bits);
            }
            if let Some(h) = f64_to_f16_exact(bits) {
                assert_eq!(f16_to_f64(h).to_bits(), bits);
            }
            let _ = f;
        }
    }

    #[test]
    fn negative_bignums_store_magnitude_minus_one() {
        let mut v = Vec::new();
        write_bigint(&mut v, true, &[1, 0]); // -256 -> n = 255
        assert_eq!(v, [0xc3, 0x41, 0xff]);
        v.clear();
        write_bigint(&mut v, true, &[0, 0]); // -0 -> 0
        assert_eq!(v, [0xc2, 0x40]);
    }
}
