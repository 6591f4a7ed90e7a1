//! serde deserialization from the wire format, driven by the [`Reader`].

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

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
            Event::ArrayStart(n) | Event::SetStart(n) => {
                let mut seq = Seq { de: self, left: n };
                let v = visitor.visit_seq(&mut seq)?;
                if seq.left > 0 {
                    return Err(self.mismatch("an array with more elements than expected"));
                }
                Ok(v)
            }
            Event::ObjectStart(n) | Event::MapStart(n) => {
                let mut map = Map { de: self, left: n };
                let v = visitor.visit_map(&mut map)?;
                if map.left > 0 {
                    return Err(self.mismatch("a map with more entries than expected"));
                }
                Ok(v)
            }
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
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de, '_> {
    type Error = DecodeError;
    #[inline]
    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<Option<S::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
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

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de, '_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        let ev = self.next()?;
        self.visit(ev, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
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

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}
