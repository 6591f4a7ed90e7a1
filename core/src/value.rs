//! [`Value`]: the structured-clone data model (spec.md section (g)).

use crate::Buffer;

/// A structured-clone value: everything a message can carry.
///
/// `Value` is the Rust face of the wire format (docs/wire-format.md). Rust code that
/// has its own types usually posts them with serde instead; bindings never build a
/// `Value` at all, they drive the streaming [`wire::Writer`](crate::wire::Writer) and
/// [`wire::Reader`](crate::wire::Reader) from their native objects.
///
/// # Identity: shared references and cycles
///
/// Structured clone preserves identity inside one message (spec G4): `[o, o]` arrives
/// as an array holding the same object twice, and an array that contains itself
/// arrives containing itself. A `Value` is a tree, so identity is written down
/// explicitly, exactly as the wire format writes it (CBOR tags 28 and 29):
///
/// - [`Value::Shared`] marks a value that other places refer to. Shared values are
///   numbered 0, 1, 2, ... in the order their `Shared` marks are met in a depth-first,
///   pre-order walk (parents before children, elements and entries in order).
/// - [`Value::Ref(n)`](Value::Ref) is another reference to shared value number `n`.
///   It may appear anywhere after the mark of `n` begins, including inside `n`
///   itself, which is how a cycle is written.
///
/// ```
/// use channel_messaging::Value;
///
/// // x = {}; [x, x]
/// let two_refs = Value::Array(vec![
///     Value::Shared(Box::new(Value::Object(vec![]))),
///     Value::Ref(0),
/// ]);
/// // a = []; a.push(a)
/// let cycle = Value::Shared(Box::new(Value::Array(vec![Value::Ref(0)])));
/// # let _ = (two_refs, cycle);
/// ```
///
/// # Transferables
///
/// [`Value::Port(i)`](Value::Port) stands for the `i`-th port of the message's
/// transfer list (on the receiving side: the `i`-th entry of the message's ports).
/// Byte buffers are always [`Value::Buffer`]: posting one shares its bytes instead of
/// copying them, and large ones travel beside the encoded stream, not inside it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `undefined`.
    Undefined,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integral number that fits `i64`. JavaScript numbers that are integers in the
    /// safe range travel as `Int`; every other number travels as [`Value::Float`].
    Int(i64),
    /// A double, keeping -0, NaN and the infinities.
    Float(f64),
    /// A BigInt of any size.
    BigInt(BigInt),
    /// A string that is valid Unicode.
    String(String),
    /// A string holding lone UTF-16 surrogates (which JavaScript and Python strings can
    /// hold and Rust's `String` cannot), as its UTF-16 code units.
    Utf16(Vec<u16>),
    /// A primitive wrapped as an object: `new Number(1)`, `new String("s")`,
    /// `new Boolean(false)`, `Object(1n)`. The inner value is the primitive.
    Boxed(Box<Value>),
    /// An `ArrayBuffer`.
    Buffer(Buffer),
    /// A typed array or `DataView` over a buffer.
    View(View),
    /// An array. Holes are [`Value::Hole`].
    Array(Vec<Value>),
    /// A missing element of a sparse array. Only meaningful as an element of
    /// [`Value::Array`]; anywhere else it is an encoding error.
    Hole,
    /// A plain object: string keys in insertion order.
    Object(Vec<(String, Value)>),
    /// A `Map`: keys of any kind, in insertion order.
    Map(Vec<(Value, Value)>),
    /// A `Set`, in insertion order.
    Set(Vec<Value>),
    /// A `Date`: milliseconds since the Unix epoch (NaN for an invalid date).
    Date(f64),
    /// A `RegExp` (its `lastIndex` is not kept, as structured clone requires).
    RegExp {
        /// The pattern.
        source: String,
        /// The flags, such as `"gi"`.
        flags: String,
    },
    /// An `Error` object.
    Error(Box<ErrorValue>),
    /// A value that other places in the same message refer to with [`Value::Ref`].
    Shared(Box<Value>),
    /// Another reference to the shared value with this number (see the type's docs).
    Ref(u32),
    /// The `i`-th port of the message's transfer list.
    Port(u32),
}

/// An arbitrary-precision integer (a JavaScript BigInt, a Python int beyond `i64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BigInt {
    /// Whether the number is below zero.
    pub negative: bool,
    /// The magnitude, big-endian, without leading zero bytes (empty for zero).
    pub magnitude: Vec<u8>,
}

impl BigInt {
    /// The BigInt equal to `v`.
    pub fn from_i128(v: i128) -> Self {
        let mag = v.unsigned_abs().to_be_bytes();
        let first = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
        BigInt {
            negative: v < 0,
            magnitude: mag[first..].to_vec(),
        }
    }

    /// The value as an `i128`, if it fits.
    pub fn to_i128(&self) -> Option<i128> {
        if self.magnitude.len() > 16 {
            return None;
        }
        let mut mag: u128 = 0;
        for &b in &self.magnitude {
            mag = (mag << 8) | u128::from(b);
        }
        if self.negative {
            if mag <= i128::MAX as u128 + 1 {
                Some((mag as i128).wrapping_neg())
            } else {
                None
            }
        } else {
            i128::try_from(mag).ok()
        }
    }
}

