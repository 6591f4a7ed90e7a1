//! serde deserialization from the wire format, driven by the [`Reader`].

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::cbor;
use super::error::{DecodeError, DecodeErrorKind as K};
use super::reader::{Event, Reader};
use crate::Buffer;

impl de::Error for DecodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        DecodeError::new(K::Mismatch, 0, msg.to_string())
    }
}

pub(crate) fn decode<T: de::DeserializeOwned>(
    bytes: &[u8],
    buffers: &[Buffer],
) -> Result<T, DecodeError> {
    let mut reader = Reader::without_header(bytes, buffers, 0);
    reader.read_header()?;
    // Re-reading shared references may not multiply the work without bound.
    let mut budget = bytes.len().saturating_mul(8).saturating_add(1024);
    let mut d = Deserializer {
        r: &mut reader,
        peeked: None,
        budget: &mut budget,
        replays: 0,
        key_fields: None,
    };
    let v = T::deserialize(&mut d).map_err(|e| d.locate(e))?;
    d.r.finish()?;
    Ok(v)
}

struct Deserializer<'de, 'b> {
    r: &'b mut Reader<'de>,
    peeked: Option<Event<'de>>,
    budget: &'b mut usize,
    /// How many references are being read again around this reader.
    replays: u32,
    /// While a struct's key is being deserialized: the struct's field names (a key
    /// equal to one of them needs no UTF-8 validation).
    key_fields: Option<&'static [&'static str]>,
}

/// The most references that may be read again inside one another.
const MAX_REPLAYS: u32 = 16;

type R<T> = Result<T, DecodeError>;

