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
///
/// # Depth
///
/// A message holds at most 256 nested containers (decoding deeper input fails), but a
/// `Value` built by hand can be deeper. `clone` works without recursion, at any depth;
/// dropping, comparing (`==`) and formatting (`{:?}`) recurse once per level, so drop a
/// tree that may be tens of thousands of levels deep with [`Value::drop_deep`].
#[derive(Debug, PartialEq)]
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

/// What [`Value::clone`] still has to do: copy a value, or build a container from the
/// copies of its children (on top of the output stack, in order).
enum CloneStep<'a> {
    Copy(&'a Value),
    Boxed,
    Shared,
    View(&'a View),
    Array(usize),
    Set(usize),
    Object(&'a [(String, Value)]),
    Map(usize),
    Error(&'a ErrorValue),
}

impl Clone for Value {
    /// A deep copy (buffers are shared, as [`Buffer::clone`] does), made without
    /// recursion: a value of any depth can be cloned on any thread's stack.
    fn clone(&self) -> Self {
        if !self.has_children() {
            return self.clone_shallow();
        }
        let mut steps = vec![CloneStep::Copy(self)];
        let mut out: Vec<Value> = Vec::new();
        while let Some(step) = steps.pop() {
            let built = match step {
                CloneStep::Copy(v) => {
                    if !v.has_children() {
                        out.push(v.clone_shallow());
                        continue;
                    }
                    // the container is built once its children's copies are on `out`
                    let (build, children) = match v {
                        Value::Boxed(inner) => (CloneStep::Boxed, vec![&**inner]),
                        Value::Shared(inner) => (CloneStep::Shared, vec![&**inner]),
                        Value::View(view) => (CloneStep::View(view), vec![&*view.buffer]),
                        Value::Array(items) => {
                            (CloneStep::Array(items.len()), items.iter().collect())
                        }
                        Value::Set(items) => (CloneStep::Set(items.len()), items.iter().collect()),
                        Value::Object(entries) => (
                            CloneStep::Object(entries),
                            entries.iter().map(|(_, v)| v).collect(),
                        ),
                        Value::Map(entries) => (
                            CloneStep::Map(entries.len()),
                            entries.iter().flat_map(|(k, v)| [k, v]).collect(),
                        ),
                        Value::Error(e) => (CloneStep::Error(e), e.cause.iter().collect()),
                        _ => unreachable!("has_children covers every container"),
                    };
                    steps.push(build);
                    steps.extend(children.into_iter().rev().map(CloneStep::Copy));
                    continue;
                }
                CloneStep::Boxed => Value::Boxed(Box::new(pop_one(&mut out))),
                CloneStep::Shared => Value::Shared(Box::new(pop_one(&mut out))),
                CloneStep::View(view) => Value::View(View {
                    kind: view.kind,
                    buffer: Box::new(pop_one(&mut out)),
                    byte_offset: view.byte_offset,
                    length: view.length,
                }),
                CloneStep::Array(n) => Value::Array(out.split_off(out.len() - n)),
                CloneStep::Set(n) => Value::Set(out.split_off(out.len() - n)),
                CloneStep::Object(entries) => {
                    let values = out.split_off(out.len() - entries.len());
                    Value::Object(entries.iter().map(|(k, _)| k.clone()).zip(values).collect())
                }
                CloneStep::Map(n) => {
                    let mut flat = out.split_off(out.len() - 2 * n).into_iter();
                    let mut entries = Vec::with_capacity(n);
                    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                        entries.push((k, v));
                    }
                    Value::Map(entries)
                }
                CloneStep::Error(e) => {
                    let cause = e.cause.as_ref().map(|_| pop_one(&mut out));
                    Value::Error(Box::new(ErrorValue {
                        name: e.name,
                        message: e.message.clone(),
                        stack: e.stack.clone(),
                        cause,
                    }))
                }
            };
            out.push(built);
        }
        pop_one(&mut out)
    }
}

/// The copy on top of [`Value::clone`]'s output stack (always there: each build step
/// comes after the copies of its children).
fn pop_one(out: &mut Vec<Value>) -> Value {
    out.pop().unwrap_or(Value::Undefined)
}

impl Value {
    /// Whether this is a container with at least one child value.
    fn has_children(&self) -> bool {
        match self {
            Value::Boxed(_) | Value::Shared(_) | Value::View(_) => true,
            Value::Array(items) | Value::Set(items) => !items.is_empty(),
            Value::Object(entries) => !entries.is_empty(),
            Value::Map(entries) => !entries.is_empty(),
            Value::Error(e) => e.cause.is_some(),
            _ => false,
        }
    }

    /// A copy of a value without children (see [`Value::has_children`]); the empty
    /// containers and childless errors come out empty and childless.
    fn clone_shallow(&self) -> Value {
        match self {
            Value::Undefined => Value::Undefined,
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Float(f) => Value::Float(*f),
            Value::BigInt(b) => Value::BigInt(b.clone()),
            Value::String(s) => Value::String(s.clone()),
            Value::Utf16(u) => Value::Utf16(u.clone()),
            Value::Buffer(b) => Value::Buffer(b.clone()),
            Value::Hole => Value::Hole,
            Value::Date(t) => Value::Date(*t),
            Value::RegExp { source, flags } => Value::RegExp {
                source: source.clone(),
                flags: flags.clone(),
            },
            Value::Ref(n) => Value::Ref(*n),
            Value::Port(i) => Value::Port(*i),
            Value::Array(_) => Value::Array(Vec::new()),
            Value::Set(_) => Value::Set(Vec::new()),
            Value::Object(_) => Value::Object(Vec::new()),
            Value::Map(_) => Value::Map(Vec::new()),
            Value::Error(e) => Value::Error(Box::new(ErrorValue {
                name: e.name,
                message: e.message.clone(),
                stack: e.stack.clone(),
                cause: None,
            })),
            // containers with a child always have one: clone does not get here with them
            Value::Boxed(_) | Value::Shared(_) | Value::View(_) => Value::Undefined,
        }
    }

    /// Drops this value without recursion, however deep it is.
    ///
    /// An ordinary drop recurses once per level of nesting, which overflows the stack
    /// for a tree built by hand tens of thousands of levels deep (received values are
    /// at most 256 levels deep; see the type's docs). `drop_deep` takes nested
    /// containers apart one at a time instead; on a shallow value it is a plain drop.
    ///
    /// ```
    /// use channel_messaging::Value;
    ///
    /// let mut v = Value::Array(vec![]);
    /// for _ in 0..100_000 {
    ///     v = Value::Array(vec![v]);
    /// }
    /// let copy = v.clone(); // cloning works at any depth too
    /// v.drop_deep();
    /// copy.drop_deep();
    /// ```
    pub fn drop_deep(self) {
        let mut pending = vec![self];
        while let Some(mut v) = pending.pop() {
            // move out the children that have children of their own; `v` then drops
            // with at most one level below it
            v.take_nested(&mut pending);
        }
    }

    /// Moves this container's children that have children themselves onto `out`.
    fn take_nested(&mut self, out: &mut Vec<Value>) {
        let mut take = |v: &mut Value| {
            if v.has_children() {
                out.push(std::mem::replace(v, Value::Undefined));
            }
        };
        match self {
            Value::Boxed(inner) | Value::Shared(inner) => take(inner),
            Value::View(view) => take(&mut view.buffer),
            Value::Array(items) | Value::Set(items) => items.iter_mut().for_each(take),
            Value::Object(entries) => entries.iter_mut().for_each(|(_, v)| take(v)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                take(k);
                take(v);
            }),
            Value::Error(e) => {
                if let Some(cause) = e.cause.as_mut() {
                    take(cause);
                }
            }
            _ => {}
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
    /// A value with every kind, nested: what `clone` must copy exactly.
    fn every_kind() -> Value {
        let buffer = Value::Buffer(Buffer::from(vec![1u8, 2, 3, 4]));
        Value::Array(vec![
            Value::Undefined,
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::Float(-0.0),
            Value::BigInt(BigInt::from_i128(-(1 << 70))),
            Value::String("tick".into()),
            Value::Utf16(vec![0xd800, 0x61]),
            Value::Boxed(Box::new(Value::String("boxed".into()))),
            Value::Shared(Box::new(buffer.clone())),
            Value::View(View {
                kind: ViewKind::Uint16,
                buffer: Box::new(Value::Ref(0)),
                byte_offset: 2,
                length: 1,
            }),
            Value::Hole,
            Value::Object(vec![
                ("a".into(), Value::Array(vec![])),
                ("b".into(), Value::Object(vec![("c".into(), Value::Int(1))])),
            ]),
            Value::Map(vec![
                (
                    Value::Object(vec![]),
                    Value::Set(vec![Value::Int(1), Value::Int(2)]),
                ),
                (Value::String("k".into()), Value::Map(vec![])),
            ]),
            Value::Set(vec![Value::Array(vec![Value::Port(0)])]),
            Value::Date(f64::NAN),
            Value::RegExp {
                source: "a+".into(),
                flags: "gi".into(),
            },
            Value::Error(Box::new(ErrorValue {
                name: ErrorName::TypeError,
                message: Some("m".into()),
                stack: None,
                cause: Some(Value::Error(Box::default())),
            })),
            Value::Error(Box::default()),
            buffer,
        ])
    }

    #[test]
    fn clone_copies_every_kind_exactly() {
        let v = every_kind();
        let copy = v.clone();
        // (NaN dates compare unequal: compare the debug forms, which print them alike)
        assert_eq!(format!("{copy:?}"), format!("{v:?}"));
        // buffers are shared, not copied
        let (Value::Array(a), Value::Array(b)) = (&v, &copy) else {
            unreachable!()
        };
        let (Value::Buffer(x), Value::Buffer(y)) = (&a[19], &b[19]) else {
            unreachable!()
        };
        assert_eq!(x.as_slice().as_ptr(), y.as_slice().as_ptr());
    }

    /// Nests 200,000 containers of every kind that has children, one in the next.
    fn deep() -> Value {
        let mut v = Value::Int(42);
        for i in 0..200_000 {
            v = match i % 9 {
                0 => Value::Array(vec![Value::Int(i), v]),
                1 => Value::Object(vec![("k".into(), v)]),
                2 => Value::Map(vec![(Value::Int(i), v)]),
                3 => Value::Map(vec![(v, Value::Null)]),
                4 => Value::Set(vec![v]),
                5 => Value::Shared(Box::new(v)),
                6 => Value::Boxed(Box::new(v)),
                7 => Value::View(View {
                    kind: ViewKind::DataView,
                    buffer: Box::new(v),
                    byte_offset: 0,
                    length: 0,
                }),
                _ => Value::Error(Box::new(ErrorValue {
                    cause: Some(v),
                    ..ErrorValue::default()
                })),
            };
        }
        v
    }

    /// How deep `v` is (walking down the first child that has children).
    fn depth(mut v: &Value) -> usize {
        let mut levels = 0;
        loop {
            let next = match v {
                Value::Array(items) | Value::Set(items) => items.last(),
                Value::Object(entries) => entries.last().map(|(_, v)| v),
                Value::Map(entries) => entries
                    .last()
                    .map(|(k, v)| if k.has_children() { k } else { v }),
                Value::Shared(inner) | Value::Boxed(inner) => Some(&**inner),
                Value::View(view) => Some(&*view.buffer),
                Value::Error(e) => e.cause.as_ref(),
                _ => None,
            };
            match next {
                Some(n) => {
                    levels += 1;
                    v = n;
                }
                None => return levels,
            }
        }
    }

    #[test]
    fn values_of_any_depth_clone_and_drop_without_recursion() {
        // on a small stack, where a recursive clone or drop of this depth overflows
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| {
                let v = deep();
                let copy = v.clone();
                assert_eq!(depth(&copy), 200_000);
                assert_eq!(depth(&v), 200_000);
                v.drop_deep();
                copy.drop_deep();
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