/// The element type of a typed array, or `DataView`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ViewKind {
    /// `Int8Array`
    Int8,
    /// `Uint8Array`
    Uint8,
    /// `Uint8ClampedArray`
    Uint8Clamped,
    /// `Int16Array`
    Int16,
    /// `Uint16Array`
    Uint16,
    /// `Int32Array`
    Int32,
    /// `Uint32Array`
    Uint32,
    /// `Float16Array`
    Float16,
    /// `Float32Array`
    Float32,
    /// `Float64Array`
    Float64,
    /// `BigInt64Array`
    BigInt64,
    /// `BigUint64Array`
    BigUint64,
    /// `DataView`
    DataView,
}

impl ViewKind {
    /// The size of one element in bytes (1 for `DataView`, whose length is in bytes).
    pub const fn element_size(self) -> usize {
        match self {
            ViewKind::Int8 | ViewKind::Uint8 | ViewKind::Uint8Clamped | ViewKind::DataView => 1,
            ViewKind::Int16 | ViewKind::Uint16 | ViewKind::Float16 => 2,
            ViewKind::Int32 | ViewKind::Uint32 | ViewKind::Float32 => 4,
            ViewKind::Float64 | ViewKind::BigInt64 | ViewKind::BigUint64 => 8,
        }
    }
}

/// A typed array or `DataView`: a window onto a buffer.
///
/// Several views of one buffer keep sharing it: make the buffer a [`Value::Shared`] in
/// the first view and a [`Value::Ref`] in the others.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// What the view reads its bytes as.
    pub kind: ViewKind,
    /// The underlying buffer: a [`Value::Buffer`], or a [`Value::Shared`] /
    /// [`Value::Ref`] of one.
    pub buffer: Box<Value>,
    /// Where the view starts in the buffer, in bytes.
    pub byte_offset: u64,
    /// How many elements the view covers (bytes for a `DataView`).
    pub length: u64,
}

/// The standard error constructors structured clone keeps (spec G2); any other name
/// arrives as [`ErrorName::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ErrorName {
    /// `Error`
    #[default]
    Error,
    /// `EvalError`
    EvalError,
    /// `RangeError`
    RangeError,
    /// `ReferenceError`
    ReferenceError,
    /// `SyntaxError`
    SyntaxError,
    /// `TypeError`
    TypeError,
    /// `URIError`
    UriError,
}

impl ErrorName {
    /// The JavaScript constructor name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorName::Error => "Error",
            ErrorName::EvalError => "EvalError",
            ErrorName::RangeError => "RangeError",
            ErrorName::ReferenceError => "ReferenceError",
            ErrorName::SyntaxError => "SyntaxError",
            ErrorName::TypeError => "TypeError",
            ErrorName::UriError => "URIError",
        }
    }

    /// The name structured clone keeps for `name`: itself when it is one of the seven
    /// standard names, `Error` otherwise.
    pub fn from_name(name: &str) -> Self {
        match name {
            "EvalError" => ErrorName::EvalError,
            "RangeError" => ErrorName::RangeError,
            "ReferenceError" => ErrorName::ReferenceError,
            "SyntaxError" => ErrorName::SyntaxError,
            "TypeError" => ErrorName::TypeError,
            "URIError" => ErrorName::UriError,
            _ => ErrorName::Error,
        }
    }
}

/// The parts of an `Error` that structured clone keeps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorValue {
    /// The constructor name.
    pub name: ErrorName,
    /// `message`, when it was an own data property.
    pub message: Option<String>,
    /// `stack`, when the sender had one.
    pub stack: Option<String>,
    /// `cause`, when present.
    pub cause: Option<Value>,
}

impl Value {
    /// The value of `key` in an object (`None` for other kinds or a missing key).
    ///
    /// ```
    /// use channel_messaging::Value;
    /// let v = Value::Object(vec![("seq".into(), Value::Int(7))]);
    /// assert_eq!(v.get("seq"), Some(&Value::Int(7)));
    /// ```
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is a [`Value::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, if this is a [`Value::Int`] or a [`Value::Float`].
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The short name of this kind of value, as error messages print it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Undefined => "undefined",
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Float(_) => "number",
            Value::BigInt(_) => "bigint",
            Value::String(_) | Value::Utf16(_) => "string",
            Value::Boxed(_) => "boxed primitive",
            Value::Buffer(_) => "ArrayBuffer",
            Value::View(_) => "ArrayBufferView",
            Value::Array(_) => "Array",
            Value::Hole => "hole",
            Value::Object(_) => "Object",
            Value::Map(_) => "Map",
            Value::Set(_) => "Set",
            Value::Date(_) => "Date",
            Value::RegExp { .. } => "RegExp",
            Value::Error(_) => "Error",
            Value::Shared(_) => "shared value",
            Value::Ref(_) => "reference",
            Value::Port(_) => "MessagePort",
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Int(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<Buffer> for Value {
    fn from(v: Buffer) -> Self {
        Value::Buffer(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigint_i128_round_trip() {
        for v in [0i128, 1, -1, 255, 256, -256, i128::MAX, i128::MIN, 1 << 70] {
            assert_eq!(BigInt::from_i128(v).to_i128(), Some(v), "{v}");
        }
        assert!(BigInt::from_i128(0).magnitude.is_empty());
    }

    #[test]
    fn error_names_collapse_to_error() {
        assert_eq!(ErrorName::from_name("TypeError"), ErrorName::TypeError);
        assert_eq!(ErrorName::from_name("MyError"), ErrorName::Error);
        assert_eq!(ErrorName::from_name("URIError").as_str(), "URIError");
    }
}