impl<'de> Deserializer<'de, '_> {
    /// Gives a serde error (offset 0) the reader's position.
    fn locate(&self, e: DecodeError) -> DecodeError {
        if e.kind() == K::Mismatch && e.offset() == 0 {
            DecodeError::new(K::Mismatch, self.r.offset(), e.detail().to_owned())
        } else {
            e
        }
    }

    #[inline]
    fn next(&mut self) -> R<Event<'de>> {
        if let Some(ev) = self.peeked.take() {
            return Ok(ev);
        }
        if *self.budget == 0 {
            return Err(DecodeError::new(
                K::Malformed,
                self.r.offset(),
                "shared references expand too much to deserialize",
            ));
        }
        *self.budget -= 1;
        self.r.next()
    }

    /// Whether a fast path may read the next item: nothing is peeked and the budget
    /// allows one more event (a fast path that reads an item then spends it).
    #[inline(always)]
    fn fast_ok(&self) -> bool {
        self.peeked.is_none() && *self.budget > 0
    }

    /// Spends the budget of one event read by a fast path.
    #[inline(always)]
    fn spend(&mut self) {
        *self.budget -= 1;
    }

    /// Fast path: an integer (fitting `i64`) in a plain position.
    #[inline(always)]
    fn fast_int(&mut self) -> Option<i64> {
        if !self.fast_ok() {
            return None;
        }
        let i = self.r.fast_int()?;
        self.spend();
        Some(i)
    }

    /// Fast path: a text string, as an object key or as a plain value (`key_first`
    /// says which to try first). A key equal to one of `key_fields` is returned as
    /// that (static) field name, without validating it again.
    #[inline(always)]
    fn fast_text(&mut self, key_first: bool) -> Option<&'de str> {
        if !self.fast_ok() {
            return None;
        }
        let s = if key_first {
            match self.fast_key() {
                Some(s) => s,
                None => self.r.fast_str()?,
            }
        } else {
            match self.r.fast_str() {
                Some(s) => s,
                None => self.fast_key()?,
            }
        };
        self.spend();
        Some(s)
    }

    #[inline(always)]
    fn fast_key(&mut self) -> Option<&'de str> {
        let fields = self.key_fields.take();
        self.r.fast_key(|bytes| {
            if let Some(fields) = fields {
                for &f in fields {
                    if same_bytes(f.as_bytes(), bytes) {
                        return Some(f);
                    }
                }
            }
            std::str::from_utf8(bytes).ok()
        })
    }

    /// Fast path: an untagged array (`major` 4) or object (`major` 5) head in a
    /// plain position.
    #[inline(always)]
    fn fast_container(&mut self, major: u8) -> Option<usize> {
        if !self.fast_ok() {
            return None;
        }
        let n = self.r.fast_container(major)?;
        self.spend();
        Some(n)
    }

    fn visit_map_of<V: Visitor<'de>>(
        &mut self,
        n: usize,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> R<V::Value> {
        let mut map = Map {
            de: self,
            left: n,
            fields,
        };
        let v = visitor.visit_map(&mut map)?;
        if map.left > 0 {
            return Err(self.mismatch("a map with more entries than expected"));
        }
        Ok(v)
    }

    fn visit_seq_of<V: Visitor<'de>>(&mut self, n: usize, visitor: V) -> R<V::Value> {
        let mut seq = Seq { de: self, left: n };
        let v = visitor.visit_seq(&mut seq)?;
        if seq.left > 0 {
            return Err(self.mismatch("an array with more elements than expected"));
        }
        Ok(v)
    }

    /// The next event that is a value itself (shareable marks are looked through).
    fn value_event(&mut self) -> R<Event<'de>> {
        loop {
            match self.next()? {
                Event::Shareable(_) => continue,
                ev => return Ok(ev),
            }
        }
    }

    fn mismatch(&self, what: &str) -> DecodeError {
        DecodeError::new(
            K::Mismatch,
            self.r.offset(),
            format!("{what} cannot be deserialized with serde"),
        )
    }

    fn visit<V: Visitor<'de>>(&mut self, ev: Event<'de>, visitor: V) -> R<V::Value> {
        match ev {
            Event::Undefined | Event::Null | Event::Hole => visitor.visit_unit(),
            Event::Bool(b) => visitor.visit_bool(b),
            Event::Int(i) => visitor.visit_i64(i),
            Event::Float(f) | Event::Date(f) => visitor.visit_f64(f),
            Event::BigInt {
                negative,
                magnitude,
            } => {
                if magnitude.len() > 16 {
                    return Err(self.mismatch("a BigInt beyond 128 bits"));
                }
                let mut m: u128 = 0;
                for &b in magnitude.iter() {
                    m = (m << 8) | u128::from(b);
                }
                if !negative {
                    match u64::try_from(m) {
                        Ok(v) => visitor.visit_u64(v),
                        Err(_) => visitor.visit_u128(m),
                    }
                } else if m <= 1 << 63 {
                    visitor.visit_i64((m as i64).wrapping_neg())
                } else if m <= 1 << 127 {
                    visitor.visit_i128((m as i128).wrapping_neg())
                } else {
                    Err(self.mismatch("a BigInt below i128::MIN"))
                }
            }
            Event::Str(s) | Event::Key(s) => visitor.visit_borrowed_str(s),
            Event::Utf16(_) => Err(self.mismatch("a string with lone surrogates")),
            Event::Buffer(b) => visitor.visit_borrowed_bytes(b.as_slice()),
            Event::ArrayStart(n) | Event::SetStart(n) => self.visit_seq_of(n, visitor),
            Event::ObjectStart(n) | Event::MapStart(n) => self.visit_map_of(n, None, visitor),
            ev @ (Event::RegExp { .. }
            | Event::Error { .. }
            | Event::View { .. }
            | Event::Boxed
            | Event::Shareable(_)
            | Event::SharedRef(_)) => self.visit_cold(ev, visitor),
            Event::Port(_) => Err(self.mismatch("a MessagePort")),
        }
    }

    /// The rarer kinds, kept out of `visit` so that its stack frame stays small
    /// (deeply nested input recurses through it).
    #[inline(never)]
    fn visit_cold<V: Visitor<'de>>(&mut self, ev: Event<'de>, visitor: V) -> R<V::Value> {
        match ev {
            Event::RegExp { source, flags } => visitor.visit_map(de::value::MapDeserializer::new(
                [("source", source), ("flags", flags)].into_iter(),
            )),
            Event::Error {
                name,
                message,
                stack,
                has_cause,
            } => {
                let mut fields: Vec<(&'static str, Field<'de>)> =
                    vec![("name", Field::Str(name.as_str()))];
                if let Some(m) = message {
                    fields.push(("message", Field::Str(m)));
                }
                if let Some(s) = stack {
                    fields.push(("stack", Field::Str(s)));
                }
                if has_cause {
                    fields.push(("cause", Field::Cause));
                }
                visitor.visit_map(ErrorFields {
                    de: self,
                    fields: fields.into_iter(),
                    pending: None,
                })
            }
            Event::View {
                kind,
                byte_offset,
                length,
            } => {
                let bytes = match self.value_event()? {
                    Event::Buffer(b) => b.as_slice(),
                    Event::SharedRef(id) => self.shared_bytes(id)?,
                    _ => return Err(self.mismatch("a view without a buffer")),
                };
                let start = byte_offset as usize;
                let end = start + length as usize * kind.element_size();
                visitor.visit_borrowed_bytes(&bytes[start..end])
            }
            Event::Boxed => {
                let ev = self.value_event()?;
                self.visit(ev, visitor)
            }
            Event::Shareable(_) => {
                let ev = self.value_event()?;
                self.visit(ev, visitor)
            }
            Event::SharedRef(id) => {
                if self.r.is_open(id) {
                    return Err(self.mismatch("a cyclic reference"));
                }
                if self.replays >= MAX_REPLAYS {
                    return Err(
                        self.mismatch("references nested more than 16 deep through references")
                    );
                }
                let mut sub_reader = self.r.replay(id)?;
                let mut sub = Deserializer {
                    r: &mut sub_reader,
                    peeked: None,
                    budget: &mut *self.budget,
                    replays: self.replays + 1,
                    key_fields: None,
                };
                let ev = sub.value_event()?;
                sub.visit(ev, visitor)
            }
            _ => Err(self.mismatch("this event")),
        }
    }

    /// The bytes of shared buffer `id` (the reader has checked it is a buffer).
    fn shared_bytes(&mut self, id: u32) -> R<&'de [u8]> {
        let mut sub_reader = self.r.replay(id)?;
        let mut sub = Deserializer {
            r: &mut sub_reader,
            peeked: None,
            budget: &mut *self.budget,
            replays: self.replays + 1,
            key_fields: None,
        };
        match sub.value_event()? {
            Event::Buffer(b) => Ok(b.as_slice()),
            _ => Err(DecodeError::new(
                K::BadReference,
                self.r.offset(),
                "the buffer of a view is not a buffer",
            )),
        }
    }
}

