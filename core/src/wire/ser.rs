//! serde serialization into the wire format.

use serde::ser::{self, Serialize};

use super::cbor::{self, tag};
use super::{MAX_DEPTH, SIDE_TABLE_THRESHOLD};
use crate::{Buffer, DataCloneError};

impl ser::Error for DataCloneError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        DataCloneError::new(msg.to_string())
    }
}

pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    buffers: &mut Vec<Buffer>,
) -> Result<(), DataCloneError> {
    let (out_len, buffers_len) = (out.len(), buffers.len());
    out.extend_from_slice(&cbor::HEADER_V1);
    let mut s = Serializer {
        out,
        buffers,
        depth: 0,
    };
    let result = value.serialize(&mut s);
    if result.is_err() {
        out.truncate(out_len);
        buffers.truncate(buffers_len);
    }
    result
}

struct Serializer<'a> {
    out: &'a mut Vec<u8>,
    buffers: &'a mut Vec<Buffer>,
    depth: usize,
}

impl<'a> Serializer<'a> {
    fn enter(&mut self) -> Result<(), DataCloneError> {
        if self.depth >= MAX_DEPTH {
            return Err(DataCloneError::new(
                "nesting deeper than the depth limit (256)",
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// Starts a container: the head now if the length is known, a placeholder to
    /// patch otherwise.
    #[inline]
    fn start<'s>(
        &'s mut self,
        kind: Kind,
        len: Option<usize>,
    ) -> Result<Compound<'s, 'a>, DataCloneError> {
        self.enter()?;
        let head_at = self.out.len();
        let major = if kind == Kind::Seq {
            cbor::MAJOR_ARRAY
        } else {
            cbor::MAJOR_MAP
        };
        match len {
            Some(n) => cbor::write_head(self.out, major, n as u64),
            None => self.out.push(major << 5),
        }
        Ok(Compound {
            ser: self,
            kind,
            head_at,
            len,
            count: 0,
            any_keys: false,
            variant: false,
        })
    }

    /// `{variant: ...}` around an enum variant's content.
    fn variant(&mut self, variant: &str) -> Result<(), DataCloneError> {
        self.enter()?;
        self.out.push(0xa1);
        cbor::write_text(self.out, variant);
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Seq,
    Map,
}

pub(crate) struct Compound<'s, 'a> {
    ser: &'s mut Serializer<'a>,
    kind: Kind,
    head_at: usize,
    len: Option<usize>,
    count: u64,
    /// A map key that is not a text string was written: the map is a tag 259 Map.
    any_keys: bool,
    /// Wrapped in `{variant: ...}`.
    variant: bool,
}

impl Compound<'_, '_> {
    #[inline]
    fn end(self) -> Result<(), DataCloneError> {
        if self.len == Some(self.count as usize) && !self.any_keys {
            self.ser.depth -= 1 + usize::from(self.variant);
            return Ok(());
        }
        self.end_slow()
    }

    #[inline(never)]
    fn end_slow(self) -> Result<(), DataCloneError> {
        let major = if self.kind == Kind::Seq {
            cbor::MAJOR_ARRAY
        } else {
            cbor::MAJOR_MAP
        };
        match self.len {
            Some(n) if n as u64 != self.count => {
                return Err(DataCloneError::new("a sequence or map gave a wrong length"));
            }
            Some(_) => {}
            None => {
                let (head, n) = cbor::head_bytes(major, self.count);
                self.ser
                    .out
                    .splice(self.head_at..self.head_at + 1, head[..n].iter().copied());
            }
        }
        if self.any_keys {
            let (head, n) = cbor::head_bytes(cbor::MAJOR_TAG, tag::MAP);
            self.ser
                .out
                .splice(self.head_at..self.head_at, head[..n].iter().copied());
        }
        self.ser.depth -= 1 + usize::from(self.variant);
        Ok(())
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DataCloneError> {
        self.count += 1;
        value.serialize(&mut *self.ser)
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), DataCloneError> {
        self.count += 1;
        let at = self.ser.out.len();
        key.serialize(&mut *self.ser)?;
        if self.ser.out[at] >> 5 != cbor::MAJOR_TEXT {
            self.any_keys = true;
        }
        Ok(())
    }

    #[inline(always)]
    fn field(
        &mut self,
        key: &'static str,
        value: &(impl Serialize + ?Sized),
    ) -> Result<(), DataCloneError> {
        self.count += 1;
        cbor::write_text(self.ser.out, key);
        value.serialize(&mut *self.ser)
    }
}

type Res = Result<(), DataCloneError>;

impl<'s, 'a> ser::Serializer for &'s mut Serializer<'a> {
    type Ok = ();
    type Error = DataCloneError;
    type SerializeSeq = Compound<'s, 'a>;
    type SerializeTuple = Compound<'s, 'a>;
    type SerializeTupleStruct = Compound<'s, 'a>;
    type SerializeTupleVariant = Compound<'s, 'a>;
    type SerializeMap = Compound<'s, 'a>;
    type SerializeStruct = Compound<'s, 'a>;
    type SerializeStructVariant = Compound<'s, 'a>;

    fn serialize_bool(self, v: bool) -> Res {
        self.out.push(if v { cbor::TRUE } else { cbor::FALSE });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Res {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Res {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Res {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Res {
        cbor::write_int(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Res {
        cbor::write_i128(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Res {
        self.serialize_i64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Res {
        self.serialize_i64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Res {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Res {
        if v <= i64::MAX as u64 {
            cbor::write_head(self.out, cbor::MAJOR_UINT, v);
        } else {
            cbor::write_u128(self.out, v.into());
        }
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Res {
        cbor::write_u128(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Res {
        cbor::write_float(self.out, f64::from(v));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Res {
        cbor::write_float(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Res {
        cbor::write_text(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Res {
        cbor::write_text(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Res {
        cbor::write_bytes_or_side(self.out, self.buffers, SIDE_TABLE_THRESHOLD, v, || {
            Buffer::copy_from_slice(v)
        })
    }
    fn serialize_none(self) -> Res {
        self.out.push(cbor::NULL);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res {
        self.out.push(cbor::NULL);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Res {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Res {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Res {
        self.variant(variant)?;
        value.serialize(&mut *self)?;
        self.depth -= 1;
        Ok(())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, DataCloneError> {
        self.start(Kind::Seq, len)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, DataCloneError> {
        self.start(Kind::Seq, Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, DataCloneError> {
        self.start(Kind::Seq, Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, DataCloneError> {
        self.variant(variant)?;
        let mut c = self.start(Kind::Seq, Some(len))?;
        c.variant = true;
        Ok(c)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, DataCloneError> {
        self.start(Kind::Map, len)
    }
    #[inline]
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, DataCloneError> {
        self.start(Kind::Map, Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, DataCloneError> {
        self.variant(variant)?;
        let mut c = self.start(Kind::Map, Some(len))?;
        c.variant = true;
        Ok(c)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The sequence-like serde traits all write their items as array elements.
macro_rules! serialize_elements {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = DataCloneError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
                self.element(value)
            }
            fn end(self) -> Res {
                Compound::end(self)
            }
        }
    )*};
}

serialize_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = DataCloneError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res {
        self.key(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Res {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = DataCloneError;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res {
        self.field(key, value)
    }
    #[inline]
    fn end(self) -> Res {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = DataCloneError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res {
        self.field(key, value)
    }
    fn end(self) -> Res {
        Compound::end(self)
    }
}