/// `a == b`, inline (field names are short: a call to `memcmp` costs more).
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

enum Field<'de> {
    Str(&'de str),
    Cause,
}

struct ErrorFields<'a, 'de, 'b> {
    de: &'a mut Deserializer<'de, 'b>,
    fields: std::vec::IntoIter<(&'static str, Field<'de>)>,
    pending: Option<Field<'de>>,
}

impl<'de> de::MapAccess<'de> for ErrorFields<'_, 'de, '_> {
    type Error = DecodeError;
    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<Option<S::Value>> {
        match self.fields.next() {
            Some((k, f)) => {
                self.pending = Some(f);
                seed.deserialize(k.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<S::Value> {
        match self.pending.take() {
            Some(Field::Str(s)) => seed.deserialize(de::value::BorrowedStrDeserializer::new(s)),
            _ => seed.deserialize(&mut *self.de),
        }
    }
}

struct Seq<'a, 'de, 'b> {
    de: &'a mut Deserializer<'de, 'b>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de, '_> {
    type Error = DecodeError;
    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<Option<S::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(1024))
    }
}

struct Map<'a, 'de, 'b> {
    de: &'a mut Deserializer<'de, 'b>,
    left: usize,
    /// The field names, when a struct is read.
    fields: Option<&'static [&'static str]>,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de, '_> {
    type Error = DecodeError;
    #[inline]
    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<Option<S::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.de.key_fields = self.fields;
        let k = seed.deserialize(&mut *self.de);
        self.de.key_fields = None;
        k.map(Some)
    }
    #[inline]
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<S::Value> {
        seed.deserialize(&mut *self.de)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(1024))
    }
}

struct Enum<'a, 'de, 'b> {
    de: &'a mut Deserializer<'de, 'b>,
}

impl<'de> de::EnumAccess<'de> for Enum<'_, 'de, '_> {
    type Error = DecodeError;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> R<(S::Value, Self)> {
        let v = seed.deserialize(&mut *self.de)?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Enum<'_, 'de, '_> {
    type Error = DecodeError;
    fn unit_variant(self) -> R<()> {
        de::Deserialize::deserialize(&mut *self.de)
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> R<S::Value> {
        seed.deserialize(&mut *self.de)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> R<V::Value> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }
}

/// `deserialize_*` methods for numbers: an integer in a plain position is read
/// directly (and visited as `visit_i64`, like every integer event); anything else
/// goes through `deserialize_any`.
macro_rules! fast_int {
    ($($method:ident)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
            match self.fast_int() {
                Some(i) => visitor.visit_i64(i),
                None => self.deserialize_any(visitor),
            }
        }
    )*};
}

/// `deserialize_*` methods for strings and identifiers: a text string (key or plain
/// value) is read directly and visited as a borrowed `str`; anything else goes
/// through `deserialize_any`.
macro_rules! fast_text {
    ($($method:ident($key_first:expr))*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
            match self.fast_text($key_first) {
                Some(s) => visitor.visit_borrowed_str(s),
                None => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de, '_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        let ev = self.next()?;
        self.visit(ev, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        if self.fast_ok() {
            if self.r.fast_null() {
                self.spend();
                return visitor.visit_none();
            }
            if self.r.untagged_value_due() {
                // Its event is the value itself: let the content read it.
                return visitor.visit_some(self);
            }
        }
        match self.value_event()? {
            Event::Null | Event::Undefined | Event::Hole => visitor.visit_none(),
            ev => {
                self.peeked = Some(ev);
                visitor.visit_some(self)
            }
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        match self.value_event()? {
            Event::Str(s) => visitor.visit_enum(s.into_deserializer()),
            Event::ObjectStart(1) => visitor.visit_enum(Enum { de: self }),
            _ => Err(self.mismatch("this value as an enum (a string or a one-entry object is)")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> R<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        if let Some(ev) = self.peeked.take() {
            return self.visit(ev, visitor);
        }
        self.r.skip_value()?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    fast_int! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64
    }
    fast_text! {
        deserialize_str(false) deserialize_string(false) deserialize_identifier(true)
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        match self.fast_container(cbor::MAJOR_MAP) {
            Some(n) => self.visit_map_of(n, Some(fields), visitor),
            None => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.fast_container(cbor::MAJOR_MAP) {
            Some(n) => self.visit_map_of(n, None, visitor),
            None => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.fast_container(cbor::MAJOR_ARRAY) {
            Some(n) => self.visit_seq_of(n, visitor),
            None => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> R<V::Value> {
        self.deserialize_seq(visitor)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> R<V::Value> {
        self.deserialize_seq(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool char bytes byte_buf unit unit_struct
    }
}
